# kpayment inside nginx (Debian's nginx + libnginx-mod-http-lua), from the
# Makefile:
#   make demo-openresty   examples/openresty/run.sh against the mock: one answer
#   make test-openresty   spec/nginx/*_nginx.lua: kpayment in nginx, each file
#                         with its configuration, against the mock, the
#                         framing server and TLS servers (ab for the load)
# Both build kpayment for LuaJIT (nginx's Lua) and for Lua 5.4 (the mock's
# side and the spec's).

OPENRESTY_PACKAGES := nginx libnginx-mod-http-lua curl openssl lua-socket apache2-utils

.PHONY: demo-openresty test-openresty openresty-build

# Installs nginx and its Lua module when missing (as root), or names the
# command; then builds for LuaJIT and for 5.4.
openresty-build:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1 DEB_PACKAGES="$(OPENRESTY_PACKAGES)"
	@$(MAKE) --no-print-directory LUA_VERSION=luajit all
	@$(MAKE) --no-print-directory LUA_VERSION=5.4 all

demo-openresty: openresty-build
	@LUA=lua5.4 examples/with-mock.sh sh examples/openresty/demo.sh \
	  4f1c2a7e-demo-customer 9b3d5e11-demo-dealer

# NGINX_SPECS: the files to run (default: every spec/nginx/*_nginx.lua).
NGINX_SPECS ?= spec/nginx
test-openresty: openresty-build
	lua5.4 $(BUSTED) --lpath='$(SPEC_LPATH)' --cpath='build/5.4/?.so' \
	  -o spec/support/summary.lua --pattern=_nginx $(NGINX_SPECS)
