# test/docs.mk -- the reference and the README, included from the Makefile.
#
#   make docs            LDoc reference into docs/ (config.ld); any ldoc
#                        warning fails, and so does a public function,
#                        method, field or option without an entry
#                        (test/docs_check.lua)
#
# Uses from the main Makefile: LUA, LUA_ENV, all, deps.

LDOC ?= ldoc
DOCS_PACKAGES := lua-ldoc lua-discount

.PHONY: docs

# ldoc prints these lines on every run; anything else it says is a warning.
# (`merge = true` in config.ld: the classes' files add to module kpayment.)
LDOC_QUIET := -e '^reading configuration from ' -e '^found master module' \
  -e '^\*\*\*closing section from master module\*\*\*$$' -e '^output written to ' -e '^$$'

docs: all
	@command -v $(LDOC) >/dev/null || $(MAKE) --no-print-directory deps DEPS_QUIET=1 \
	  DEB_PACKAGES="$(DOCS_PACKAGES)"
	@rm -rf docs
	@out=$$($(LDOC) --fatalwarnings . 2>&1); rc=$$?; \
	noise=$$(printf '%s\n' "$$out" | grep -v $(LDOC_QUIET)); \
	if [ $$rc -ne 0 ] || [ -n "$$noise" ]; then \
	  printf '%s\n' "$$out" >&2; echo "docs: ldoc failed or warned (above)" >&2; exit 1; fi
	@$(LUA_ENV) $(LUA) test/docs_check.lua docs
	@echo "docs: docs/index.html"
