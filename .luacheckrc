std = "max"   -- lua/ and spec/ run on 5.1 to 5.4 and LuaJIT
max_line_length = 110
files["spec/"] = { std = "+busted" }
files["bench/"] = { std = "lua54" }
exclude_files = { "build/", "luarocks-tree/" }
