# fuzz/fuzz.mk -- fuzzing and sanitizer targets, included by the main Makefile
# (or used as `make -f Makefile -f fuzz/fuzz.mk TARGET`).
#
#   make fuzz [FUZZ_SECONDS=60]   libFuzzer + ASan + UBSan on the JSON decoder
#   make fuzz-build               only build build/fuzz/fuzz_decode
#   make fuzz-corpus              only (re)fill build/fuzz/corpus
#   make test-asan                the whole busted suite against an
#                                 ASan + UBSan build of the module (gcc)
#
# Uses from the main Makefile: LUA, SRCS, LUA_CFLAGS, CURL_CFLAGS, CURL_LIBS.
# Everything is built under build/fuzz and build/asan; build/$(LUA_VERSION)
# is never touched.  Paths are relative to the repository root.

# Including this file must not change the main Makefile's default goal,
# whichever side of its first rule the include sits.
KP_FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

# Fallbacks, so the file also works when included before those variables
# are set (prerequisite lists are expanded as they are read).
KP_SRCS     := $(SRCS)
KP_HDRS     := $(wildcard src/*.h)
KP_LUA      = $(or $(LUA),lua5.4)
KP_LUA_INC  = $(or $(LUA_CFLAGS),$(shell pkg-config --cflags lua5.4))
KP_CURL_INC = $(CURL_CFLAGS)
KP_CURL_LIB = $(or $(CURL_LIBS),$(shell pkg-config --libs libcurl))

KP_C_STD    := -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra

# ---------------------------------------------------------------- libFuzzer

FUZZ_SECONDS  ?= 60
FUZZ_TIMEOUT  ?= 10
FUZZ_MAX_LEN  ?= 65536
FUZZ_CC       ?= clang-14
FUZZ_OUT      := build/fuzz
FUZZ_BIN      := $(FUZZ_OUT)/fuzz_decode
FUZZ_CORPUS   := $(FUZZ_OUT)/corpus
FUZZ_FLAGS    := -g -O1 -fsanitize=fuzzer,address,undefined \
                 -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Extra libFuzzer options, e.g. FUZZ_ARGS=-jobs=2 or -only_ascii=1.
FUZZ_ARGS     ?=

# Lua is linked statically (liblua5.4.a); -Wl,-E exports its API so that
# lua-cjson, loaded with dlopen, resolves lua_* against this binary.
$(FUZZ_BIN): fuzz/fuzz_decode.c $(FUZZ_OUT)/checker.inc $(KP_SRCS) $(KP_HDRS) fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(KP_C_STD) -Isrc -I$(FUZZ_OUT) $(KP_LUA_INC) $(KP_CURL_INC) \
	  fuzz/fuzz_decode.c $(KP_SRCS) -o $@ \
	  -Wl,-E /usr/lib/x86_64-linux-gnu/liblua5.4.a -lm -ldl $(KP_CURL_LIB)

# fuzz/checker.lua as C string literals, one a line: backslashes and
# quotes escaped, '?' too (-std=c99 turns "??/" and friends into trigraphs),
# each ending in \n.  luac checks it first, so a syntax error shows
# with the Lua file's own line numbers.
$(FUZZ_OUT)/checker.inc: fuzz/checker.lua fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	@if command -v luac5.4 >/dev/null; then luac5.4 -p fuzz/checker.lua; fi
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n",/' fuzz/checker.lua >$@

fuzz-build: $(FUZZ_BIN)

fuzz-corpus:
	@sh fuzz/make-corpus.sh $(FUZZ_CORPUS)

# libFuzzer exits non-zero on a finding (crash, leak, timeout, UBSan report)
# and leaves the input in build/fuzz/artifacts/.  Its log goes to
# build/fuzz/fuzz.log; the last lines sum the run up.
fuzz: $(FUZZ_BIN) fuzz-corpus
	@mkdir -p $(FUZZ_OUT)/artifacts
	@echo "fuzz: $(FUZZ_SECONDS)s on $(FUZZ_BIN), corpus $(FUZZ_CORPUS), log $(FUZZ_OUT)/fuzz.log"
	@rc=0; \
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
	  -max_len=$(FUZZ_MAX_LEN) -dict=fuzz/json.dict -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_OUT)/artifacts/ $(FUZZ_ARGS) \
	  $(FUZZ_CORPUS) >$(FUZZ_OUT)/fuzz.log 2>&1 || rc=$$?; \
	if [ $$rc -ne 0 ]; then \
	  echo "fuzz: FINDING (exit $$rc); report:"; \
	  grep -v '^#[0-9]' $(FUZZ_OUT)/fuzz.log | tail -60 | cut -c1-400; \
	  ls -l $(FUZZ_OUT)/artifacts/; \
	fi; \
	execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_OUT)/fuzz.log); \
	rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $(FUZZ_OUT)/fuzz.log); \
	rss=$$(sed -n 's/^stat::peak_rss_mb: *//p' $(FUZZ_OUT)/fuzz.log); \
	cov=$$(grep -E '^#[0-9]+' $(FUZZ_OUT)/fuzz.log | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true); \
	files=$$(ls $(FUZZ_CORPUS) | wc -l); \
	echo "fuzz: $${execs:-?} execs, $${rate:-?} exec/s, $$files corpus files, $${cov:-cov: ?}, peak rss $${rss:-?} MB"; \
	if [ $$rc -eq 0 ]; then echo "fuzz: no findings"; fi; \
	exit $$rc

# ------------------------------------------------------------ ASan + UBSan

ASAN_CC    ?= gcc
ASAN_OUT   := build/asan
ASAN_SO    := $(ASAN_OUT)/kpayment/core.so
ASAN_SHIM  := $(ASAN_OUT)/nodlclose.so
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined -O1 -g
BUSTED_BIN ?= /usr/bin/busted

# Every report fails the run: ASan stops at the first error, LSan reports
# leaks at exit, UBSan halts, all with exit code 23.  Reports go to files
# (log_path, one per process) as well as failing that process: the mock
# server and shells that specs start inherit LD_PRELOAD, and a report from a
# child would otherwise only count if the spec happened to notice.  The
# suppressions file lists third-party noise only (see its comments).
ASAN_REPORT = $(CURDIR)/$(ASAN_OUT)/report
ASAN_ENV = \
  LD_PRELOAD="$$($(ASAN_CC) -print-file-name=libasan.so) $$($(ASAN_CC) -print-file-name=libubsan.so) $(CURDIR)/$(ASAN_SHIM)" \
  ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:exitcode=23:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$(ASAN_REPORT) \
  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=23:log_path=$(ASAN_REPORT)

# One command, no per-object rules: a scratch copy of the sources can be
# checked with SRCS=... ASAN_OUT=... (how the injected-bug check was run).
$(ASAN_SO): $(KP_SRCS) $(KP_HDRS) fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(ASAN_FLAGS) $(KP_C_STD) -fPIC -shared -fvisibility=hidden \
	  $(KP_LUA_INC) $(KP_CURL_INC) $(KP_SRCS) -o $@ $(KP_CURL_LIB)

$(ASAN_SHIM): fuzz/nodlclose.c fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(ASAN_CC) -O1 -g $(KP_C_STD) -fPIC -shared fuzz/nodlclose.c -o $@

test-asan: $(ASAN_SO) $(ASAN_SHIM)
	@rm -f $(ASAN_REPORT).*
	@echo "test-asan: busted under $(KP_LUA) with ASan + UBSan preloaded, module $(ASAN_SO)"
	@rc=0; \
	$(ASAN_ENV) $(KP_LUA) $(BUSTED_BIN) --lpath='lua/?.lua;lua/?/init.lua;mock/?.lua;mock/?/init.lua;spec/?.lua' \
	  --cpath='$(ASAN_OUT)/?.so' -o spec/support/summary.lua spec || rc=$$?; \
	if ls $(ASAN_REPORT).* >/dev/null 2>&1; then \
	  for f in $(ASAN_REPORT).*; do echo "== $$f"; cat "$$f"; done; \
	  echo "test-asan: SANITIZER REPORTS (above)"; [ $$rc -ne 0 ] || rc=23; \
	else \
	  echo "test-asan: no sanitizer reports"; \
	fi; \
	exit $$rc

.PHONY: fuzz fuzz-build fuzz-corpus test-asan

.DEFAULT_GOAL := $(KP_FUZZ_SAVED_GOAL)
