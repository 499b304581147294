# test/soak.mk -- `make soak`: 20 000 calls against the mock, checking every
# outcome and that RSS and open descriptors stop growing (test/soak.lua).
# Not part of `make test`: it takes about a minute.
#
# Included from the main Makefile, or used as
#   make -f Makefile -f test/soak.mk soak
# Uses from the main Makefile: LUA, BUILD and the target all.  One mock
# (bin/kpayment-mock on a free port) is started for the run and stopped
# afterwards; its output goes to build/soak/.
#
#   make soak                   20 000 calls
#   make soak SOAK_CALLS=5000   fewer (a multiple of 1000, at least 5000)

KP_SOAK_SAVED_GOAL := $(.DEFAULT_GOAL)

SOAK_OUT   := build/soak
SOAK_CALLS ?= 20000
SOAK_LUA    = $(or $(LUA),lua5.4)
SOAK_ENV    = LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(or $(BUILD),build/5.4)/?.so;;'

soak: all
	@mkdir -p $(SOAK_OUT); \
	rm -f $(SOAK_OUT)/mock.out $(SOAK_OUT)/mock.err; \
	$(SOAK_LUA) bin/kpayment-mock --port 0 </dev/null >$(SOAK_OUT)/mock.out 2>$(SOAK_OUT)/mock.err & \
	pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT INT TERM; \
	i=0; url=; \
	while [ -z "$$url" ]; do \
	  url=$$(head -n 1 $(SOAK_OUT)/mock.out); \
	  i=$$((i + 1)); \
	  if [ -z "$$url" ] && { [ $$i -gt 200 ] || ! kill -0 $$pid 2>/dev/null; }; then \
	    echo "soak: the mock did not start:"; cat $(SOAK_OUT)/mock.err; exit 1; fi; \
	  [ -n "$$url" ] || sleep 0.05; \
	done; \
	echo "soak: mock at $$url (pid $$pid)"; \
	$(SOAK_ENV) $(SOAK_LUA) test/soak.lua "$$url" $(SOAK_CALLS)

.PHONY: soak

.DEFAULT_GOAL := $(KP_SOAK_SAVED_GOAL)
