#!/bin/sh
# Run a command against the bundled mock API: starts bin/kpayment-mock on a
# free port, exports KPAYMENT_BASE_URL (and demo credentials), runs the
# command, stops the mock whatever happens.
#   examples/with-mock.sh lua5.4 examples/get_offers.lua CUSTOMER DEALER
set -eu
LUA=${LUA:-lua5.4}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
"$LUA" "$here/bin/kpayment-mock" --port 0 --user demo-user --password demo-password >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT INT TERM
i=0
while [ "$(head -n 1 "$out")" = "" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
    echo "with-mock: the mock did not start:" >&2; cat "$out" >&2; exit 1
  fi
  sleep 0.05
done
KPAYMENT_BASE_URL=$(head -n 1 "$out")
KPAYMENT_USERNAME=demo-user
KPAYMENT_PASSWORD=demo-password
KPAYMENT_SKIN=${KPAYMENT_SKIN:-demo}
KPAYMENT_LOCALE=${KPAYMENT_LOCALE:-en-US}
export KPAYMENT_BASE_URL KPAYMENT_USERNAME KPAYMENT_PASSWORD KPAYMENT_SKIN KPAYMENT_LOCALE
unset KPAYMENT_BEARER_TOKEN
echo "mock API at $KPAYMENT_BASE_URL" >&2
"$@"
