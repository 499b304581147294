# test/threads.mk -- `make test-threads`: kpayment used by four threads at
# once, each with its own lua_State (test/threads.c, test/threads.lua),
# against the mock.  Included from examples/host/host.mk, whose generated
# module arrays (EMBED_INC) it uses; everything is built under
# build/<version>/threads.
#
#   make test-threads         the globals check, then the test under
#                             ThreadSanitizer and under helgrind, each with
#                             libcurl initialised by kpayment and by the host
#   make test-threads-tsan    only ThreadSanitizer
#   make test-threads-helgrind  only helgrind
#   make check-globals        only the check that src/ keeps no writable
#                             global data but libcurl's one-time init
#
# ThreadSanitizer sees what instrumented code does: kpayment (built here
# with -fsanitize=thread) and test/threads.c.  libcurl, OpenSSL and
# liblua5.4.a come from Debian uninstrumented: their memory accesses are
# invisible to it, so it cannot report a race inside them, nor one between
# their code and ours on memory only they touch; it still sees their locks
# and thread creation (intercepted calls).  helgrind, which instruments
# everything at run time, covers them; its suppressions file names the
# libcurl/OpenSSL reports it silences and why.  Any report from kpayment's
# own code fails the run.

KP_THREADS_SAVED_GOAL := $(.DEFAULT_GOAL)

THREADS_OUT   := $(BUILD)/threads
THREADS_TSAN  := $(THREADS_OUT)/threads_tsan
THREADS_PLAIN := $(THREADS_OUT)/threads
THREADS_TSAN_CC ?= clang-14
THREADS_CC    ?= gcc
THREADS_SRCS   = $(SRCS) src/kp_embed.c test/threads.c
THREADS_CFLAGS = $(WARN) -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -I$(EMBED_DIR) \
                 $(LUA_CFLAGS) $(CURL_CFLAGS)
THREADS_LIBS   = $(HOST_LUA_LIB) $(CURL_LIBS) -lm -ldl -lpthread
THREADS_ROUNDS ?= 3
THREADS_HG_ROUNDS ?= 2

$(THREADS_TSAN): $(THREADS_SRCS) $(HDRS) include/kpayment.h $(EMBED_INC) test/threads.mk
	@mkdir -p $(dir $@)
	$(THREADS_TSAN_CC) -g -O1 -fno-omit-frame-pointer -fsanitize=thread $(THREADS_CFLAGS) \
	  $(THREADS_SRCS) -o $@ $(THREADS_LIBS)

$(THREADS_PLAIN): $(THREADS_SRCS) $(HDRS) include/kpayment.h $(EMBED_INC) test/threads.mk
	@mkdir -p $(dir $@)
	$(THREADS_CC) -g -O1 $(THREADS_CFLAGS) $(THREADS_SRCS) -o $@ $(THREADS_LIBS)

# Writable data (.data, .bss and .data.rel.local, not the read-only
# .data.rel.ro) in the core's objects.  The only one allowed: kp_http.c's
# record of libcurl's one-time init (its mutex, owner, result and version
# record).  Tables of functions are const and live in .data.rel.ro.
THREADS_GLOBALS_ALLOWED := kp_http.o:global_lock kp_http.o:global_owner kp_http.o:global_rc \
  kp_http.o:curl_info
check-globals: build
	@found=$$(for o in $(OBJS); do \
	  objdump -t $$o | awk -v o=$$(basename $$o) \
	    '$$NF != "" && $$2 ~ /^[lg]$$/ && $$3 == "O" && $$4 ~ /^\.t?(data|bss)/ && $$4 !~ /\.rel\.ro/ { print o ":" $$NF }'; \
	done | sort); \
	echo "check-globals: writable data in src/: $$(echo $$found)"; \
	for s in $$found; do \
	  case " $(THREADS_GLOBALS_ALLOWED) " in *" $$s "*) ;; \
	  *) echo "check-globals: $$s is mutable global state (keep state per lua_State or per client)"; exit 1;; \
	  esac; \
	done; \
	echo "check-globals: only libcurl's one-time init (kp_http.c)"

THREADS_RUN = LUA=$(MOCK_LUA) examples/with-mock.sh

# halt_on_error: the first report fails the run (exit status 66).
THREADS_TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1

THREADS_HELGRIND = valgrind --tool=helgrind -q --error-exitcode=99 \
  --suppressions=test/threads-helgrind.supp --gen-suppressions=all

# clang-14's ThreadSanitizer refuses to start ("unexpected memory mapping")
# on kernels that randomise mmap with more than 28 bits: then the run is
# repeated once with address randomisation off for that process.
test-threads-tsan: $(THREADS_TSAN)
	@log=$(THREADS_OUT)/tsan.log; \
	for mode in kpayment host; do \
	  echo "test-threads: ThreadSanitizer, libcurl initialised by $$mode"; \
	  rc=0; $(THREADS_RUN) env $(THREADS_TSAN_ENV) $(THREADS_TSAN) --curl $$mode \
	    --rounds $(THREADS_ROUNDS) >$$log 2>&1 || rc=$$?; \
	  if [ $$rc -ne 0 ] && grep -q 'unexpected memory mapping' $$log; then \
	    echo "test-threads: (this kernel's mmap randomisation: again under setarch -R)"; \
	    rc=0; $(THREADS_RUN) setarch $$(uname -m) -R env $(THREADS_TSAN_ENV) $(THREADS_TSAN) \
	      --curl $$mode --rounds $(THREADS_ROUNDS) >$$log 2>&1 || rc=$$?; \
	  fi; \
	  cat $$log; \
	  [ $$rc -eq 0 ] || { echo "test-threads: FAILED under ThreadSanitizer (exit status $$rc)"; exit 1; }; \
	done; \
	echo "test-threads: no ThreadSanitizer report"

test-threads-helgrind: $(THREADS_PLAIN)
	@for mode in kpayment host; do \
	  echo "test-threads: helgrind, libcurl initialised by $$mode"; \
	  $(THREADS_RUN) $(THREADS_HELGRIND) $(THREADS_PLAIN) --curl $$mode --rounds $(THREADS_HG_ROUNDS) || \
	    { echo "test-threads: FAILED under helgrind (exit status $$?)"; exit 1; }; \
	done; \
	echo "test-threads: no helgrind report outside test/threads-helgrind.supp"

# Not under LuaJIT: its allocator keeps a process-wide mmap address hint
# (lj_alloc.c, mmap_probe) that every lua_State updates without a lock, by
# design, and helgrind reports it on every luaL_newstate.
THREADS_HELGRIND_STEP := $(if $(filter luajit,$(LUA_VERSION)),,test-threads-helgrind)

test-threads: check-deps
	@$(MAKE) --no-print-directory check-globals test-threads-tsan $(THREADS_HELGRIND_STEP)
	@[ -n "$(THREADS_HELGRIND_STEP)" ] || \
	  echo "test-threads: helgrind skipped under LuaJIT (its allocator's unlocked mmap hint)"

.PHONY: test-threads test-threads-tsan test-threads-helgrind check-globals

.DEFAULT_GOAL := $(KP_THREADS_SAVED_GOAL)
