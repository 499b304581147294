-- busted output handler: the usual terminal output, then one plain line
-- "N passed, N failed" that CI reads (busted exits 0 on a file with no test).
-- A server of support.server that no spec stopped counts as a failure: it
-- is stopped here, named, and the run exits 1.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local subscribe = handler.subscribe

  local function stop_leftovers()
    local n = 0
    -- support.server's list (in the registry: see there)
    for pid, what in pairs(debug.getregistry()["kpayment.spec.servers"] or {}) do
      n = n + 1
      io.write(string.format("\nleft running: %s (pid %d), started by a spec that did not stop it\n",
        what, pid))
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
    return n
  end

  handler.subscribe = function(self, opts)
    subscribe(self, opts)
    busted.subscribe({ "suite", "end" }, function()
      local leftovers = stop_leftovers()
      io.write(string.format("\n%d passed, %d failed\n", handler.successesCount,
        handler.failuresCount + handler.errorsCount + leftovers))
      io.flush()
      if leftovers > 0 then os.exit(1) end
      return nil, true
    end)
  end
  return handler
end
