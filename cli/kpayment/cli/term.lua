--- The terminal side of the `kpayment` command: whether a stream is a
-- terminal, its width, text widths of UTF-8, tables that fit, and the
-- progress line.
-- @module kpayment.cli.term

local json = require("kpayment.json")

local tonumber, type, tostring, ipairs = tonumber, type, tostring, ipairs
local string_byte, string_sub, string_rep, string_match, string_gsub =
  string.byte, string.sub, string.rep, string.match, string.gsub
local table_concat = table.concat
local math_floor, math_max, math_min = math.floor, math.max, math.min
local io_popen, os_getenv, os_execute = io.popen, os.getenv, os.execute

local M = {}

--- The environment variable `name`, nil when unset or empty.
function M.env(name)
  local v = os_getenv(name)
  if v == "" then return nil end
  return v
end

-- Control characters: C0, DEL, and C1 (U+0080 to U+009F, in UTF-8).
local CONTROL = "[%c\127]+"
local C1 = "\194[\128-\159]"

--- `s` made safe to show as one line of a terminal: each run of control
-- characters (newlines, CR, ESC, so no terminal escape takes effect, and
-- C1 controls) becomes a space, and each byte that is not part of valid UTF-8 becomes
-- U+FFFD ("\239\191\189").  Every text of the command that a server, a
-- file or the library may have put control characters in goes through
-- this one function before it reaches the terminal: `kpayment.cli.say`,
-- the doctor's rows, the table's footer, the --verbose log.
function M.clean(s)
  s = json.valid_utf8(tostring(s))
  return (string_gsub(string_gsub(s, C1, "\31"), CONTROL, " "))
end

--- `s` quoted for `sh`, whatever it holds.
function M.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- True when `os.execute` says the command exited 0 (5.1 and LuaJIT give
-- the status, later versions true or nil).
function M.succeeded(ok, _, code)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and (code == nil or code == 0)
end

--- True when file descriptor `fd` (1 stdout, 2 stderr) is a terminal.  The
-- shell that `os.execute` starts inherits our descriptors.
function M.isatty(fd)
  return M.succeeded(os_execute("test -t " .. tostring(fd)))
end

local function first_line(command)
  local p = io_popen(command)
  if not p then return nil end
  local line = p:read("*l")
  p:close()
  return line
end

--- Columns to fit output in, or nil: nothing written to a pipe or a file
-- is cut.  On a terminal: COLUMNS when set, else its size (`stty size`,
-- else `tput cols`), else 80.
-- @tparam number fd the descriptor written to (1 or 2)
function M.width(fd)
  if not M.isatty(fd) then return nil end
  local cols = tonumber(os_getenv("COLUMNS") or "")
  if cols and cols >= 1 then return math_floor(cols) end
  local size = first_line("stty size </dev/tty 2>/dev/null")
  cols = size and tonumber(string_match(size, "^%d+ (%d+)$"))
  if cols and cols > 0 then return cols end
  cols = tonumber(first_line("tput cols 2>/dev/null") or "")
  if cols and cols > 0 then return cols end
  return 80
end

