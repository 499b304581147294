# test/oom.mk -- `make oom`: the out-of-memory sweep (test/oom_host.c).
#
# Included from the main Makefile; uses from it SRCS (the rockspec's list),
# HDRS, CURL_CFLAGS, CURL_LIBS, WARN, LPATH, PKG_CONFIG and MOCK_LUA.  The
# host embeds Lua 5.4 whatever LUA_VERSION is.  Everything is built under
# build/oom; build/$(LUA_VERSION) is never touched.
#
#   make oom                    ASan + UBSan sweep of every scenario (about
#                               80 s), then the same host, built plainly,
#                               under valgrind on at most OOM_VG_RUNS values
#                               of N per scenario (about 2 minutes); fails if
#                               either fails
#   make oom-asan               only the sanitizer sweep
#   make oom-valgrind           only the valgrind run
#   make oom OOM_ARGS='--only get: --verbose'    options for the host (see
#                               the head of test/oom_host.c)
#   make oom-valgrind OOM_VG_RUNS=0              every N under valgrind too
#                               (about 20 minutes)
#   make oom-asan OOM_ARGS=--leak-check-each     a leak check after every
#                               run, naming the first run that leaked
#
# The targets start bin/kpayment-mock on a free port for the network
# scenarios and stop it afterwards.  The decoded documents are
# spec/fixtures/json/*.json, spec/fixtures/example-200.json and a mock body
# of 3 offers with non-BMP names (generated into build/oom).

KP_OOM_SAVED_GOAL := $(.DEFAULT_GOAL)

OOM_OUT      := build/oom
OOM_CC       ?= gcc
OOM_LUA_A    ?= /usr/lib/x86_64-linux-gnu/liblua5.4.a
OOM_LUA       = $(MOCK_LUA)
OOM_CFLAGS    = $(WARN) -D_POSIX_C_SOURCE=200809L -Isrc $(shell $(PKG_CONFIG) --cflags lua5.4) $(CURL_CFLAGS)
# -rdynamic: function names in --backtrace output
OOM_LIBS      = -rdynamic $(OOM_LUA_A) $(CURL_LIBS) -lm -ldl -lpthread

OOM_ASAN_BIN := $(OOM_OUT)/oom_host_asan
OOM_VG_BIN   := $(OOM_OUT)/oom_host
OOM_MOCK_DOC := $(OOM_OUT)/mock-3-offers-unicode.json
OOM_ARGS     ?=
OOM_VG_RUNS  ?= 100

OOM_FIXTURES  = $(wildcard spec/fixtures/json/*.json) spec/fixtures/example-200.json $(OOM_MOCK_DOC)
OOM_FIXTURE_ARGS = $(foreach f,$(OOM_FIXTURES),--fixture $(f))

$(OOM_ASAN_BIN): test/oom_host.c $(SRCS) $(HDRS) test/oom.mk
	@mkdir -p $(dir $@)
	$(OOM_CC) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined $(OOM_CFLAGS) test/oom_host.c $(SRCS) -o $@ $(OOM_LIBS)

$(OOM_VG_BIN): test/oom_host.c $(SRCS) $(HDRS) test/oom.mk
	@mkdir -p $(dir $@)
	$(OOM_CC) -g -O1 $(OOM_CFLAGS) test/oom_host.c $(SRCS) -o $@ $(OOM_LIBS)

$(OOM_MOCK_DOC): $(wildcard mock/kpayment/mock/*.lua) test/oom.mk
	@mkdir -p $(dir $@)
	LUA_PATH='$(LPATH);;' $(OOM_LUA) -e \
	  'io.write(require("kpayment.mock").offers_json({ customerUUID = "oom-doc", dealerUUID = "oom-dealer", skin = "oom", locale = "fr-CA" }, 3, { unicode = true }))' >$@

# $(call oom_with_mock,COMMAND): COMMAND runs with $$url set to a fresh
# mock's base URL; the mock is stopped whatever happens, and the command's
# exit status is the recipe's.
define oom_with_mock
	@mkdir -p $(OOM_OUT); \
	rm -f $(OOM_OUT)/mock.out $(OOM_OUT)/mock.err; \
	$(OOM_LUA) bin/kpayment-mock --port 0 </dev/null >$(OOM_OUT)/mock.out 2>$(OOM_OUT)/mock.err & \
	pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT INT TERM; \
	i=0; url=; \
	while [ -z "$$url" ]; do \
	  url=$$(head -n 1 $(OOM_OUT)/mock.out); \
	  i=$$((i + 1)); \
	  if [ -z "$$url" ] && { [ $$i -gt 200 ] || ! kill -0 $$pid 2>/dev/null; }; then \
	    echo "oom: the mock did not start:"; cat $(OOM_OUT)/mock.err; exit 1; fi; \
	  [ -n "$$url" ] || sleep 0.05; \
	done; \
	echo "oom: mock at $$url (pid $$pid)"; \
	$(1)
endef

# LeakSanitizer checks at exit (exit code 23 on a leak); ASan stops at the
# first error; UBSan halts.  No suppressions.
OOM_ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:exitcode=23:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1 \
  LSAN_OPTIONS=print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=23

OOM_VALGRIND = valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no

OOM_ASAN_RUN = rc=0; $(OOM_ASAN_ENV) $(OOM_ASAN_BIN) --url "$$url" $(OOM_FIXTURE_ARGS) $(OOM_ARGS) || rc=$$?; \
  if [ $$rc -eq 23 ]; then echo "oom: sanitizer report (above): a leak, use after free or undefined behaviour"; fi; \
  exit $$rc

OOM_VG_RUN = echo "oom: the plain build under valgrind, at most $(OOM_VG_RUNS) values of N per scenario"; \
  rc=0; $(OOM_VALGRIND) $(OOM_VG_BIN) --url "$$url" --max-runs $(OOM_VG_RUNS) \
  $(OOM_FIXTURE_ARGS) $(OOM_ARGS) || rc=$$?; \
  if [ $$rc -eq 99 ]; then echo "oom: valgrind found memory errors or definite/indirect leaks (above)"; \
  elif [ $$rc -eq 0 ]; then echo "oom: valgrind found no memory errors and no definite or indirect leaks"; \
  else echo "oom: valgrind found nothing, but runs failed (exit status $$rc)"; fi; \
  exit $$rc

oom-asan: $(OOM_ASAN_BIN) $(OOM_MOCK_DOC)
	$(call oom_with_mock,$(OOM_ASAN_RUN))

oom-valgrind: $(OOM_VG_BIN) $(OOM_MOCK_DOC)
	$(call oom_with_mock,$(OOM_VG_RUN))

# Both runs, on one mock, even when the first fails; fails if either did.
OOM_BOTH_RUN = rca=0; ( $(OOM_ASAN_RUN) ) || rca=$$?; \
  rcv=0; ( $(OOM_VG_RUN) ) || rcv=$$?; \
  echo "oom: sanitizer sweep exit status $$rca, valgrind run exit status $$rcv"; \
  [ $$rca -eq 0 ] && [ $$rcv -eq 0 ]

oom: $(OOM_ASAN_BIN) $(OOM_VG_BIN) $(OOM_MOCK_DOC)
	$(call oom_with_mock,$(OOM_BOTH_RUN))

.PHONY: oom oom-asan oom-valgrind

.DEFAULT_GOAL := $(KP_OOM_SAVED_GOAL)
