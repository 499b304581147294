--- `kpayment completion bash`: a bash completion script, made from the
-- commands' own option tables, so it cannot fall behind them.
-- @module kpayment.cli.completion

local ipairs, pairs, type = ipairs, pairs, type
local table_concat, table_sort = table.concat, table.sort

local M = {}

local USAGE = [[
Usage: kpayment completion bash

Prints a bash completion script for kpayment: its commands, each command's
options, and the values of --format.  Load it in the running shell with

  source <(kpayment completion bash)

or save it where bash-completion finds it:

  kpayment completion bash > ~/.local/share/bash-completion/completions/kpayment
]]

M.SPEC = { help = "flag" }

local SHELLS = { "bash" }

-- The case arms of one command: values after an option, then its options.
local function arms(name, spec)
  local options, values, files, takes = {}, {}, {}, {}
  for option, kind in pairs(spec) do
    options[#options + 1] = "--" .. option
    if type(kind) == "table" then
      values[#values + 1] = "        --" .. option .. ") COMPREPLY=($(compgen -W '" .. table_concat(kind, " ")
        .. "' -- \"$cur\")); return ;;"
    elseif kind == "file" then
      files[#files + 1] = "--" .. option
    elseif kind ~= "flag" then
      takes[#takes + 1] = "--" .. option
    end
  end
  table_sort(options)
  table_sort(values)
  table_sort(files)
  table_sort(takes)
  local lines = { "    " .. name .. ")", "      case $prev in" }
  for _, v in ipairs(values) do lines[#lines + 1] = v end
  if #files > 0 then
    lines[#lines + 1] = "        " .. table_concat(files, "|") .. ")"
    lines[#lines + 1] = "          compopt -o filenames 2>/dev/null"
    lines[#lines + 1] = "          local IFS=$'\\n'"
    lines[#lines + 1] = "          COMPREPLY=($(compgen -f -- \"$cur\")); return ;;"
  end
  -- a value of the user's own: nothing to offer
  if #takes > 0 then lines[#lines + 1] = "        " .. table_concat(takes, "|") .. ") return ;;" end
  lines[#lines + 1] = "      esac"
  lines[#lines + 1] = "      COMPREPLY=($(compgen -W '" .. table_concat(options, " ") .. "' -- \"$cur\")) ;;"
  return table_concat(lines, "\n")
end

--- The bash script.
function M.bash(cli)
  local commands = {}
  for _, name in ipairs(cli.COMMANDS) do commands[#commands + 1] = name end
  commands[#commands + 1] = "help"
  table_sort(commands)
  local parts = {
    "# bash completion for kpayment (kpayment completion bash):",
    "#   source <(kpayment completion bash)",
    "_kpayment() {",
    "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
    "  local command= i",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    case ${COMP_WORDS[i]} in",
    "      -*) ;;",
    "      *) command=${COMP_WORDS[i]}; break ;;",
    "    esac",
    "  done",
    "  COMPREPLY=()",
    "  case $command in",
    "    '')",
    "      if [[ $cur == -* ]]; then",
    "        COMPREPLY=($(compgen -W '--help --version -h -V' -- \"$cur\"))",
    "      else",
    "        COMPREPLY=($(compgen -W '" .. table_concat(commands, " ") .. "' -- \"$cur\"))",
    "      fi ;;",
    "    help) COMPREPLY=($(compgen -W '" .. table_concat(cli.COMMANDS, " ") .. "' -- \"$cur\")) ;;",
  }
  for _, name in ipairs(cli.COMMANDS) do
    local spec = cli.command(name).SPEC
    if name == "completion" then
      parts[#parts + 1] = "    completion) COMPREPLY=($(compgen -W '" .. table_concat(SHELLS, " ")
        .. "' -- \"$cur\")) ;;"
    else
      parts[#parts + 1] = arms(name, spec)
    end
  end
  parts[#parts + 1] = "  esac"
  parts[#parts + 1] = "}"
  parts[#parts + 1] = "complete -F _kpayment kpayment"
  return table_concat(parts, "\n") .. "\n"
end

function M.run(args, cli)
  if args[1] == "--help" or args[1] == "-h" then
    cli.write(io.stdout, USAGE)
    return cli.EXIT.ok
  end
  if args[1] == nil then cli.usage("completion", "name a shell: bash") end
  if args[1] ~= "bash" then cli.usage("completion", "no completion for '" .. args[1] .. "': only bash") end
  if args[2] ~= nil then cli.usage("completion", "unexpected argument '" .. args[2] .. "'") end
  cli.write(io.stdout, M.bash(cli))
  return cli.EXIT.ok
end

return M
