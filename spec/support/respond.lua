--- One HTTP/1.1 response on a connection of the specs' standalone servers
-- (echo_server.lua, hostile_server.lua, cli_server.lua): the status line, Content-Type,
-- Content-Length, Connection: close, the `extra` header lines, the body.
--
--   require("support.respond")(conn, 200, "OK", "application/json", body, { "X-A: b" })

return function(conn, status, reason, ctype, body, extra)
  local head = {
    string.format("HTTP/1.1 %d %s", status, reason),
    "Content-Type: " .. ctype,
    "Content-Length: " .. #body,
    "Connection: close",
  }
  for _, line in ipairs(extra or {}) do head[#head + 1] = line end
  conn:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. body)
end
