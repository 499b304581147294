# test/docs.mk -- the reference and the README, included from the Makefile.
#
#   make docs            LDoc reference into docs/ (config.ld); any ldoc
#                        warning fails, and so does a public function,
#                        method, field or option without an entry
#                        (test/docs_check.lua)
#   make readme-check    README.md and docs/*.md: every sh/bash/console/lua
#                        block runs in a clean environment against the
#                        mock (marks for what cannot), every nginx block
#                        in nginx, and every relative link resolves
#                        (test/readme_check.lua); the reference and the
#                        core for nginx's LuaJIT are built first
#   make examples-check  every file of examples/ runs, or is run by a named
#                        CI step
#
# Uses from the main Makefile: LUA, LUA_ENV, all, deps; from
# examples/openresty/openresty.mk: openresty-build.

LDOC ?= ldoc
DOCS_PACKAGES := lua-ldoc lua-discount

.PHONY: docs readme-check examples-check

# ldoc prints these lines on every run; anything else it says is a warning.
# (`merge = true` in config.ld: the classes' files add to module kpayment.)
LDOC_QUIET := -e '^reading configuration from ' -e '^found master module' \
  -e '^\*\*\*closing section from master module\*\*\*$$' -e '^output written to ' -e '^$$'

docs: all
	@command -v $(LDOC) >/dev/null || $(MAKE) --no-print-directory deps DEPS_QUIET=1 \
	  DEB_PACKAGES="$(DOCS_PACKAGES)"
	@rm -rf docs/reference
	@out=$$($(LDOC) --fatalwarnings . 2>&1); rc=$$?; \
	noise=$$(printf '%s\n' "$$out" | grep -v $(LDOC_QUIET)); \
	if [ $$rc -ne 0 ] || [ -n "$$noise" ]; then \
	  printf '%s\n' "$$out" >&2; echo "docs: ldoc failed or warned (above)" >&2; exit 1; fi
	@$(LUA_ENV) $(LUA) test/docs_check.lua docs/reference
	@echo "docs: docs/reference/index.html"

# Links into docs/reference/ need the reference; nginx blocks need nginx,
# its lua module and build/luajit/ (openresty-build).
readme-check: all docs openresty-build
	@lua5.4 test/readme_check.lua readme README.md $(wildcard docs/*.md)

examples-check: all
	@lua5.4 test/readme_check.lua examples
