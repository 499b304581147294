# test/memcheck.mk -- `make memcheck`: the whole busted suite under valgrind
# memcheck.
#
# Included from the main Makefile, or used as
#   make -f Makefile -f test/memcheck.mk memcheck
# Uses from the main Makefile: LUA, BUILD and the target all (the module
# under test is the normal build, $(BUILD)/kpayment/core.so).
#
# --keep-debuginfo=yes: Lua unloads kpayment/core.so at exit, before
# valgrind reports leaks; its frames stay readable.
#
# Only the interpreter running the specs is checked (--trace-children=no):
# the mock server, started by spec/support/mock.lua as a separate process,
# is not.  valgrind's report goes to $(MEMCHECK_OUT)/valgrind.log; its error
# and leak summaries are printed at the end.  Any memory error or definite
# or indirect leak makes the run fail (exit status 99), as does a failing
# spec.  KPAYMENT_SLOW=1 is set so that specs can relax checks that only
# measure speed (valgrind runs code 20 to 50 times slower).
#
#   make memcheck                                 the whole suite
#   make memcheck-c                               the specs that drive the C
#                                                 core's lifetimes (below)
#   make memcheck-c MEMCHECK_PART=1               half of them (CI runs the
#                                                 two halves side by side)
#   make memcheck MEMCHECK_SPECS=spec/json_spec.lua   some spec files only
#   make memcheck MEMCHECK_SKIP='spec/slices_spec.lua'   every spec file but some
#   make memcheck MEMCHECK_VALGRIND_ARGS=--num-callers=40
#
# Runs that check different files can go side by side (CI runs three) when
# each has its own MEMCHECK_OUT (default build/memcheck).  A file named in
# MEMCHECK_SPECS or MEMCHECK_SKIP that does not exist is an error: a rename
# must not quietly leave a file out.

KP_MEMCHECK_SAVED_GOAL := $(.DEFAULT_GOAL)

MEMCHECK_OUT   ?= build/memcheck
MEMCHECK_LOG    = $(MEMCHECK_OUT)/valgrind.log
MEMCHECK_SKIP  ?=
ifneq ($(strip $(MEMCHECK_SKIP)),)
MEMCHECK_SPECS ?= $(filter-out $(MEMCHECK_SKIP),$(sort $(wildcard spec/*_spec.lua)))
endif
MEMCHECK_SPECS ?= spec
MEMCHECK_LUA    = $(or $(LUA),lua5.4)
MEMCHECK_BUSTED ?= /usr/bin/busted
MEMCHECK_CPATH  = $(or $(BUILD),build/5.4)/?.so
MEMCHECK_VALGRIND_ARGS ?=

# The specs where valgrind sees what the sanitizers cannot (uninitialised
# values; memory libcurl and Lua, which are not instrumented, touch for the
# core): finalizers and re-entry, sliced decoding and its memory, frames
# and lifetimes, framing, hostile servers, every transport and the
# request's states.  The whole suite runs under ASan + UBSan (make
# test-asan).  Two halves of about the same time under valgrind.
MEMCHECK_C_SPECS_1 := spec/slices_spec.lua spec/decode_memory_spec.lua spec/reentrancy_spec.lua \
                      spec/hostile_spec.lua spec/transport_spec.lua spec/client_spec.lua
MEMCHECK_C_SPECS_2 := spec/finalizer_spec.lua spec/frames_spec.lua spec/framing_spec.lua \
                      spec/async_spec.lua spec/post_spec.lua
MEMCHECK_PART ?=
MEMCHECK_C_SPECS = $(or $(MEMCHECK_C_SPECS_$(MEMCHECK_PART)),$(MEMCHECK_C_SPECS_1) $(MEMCHECK_C_SPECS_2))

MEMCHECK_VALGRIND = valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --keep-debuginfo=yes \
  --error-exitcode=99 --trace-children=no --suppressions=test/valgrind.supp \
  --log-file=$(MEMCHECK_LOG) $(MEMCHECK_VALGRIND_ARGS)

memcheck: all
	@mkdir -p $(MEMCHECK_OUT)
	@rm -f $(MEMCHECK_LOG)
	@echo "memcheck: $(MEMCHECK_LUA) $(MEMCHECK_BUSTED) $(MEMCHECK_SPECS) under valgrind (log: $(MEMCHECK_LOG))"
	@for f in $(MEMCHECK_SPECS) $(MEMCHECK_SKIP); do \
	  [ -e "$$f" ] || { echo "memcheck: no such spec file or directory: $$f"; exit 1; }; done
	@[ -n "$(strip $(MEMCHECK_SPECS))" ] || { echo "memcheck: no spec file left to run"; exit 1; }
	@start=$$(date +%s); rc=0; \
	KPAYMENT_SLOW=1 $(MEMCHECK_VALGRIND) $(MEMCHECK_LUA) $(MEMCHECK_BUSTED) \
	  --lpath='$(SPEC_LPATH)' --cpath='$(MEMCHECK_CPATH)' \
	  -o spec/support/summary.lua $(MEMCHECK_SPECS) || rc=$$?; \
	end=$$(date +%s); \
	echo; echo "memcheck: busted exit status $$rc after $$((end - start)) s under valgrind"; \
	if [ ! -s $(MEMCHECK_LOG) ]; then echo "memcheck: no valgrind log"; exit 1; fi; \
	errors=$$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' $(MEMCHECK_LOG) | tail -n 1); \
	if [ "$${errors:-1}" != 0 ]; then \
	  echo "memcheck: valgrind's reports:"; \
	  grep -v -e '^==[0-9]*== *$$' $(MEMCHECK_LOG) | head -n 600; \
	fi; \
	echo "memcheck: valgrind summaries:"; \
	sed -n -e '/HEAP SUMMARY:/,/^==[0-9]*== *$$/p' -e '/LEAK SUMMARY:/,/^==[0-9]*== *$$/p' \
	  -e '/ERROR SUMMARY:/p' $(MEMCHECK_LOG); \
	if [ $$rc -eq 99 ] || [ "$${errors:-1}" != 0 ]; then \
	  echo "memcheck: FAILED: valgrind found memory errors or definite/indirect leaks"; exit 1; \
	elif [ $$rc -ne 0 ]; then \
	  echo "memcheck: FAILED: specs failed (exit status $$rc), valgrind found nothing"; exit $$rc; \
	fi; \
	echo "memcheck: no memory errors, no definite or indirect leaks"

memcheck-c:
	@case '$(MEMCHECK_PART)' in ''|1|2) ;; \
	  *) echo "memcheck-c: MEMCHECK_PART is 1, 2 or empty, not '$(MEMCHECK_PART)'"; exit 1 ;; esac
	@$(MAKE) --no-print-directory memcheck MEMCHECK_SPECS='$(MEMCHECK_C_SPECS)'

.PHONY: memcheck memcheck-c

.DEFAULT_GOAL := $(KP_MEMCHECK_SAVED_GOAL)
