# bench/http.mk -- `make bench-http`: kpayment's client over real HTTP against
# nginx on loopback, beside plain libcurl (body discarded, decoded by
# lua-cjson, decoded by kpayment.core.decode), luasocket + cjson and the
# curl command, each sequential section against its limit (the transport
# plus bench/floor.c building the body's tables); and kpayment inside
# nginx (built for LuaJIT), over cosockets and by subrequest, beside the
# same by hand with cjson, under wrk; and hot keys (few customers, many
# requests in flight, answers 20 ms late): coalescing on and off and the
# cache, through one client and inside nginx, with the API calls the
# server saw (about 9 to 11 minutes in all; the OpenResty sections alone,
# BENCH_HTTP_ONLY=OpenResty, about 4; BENCH_HTTP_ONLY='Hot keys' about 1).
# Included from the main Makefile, which defines LUA, BUILD, CC, CFLAGS,
# LUA_CFLAGS, CURL_CFLAGS, CURL_LIBS and the target all.
#
#   make bench-http                     the full run
#   make bench-http BENCH_HTTP_N=500    fewer calls per round, for a quick look
#   make bench-http BENCH_HTTP_ONLY='1000 offers'   only the sections whose title has it
#   make bench-http BENCH_HTTP_ONLY='Hot keys'      coalescing and the cache alone
#   make bench-http BENCH_HTTP_GC=incremental   the collector mode of both sides
#   make bench-http BENCH_HTTP_ONLY=OpenResty BENCH_HTTP_WRK_SECONDS=10   longer wrk runs
#
# Needs the Debian packages in BENCH_HTTP_PACKAGES; as root the missing ones
# are installed, otherwise the command to run is printed.  nginx runs from a
# private prefix under build/bench-http/ on free loopback ports and is
# stopped at the end (bench/http-run.sh); nothing else on the machine is
# touched.

BENCH_HTTP_N       ?= 2000
BENCH_HTTP_ROUNDS  ?= 5
BENCH_HTTP_ONLY    ?=
BENCH_HTTP_GC      ?=
BENCH_HTTP_WRK_SECONDS ?= 3
BENCH_HTTP_DIR     := build/bench-http
BENCH_HTTP_CLIENT  := $(BENCH_HTTP_DIR)/http_client
BENCH_HTTP_PAYLOADS := $(BENCH_HTTP_DIR)/offers-1.json $(BENCH_HTTP_DIR)/offers-10.json \
                       $(BENCH_HTTP_DIR)/offers-100.json $(BENCH_HTTP_DIR)/offers-1000.json
# LuaJIT from luajit2 (never the luajit package: it removes nginx's Lua module).
BENCH_HTTP_PACKAGES := nginx libnginx-mod-http-lua lua-socket lua-cjson openssl curl wrk \
                       luajit2 libluajit2-5.1-dev lua-compat53-dev
# The C client embeds Lua, so unlike the module it links liblua.
BENCH_HTTP_LUA_LIBS := $(shell $(or $(PKG_CONFIG),pkg-config) --libs lua$(or $(LUA_VERSION),5.4) 2>/dev/null)
BENCH_HTTP_CFLAGS  := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes \
                      -Wmissing-prototypes -Wpointer-arith -Wcast-qual -D_POSIX_C_SOURCE=200809L

.PHONY: bench-http bench-http-deps bench-instructions

# The floor module (bench/bench.mk) gives each sequential section its
# limit: the transport's time plus the time to build the body's tables.
bench-http: all bench-http-deps $(BENCH_HTTP_CLIENT) $(BENCH_HTTP_PAYLOADS) $(FLOOR_SO)
	@$(MAKE) --no-print-directory LUA_VERSION=luajit all
	LUA=$(LUA) BUILD=$(BUILD) OUT=$(BENCH_HTTP_DIR) BENCH_HTTP_N=$(BENCH_HTTP_N) \
	  BENCH_HTTP_ROUNDS=$(BENCH_HTTP_ROUNDS) BENCH_HTTP_ONLY='$(BENCH_HTTP_ONLY)' \
	  BENCH_HTTP_GC='$(BENCH_HTTP_GC)' \
	  BENCH_HTTP_WRK_SECONDS=$(BENCH_HTTP_WRK_SECONDS) sh bench/http-run.sh

# Instructions per call of the sequential candidates at 1, 10 and 100
# offers, counted by callgrind (bench/instructions.lua; about 2 minutes):
# the figures a noisy machine does not move.
#   make bench-instructions BENCH_INSTR_OFFERS='10'   one size
BENCH_INSTR_OFFERS ?= 1 10 100
bench-instructions: all $(BENCH_HTTP_CLIENT) $(BENCH_HTTP_PAYLOADS) $(FLOOR_SO)
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1 DEB_PACKAGES="$(BENCH_HTTP_PACKAGES) valgrind"
	@$(MAKE) --no-print-directory LUA_VERSION=luajit all
	LUA=$(LUA) BUILD=$(BUILD) OUT=$(BENCH_HTTP_DIR) BENCH_HTTP_GC='$(BENCH_HTTP_GC)' \
	  BENCH_INSTR_OFFERS='$(BENCH_INSTR_OFFERS)' sh bench/http-run.sh \
	  env LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;' \
	  $(LUA) bench/instructions.lua

$(BENCH_HTTP_CLIENT): bench/http_client.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_HTTP_CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) bench/http_client.c \
	  -o $@ $(CURL_LIBS) $(BENCH_HTTP_LUA_LIBS)

# Recorded responses: bench/gen.lua's output is fixed for a given N.
$(BENCH_HTTP_DIR)/offers-%.json: bench/gen.lua
	@mkdir -p $(dir $@)
	$(LUA) bench/gen.lua $* > $@.tmp && mv $@.tmp $@

bench-http-deps:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1 DEB_PACKAGES="$(BENCH_HTTP_PACKAGES)"