-- Code point ranges shown two columns wide (East Asian wide and fullwidth
-- forms, emoji), and zero wide (combining marks).
local WIDE = {
  { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
  { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
  { 0x1F680, 0x1F6FF }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
}
local ZERO = { { 0x0300, 0x036F }, { 0x200B, 0x200F }, { 0xFE00, 0xFE0F } }

local function within(ranges, cp)
  for i = 1, #ranges do
    if cp >= ranges[i][1] and cp <= ranges[i][2] then return true end
  end
  return false
end

local function cp_width(cp)
  if cp < 0x20 or cp == 0x7F then return 0 end
  if within(ZERO, cp) then return 0 end
  if within(WIDE, cp) then return 2 end
  return 1
end

-- The code point at byte i of s and the byte after it; a byte that does
-- not start valid UTF-8 counts as one character of its own.
local function next_char(s, i)
  local c = string_byte(s, i)
  local n, cp = 0, c
  if c >= 0xF0 and c <= 0xF4 then n, cp = 3, c - 0xF0
  elseif c >= 0xE0 then n, cp = 2, c - 0xE0
  elseif c >= 0xC2 and c < 0xE0 then n, cp = 1, c - 0xC0
  end
  for k = 1, n do
    local b = string_byte(s, i + k)
    if not b or b < 0x80 or b > 0xBF then return 0xFFFD, i + 1 end
    cp = cp * 64 + (b - 0x80)
  end
  return cp, i + n + 1
end

--- Columns `s` takes on a terminal.
function M.text_width(s)
  local w, i = 0, 1
  while i <= #s do
    local cp, j = next_char(s, i)
    w, i = w + cp_width(cp), j
  end
  return w
end

--- `s` cut to at most `width` columns, never inside a character; a cut
-- text ends with "…".
function M.fit(s, width)
  if M.text_width(s) <= width then return s end
  if width < 1 then return "" end
  local w, i = 0, 1
  while i <= #s do
    local cp, j = next_char(s, i)
    local cw = cp_width(cp)
    if w + cw > width - 1 then break end
    w, i = w + cw, j
  end
  return string_sub(s, 1, i - 1) .. "…"
end

local function pad(s, width, right)
  local gap = string_rep(" ", math_max(width - M.text_width(s), 0))
  return right and gap .. s or s .. gap
end

--- Lines of a table whose lines fit in `width` columns where possible
-- (nil: no limit, nothing is cut).  `columns` is a list of `{ title =,
-- right = bool, flex = bool, min = n }`; rows are lists of strings,
-- cleaned as every text the command shows (`clean`: control characters,
-- C1 ones too, as spaces).  Flexible columns give up room first, down to
-- their `min`; their cells are then cut with "…".
function M.table(columns, rows, width)
  local widths = {}
  for _, row in ipairs(rows) do
    for c = 1, #columns do row[c] = M.clean(row[c] or "") end
  end
  for c, col in ipairs(columns) do
    local w = M.text_width(col.title)
    for _, row in ipairs(rows) do w = math_max(w, M.text_width(row[c])) end
    widths[c] = w
  end
  local function total()
    local t = 2 * (#columns - 1)
    for c = 1, #columns do t = t + widths[c] end
    return t
  end
  -- take one column at a time from the widest flexible column
  local over = width and total() - width or 0
  while over > 0 do
    local widest
    for c, col in ipairs(columns) do
      if col.flex and widths[c] > (col.min or 8) and (not widest or widths[c] > widths[widest]) then
        widest = c
      end
    end
    if not widest then break end
    local second = 0
    for c, col in ipairs(columns) do
      if col.flex and c ~= widest then second = math_max(second, widths[c]) end
    end
    local take = math_min(over, widths[widest] - (columns[widest].min or 8),
                          math_max(widths[widest] - second, 1))
    widths[widest] = widths[widest] - take
    over = over - take
  end
  local lines = {}
  local function line(cells)
    local parts = {}
    for c, col in ipairs(columns) do
      local cell = M.fit(cells[c] or "", widths[c])
      parts[c] = c == #columns and not col.right and cell or pad(cell, widths[c], col.right)
    end
    lines[#lines + 1] = (string_gsub(table_concat(parts, "  "), " +$", ""))
  end
  local titles = {}
  for c, col in ipairs(columns) do titles[c] = col.title end
  line(titles)
  for _, row in ipairs(rows) do line(row) end
  return lines
end

--- A progress line for `total` items on stream `out` (io.stderr) that
-- redraws itself in place with "\r"; `update(done)` draws it (at most every
-- `interval` seconds, and always for the last item: a count held back is
-- drawn by the next call, so call it while waiting too), `clear()` erases
-- it until the next `update`, as `finish()` does for good.
function M.progress(out, total, clock, width)
  width = width or 80
  local last_at, shown = nil, nil
  local interval = 0.05
  local self = {}
  function self.update(done)
    local now = clock()
    if done < total and last_at and now - last_at < interval then return end
    if done == shown then return end
    last_at, shown = now, done
    local count = " " .. done .. "/" .. total
    local bar = math_max(math_min(40, width - #count - 3), 10)
    local full = total > 0 and math_floor(bar * done / total) or bar
    out:write("\r[", string_rep("#", full), string_rep("-", bar - full), "]", count)
    out:flush()
  end
  function self.clear()
    if shown ~= nil then
      out:write("\r\27[K")
      out:flush()
    end
    last_at, shown = nil, nil
  end
  self.finish = self.clear
  return self
end

return M
