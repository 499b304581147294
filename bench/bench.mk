# bench/bench.mk -- `make bench`: kpayment.core.decode beside lua-cjson and
# dkjson, on generated responses of 1 to 10 000 offers, under Lua 5.4 and
# then under LuaJIT (about 8 minutes), then the two side by side.
# Included from the main Makefile, which defines LUA, BUILD and the target all.
#
#   make bench                    the full run
#   make bench BENCH_ARGS=100     payloads of at most 100 offers, for a quick look
#   make bench BENCH_LUAS=5.4     one interpreter only (5.4 or luajit)

BENCH_ARGS ?=
# The interpreters of `make bench`, in order: the one asked for, and LuaJIT.
BENCH_LUAS ?= $(LUA_VERSION) $(filter-out $(LUA_VERSION),luajit)
# lua-cjson serves both: Debian builds it for 5.1 (LuaJIT) and 5.4.
BENCH_PACKAGES := lua5.4 lua-cjson lua-dkjson luajit2 libluajit2-5.1-dev lua-compat53-dev
BENCH_SUMMARY_FILE := build/bench/decode-summary.tsv
# As LUA_ENV, plus bench/ for the generator module.
BENCH_LUA_ENV = LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

FLOOR_SO := $(BUILD)/kpayment_floor.so

# The floor module (bench/floor.c) is bench-only: never part of the rock.
$(FLOOR_SO): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fPIC -D_POSIX_C_SOURCE=200809L -Isrc $(LUA_CFLAGS) -shared bench/floor.c -o $@

.PHONY: bench bench-decode bench-deps
bench: bench-deps
	@mkdir -p $(dir $(BENCH_SUMMARY_FILE)) && rm -f $(BENCH_SUMMARY_FILE)
	@for v in $(BENCH_LUAS); do \
	  $(MAKE) --no-print-directory bench-decode LUA_VERSION=$$v || exit 1; echo; \
	done
	@lua5.4 bench/decode-summary.lua $(BENCH_SUMMARY_FILE)

# One interpreter's run (LUA_VERSION), appending to the summary.
bench-decode: all $(FLOOR_SO)
	$(BENCH_LUA_ENV) BENCH_SUMMARY=$(BENCH_SUMMARY_FILE) $(LUA) bench/decode.lua $(BENCH_ARGS)

bench-deps:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1 DEB_PACKAGES="$(BENCH_PACKAGES)"

# What a frame's poll(0) costs while large responses arrive, sliced decode
# beside whole (BENCH_POLL_OFFERS: sizes, default 100 1000 10000), and
# the body decoded alone both ways (against the mock); under each of the
# collector's modes this Lua has, one process each.
.PHONY: bench-poll
BENCH_POLL_OFFERS ?= 100 1000 10000
BENCH_POLL_GC = incremental $(if $(filter 5.4,$(LUA_VERSION)),generational)
bench-poll: all
	for gc in $(BENCH_POLL_GC); do \
	  $(BENCH_LUA_ENV) BENCH_GC=$$gc LUA=$(MOCK_LUA) examples/with-mock.sh $(LUA) \
	    bench/poll.lua $(BENCH_POLL_OFFERS) || exit 1; \
	done
