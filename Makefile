# kpayment -- development Makefile (the rockspec builds the same sources).
#
#   make          build build/5.4/kpayment/core.so
#   make demo     build, start the mock API, print its offers, stop it
#   make test     build and run every spec under Lua 5.4
#   make test LUA_VERSION=5.1   the same under 5.1 (5.2, 5.3, luajit too)
#   make test-all   make test under every Lua installed
#   make deps     install missing Debian packages (or print the command)
#   make bench    decoder benchmark beside lua-cjson and dkjson (bench/)
#   make bench-http  HTTP benchmark against nginx on loopback (bench/)
#   make fuzz     libFuzzer on the decoder (FUZZ_SECONDS, default 60)
#   make test-asan  every spec against an ASan+UBSan build
#   make memcheck   every spec under valgrind
#   make oom        out-of-memory sweep of every call (test/)
#   make soak       20 000 calls against the mock: RSS and fds stay flat
#   make demo-openresty  kpayment inside nginx against the mock: one answer
#   make test-openresty  nginx with examples/openresty/nginx.conf, for real
#   make docs     the LDoc reference into docs/reference/ (index.html); warnings fail
#   make readme-check   every command block of README.md, run against the mock
#   make examples-check every file of examples/ runs (or a named CI step runs it)

# LUA_VERSION: 5.1, 5.2, 5.3, 5.4 or luajit (LuaJIT 2.1, Debian's luajit2).
LUA_VERSION ?= 5.4
BUSTED      ?= /usr/bin/busted
# The mock API server runs on Lua 5.4 whatever LUA_VERSION is.
MOCK_LUA    ?= lua5.4
CC          ?= cc
PKG_CONFIG  ?= pkg-config

ifeq ($(LUA_VERSION),luajit)
LUA         ?= luajit
LUA_PC      := luajit
# compat-5.3.h (lua-compat53-dev) sits beside PUC 5.1's lua.h: that
# directory is searched after LuaJIT's own headers, never before.
COMPAT53_INCDIR ?= /usr/include/lua5.1
LUA_CFLAGS  := $(shell $(PKG_CONFIG) --cflags luajit 2>/dev/null) -idirafter $(COMPAT53_INCDIR)
else
LUA         ?= lua$(LUA_VERSION)
LUA_PC      := lua$(LUA_VERSION)
LUA_CFLAGS  := $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) 2>/dev/null)
endif
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null)

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
SRCS    := src/kp_core.c src/kp_client.c src/kp_request.c src/kp_report.c src/kp_outcome.c \
           src/kp_result.c src/kp_http.c src/kp_h1.c \
           src/kp_json.c src/kp_json_proj.c src/kp_json_records.c src/kp_buf.c
OBJS    := $(SRCS:src/%.c=$(OBJDIR)/%.o)
HDRS    := $(wildcard src/*.h)

# One list, shared with CI.
DEB_PACKAGES := $(shell cat .ci/debian-packages)

# The checkout's Lua trees: the library, the command, the mock (one list,
# for every target that runs them; the specs add spec/).
LPATH   := lua/?.lua;lua/?/init.lua;cli/?.lua;cli/?/init.lua;mock/?.lua;mock/?/init.lua
SPEC_LPATH := $(LPATH);spec/?.lua
LUA_ENV := LUA_PATH='$(LPATH);;' LUA_CPATH='$(BUILD)/?.so;;'

.PHONY: all build deps check-deps demo test test-all lint rock clean

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

# Installs what is missing when run as root; otherwise names the command.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done | tr '\n' ' '); \
	if [ -z "$$missing" ]; then [ -n "$(DEPS_QUIET)" ] || echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "deps: missing packages; run:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $$missing"; \
	  exit 1; \
	fi

# Before building: a missing package gives the install command (or is
# installed), not a compiler error or a missing Lua module later.  Without
# dpkg (not Debian), only what the build itself needs is looked for.
check-deps:
	@if command -v dpkg-query >/dev/null; then \
	  $(MAKE) --no-print-directory deps DEPS_QUIET=1; \
	elif ! $(PKG_CONFIG) --exists $(LUA_PC) libcurl 2>/dev/null || ! command -v $(LUA) >/dev/null; then \
	  echo "check-deps: needs Lua $(LUA_VERSION) and libcurl development files (pkg-config $(LUA_PC) libcurl)"; \
	  exit 1; fi

demo: all
	@$(LUA_ENV) LUA=$(MOCK_LUA) examples/with-mock.sh $(LUA) examples/get_offers.lua \
	  4f1c2a7e-demo-customer 9b3d5e11-demo-dealer

# spec/mock_spec.lua tests the mock server, which runs on 5.4 only: other
# versions run every other spec.  Tests of 5.4-only features (<close>) carry
# the tag #lua54, tests of 64-bit integer subtypes the tag #int64.
ifneq ($(filter 5.3 5.4,$(LUA_VERSION)),)
TEST_SPECS := spec
else
TEST_SPECS := $(filter-out spec/mock_spec.lua,$(sort $(wildcard spec/*_spec.lua)))
endif
comma := ,
TEST_TAGS := $(if $(filter 5.4,$(LUA_VERSION)),,--exclude-tags=lua54$(if $(filter 5.3,$(LUA_VERSION)),,$(comma)int64))

# Subprocesses of the specs run the interpreter under test (KPAYMENT_LUA);
# the mock server stays on Lua 5.4 (KPAYMENT_MOCK_LUA, spec/support/server.lua).
test: all
	@command -v $(BUSTED) >/dev/null || $(MAKE) --no-print-directory deps
	KPAYMENT_LUA=$(LUA) $(LUA) $(BUSTED) --lpath='$(SPEC_LPATH)' \
	  --cpath='$(BUILD)/?.so' $(TEST_TAGS) -o spec/support/summary.lua $(TEST_SPECS)

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

lint:
	luacheck lua cli mock spec examples bin bench test fuzz/checker.lua
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c99 \
	  --suppress=toomanyconfigs -I/usr/include/lua$(LUA_VERSION) src

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
