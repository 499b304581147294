-- busted output handler: the usual terminal output, then one plain line
-- "N passed, N failed" that CI reads (busted exits 0 on a file with no test).
-- A server of support.server that no spec stopped counts as a failure: it
-- is stopped here, named, and the run exits 1.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local subscribe = handler.subscribe

  handler.subscribe = function(self, opts)
    subscribe(self, opts)
    busted.subscribe({ "suite", "end" }, function()
      -- required again here: busted's insulation dropped the specs' copy,
      -- and the list itself lives in the registry (see support.server)
      local lines = require("support.server").stop_leftovers()
      local leftovers = #lines
      for _, l in ipairs(lines) do io.write("\n", l, "\n") end
      io.write(string.format("\n%d passed, %d failed\n", handler.successesCount,
        handler.failuresCount + handler.errorsCount + leftovers))
      io.flush()
      if leftovers > 0 then os.exit(1) end
      return nil, true
    end)
  end
  return handler
end
