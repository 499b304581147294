--- Fixture files for specs, resolved relative to spec/ (not to the
-- current directory).
--
--   local fixture = require("support.fixtures")
--   local text = fixture("example-200.json")      -- spec/fixtures/example-200.json

local DIR = (debug.getinfo(1, "S").source:match("^@(.*[/\\])support[/\\]") or "spec/") .. "fixtures/"

return function(name)
  local f = assert(io.open(DIR .. name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end
