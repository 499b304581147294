# kpayment -- development Makefile (the rockspec builds the same sources).
#
#   make          build build/5.4/kpayment/core.so
#   make demo     build, start the mock API, print its offers, stop it
#   make test     build and run every spec under Lua 5.4
#   make check    make lint, then make test: what to run before pushing
#   make test LUA_VERSION=5.1   the same under 5.1 (5.2, 5.3, luajit too)
#   make test-all   make test under every Lua installed
#   make deps     install every missing Debian package CI uses (or print the command)
#   make bench    decoder benchmark beside lua-cjson and dkjson (bench/)
#   make bench-http  HTTP benchmark against nginx on loopback (bench/)
#   make bench-instructions  the same calls' instructions per call (callgrind)
#   make fuzz     libFuzzer on the decoder (FUZZ_SECONDS, default 60)
#   make test-asan  every spec against an ASan+UBSan build
#   make memcheck   every spec under valgrind
#   make oom        out-of-memory sweep of every call (test/)
#   make soak       20 000 calls against the mock: RSS and fds stay flat
#   make demo-openresty  kpayment inside nginx against the mock: one answer
#   make test-openresty  nginx with examples/openresty/nginx.conf, for real
#   make docs     the LDoc reference into docs/reference/ (index.html); warnings fail
#   make readme-check   every block of README.md and docs/*.md, run against the mock
#                       (nginx blocks in nginx), and every relative link
#   make examples-check every file of examples/ runs (or a named CI step runs it)

# LUA_VERSION: 5.1, 5.2, 5.3, 5.4 or luajit (LuaJIT 2.1, Debian's luajit2).
LUA_VERSION ?= 5.4
BUSTED      ?= /usr/bin/busted
# The mock API server runs on Lua 5.4 whatever LUA_VERSION is.
MOCK_LUA    ?= lua5.4
CC          ?= cc
PKG_CONFIG  ?= pkg-config

# The pkg-config flags are read on first use (in a recipe, after check-deps
# has installed what was missing), then kept.
lazy = $(eval $(1) := $(2))$($(1))
ifeq ($(LUA_VERSION),luajit)
LUA         ?= luajit
LUA_PC      := luajit
# compat-5.3.h (lua-compat53-dev) sits beside PUC 5.1's lua.h: that
# directory is searched after LuaJIT's own headers, never before.
COMPAT53_INCDIR ?= /usr/include/lua5.1
LUA_CFLAGS   = $(call lazy,LUA_CFLAGS,$(shell $(PKG_CONFIG) --cflags luajit 2>/dev/null) -idirafter $(COMPAT53_INCDIR))
else
LUA         ?= lua$(LUA_VERSION)
LUA_PC      := lua$(LUA_VERSION)
LUA_CFLAGS   = $(call lazy,LUA_CFLAGS,$(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) 2>/dev/null))
endif
CURL_CFLAGS  = $(call lazy,CURL_CFLAGS,$(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null))
CURL_LIBS    = $(call lazy,CURL_LIBS,$(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null))

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-qual -Wundef -Werror=implicit-function-declaration
ALL_CFLAGS  = $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L \
              $(LUA_CFLAGS) $(CURL_CFLAGS) $(EXTRA_CFLAGS)
# Never link liblua: the interpreter that loads us provides the API.
ALL_LDFLAGS = -shared $(LDFLAGS) $(EXTRA_LDFLAGS)

