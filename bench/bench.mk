# bench/bench.mk -- `make bench`: kpayment.core.decode beside lua-cjson and
# dkjson, on generated responses of 1 to 10 000 offers (about 2 minutes).
# Included from the main Makefile, which defines LUA, BUILD and the target all.
#
#   make bench                    the full run
#   make bench BENCH_ARGS=100     payloads of at most 100 offers, for a quick look

BENCH_ARGS ?=
# As LUA_ENV, plus bench/ for the generator module.
BENCH_LUA_ENV = LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

FLOOR_SO := $(BUILD)/kpayment_floor.so

# The floor module (bench/floor.c) is bench-only: never part of the rock.
$(FLOOR_SO): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fPIC $(LUA_CFLAGS) -shared bench/floor.c -o $@

.PHONY: bench
bench: all $(FLOOR_SO)
	$(BENCH_LUA_ENV) $(LUA) bench/decode.lua $(BENCH_ARGS)

# What a frame's poll(0) costs while a 1 000-offer response arrives, beside
# one decode of the same body (against the mock).
.PHONY: bench-poll
bench-poll: all
	$(BENCH_LUA_ENV) LUA=$(LUA) examples/with-mock.sh $(LUA) bench/poll.lua 1000
