-- The README and the guides work as written, and every example runs.
--
--   lua5.4 test/readme_check.lua readme [PAGE.md ...]  (make readme-check)
--   lua5.4 test/readme_check.lua examples             (make examples-check)
--
-- readme: every fenced block of each page (README.md without arguments;
-- make readme-check gives README.md and docs/*.md) whose info string is
-- sh, bash, console (its `$ ` lines) or lua runs, each in a clean
-- environment (env -i: PATH, a fresh HOME and TMPDIR, no LUA_PATH) against
-- a fresh mock API (examples/with-mock.sh: KPAYMENT_BASE_URL, demo
-- credentials, skin and locale), from the checkout's top directory, with `sh -e` (bash -e for
-- bash), so any failing command fails the check.  Lua blocks run under
-- lua5.4 with the checkout's modules.  A block may leave nothing in the
-- checkout outside build/ and docs/ (git status --ignored before and after).
-- Blocks of other languages are never run: c and text (output) only; any
-- other info string, a fence without one, or an indented code block is an
-- error, so a command cannot hide from this check.  An nginx block is a
-- whole configuration file shipped in the checkout, marked with its path,
-- and must be that file, byte for byte; optionally the mark names one
-- request to make:
--
--   <!-- readme-check: same-as examples/openresty/nginx.conf GET /offers?… -->
--
-- and then it runs in nginx, against the mock like the other blocks, under
-- a private prefix laid out as the shipped configuration's header says
-- (lua_modules/ with the checkout's modules and the core built for LuaJIT,
-- kpayment/ the checkout's nginx/, and the .lua files beside the file), in
-- a copy whose only changes are its `listen` addresses (a free port on
-- 127.0.0.1) and temp paths inside the prefix, so no other nginx of the
-- machine is touched: `nginx -t` first, then nginx started in the
-- foreground until it answers, then the request, which must answer 2xx;
-- nginx is stopped by its process id.  Needs nginx, its lua module and
-- build/luajit/kpayment/core.so (make readme-check builds it).
--
-- Every relative link of a page, `[text](target)` or `[ref]: target`
-- outside code, must resolve: the file or directory (relative to the page),
-- and a `#anchor` to a heading of a .md file (GitHub's ids) or an id or
-- name of an .html file (the reference that `make docs` generates, which
-- make readme-check builds first).
--
-- An nginx that a block leaves running (a pid file under the block's HOME
-- or TMPDIR naming a live nginx five seconds after the block ended) fails
-- the block and is stopped by that pid.
--
-- Several pages may be checked in one run (README.md and docs/*.md).
--
-- What cannot run here is marked in the README, on the lines right above
-- the fence, with a reason (unmarked = run):
--
--   <!-- readme-check: skip (reason) -->                the whole block
--   <!-- readme-check: skip "command" (reason) -->      that command only
--   <!-- readme-check: needs PATH (reason) -->          only when the checkout has PATH
--   <!-- readme-check: needs PATH "command" (reason) -->
--
-- A command is matched against each command of the block (lines joined at
-- a trailing backslash, a trailing `# comment` and extra spaces dropped);
-- a mark that matches nothing is an error, so marks cannot go stale.
--
-- examples: every file under examples/ (tracked, or new and not ignored) is
-- either run here (each top-level *.lua under examples/with-mock.sh, in the
-- same clean environment, with the arguments of ARGS below) or listed in
-- COVERED with the step of .ci/run that runs it (`step CMD`, or `"CMD"` in
-- a lane); anything else fails.

local ROOT = "."
local TIMEOUT = 120      -- seconds for one block: a command that serves until stopped fails
local PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

-- Lua examples that need arguments.
local ARGS = {
  ["examples/get_offers.lua"] = { "4f1c2a7e-demo-customer", "9b3d5e11-demo-dealer" },
}

-- Examples run by another target; `ci` must be a step of .ci/run.
local COVERED = {
  ["examples/with-mock.sh"] = { ci = "make readme-check",
    why = "runs every example here and the README's mock commands" },
  ["examples/host/host.c"] = { ci = "make host-check",
    why = "built and run against the mock, output checked" },
  ["examples/host/frames.lua"] = { ci = "make host-check", why = "the script host.c runs" },
  ["examples/host/host.mk"] = { ci = "make host-check",
    why = "the make fragment of make host and host-check" },
  ["examples/openresty/nginx.conf"] = { ci = "make test-openresty", why = "nginx runs with it as is" },
  ["examples/openresty/offers.lua"] = { ci = "make test-openresty", why = "the handler nginx.conf loads" },
  ["examples/openresty/run.sh"] = { ci = "make test-openresty", why = "starts nginx for the spec" },
  ["examples/openresty/openresty.mk"] = { ci = "make test-openresty",
    why = "the make fragment of demo-openresty and test-openresty" },
  ["examples/openresty/demo.sh"] = { ci = "make readme-check",
    why = "make demo-openresty, a command of docs/openresty.md" },
}

-- Info strings: run, or shown only (never run).
local RUN = { sh = "sh", bash = "bash", console = "bash", lua = "lua" }
local SHOWN = {
  c = "C fragments (examples/host/host.c is the whole program, run by make host-check)",
  text = "output, not commands",
  nginx = "a configuration file of the checkout (same-as mark)",
}

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function now()
  return tonumber(capture("date +%s.%N")) or os.time()
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- A shell command without its trailing comment, spaces squeezed.
local function normalize(cmd)
  local out, quote_char = {}, nil
  for i = 1, #cmd do
    local c = cmd:sub(i, i)
    if quote_char then
      if c == quote_char then quote_char = nil end
    elseif c == "'" or c == '"' then
      quote_char = c
    elseif c == "#" and (i == 1 or cmd:sub(i - 1, i - 1):match("%s")) then
      break
    end
    out[#out + 1] = c
  end
  return trim(table.concat(out):gsub("%s+", " "))
end

---------------------------------------------------------------------------
-- README parsing

local problems = {}
local readme_name = "README.md"
local function problem(line, fmt, ...)
  problems[#problems + 1] = string.format("%s:%d: " .. fmt, readme_name, line, ...)
end

-- One mark: { verb = "skip"|"needs", path = …, command = …, reason = … }.
local function parse_mark(text, line)
  local verb, rest = text:match("^([%a-]+)%s*(.-)%s*$")
  local mark = { verb = verb, line = line }
  if verb == "same-as" then
    local path, request = rest:match("^(%S+)%s*(.-)$")
    mark.path = path
    if not mark.path then
      problem(line, "'same-as' wants a path: %s", text)
      return nil
    end
    if request ~= "" then
      mark.get = request:match("^GET%s+(/%S*)$")
      if not mark.get then
        problem(line, "'same-as PATH' may be followed by 'GET /path' only: %s", text)
        return nil
      end
    end
    return mark
  end
  if verb ~= "skip" and verb ~= "needs" then
    problem(line, "unknown readme-check mark '%s' (skip, needs or same-as)", text)
    return nil
  end
  if verb == "needs" then
    mark.path, rest = rest:match("^(%S+)%s*(.-)$")
    if not mark.path then
      problem(line, "'needs' wants a path: %s", text)
      return nil
    end
  end
  local command, after = rest:match('^"(.-)"%s*(.-)$')
  if command then mark.command, rest = normalize(command), after end
  mark.reason = rest:match("^%((.+)%)$")
  if not mark.reason or trim(mark.reason) == "" then
    problem(line, "readme-check mark without a reason in parentheses: %s", text)
    return nil
  end
  return mark
end

local function parse_readme(path)
  local lines = {}
  for l in (read(path) .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = l end
  local blocks, marks = {}, {}
  local i, prev_blank, prev_text = 1, true, ""
  while i <= #lines do
    local l = lines[i]
    local fence, info = l:match("^ ? ? ?(```+)%s*(.-)%s*$")
    if not fence then fence, info = l:match("^ ? ? ?(~~~+)%s*(.-)%s*$") end
    local mark = l:match("^%s*<!%-%-%s*readme%-check:%s*(.-)%s*%-%->%s*$")
    if mark then
      marks[#marks + 1] = parse_mark(mark, i) or { verb = "bad", line = i }
    elseif l:find("readme%-check", 1) and l:find("<!%-%-") then
      problem(i, "a readme-check mark must be one line: <!-- readme-check: … -->")
    elseif fence then
      local block = { line = i, lang = info:match("^(%S*)"), lines = {}, marks = marks }
      marks = {}
      local close = "^ ? ? ?" .. fence:sub(1, 1):rep(#fence) .. "+%s*$"
      i = i + 1
      while i <= #lines and not lines[i]:match(close) do
        block.lines[#block.lines + 1] = lines[i]
        i = i + 1
      end
      if i > #lines then problem(block.line, "unclosed fence") end
      blocks[#blocks + 1] = block
      prev_blank, prev_text = false, ""
    else
      if #marks > 0 then
        problem(marks[1].line, "a readme-check mark must stand right above a fence")
        marks = {}
      end
      local indented = l:match("^    ") or l:match("^\t")
      local in_list = prev_text:match("^%s*[-*+] ") or prev_text:match("^%s*%d+[.)] ")
        or prev_text:match("^%s")
      if indented and trim(l) ~= "" and prev_blank and not in_list then
        problem(i, "indented code block: use a fence (```sh to run it, ```text for output)")
        while i + 1 <= #lines and (lines[i + 1]:match("^    ") or trim(lines[i + 1]) == "") do
          i = i + 1
        end
      end
      if trim(l) == "" then
        prev_blank = true
      else
        prev_blank, prev_text = false, l
      end
    end
    i = i + 1
  end
  if #marks > 0 then problem(marks[1].line, "a readme-check mark must stand right above a fence") end
  return blocks
end

-- The commands of a shell block: { text = normalized, first = line index,
-- last = line index }, continuation lines joined.
local function commands(block)
  local cmds, cur = {}, nil
  local console = block.lang == "console"
  for n, l in ipairs(block.lines) do
    local text = l
    if cur == nil and console then
      text = l:match("^%$ (.*)$")
    end
    if text then
      if cur == nil then cur = { first = n, parts = {} } end
      cur.parts[#cur.parts + 1] = text:gsub("\\%s*$", "")
      cur.last = n
      if not text:match("\\%s*$") then
        cur.text = normalize(table.concat(cur.parts, " "))
        if cur.text ~= "" then cmds[#cmds + 1] = cur end
        cur = nil
      end
    end
  end
  if cur then
    cur.text = normalize(table.concat(cur.parts, " "))
    cmds[#cmds + 1] = cur
  end
  return cmds
end

---------------------------------------------------------------------------
-- Running

local tmp = trim(capture("mktemp -d"))
assert(tmp ~= "", "mktemp -d failed")

local function cleanup()
  os.execute("rm -rf " .. quote(tmp))
end

-- What the checkout holds outside build/ and docs/, untracked or changed.
local function checkout_state()
  local out = capture("git -C " .. quote(ROOT) .. " status --porcelain --ignored 2>&1")
  local lines = {}
  for l in out:gmatch("[^\n]+") do
    if not l:match("^!! build/") and not l:match("^!! docs/reference/") then lines[#lines + 1] = l end
  end
  return lines
end

local function difference(before, after)
  local seen, new = {}, {}
  for _, l in ipairs(before) do seen[l] = true end
  for _, l in ipairs(after) do
    if not seen[l] then new[#new + 1] = l end
  end
  return new
end

local results = { ran = 0, skipped = 0, failed = 0 }

-- nginx masters a block left running under `dir` (its HOME and TMPDIR):
-- each pid file there naming a live nginx, given five seconds to go
-- (`nginx -s quit` returns before nginx has gone), is stopped by its pid.
-- Returns what was stopped, for the block's log.
local function stop_leftover_nginx(dir)
  local stopped = {}
  local pidfiles = capture("find " .. quote(dir) .. " -path '*/logs/nginx.pid' 2>/dev/null")
  for pidfile in pidfiles:gmatch("[^\n]+") do
    local f = io.open(pidfile, "rb")
    local pid = f and tonumber((f:read("*a") or ""):match("^%s*(%d+)"))
    if f then f:close() end
    local function alive()
      local comm = io.open("/proc/" .. tostring(pid) .. "/comm", "rb")
      local name = comm and comm:read("*l")
      if comm then comm:close() end
      return name == "nginx"
    end
    if pid then
      for _ = 1, 50 do
        if not alive() then break end
        os.execute("sleep 0.1")
      end
      if alive() then
        os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
        for _ = 1, 50 do
          if not alive() then break end
          os.execute("sleep 0.1")
        end
        if alive() then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
        stopped[#stopped + 1] = string.format("nginx %d (%s)", pid, pidfile)
      end
    end
  end
  return stopped
end

-- Run `body` (a shell command line) in a clean environment under a fresh
-- mock; `keep_lua_path` keeps the LUA_PATH with-mock.sh sets (Lua blocks
-- and examples) or drops it (shell blocks: a user's shell has none).
local function run(label, body, keep_lua_path)
  local dir = tmp .. "/" .. tostring(results.ran + results.failed + 1)
  os.execute("mkdir -p " .. quote(dir .. "/home") .. " " .. quote(dir .. "/tmp"))
  -- nginx's workers (nobody, when nginx starts as root) read files there
  os.execute("chmod 755 " .. quote(tmp) .. " " .. quote(dir) .. " " .. quote(dir .. "/home"))
  local log = dir .. "/log"
  local inner = body
  if not keep_lua_path then
    inner = "sh -c " .. quote('unset LUA_PATH LUA_CPATH; exec "$@"') .. " sh " .. body
  end
  local cmd = table.concat({
    "cd", quote(ROOT), "&&", "env -i",
    "PATH=" .. quote(PATH), "HOME=" .. quote(dir .. "/home"), "TMPDIR=" .. quote(dir .. "/tmp"),
    "LANG=C.UTF-8", "TERM=dumb",
    "timeout -k 10", tostring(TIMEOUT), "examples/with-mock.sh", inner,
    ">" .. quote(log), "2>&1 </dev/null",
  }, " ")
  local before = checkout_state()
  local t0 = now()
  local ok = os.execute(cmd)
  local took = now() - t0
  ok = ok == true or ok == 0
  local left = difference(before, checkout_state())
  if ok and #left > 0 then
    ok = false
    write(log, read(log) .. "\nreadme-check: left in the checkout:\n  " .. table.concat(left, "\n  ") .. "\n")
  end
  local running = stop_leftover_nginx(dir)
  if #running > 0 then
    ok = false
    write(log, read(log) .. "\nreadme-check: left running, now stopped:\n  "
      .. table.concat(running, "\n  ") .. "\n")
  end
  if ok then
    results.ran = results.ran + 1
    print(string.format("ok     %-60s %6.1f s", label, took))
  else
    results.failed = results.failed + 1
    print(string.format("FAIL   %-60s %6.1f s", label, took))
    local out = read(log)
    local tail = {}
    for l in out:gmatch("[^\n]*") do tail[#tail + 1] = l end
    io.write("  | ", table.concat(tail, "\n  | ", math.max(1, #tail - 40)), "\n")
  end
  return ok
end

local function skipped(label, reason)
  results.skipped = results.skipped + 1
  print(string.format("skip   %-60s (%s)", label, reason))
end

-- A shipped nginx configuration (`conf`, a path in the checkout) run in
-- nginx under a private prefix, as the header says; `get` a request path
-- or nil.  Against the mock, under run(), like any block.
local NGINX_SCRIPT = [=[
set -eu
root=$(pwd)
conf=$1
get=${2:-}
core=$root/build/luajit/kpayment/core.so
[ -f "$core" ] || { echo "readme-check: $core missing: make LUA_VERSION=luajit" >&2; exit 1; }
command -v nginx >/dev/null || { echo "readme-check: nginx not found" >&2; exit 1; }
prefix=$TMPDIR/nginx
mkdir -p "$prefix/logs" "$prefix/temp" "$prefix/lua_modules/share/lua/5.1" \
  "$prefix/lua_modules/lib/lua/5.1/kpayment"
chmod 755 "$TMPDIR" "$prefix"          # nginx's workers (nobody) read through it
ln -s "$root/lua/kpayment" "$prefix/lua_modules/share/lua/5.1/kpayment"
ln -s "$core" "$prefix/lua_modules/lib/lua/5.1/kpayment/core.so"
ln -s "$root/nginx" "$prefix/kpayment"
for f in "$root/$(dirname "$conf")"/*.lua; do
  [ ! -e "$f" ] || ln -s "$f" "$prefix/"
done
port=$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
print((select(2, s:getsockname())))')
# The file with its listen addresses on that port, and temp paths in the
# prefix (nginx would otherwise create, and chown, its compiled-in ones).
temp="client_body_temp_path temp/body; proxy_temp_path temp/proxy; fastcgi_temp_path temp/fastcgi;"
temp="$temp uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;"
sed -e "s|^\([[:space:]]*listen[[:space:]]\{1,\}\)[^;[:space:]]*|\1127.0.0.1:$port|" \
    -e "s|^\([[:space:]]*http[[:space:]]*{\)[[:space:]]*$|\1 $temp|" \
    "$root/$conf" >"$prefix/nginx.conf"
grep -q "listen 127.0.0.1:$port" "$prefix/nginx.conf" ||
  { echo "readme-check: no listen line in $conf" >&2; exit 1; }
grep -q "uwsgi_temp_path" "$prefix/nginx.conf" ||
  { echo "readme-check: no 'http {' line in $conf" >&2; exit 1; }
log() { echo "--- $prefix/logs/error.log" >&2; cat "$prefix/logs/error.log" >&2 2>/dev/null || true; }
echo "nginx -t, $conf on 127.0.0.1:$port"
nginx -t -p "$prefix/" -c nginx.conf -e logs/error.log || { log; exit 1; }
nginx -p "$prefix/" -c nginx.conf -e logs/error.log -g 'daemon off;' </dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" != 000 ]; do
  kill -0 $pid 2>/dev/null || { echo "readme-check: nginx exited" >&2; log; exit 1; }
  i=$((i + 1))
  [ $i -le 200 ] || { echo "readme-check: nginx does not answer on port $port" >&2; log; exit 1; }
  sleep 0.05
done
echo "nginx serves on 127.0.0.1:$port"
if [ -n "$get" ]; then
  code=$(curl -sS -o "$TMPDIR/body" -w '%{http_code}' "http://127.0.0.1:$port$get")
  echo "GET $get: HTTP $code"
  head -c 400 "$TMPDIR/body"; echo
  case $code in 2??) ;; *) log; exit 1 ;; esac
fi
]=]

local function run_nginx(label, conf, get)
  local file = string.format("%s/nginx-%d.sh", tmp, results.ran + results.failed + 1)
  write(file, NGINX_SCRIPT)
  local args = quote(file) .. " " .. quote(conf)
  if get then args = args .. " " .. quote(get) end
  return run(label, "sh " .. args, false)
end

local function first_line(block)
  for _, l in ipairs(block.lines) do
    if trim(l) ~= "" then return trim(l) end
  end
  return ""
end

local function check_readme(path)
  readme_name = path:gsub("^%./", "")
  local blocks = parse_readme(path)
  local runnable = {}
  for _, b in ipairs(blocks) do
    if b.lang == "" then
      problem(b.line, "fence without an info string (sh, bash, console, lua, c or text)")
    elseif not RUN[b.lang] and not SHOWN[b.lang] then
      problem(b.line, "fence '%s': run (sh, bash, console, lua) or shown (c, text)?", b.lang)
    elseif b.lang == "nginx" then
      local m = b.marks[1]
      if #b.marks ~= 1 or m.verb ~= "same-as" then
        problem(b.line, "an nginx block needs one mark: <!-- readme-check: same-as PATH -->")
      elseif not exists(ROOT .. "/" .. m.path) then
        problem(b.line, "same-as %s: no such file", m.path)
      elseif read(ROOT .. "/" .. m.path) ~= table.concat(b.lines, "\n") .. "\n" then
        problem(b.line, "the block is not %s as it is in the checkout", m.path)
      else
        runnable[#runnable + 1] = b
      end
    elseif SHOWN[b.lang] and #b.marks > 0 then
      problem(b.line, "a readme-check mark on a %s block, which never runs", b.lang)
    elseif RUN[b.lang] then
      runnable[#runnable + 1] = b
    end
  end
  -- Check every mark before running anything.
  for _, b in ipairs(runnable) do
    b.cmds = (b.lang == "lua" or b.lang == "nginx") and {} or commands(b)
    for _, m in ipairs(b.marks) do
      if m.command then
        if b.lang == "lua" then problem(m.line, "a command mark on a lua block") end
        local matched = false
        for _, c in ipairs(b.cmds) do
          if c.text == m.command then c.mark, matched = m, true end
        end
        if not matched and b.lang ~= "lua" then
          problem(m.line, 'the mark\'s command "%s" is not in the block below', m.command)
        end
      end
    end
  end
  if #problems > 0 then return end

  for _, b in ipairs(runnable) do
    local label = string.format("%s:%d %s: %s", readme_name, b.line, b.lang, first_line(b):sub(1, 40))
    local whole
    for _, m in ipairs(b.marks) do
      if m.verb == "skip" and not m.command then
        whole = m.reason
      elseif m.verb == "needs" and not m.command and not exists(ROOT .. "/" .. m.path) then
        whole = m.path .. " is not in this checkout: " .. m.reason
      end
    end
    if b.lang == "nginx" then
      local m = b.marks[1]
      run_nginx(string.format("%s:%d nginx: %s%s", readme_name, b.line, m.path,
        m.get and " + GET" or ""), m.path, m.get)
    elseif whole then
      skipped(label, whole)
    else
      local lines = {}
      if b.lang == "console" then
        for _, c in ipairs(b.cmds) do lines[c.first] = table.concat(c.parts, " ") end
      else
        for n, l in ipairs(b.lines) do lines[n] = l end
      end
      for _, c in ipairs(b.cmds) do
        local m = c.mark
        local off = m and (m.verb == "skip" or not exists(ROOT .. "/" .. m.path))
        if off then
          print(string.format("  skip %s (%s)", c.text, m.verb == "skip" and m.reason
            or m.path .. " is not in this checkout: " .. m.reason))
          for n = c.first, c.last do lines[n] = nil end
          lines[c.first] = ": skipped by readme-check"
        end
      end
      local script = {}
      for n = 1, #b.lines do script[#script + 1] = lines[n] or "" end
      local file = string.format("%s/block-%d.%s", tmp, b.line, b.lang == "lua" and "lua" or "sh")
      write(file, table.concat(script, "\n") .. "\n")
      if b.lang == "lua" then
        run(label, "lua5.4 " .. quote(file), true)
      else
        local shell = RUN[b.lang] == "bash" and "bash -e -o pipefail" or "sh -e"
        run(label, shell .. " " .. quote(file), false)
      end
    end
  end
end

---------------------------------------------------------------------------
-- Links

-- Unicode punctuation and symbols that GitHub drops from heading ids (it
-- keeps letters, marks, numbers, `_`, `-` and spaces, which become `-`).
local DROPPED = {}
for _, c in ipairs({ "—", "–", "…", "×", "’", "‘", "“", "”", "«", "»", "·", "→", "←",
                     "≥", "≤", "±", "°", "§", "€", "£" }) do
  DROPPED[c] = true
end

-- The id GitHub gives a heading.
local function heading_id(text)
  text = text:gsub("%[([^%]]*)%]%b()", "%1"):gsub("<[^>]*>", ""):lower()
  local out = {}
  for ch in text:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
    if ch:match("^[%w_%-]$") then
      out[#out + 1] = ch
    elseif ch == " " then
      out[#out + 1] = "-"
    elseif #ch > 1 and not DROPPED[ch] then
      out[#out + 1] = ch
    end
  end
  return table.concat(out)
end

-- A page's text outside fenced code, with each fence's lines blanked (so
-- line numbers stay), and its headings' ids (a set).
local function page_text(path)
  local lines, ids, seen = {}, {}, {}
  local fence
  for l in (read(path) .. "\n"):gmatch("(.-)\r?\n") do
    local open = l:match("^ ? ? ?(```+)") or l:match("^ ? ? ?(~~~+)")
    if fence then
      if open and open:sub(1, 1) == fence:sub(1, 1) and #open >= #fence
        and l:match("^%s*[`~]+%s*$") then
        fence = nil
      end
      lines[#lines + 1] = ""
    elseif open then
      fence = open
      lines[#lines + 1] = ""
    else
      lines[#lines + 1] = l
      local heading = l:match("^ ? ? ?#+%s+(.-)%s*#*%s*$")
      if heading then
        local id = heading_id(heading)
        local n = seen[id]
        seen[id] = (n or 0) + 1
        ids[n and (id .. "-" .. n) or id] = true
      end
    end
  end
  return table.concat(lines, "\n"), ids
end

local anchors_cache = {}

-- The anchors of a file: headings' ids for Markdown, ids and names for
-- HTML; nil for other files.
local function anchors(path)
  if anchors_cache[path] == nil then
    local set = false
    if path:match("%.md$") then
      local _, ids = page_text(path)
      set = ids
    elseif path:match("%.html?$") then
      set = {}
      local html = read(path)
      for attr, value in html:gmatch('(%a+)%s*=%s*"([^"]*)"') do
        if attr == "id" or attr == "name" then set[value] = true end
      end
    end
    anchors_cache[path] = set
  end
  return anchors_cache[path] or nil
end

local function is_dir(path)
  local ok = os.execute("test -d " .. quote(path))
  return ok == true or ok == 0
end

-- Every relative link of the page at `path` resolves: its file, and its
-- anchor.
local function check_links(path)
  readme_name = path:gsub("^%./", "")
  local dir = path:match("^(.*)/[^/]*$") or "."
  local text = page_text(path)
  -- comments and code spans hold no links; keep their newlines for line numbers
  local function blank(s) return (s:gsub("[^\n]", "")) end
  text = text:gsub("<!%-%-.-%-%->", blank):gsub("(`+)(.-)%1", function(_, body) return blank(body) end)
  local links = {}
  for pos, target in text:gmatch("()%]%(%s*<?([^%s%)>]*)") do links[#links + 1] = { pos, target } end
  for pos, target in text:gmatch("\n()%s*%[[^%]\n]+%]:%s*<?([^%s>]+)") do
    links[#links + 1] = { pos, target }
  end
  local count = 0
  for _, link in ipairs(links) do
    local pos, target = link[1], link[2]
    local line = select(2, text:sub(1, pos):gsub("\n", "")) + 1
    if target == "" then
      problem(line, "a link without a target")
    elseif not target:match("^%a[%w+.-]*:") then
      count = count + 1
      local file, anchor = target:match("^([^#]*)#?(.*)$")
      local full = file == "" and path or (dir .. "/" .. file)
      full = full:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      if file ~= "" and not exists(full) and not is_dir(full) then
        problem(line, "link to %s: no such file%s", target,
          full:find("docs/reference/", 1, true) and " (make docs generates the reference)" or "")
      elseif anchor ~= "" then
        local set = anchors(full)
        if not set then
          problem(line, "link to %s: no anchors in %s", target, full)
        elseif not set[anchor] then
          problem(line, "link to %s: no anchor #%s in %s", target, anchor, full)
        end
      end
    end
  end
  print(string.format("links  %-60s %d relative links checked", readme_name, count))
  return count
end

local function check_examples()
  local ci = read(ROOT .. "/.ci/run")
  local files = capture("cd " .. quote(ROOT) .. " && { git ls-files examples; "
    .. "git ls-files --others --exclude-standard examples; } | sort -u")
  local count = 0
  for file in files:gmatch("[^\n]+") do
    count = count + 1
    local covered = COVERED[file]
    if covered then
      -- a step of its own (`step make …`), or of a lane (`"make …"`)
      if not ci:find("\nstep " .. covered.ci:gsub("%p", "%%%0") .. "%f[%s]")
        and not ci:find('"' .. covered.ci .. '"', 1, true) then
        problems[#problems + 1] = string.format("%s: covered by '%s', which is not a step of .ci/run",
          file, covered.ci)
      else
        skipped(file, "run by " .. covered.ci .. ": " .. covered.why)
      end
    elseif file:match("^examples/[^/]+%.lua$") then
      local argv = { "lua5.4", file }
      for _, a in ipairs(ARGS[file] or {}) do argv[#argv + 1] = a end
      for n = 1, #argv do argv[n] = quote(argv[n]) end
      run(file, table.concat(argv, " "), true)
    else
      problems[#problems + 1] = file .. ": neither run by make examples-check nor listed in COVERED "
        .. "(test/readme_check.lua) with the CI step that runs it"
    end
  end
  for file in pairs(COVERED) do
    if not files:find(file, 1, true) then
      problems[#problems + 1] = file .. ": listed in COVERED but not in examples/"
    end
  end
  if count == 0 then problems[#problems + 1] = "no file under examples/" end
end

local mode = arg[1]
if mode == "readme" then
  local pages = {}
  for i = 2, math.max(#arg, 2) do pages[#pages + 1] = arg[i] or ROOT .. "/README.md" end
  for _, page in ipairs(pages) do check_links(page) end
  for _, page in ipairs(pages) do check_readme(page) end
elseif mode == "examples" then
  check_examples()
else
  io.stderr:write("usage: lua5.4 test/readme_check.lua readme [PAGE.md ...] | examples\n")
  cleanup()
  os.exit(2)
end
cleanup()
if #problems > 0 then
  io.stderr:write(table.concat(problems, "\n"), "\n")
  os.exit(1)
end
print(string.format("%s: %d ran, %d skipped, %d failed", mode, results.ran, results.skipped, results.failed))
os.exit(results.failed == 0 and 0 or 1)
