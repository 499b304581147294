# fuzz/fuzz.mk -- fuzzing and sanitizer targets, included by the main Makefile.
#
#   make fuzz [FUZZ_SECONDS=60]   libFuzzer + ASan + UBSan on the JSON decoder
#                                 and on the HTTP/1.x parser, FUZZ_SECONDS
#                                 split between the two
#   make fuzz-build               only build build/fuzz/fuzz_decode and
#                                 build/fuzz/fuzz_h1
#   make fuzz-corpus              only (re)fill build/fuzz/corpus and
#                                 build/fuzz/corpus-h1
#   make test-asan                the whole busted suite against an
#                                 ASan + UBSan build of the module (gcc)
#
# Uses from the main Makefile: LUA, SRCS (the rockspec's list), HDRS,
# LUA_CFLAGS, CURL_CFLAGS, CURL_LIBS, and the suite's command line
# (SPEC_LPATH, TEST_TAGS, TEST_SPECS).  Everything is built under build/fuzz
# and build/asan; build/$(LUA_VERSION) is never touched.  Paths are
# relative to the repository root.

# Including this file must not change the main Makefile's default goal,
# whichever side of its first rule the include sits.
KP_FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

# SRCS=... checks a scratch copy of the sources (how the injected-bug check
# was run).
KP_SRCS     = $(SRCS)
KP_HDRS     = $(HDRS)
# The fuzzers link Lua 5.4 (liblua5.4.a) whatever LUA_VERSION is.
KP_LUA54_INC = $(shell $(PKG_CONFIG) --cflags lua5.4)

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
# The HTTP/1.x parser's target (fuzz/fuzz_h1.c): the parser alone, taken
# from KP_SRCS so that SRCS=... checks a scratch copy here too.
FUZZ_H1_BIN    := $(FUZZ_OUT)/fuzz_h1
FUZZ_H1_CORPUS := $(FUZZ_OUT)/corpus-h1
FUZZ_H1_SRCS    = $(filter %/kp_h1.c %/kp_buf.c,$(KP_SRCS))
# Longer than FUZZ_MAX_LEN: a head may take 65536 bytes (KP_H1_MAX_HEAD),
# and what breaks at that limit only shows with more after it.
FUZZ_H1_MAX_LEN ?= 98304

# Lua is linked statically (liblua5.4.a); -Wl,-E exports its API so that
# lua-cjson, loaded with dlopen, resolves lua_* against this binary.
$(FUZZ_BIN): fuzz/fuzz_decode.c $(FUZZ_OUT)/checker.inc $(KP_SRCS) $(KP_HDRS) fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(KP_C_STD) -Isrc -I$(FUZZ_OUT) $(KP_LUA54_INC) $(CURL_CFLAGS) \
	  fuzz/fuzz_decode.c $(KP_SRCS) -o $@ \
	  -Wl,-E /usr/lib/x86_64-linux-gnu/liblua5.4.a -lm -ldl $(CURL_LIBS)

# fuzz/checker.lua as C string literals, one a line: backslashes and
# quotes escaped, '?' too (-std=c99 turns "??/" and friends into trigraphs),
# each ending in \n.  luac checks it first, so a syntax error shows
# with the Lua file's own line numbers.
$(FUZZ_OUT)/checker.inc: fuzz/checker.lua fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	@if command -v luac5.4 >/dev/null; then luac5.4 -p fuzz/checker.lua; fi
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n",/' fuzz/checker.lua >$@

# No Lua and no libcurl: the parser has neither.
$(FUZZ_H1_BIN): fuzz/fuzz_h1.c $(FUZZ_H1_SRCS) $(KP_HDRS) fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(KP_C_STD) -Isrc fuzz/fuzz_h1.c $(FUZZ_H1_SRCS) -o $@

fuzz-build: $(FUZZ_BIN) $(FUZZ_H1_BIN)

# The parser's corpus: the seeds of fuzz/seeds-h1 (only added to, as
# make-corpus.sh does for the decoder's).
fuzz-corpus:
	@sh fuzz/make-corpus.sh $(FUZZ_CORPUS)
	@mkdir -p $(FUZZ_H1_CORPUS)
	@for f in fuzz/seeds-h1/*; do cp "$$f" "$(FUZZ_H1_CORPUS)/seed-$${f##*/}"; done
	@echo "fuzz corpus: $(FUZZ_H1_CORPUS) ($$(ls fuzz/seeds-h1 | wc -l) seeds, $$(ls $(FUZZ_H1_CORPUS) | wc -l) files in all)"

