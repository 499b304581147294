#!/bin/sh
# examples/openresty/run.sh API_BASE_URL PORT
#
# Starts nginx (Debian's nginx + libnginx-mod-http-lua) with
# examples/openresty/nginx.conf under a private prefix, on 127.0.0.1:PORT,
# pointed at the API at API_BASE_URL.  Credentials, skin and locale come
# from KPAYMENT_USERNAME/KPAYMENT_PASSWORD (or KPAYMENT_BEARER_TOKEN),
# KPAYMENT_SKIN, KPAYMENT_LOCALE, KPAYMENT_TIMEOUT (seconds per call);
# KPAYMENT_CA_FILE names the CA file that verifies an https API (default:
# the system's); KPAYMENT_NGINX_INCLUDE names files of extra locations for
# the server block.  Prints its URL once it
# serves, then serves until stopped (SIGINT/SIGTERM); the prefix goes with it.
# Needs kpayment built for LuaJIT: make LUA_VERSION=luajit.
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
command -v nginx >/dev/null 2>&1 || { echo "run.sh: nginx not found (apt-get install nginx libnginx-mod-http-lua)" >&2; exit 1; }

# scheme://host[:port][/path]: the upstream needs host:port.
case $base in
  http://*) scheme=http; default_port=80 ;;
  https://*) scheme=https; default_port=443 ;;
  *) echo "run.sh: API_BASE_URL must start with http:// or https://" >&2; exit 2 ;;
esac
authority=${base#*://}
authority=${authority%%/*}
case $authority in
  *:[0-9]*) server=$authority ;;
  *) server=$authority:$default_port ;;
esac
# nginx would also try ::1 for localhost; Host and TLS name stay "localhost"
case $server in
  localhost:*) server=127.0.0.1:${server#localhost:} ;;
esac
case $port in
  ''|*[!0-9]*) echo "run.sh: PORT must be a number" >&2; exit 2 ;;
esac

prefix=$(mktemp -d "${TMPDIR:-/tmp}/kpayment-openresty.XXXXXX")
# workers (nobody, when started as root) must reach the temp directories
chmod 755 "$prefix"
mkdir -p "$prefix/conf/server.d" "$prefix/logs" "$prefix/temp" "$prefix/lua" "$prefix/lib/kpayment"
cp "$here/nginx.conf" "$prefix/conf/nginx.conf"
for f in ${KPAYMENT_NGINX_INCLUDE:-}; do cp "$f" "$prefix/conf/server.d/"; done
ln -s "$root/lua/kpayment" "$prefix/lua/kpayment"
ln -s "$here/offers.lua" "$prefix/lua/offers.lua"
ln -s "$so" "$prefix/lib/kpayment/core.so"
nameserver=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
cat >"$prefix/conf/api.conf" <<CONF
upstream kpayment_api {
    server $server;
    keepalive 32;
}
proxy_ssl_trusted_certificate ${KPAYMENT_CA_FILE:-/etc/ssl/certs/ca-certificates.crt};
lua_ssl_trusted_certificate ${KPAYMENT_CA_FILE:-/etc/ssl/certs/ca-certificates.crt};
resolver ${nameserver:-127.0.0.1} ipv6=off;
CONF
echo "listen 127.0.0.1:$port;" >"$prefix/conf/listen.conf"

KPAYMENT_BASE_URL=$base
export KPAYMENT_BASE_URL

nginx -p "$prefix/" -c conf/nginx.conf -g 'daemon off;' </dev/null &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$prefix"
}
trap stop EXIT
trap 'exit 0' INT TERM

i=0
until curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1; do
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
