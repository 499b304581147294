--- nginx (Debian's, with libnginx-mod-http-lua) for specs: a private
-- prefix, a configuration made of the parts a spec gives, kpayment's Lua
-- modules from the checkout and its core built for LuaJIT
-- (build/luajit/kpayment/core.so), kpayment's nginx/http.conf included.
--
--   local nginx = require("support.nginx")
--   local n = nginx.start{
--     main = "env KPAYMENT_SKIN;",          -- main context lines
--     http = "lua_shared_dict d 1m;",      -- http level
--     server = "location = /t { ... }",    -- inside the server block
--     env = { KPAYMENT_SKIN = "s" },       -- the master's environment
--     workers = 1,                         -- worker_processes (default 1)
--     kpayment_http = false,               -- leave nginx/http.conf out
--     package_root = dir,                  -- lua/ and spec/ from dir, not the checkout
--   }
--   -- n.url ("http://127.0.0.1:PORT"), n.get(path) -> status, body, seconds,
--   -- n.log() (error.log), n.workers() (worker pids), n.reload(), n.stop(),
--   -- n.prefix, n.conf (the configuration text)
--   nginx.burst(urls [, n]) -> the bodies of each URL requested n times
--   (default 1), all at once; nginx.count(text, pattern) -> matches

local socket = require("socket")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")
local server = require("support.server")

local M = {}

local quote, read_file, free_port = server.shell_quote, server.read_file, server.free_port

local ROOT = os.getenv("PWD") or "."

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The configuration for `opts` on `port`.
local function config(opts, port)
  local parts = {
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "pid logs/nginx.pid;",
    "error_log logs/error.log " .. (opts.log_level or "info") .. ";",
    opts.main or "",
    "events { worker_connections 4096; }",
    "http {",
    "  client_body_temp_path temp/client_body; proxy_temp_path temp/proxy;",
    "  fastcgi_temp_path temp/fastcgi; uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;",
    "  access_log off;",
    ('  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;";'):format(opts.package_root or ROOT,
      opts.package_root or ROOT, opts.package_root or ROOT),
    ('  lua_package_cpath "%s/build/luajit/?.so;;";'):format(ROOT),
    opts.kpayment_http == false and "" or ("  include %s/nginx/http.conf;"):format(ROOT),
    opts.http or "",
    "  server {",
    ("    listen 127.0.0.1:%d reuseport;"):format(port),
    opts.server or "",
    "    location = /ping { content_by_lua_block { ngx.say('pong') } }",
    "  }",
    "}",
  }
  return table.concat(parts, "\n") .. "\n"
end

local function get(url, path, timeout)
  local chunks = {}
  local t0 = socket.gettime()
  socket_http.TIMEOUT = timeout or 60
  local _, status = socket_http.request({ url = url .. path, sink = ltn12.sink.table(chunks) })
  return status, table.concat(chunks), socket.gettime() - t0
end

--- `v` percent-encoded for a query string: every byte but the unreserved.
function M.encode(v)
  return (v:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- Starts nginx as `opts` say; returns its handle once /ping answers, or
-- raises with what nginx said.
function M.start(opts)
  opts = opts or {}
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(sh("mkdir -p " .. quote(prefix .. "/logs") .. " " .. quote(prefix .. "/temp")))
  sh("chmod 755 " .. quote(prefix))
  local port = free_port()
  local conf = config(opts, port)
  write(prefix .. "/nginx.conf", conf)
  local words = {}
  for k, v in pairs(opts.env or {}) do words[#words + 1] = k .. "=" .. quote(v) end
  local nginx = sh("command -v nginx >/dev/null") and "nginx" or "/usr/sbin/nginx"
  local start = ("env %s %s -p %s -c nginx.conf 2>%s"):format(table.concat(words, " "), nginx,
    quote(prefix .. "/"), quote(prefix .. "/start.err"))
  if not sh(start) then
    local why = read_file(prefix .. "/start.err") .. read_file(prefix .. "/logs/error.log")
    sh("rm -rf " .. quote(prefix))
    error("nginx did not start: " .. why, 2)
  end
  local url = "http://127.0.0.1:" .. port
  local self = { url = url, prefix = prefix, conf = conf, port = port }
  local function master()
    return tonumber(read_file(prefix .. "/logs/nginx.pid"):match("%d+"))
  end
  function self.log() return read_file(prefix .. "/logs/error.log") end
  function self.get(path, timeout) return get(url, path, timeout) end
  function self.workers()
    local pids = {}
    local p = io.popen("pgrep -P " .. (master() or 0))
    for pid in p:read("*a"):gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
    p:close()
    return pids
  end
  function self.signal(sig)
    local pid = master()
    if pid then sh("kill -" .. sig .. " " .. pid .. " 2>/dev/null") end
  end
  function self.reload() self.signal("HUP") end
  function self.stop()
    local pid = master()
    if pid then
      sh("kill -TERM " .. pid .. " 2>/dev/null")
      local deadline = socket.gettime() + 10
      while sh("kill -0 " .. pid .. " 2>/dev/null") and socket.gettime() < deadline do socket.sleep(0.05) end
      sh("kill -KILL " .. pid .. " 2>/dev/null")
      sh("pkill -KILL -P " .. pid .. " 2>/dev/null")
    end
    if os.getenv("KPAYMENT_KEEP_NGINX") then
      io.stderr:write("nginx prefix kept: " .. prefix .. "\n")
    else
      sh("rm -rf " .. quote(prefix))
    end
  end
  local deadline = socket.gettime() + 10
  while true do
    local ok, status = pcall(get, url, "/ping", 1)
    if ok and status == 200 then return self end
    if socket.gettime() > deadline then
      local why = self.log()
      self.stop()
      error("nginx does not answer /ping: " .. why, 2)
    end
    socket.sleep(0.05)
  end
end

--- The resident memory of a process, in KiB (from /proc).
function M.rss_kib(pid)
  return tonumber(read_file("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)"))
end

--- Each of urls requested n times (default 1), all at once (curl
-- processes: ab sends its first request alone); the bodies, as they came.
function M.burst(urls, n)
  local cmd = {}
  for _, url in ipairs(urls) do
    cmd[#cmd + 1] = ("for i in $(seq %d); do curl -s -m 10 %s & done;"):format(n or 1, quote(url))
  end
  local p = assert(io.popen(table.concat(cmd, " ") .. " wait"))
  local out = p:read("*a")
  p:close()
  return out
end

--- How many times pattern matches in text.
function M.count(text, pattern)
  local k = 0
  for _ in text:gmatch(pattern) do k = k + 1 end
  return k
end

return M