BUILD   := build/$(LUA_VERSION)
OBJDIR  := $(BUILD)/obj
SO      := $(BUILD)/kpayment/core.so
# The C sources of kpayment.core: one list, the rockspec's
# (build.modules["kpayment.core"].sources), read here so that this build,
# the sanitizer, fuzz, OOM and thread builds compile what luarocks compiles.
# `make lint` checks that every src/*.c is in it or in SRCS_ELSEWHERE.
SRCS    := $(shell sed -n '/^ *sources *= *{/,/}/p' kpayment-scm-1.rockspec | grep -o '"src/[^"]*\.c"' | tr -d '"')
ifeq ($(strip $(SRCS)),)
$(error no "src/*.c" in the sources of kpayment-scm-1.rockspec)
endif
# C files of src/ that are not kpayment.core's: the static library's module
# table (examples/host/host.mk).
SRCS_ELSEWHERE := src/kp_embed.c
OBJS    := $(SRCS:src/%.c=$(OBJDIR)/%.o)
HDRS    := $(wildcard src/*.h)

# ------------------------------------------------------------ Debian packages
#
# Each goal checks (and as root installs) the packages it needs, and only
# those: check-deps, a prerequisite of every goal that builds or runs
# something, looks up PACKAGES_<goal> for the goals on the command line
# (a goal without an entry needs what the build needs).  `make deps`
# installs everything CI uses: .ci/debian-packages and
# .ci/debian-packages-tools, which CI installs before make itself exists on
# the machine; `make lint` checks that those two files hold exactly the
# packages of the goals CI runs (CI_GOALS).
DEB_PACKAGES = $(shell cat .ci/debian-packages .ci/debian-packages-tools)

# The interpreter, and the headers the build needs (compat-5.3.h for 5.1,
# 5.2 and LuaJIT, from lua-compat53-dev).
LUA_DEB_luajit     := luajit2
LUA_DEV_DEB_luajit := libluajit2-5.1-dev lua-compat53-dev
LUA_DEV_DEB_5.1    := liblua5.1-0-dev lua-compat53-dev
LUA_DEV_DEB_5.2    := liblua5.2-dev lua-compat53-dev
LUA_DEB     := $(or $(LUA_DEB_$(LUA_VERSION)),lua$(LUA_VERSION))
LUA_DEV_DEB := $(or $(LUA_DEV_DEB_$(LUA_VERSION)),liblua$(LUA_VERSION)-dev)
# The mock server: Lua 5.4 and luasocket, whatever LUA_VERSION is.
MOCK_DEB    := lua5.4 lua-socket

PACKAGES_all      := build-essential pkg-config libcurl4-openssl-dev $(LUA_DEV_DEB)
PACKAGES_demo     := $(PACKAGES_all) $(LUA_DEB) $(MOCK_DEB)
# What the specs start or load: curl and curl-config (info_spec), openssl
# (TLS servers), the de_DE locale's sources (locale_spec), cjson and dkjson
# (expected values).
PACKAGES_test     := $(PACKAGES_demo) lua-busted lua-cjson lua-dkjson openssl curl \
                     ca-certificates locales
PACKAGES_lint     := lua-check cppcheck lua5.4
PACKAGES_check    := $(PACKAGES_lint) $(PACKAGES_test)
PACKAGES_rock     := $(PACKAGES_all) luarocks $(LUA_DEB) $(MOCK_DEB)
PACKAGES_soak     := $(PACKAGES_demo)
PACKAGES_docs     := $(PACKAGES_all) $(LUA_DEB)
PACKAGES_host-check := $(PACKAGES_all) $(MOCK_DEB)
PACKAGES_install   := $(PACKAGES_all)
PACKAGES_install-check := $(PACKAGES_all)
PACKAGES_memcheck := $(PACKAGES_test) valgrind
PACKAGES_test-asan := $(PACKAGES_test)
# The OOM host embeds Lua 5.4 (liblua5.4.a); libFuzzer and ThreadSanitizer
# come with clang-14's runtimes; the fuzzer loads lua-cjson.
PACKAGES_oom      := build-essential pkg-config libcurl4-openssl-dev liblua5.4-dev valgrind $(MOCK_DEB)
PACKAGES_oom-asan := $(PACKAGES_oom)
PACKAGES_oom-valgrind := $(PACKAGES_oom)
PACKAGES_fuzz     := clang-14 libclang-rt-14-dev pkg-config libcurl4-openssl-dev liblua5.4-dev lua5.4 lua-cjson
PACKAGES_fuzz-build := $(PACKAGES_fuzz)
PACKAGES_test-threads := $(PACKAGES_all) clang-14 libclang-rt-14-dev valgrind $(MOCK_DEB)
# nginx with its Lua module runs what spec/nginx/ and the README's nginx
# blocks configure; the README's blocks also run luarocks and make docs.
PACKAGES_test-openresty := $(PACKAGES_test) nginx libnginx-mod-http-lua apache2-utils
PACKAGES_readme-check := $(PACKAGES_test) luarocks nginx libnginx-mod-http-lua lua-ldoc lua-discount
PACKAGES_examples-check := $(PACKAGES_demo)

GOAL_PACKAGES = $(sort $(foreach g,$(or $(MAKECMDGOALS),all),$(or $(PACKAGES_$(g)),$(PACKAGES_all))))

# $(call deps_sh,PACKAGES,QUIET): the missing ones are installed as root,
# otherwise the command to run is printed and the recipe fails.  One
# dpkg-query for the whole list.
define deps_sh
have=" $$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(1) 2>/dev/null | \
  awk '$$1 == "ii" { printf "%s ", $$2 }') "; \
missing=; for p in $(1); do case "$$have" in *" $$p "*) ;; *) missing="$$missing $$p";; esac; done; \
if [ -z "$$missing" ]; then [ -n "$(2)" ] || echo "deps: all Debian packages present"; \
elif [ "$$(id -u)" = 0 ]; then \
  echo "deps: installing$$missing"; \
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
else \
  echo "deps: missing packages; run:"; \
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
  exit 1; \
fi
endef

# The checkout's Lua trees: the library, the command, the mock (one list,
# for every target that runs them; the specs add spec/).
LPATH   := lua/?.lua;lua/?/init.lua;cli/?.lua;cli/?/init.lua;mock/?.lua;mock/?/init.lua
SPEC_LPATH := $(LPATH);spec/?.lua
LUA_ENV := LUA_PATH='$(LPATH);;' LUA_CPATH='$(BUILD)/?.so;;'
# Lua's search paths and LUA_INIT as a shell profile may set them for one
# Lua (`luarocks path` for 5.1 sets the plain LUA_PATH, which lua5.4 reads
# too): the specs and their children use the checkout and Debian's packages
# alone.
LUA_VARS  := $(foreach v,PATH CPATH INIT,LUA_$(v) $(foreach n,5_1 5_2 5_3 5_4,LUA_$(v)_$(n)))
CLEAN_LUA := env $(addprefix -u ,$(LUA_VARS))

.PHONY: all build deps check-deps demo test check test-all lint lists-check print-packages rock clean

# The build runs in a second make: the pkg-config flags above are read when
# make starts, so on a fresh machine they must be read after check-deps has
# installed the packages, not before.
all: check-deps
	@$(MAKE) --no-print-directory build

build: $(SO)

$(OBJDIR)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SO): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(OBJS) -o $@ $(ALL_LDFLAGS) $(CURL_LIBS)

# Installs what is missing (DEB_PACKAGES: every package CI uses, unless
# told otherwise) when run as root; otherwise names the command.
deps:
	@$(call deps_sh,$(sort $(DEB_PACKAGES)),$(DEPS_QUIET))

# Before building or running: a missing package gives the install command
# (or is installed), not a compiler error or a missing Lua module later.
# Only the packages of the goals asked for.  Without dpkg (not Debian), only
# what the build itself needs is looked for.
check-deps:
	@if command -v dpkg-query >/dev/null; then \
	  $(call deps_sh,$(GOAL_PACKAGES),quiet); \
	elif ! $(PKG_CONFIG) --exists $(LUA_PC) libcurl 2>/dev/null || ! command -v $(LUA) >/dev/null; then \
	  echo "check-deps: needs Lua $(LUA_VERSION) and libcurl development files (pkg-config $(LUA_PC) libcurl)"; \
	  exit 1; fi

demo: all
	@$(LUA_ENV) LUA=$(MOCK_LUA) examples/with-mock.sh $(LUA) examples/get_offers.lua \
	  4f1c2a7e-demo-customer 9b3d5e11-demo-dealer

# spec/mock_spec.lua and spec/mock_oauth_spec.lua test the mock server, which
# runs on 5.4 only: other versions run every other spec.  Tests of 5.4-only
# features (<close>) carry the tag #lua54, tests of 64-bit integer subtypes
# the tag #int64.  Tests tagged #slow (the command streaming 20 000
# customers: its memory bound, some 20 s of the mock's CPU) run under 5.4
# only; every other Lua runs the command's batch specs that are not.
ifneq ($(filter 5.3 5.4,$(LUA_VERSION)),)
TEST_SPECS := spec
else
TEST_SPECS := $(filter-out spec/mock_spec.lua spec/mock_oauth_spec.lua,$(sort $(wildcard spec/*_spec.lua)))
endif
comma := ,
TEST_TAGS := $(if $(filter 5.4,$(LUA_VERSION)),,--exclude-tags=lua54$(comma)slow$(if $(filter 5.3,$(LUA_VERSION)),,$(comma)int64))

# Subprocesses of the specs run the interpreter under test (KPAYMENT_LUA);
# the mock server stays on Lua 5.4 (KPAYMENT_MOCK_LUA, spec/support/server.lua).
test: all
	$(CLEAN_LUA) KPAYMENT_LUA=$(LUA) $(LUA) $(BUSTED) --lpath='$(SPEC_LPATH)' \
	  --cpath='$(BUILD)/?.so' $(TEST_TAGS) -o spec/support/summary.lua $(TEST_SPECS)

# Before pushing: the lint, then the specs; check-deps first names every
# package either needs, in one apt-get line.
check: check-deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test

# Every spec under every Lua installed here (CI installs all five); a run
# that hangs fails after 10 minutes instead of holding CI.
LUA_VERSIONS := 5.1 5.2 5.3 5.4 luajit
test-all:
	@for v in $(LUA_VERSIONS); do \
	  if [ $$v = luajit ]; then lua=luajit pc=luajit; else lua=lua$$v pc=lua$$v; fi; \
	  if command -v $$lua >/dev/null && $(PKG_CONFIG) --exists $$pc; then \
	    echo "test-all: Lua $$v"; \
	    timeout -k 10 600 $(MAKE) --no-print-directory test LUA_VERSION=$$v || exit 1; \
	  else echo "test-all: Lua $$v not installed, skipped"; fi; \
	done

lint: check-deps
	luacheck lua cli mock spec examples bin bench test fuzz/checker.lua
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c99 \
	  --suppress=toomanyconfigs -I/usr/include/lua$(LUA_VERSION) src
	@$(MAKE) --no-print-directory lists-check

# The version, the C source list, the rocks' modules and CI's package lists
# agree with their one source (test/lists_check.lua).  The packages: those of
# the goals CI runs, under every Lua it builds for.
CI_GOALS := all demo test lint rock docs readme-check examples-check test-openresty test-asan \
            memcheck oom fuzz host-check test-threads
lists-check:
	@pkgs=$$(for v in 5.1 5.2 5.3 5.4 luajit; do \
	  $(MAKE) -s --no-print-directory print-packages LUA_VERSION=$$v || exit 1; done) && \
	lua5.4 test/lists_check.lua "$(SRCS_ELSEWHERE)" "$$pkgs"

print-packages:
	@echo $(sort $(foreach g,$(CI_GOALS),$(PACKAGES_$(g))) $(DOCS_PACKAGES) $(OPENRESTY_PACKAGES))

# The three rockspecs (the runtime, the command, and the mock server)
# build and install offline into a private tree (Debian's rocks are not
# visible to luarocks, hence --deps-mode=none).  They build from a
# temporary copy of the checkout's files, because the builtin backend
# writes its objects next to the sources.  The command's and the mock's
# copies leave out lua/: the backend installs any lua/ directory it finds
# wholesale, which would put the runtime's modules in their rocks too.
# Then each loads from the tree, and the installed scripts run, from /tmp.
ROCK_TREE := $(CURDIR)/build/rock-tree
# The paths of the private tree alone (a versioned LUA_PATH_5_4 would win).
ROCK_ENV = env -u LUA_PATH_$(subst .,_,$(LUA_VERSION)) -u LUA_CPATH_$(subst .,_,$(LUA_VERSION)) \
  LUA_PATH='$(ROCK_TREE)/share/lua/$(LUA_VERSION)/?.lua;$(ROCK_TREE)/share/lua/$(LUA_VERSION)/?/init.lua;;' \
  LUA_CPATH='$(ROCK_TREE)/lib/lua/$(LUA_VERSION)/?.so;;'
# The mock server runs on Lua 5.4: other versions build and check the
# runtime's rock and the command's.
ROCK_NAMES := kpayment kpayment-cli $(if $(filter 5.4,$(LUA_VERSION)),kpayment-mock)
ROCK_CHECK = local tree = "$(ROCK_TREE)/"; \
  local searchpath = package.searchpath or function(name, path) \
    for t in path:gmatch("[^;]+") do \
      local f = t:gsub("%?", (name:gsub("%.", "/"))); local h = io.open(f); \
      if h then h:close(); return f end \
    end \
  end; \
  for rock in ("$(ROCK_NAMES)"):gmatch("%S+") do \
    local name = rock:gsub("%-", "."); \
    local file = assert(searchpath(name, package.path)); \
    assert(file:find(tree, 1, true) == 1, name .. " found outside the rock tree: " .. file); \
    require(name); \
    print("rock: " .. name .. " loads from the rock tree"); \
  end
rock:
	rm -rf build/rock-tree
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT INT TERM && \
	for rock in $(ROCK_NAMES); do \
	  mkdir "$$tmp/$$rock" && \
	  git ls-files -z --cached --others --exclude-standard | \
	    if [ $$rock = kpayment ]; then cat; else grep -zv '^lua/'; fi | \
	    tar --null --files-from=- --ignore-failed-read --warning=no-failed-read -cf - | \
	    tar -xf - -C "$$tmp/$$rock" && \
	  echo "rock: luarocks make $$rock-scm-1.rockspec (from a copy in $$tmp/$$rock)" && \
	  (cd "$$tmp/$$rock" && luarocks --lua-version=$(LUA_VERSION) --tree=$(ROCK_TREE) make \
	    --deps-mode=none CURL_INCDIR=$$($(PKG_CONFIG) --variable=includedir libcurl) \
	    $$rock-scm-1.rockspec) || exit 1; \
	done
	@clash=$$(ls -d $(ROCK_TREE)/share/lua/$(LUA_VERSION)/*_scm_*-* 2>/dev/null); \
	if [ -n "$$clash" ]; then echo "rock: two rocks install the same files: $$clash"; exit 1; fi
	@if [ -e $(ROCK_TREE)/lib/luarocks/rocks-$(LUA_VERSION)/kpayment/scm-1/bin/kpayment ]; then \
	  echo "rock: the runtime's rock installs the command"; exit 1; fi
	cd /tmp && $(ROCK_ENV) $(LUA) -e '$(ROCK_CHECK)'
	@if [ -n "$(filter kpayment-mock,$(ROCK_NAMES))" ]; then \
	  cd /tmp && $(ROCK_ENV) $(ROCK_TREE)/bin/kpayment-mock --help >/dev/null && \
	  echo "rock: the installed kpayment-mock --help runs"; fi
	cd /tmp && env -u LUA_PATH -u LUA_CPATH $(ROCK_TREE)/bin/kpayment --help >/dev/null && \
	  echo "rock: the installed kpayment --help runs, with no LUA_PATH"

clean:
	rm -rf build

include bench/bench.mk
include fuzz/fuzz.mk
include bench/http.mk
include test/oom.mk
include test/memcheck.mk
include test/soak.mk
include examples/host/host.mk
include examples/openresty/openresty.mk
include test/docs.mk
