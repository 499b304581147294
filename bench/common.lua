--- Helpers the benchmark scripts share: shell quoting, reading a file, and
-- the facts about the machine that every report prints.
local M = {}

function M.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- A file's whole text, or nil.
function M.read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- The CPU model named by /proc/cpuinfo.
function M.cpu_model()
  return (M.read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "unknown CPU"
end

--- The 1, 5 and 15 minute load averages, as one string.
function M.load_average()
  return (M.read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
end

return M