# libFuzzer exits non-zero on a finding (crash, leak, timeout, UBSan report)
# and leaves the input in build/fuzz/artifacts/ (the parser's named
# fuzz_h1-*).  Logs go to build/fuzz/fuzz.log and fuzz-h1.log; the last
# lines sum each run up.  Both targets run even when the first finds
# something; the parser gets half of FUZZ_SECONDS, the decoder the rest.
#
# $(call kp_fuzz,BIN,SECONDS,MAX_LEN,DICT,CORPUS,LOG,ARTIFACT_PREFIX): one
# run, as shell commands that set rc to its exit status when that is not 0.
define kp_fuzz
echo "fuzz: $(2)s on $(1), corpus $(5), log $(6)"; \
r=0; \
$(1) -max_total_time=$(2) -timeout=$(FUZZ_TIMEOUT) \
  -max_len=$(3) -dict=$(4) -print_final_stats=1 \
  -artifact_prefix=$(7) $(FUZZ_ARGS) \
  $(5) >$(6) 2>&1 || r=$$?; \
if [ $$r -ne 0 ]; then \
  echo "fuzz: FINDING (exit $$r); report:"; \
  grep -v '^#[0-9]' $(6) | tail -60 | cut -c1-400; \
  ls -l $(FUZZ_OUT)/artifacts/; \
  rc=$$r; \
fi; \
execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(6)); \
rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $(6)); \
rss=$$(sed -n 's/^stat::peak_rss_mb: *//p' $(6)); \
cov=$$(grep -E '^#[0-9]+' $(6) | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true); \
files=$$(ls $(5) | wc -l); \
echo "fuzz: $${execs:-?} execs, $${rate:-?} exec/s, $$files corpus files, $${cov:-cov: ?}, peak rss $${rss:-?} MB"; \
if [ $$r -eq 0 ]; then echo "fuzz: no findings"; fi
endef

fuzz: $(FUZZ_BIN) $(FUZZ_H1_BIN) fuzz-corpus
	@mkdir -p $(FUZZ_OUT)/artifacts
	@rc=0; h1=$$(( $(FUZZ_SECONDS) / 2 )); [ $$h1 -ge 1 ] || h1=1; \
	dec=$$(( $(FUZZ_SECONDS) - h1 )); [ $$dec -ge 1 ] || dec=1; \
	$(call kp_fuzz,$(FUZZ_BIN),$${dec},$(FUZZ_MAX_LEN),fuzz/json.dict,$(FUZZ_CORPUS),$(FUZZ_OUT)/fuzz.log,$(FUZZ_OUT)/artifacts/); \
	$(call kp_fuzz,$(FUZZ_H1_BIN),$${h1},$(FUZZ_H1_MAX_LEN),fuzz/h1.dict,$(FUZZ_H1_CORPUS),$(FUZZ_OUT)/fuzz-h1.log,$(FUZZ_OUT)/artifacts/fuzz_h1-); \
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
	  $(LUA_CFLAGS) $(CURL_CFLAGS) $(KP_SRCS) -o $@ $(CURL_LIBS)

$(ASAN_SHIM): fuzz/nodlclose.c fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(ASAN_CC) -O1 -g $(KP_C_STD) -fPIC -shared fuzz/nodlclose.c -o $@

# KPAYMENT_SLOW=1: the instrumented code runs several times slower, and the
# specs that measure polls or frames relax as under valgrind.  #slow is left
# out: it measures the command's memory with the sanitizers' runtime
# removed, so it would repeat make test's run.
test-asan: $(ASAN_SO) $(ASAN_SHIM)
	@rm -f $(ASAN_REPORT).*
	@echo "test-asan: busted under $(LUA) with ASan + UBSan preloaded, module $(ASAN_SO)"
	@rc=0; \
	$(ASAN_ENV) KPAYMENT_SLOW=1 KPAYMENT_LUA=$(LUA) $(LUA) $(BUSTED_BIN) --lpath='$(SPEC_LPATH)' \
	  --cpath='$(ASAN_OUT)/?.so' $(or $(TEST_TAGS),--exclude-tags=slow) -o spec/support/summary.lua \
	  $(TEST_SPECS) || rc=$$?; \
	if ls $(ASAN_REPORT).* >/dev/null 2>&1; then \
	  for f in $(ASAN_REPORT).*; do echo "== $$f"; cat "$$f"; done; \
	  echo "test-asan: SANITIZER REPORTS (above)"; [ $$rc -ne 0 ] || rc=23; \
	else \
	  echo "test-asan: no sanitizer reports"; \
	fi; \
	exit $$rc

.PHONY: fuzz fuzz-build fuzz-corpus test-asan

.DEFAULT_GOAL := $(KP_FUZZ_SAVED_GOAL)
