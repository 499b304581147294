#!/bin/sh
# bench/http-run.sh -- the nginx side of `make bench-http` (bench/http.mk).
#
#   bench/http-run.sh            start nginx, run bench/http.lua, stop nginx
#   bench/http-run.sh CMD ARG…   start nginx, run CMD with the BENCH_HTTP_*
#                                variables below set, stop nginx
#
# Run from the repository root, after the payloads (OUT/offers-N.json) and
# the C client exist.  nginx runs from a private prefix (OUT/nginx): its
# config is bench/nginx/nginx.conf.in with free loopback ports filled in, a
# certificate for localhost/127.0.0.1 is made by openssl for this run, and
# nginx is stopped on exit, on failure and on interrupt.
#
# Environment: LUA (lua5.4), BUILD (build/5.4), OUT (build/bench-http),
# BENCH_NGINX (nginx from PATH, else /usr/sbin/nginx), BENCH_NGINX_MODULES
# (/usr/lib/nginx/modules).  Not NGINX: nginx itself reads a variable of
# that name (sockets inherited on binary upgrade) and fails to start with a
# path in it, so it is removed from nginx's environment.
# The command gets BENCH_HTTP_URL, BENCH_HTTPS_URL, BENCH_DELAY_URL,
# BENCH_OPENRESTY_URL, BENCH_HTTP_STATUS_URL, BENCH_HTTPS_LOG, BENCH_HTTP_CA,
# BENCH_HTTP_CLIENT, BENCH_HTTP_NGINX and BENCH_HTTP_NGINX_PID (nginx's
# master, whose children are the workers).  The OpenResty server loads
# kpayment built for LuaJIT (build/luajit: make LUA_VERSION=luajit).
set -eu

LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
OUT=${OUT:-build/bench-http}
NGINX_BIN=${BENCH_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_MODULES=${BENCH_NGINX_MODULES:-/usr/lib/nginx/modules}

ROOT=$(pwd)
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
PREFIX=$OUT/nginx

fail() { echo "bench-http: $*" >&2; exit 1; }

[ -x "$NGINX_BIN" ] || fail "nginx not found (apt-get install nginx libnginx-mod-http-lua)"
for m in ndk_http_module ngx_http_lua_module; do
  [ -f "$NGINX_MODULES/$m.so" ] || fail "$NGINX_MODULES/$m.so missing (apt-get install libnginx-mod-http-lua)"
done
for n in 1 10 100 1000; do
  [ -s "$OUT/offers-$n.json" ] || fail "$OUT/offers-$n.json missing (make bench-http makes it)"
done
[ -x "$OUT/http_client" ] || fail "$OUT/http_client missing (make bench-http builds it)"
[ -f build/luajit/kpayment/core.so ] || fail "build/luajit/kpayment/core.so missing (make LUA_VERSION=luajit)"

rm -rf "$PREFIX"
mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/tmp"

# A throwaway CA and a server certificate it signs, valid for two days.
# Clients get the CA as their CA file; nothing is added to the system store.
(
  cd "$PREFIX/conf"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.pem -days 2 -subj "/CN=kpayment bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost"
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -extfile server.ext -out server.pem
) >"$PREFIX/logs/openssl.log" 2>&1 || { cat "$PREFIX/logs/openssl.log" >&2; fail "openssl failed"; }

# Four free loopback ports: bound together (so they differ), then released
# for nginx.
PORTS=$("$LUA" -e '
  local socket = require("socket")
  local s, p = {}, {}
  for i = 1, 4 do
    s[i] = assert(socket.bind("127.0.0.1", 0))
    p[i] = select(2, s[i]:getsockname())
  end
  for i = 1, 4 do s[i]:close() end
  print(table.concat(p, " "))') || fail "could not pick free ports (is lua-socket installed?)"
HTTP_PORT=$(echo "$PORTS" | cut -d' ' -f1)
HTTPS_PORT=$(echo "$PORTS" | cut -d' ' -f2)
DELAY_PORT=$(echo "$PORTS" | cut -d' ' -f3)
OPENRESTY_PORT=$(echo "$PORTS" | cut -d' ' -f4)

# Started as root, nginx would run its workers as nobody, who may not be
# able to read a checkout under a private home: keep the invoking user.
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@PAYLOADS@|$OUT|g" -e "s|@MODULES@|$NGINX_MODULES|g" \
    -e "s|@SRCDIR@|$ROOT/bench/nginx|g" -e "s|@USER_LINE@|$USER_LINE|g" \
    -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@HTTPS_PORT@|$HTTPS_PORT|g" \
    -e "s|@DELAY_PORT@|$DELAY_PORT|g" -e "s|@OPENRESTY_PORT@|$OPENRESTY_PORT|g" \
    -e "s|@ROOT@|$ROOT|g" \
    bench/nginx/nginx.conf.in > "$PREFIX/conf/nginx.conf"
cp bench/nginx/api.conf "$PREFIX/conf/api.conf"

NGINX_PID=""
stop_nginx() {
  if [ -n "$NGINX_PID" ]; then
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
}
trap 'stop_nginx' EXIT
trap 'stop_nginx; exit 130' INT
trap 'stop_nginx; exit 143' TERM

env -u NGINX "$NGINX_BIN" -p "$PREFIX/" -c conf/nginx.conf -e "$PREFIX/logs/error.log" &
NGINX_PID=$!

API=/payment/kpayment/v1/finance/getFinanceOffersForCustomer
Q="?customerUUID=bench-1&dealerUUID=bench-dealer&skin=s&locale=en-US"
HTTP_URL=http://127.0.0.1:$HTTP_PORT
HTTPS_URL=https://localhost:$HTTPS_PORT
DELAY_URL=http://127.0.0.1:$DELAY_PORT
OPENRESTY_URL=http://127.0.0.1:$OPENRESTY_PORT

# Up when all three servers answer the API path with 200, and the
# OpenResty one a location fetching from the HTTP one (at most 10 s).
up=""
i=0
while [ $i -lt 100 ]; do
  kill -0 "$NGINX_PID" 2>/dev/null || break
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$HTTP_URL$API$Q")" = 200 ] &&
     [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PREFIX/conf/ca.pem" "$HTTPS_URL$API$Q")" = 200 ] &&
     [ "$(curl -s -o /dev/null -w '%{http_code}' "$DELAY_URL$API$Q")" = 200 ] &&
     [ "$(curl -s -o /dev/null -w '%{http_code}' "$OPENRESTY_URL/cosocket?offers=1")" = 200 ]; then
    up=1
    break
  fi
  sleep 0.1
  i=$((i + 1))
done
if [ -z "$up" ]; then
  cat "$PREFIX/logs/error.log" >&2 2>/dev/null || true
  fail "nginx did not come up (log above; config $PREFIX/conf/nginx.conf)"
fi

export BENCH_HTTP_URL=$HTTP_URL BENCH_HTTPS_URL=$HTTPS_URL BENCH_DELAY_URL=$DELAY_URL
export BENCH_OPENRESTY_URL=$OPENRESTY_URL
export BENCH_HTTP_STATUS_URL=$HTTP_URL/nginx_status
export BENCH_HTTPS_LOG=$PREFIX/logs/https-protocols.log
export BENCH_HTTP_CA=$PREFIX/conf/ca.pem BENCH_HTTP_CLIENT=$OUT/http_client BENCH_HTTP_NGINX=$NGINX_BIN
export BENCH_HTTP_NGINX_PID=$NGINX_PID

if [ $# -eq 0 ]; then
  set -- env LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH="$BUILD/?.so;;" "$LUA" bench/http.lua
fi
status=0
"$@" || status=$?
stop_nginx
exit $status
