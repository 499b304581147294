#!/bin/sh
# One answer of the OpenResty example: starts examples/openresty/run.sh
# against $KPAYMENT_BASE_URL (examples/with-mock.sh sets it, with
# credentials) on a free port, prints GET /offers?customer=$1&dealer=$2,
# stops nginx.  `make demo-openresty` runs it against the mock.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 CUSTOMER DEALER" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
port=$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
print((select(2, s:getsockname())))')
out=$(mktemp)
"$here/run.sh" "$KPAYMENT_BASE_URL" "$port" >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$out"' EXIT
i=0
while [ ! -s "$out" ]; do
  kill -0 $pid 2>/dev/null || { echo "demo: run.sh failed" >&2; exit 1; }
  i=$((i + 1))
  [ $i -le 200 ] || { echo "demo: nginx did not start" >&2; exit 1; }
  sleep 0.05
done
url=$(head -n 1 "$out")
echo "GET $url/offers?customer=$1&dealer=$2" >&2
curl -sS "$url/offers?customer=$1&dealer=$2"
