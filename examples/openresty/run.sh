#!/bin/sh
# examples/openresty/run.sh API_BASE_URL PORT
#
# Starts nginx (Debian's nginx + libnginx-mod-http-lua) with
# examples/openresty/nginx.conf under a private prefix laid out as that file
# expects (a rock tree in lua_modules/, the rock's nginx/ in kpayment/, the
# handler offers.lua), made of links into this checkout, on
# 127.0.0.1:PORT (the one line changed: `listen`), calling the API at
# API_BASE_URL.  Credentials and skin come from KPAYMENT_USERNAME and
# KPAYMENT_PASSWORD (or KPAYMENT_BEARER_TOKEN), KPAYMENT_SKIN.  Prints its
# URL once it serves, then serves until stopped (SIGINT/SIGTERM); the prefix
# goes with it.  Needs kpayment built for LuaJIT: make LUA_VERSION=luajit.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 API_BASE_URL PORT" >&2
  exit 2
fi
base=$1
port=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
so="$root/build/luajit/kpayment/core.so"
[ -f "$so" ] || { echo "run.sh: $so missing: run make LUA_VERSION=luajit first" >&2; exit 1; }
command -v nginx >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
command -v nginx >/dev/null 2>&1 || {
  echo "run.sh: nginx not found (apt-get install nginx libnginx-mod-http-lua)" >&2; exit 1; }
case $port in
  ''|*[!0-9]*) echo "run.sh: PORT must be a number" >&2; exit 2 ;;
esac

prefix=$(mktemp -d "${TMPDIR:-/tmp}/kpayment-openresty.XXXXXX")
# workers (nobody, when started as root) read through these links
chmod 755 "$prefix"
mkdir -p "$prefix/logs" "$prefix/lua_modules/share/lua/5.1" "$prefix/lua_modules/lib/lua/5.1/kpayment"
ln -s "$root/lua/kpayment" "$prefix/lua_modules/share/lua/5.1/kpayment"
ln -s "$so" "$prefix/lua_modules/lib/lua/5.1/kpayment/core.so"
ln -s "$root/nginx" "$prefix/kpayment"
ln -s "$here/offers.lua" "$prefix/offers.lua"
sed "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/" "$here/nginx.conf" >"$prefix/nginx.conf"

KPAYMENT_BASE_URL=$base
export KPAYMENT_BASE_URL

nginx -p "$prefix/" -c nginx.conf -g 'daemon off;' </dev/null &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$prefix"
}
trap stop EXIT
trap 'exit 0' INT TERM

i=0
# /offers without its parameters answers 400 once nginx serves
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/offers")" = 400 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run.sh: nginx did not start:" >&2
    cat "$prefix/logs/error.log" >&2 2>/dev/null || true
    exit 1
  fi
  i=$((i + 1))
  [ $i -le 100 ] || { echo "run.sh: nginx does not answer on port $port" >&2; exit 1; }
  sleep 0.05
done
echo "http://127.0.0.1:$port"
echo "nginx prefix $prefix (logs in $prefix/logs)" >&2
wait "$pid"
