std = "lua54"
max_line_length = 110
files["spec/"] = { std = "+busted" }
files["bench/"] = { std = "lua54" }
exclude_files = { "build/", "luarocks-tree/" }
