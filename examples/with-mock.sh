#!/bin/sh
# Run a command against the bundled mock API: starts bin/kpayment-mock on a
# free port, exports KPAYMENT_BASE_URL (and demo credentials), runs the
# command, stops the mock whatever happens.
#   examples/with-mock.sh lua5.4 examples/get_offers.lua CUSTOMER DEALER
# When the mock does not start, its error goes to stderr and the status is 1.
set -eu
LUA=${LUA:-lua5.4}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
err=$(mktemp)
# However this script ends (the command's end, a failure, or a signal: a
# hangup, ^C, kill, a closed pipe), it stops the mock and waits for it.
pid=
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; fi
  rm -f "$out" "$err"
}
trap stop EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
# The mock runs on Lua 5.4, which reads the plain LUA_PATH / LUA_CPATH when
# no LUA_PATH_5_4 / LUA_CPATH_5_4 is set: a shell set up for another Lua's
# rocks would have it load that Lua's C modules. It needs Debian's
# packages alone (and finds its own modules beside itself).
LUA_PATH_5_4=${LUA_PATH_5_4:-";;"} LUA_CPATH_5_4=${LUA_CPATH_5_4:-";;"} \
"$LUA" "$here/bin/kpayment-mock" --port 0 --user demo-user --password demo-password \
  --client-id kp-demo-client --client-secret kp-demo-secret \
  </dev/null >"$out" 2>"$err" &
pid=$!
# The mock prints its base URL as its first line once it listens; anything
# else (or nothing, or an early exit) means it did not start.
i=0
why="no URL after 5 s"
while [ "$(wc -l <"$out")" -eq 0 ]; do
  if ! kill -0 $pid 2>/dev/null; then why="it exited"; break; fi
  i=$((i + 1))
  [ $i -le 100 ] || break
  sleep 0.05
done
KPAYMENT_BASE_URL=$(head -n 1 "$out")
case $KPAYMENT_BASE_URL in
  http://*) ;;
  *)
    [ -z "$KPAYMENT_BASE_URL" ] || why="it printed something other than its URL"
    echo "with-mock: the mock did not start ($why):" >&2
    cat "$err" "$out" >&2
    exit 1
    ;;
esac
KPAYMENT_USERNAME=demo-user
KPAYMENT_PASSWORD=demo-password
KPAYMENT_SKIN=${KPAYMENT_SKIN:-demo}
KPAYMENT_LOCALE=${KPAYMENT_LOCALE:-en-US}
export KPAYMENT_BASE_URL KPAYMENT_USERNAME KPAYMENT_PASSWORD KPAYMENT_SKIN KPAYMENT_LOCALE
unset KPAYMENT_BEARER_TOKEN
# From a checkout, the command finds kpayment there (build it with make)
# unless LUA_PATH / LUA_CPATH say otherwise.
LUA_PATH=${LUA_PATH:-"$here/lua/?.lua;$here/lua/?/init.lua;;"}
LUA_CPATH=${LUA_CPATH:-"$here/build/${LUA_VERSION:-5.4}/?.so;;"}
export LUA_PATH LUA_CPATH
# A failed write (a closed stderr) does not stop the script; a broken pipe
# does, through the PIPE trap, which stops the mock.
echo "mock API at $KPAYMENT_BASE_URL" >&2 || :
"$@"
