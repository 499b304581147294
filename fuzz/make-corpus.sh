#!/bin/sh
# make-corpus.sh [DIR] -- fill the libFuzzer corpus directory (default
# build/fuzz/corpus) with the spec fixtures and the hand-written seeds in
# fuzz/seeds.  Run from the repository root.
#
# The directory is also where libFuzzer keeps the inputs it finds, so it is
# only added to, never emptied: each run starts from what the last one
# learnt.  --clean empties it first.
set -eu

clean=0
if [ "${1:-}" = "--clean" ]; then
  clean=1
  shift
fi
dir=${1:-build/fuzz/corpus}

if [ ! -d fuzz/seeds ] || [ ! -d spec/fixtures ]; then
  echo "make-corpus.sh: run from the repository root" >&2
  exit 2
fi

if [ "$clean" = 1 ]; then
  rm -rf "$dir"
fi
mkdir -p "$dir"

# Prefixes keep the two sources apart and make a seed easy to trace back;
# libFuzzer's own files are named by SHA-1 and never collide with these.
n=0
for f in spec/fixtures/*.json spec/fixtures/*/*.json; do
  [ -f "$f" ] || continue
  rel=${f#spec/fixtures/}
  cp "$f" "$dir/fixture-$(printf '%s' "$rel" | tr '/' '-')"
  n=$((n + 1))
done
s=0
for f in fuzz/seeds/*; do
  [ -f "$f" ] || continue
  cp "$f" "$dir/seed-${f##*/}"
  s=$((s + 1))
done

echo "fuzz corpus: $dir ($n fixtures, $s seeds, $(ls "$dir" | wc -l) files in all)"
