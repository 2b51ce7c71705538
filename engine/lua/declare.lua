-- Experiment declarations: the settings an experiment file declares in one table, the defaults
-- they get, the overrides given on the command line (`boengine FILE.lua budget=0.3 seed=2`), and
-- the checks that reject an unknown key or a value of the wrong kind by name. Running a declaration
-- is experiment.lua's part; this file only turns text and tables into checked settings.

local declare = {}

-- ---- override values: a small literal syntax, never executed -----------------------------------
-- value    := number | true | false | string | word | table
-- table    := "{" [field {("," | ";") field} [","|";"]] "}"
-- field    := value | word "=" value
-- A word is any run of characters up to a delimiter ({}=,; and spaces), read as a string: model=vgg16
-- and data=/srv/imgs need no quotes.

local function literal_error(text, pos, what)
  error({override = true, message = string.format("cannot read %q: %s at character %d", text, what, pos)}, 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local parse_value

local function parse_string(text, pos)
  local quote, out, i = text:sub(pos, pos), {}, pos + 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == quote then return table.concat(out), i + 1 end
    if c == "\\" then
      local n = text:sub(i + 1, i + 1)
      local map = {n = "\n", t = "\t", ["\\"] = "\\", ['"'] = '"', ["'"] = "'"}
      if not map[n] then literal_error(text, i, "unknown escape \\" .. n) end
      out[#out + 1] = map[n]
      i = i + 2
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  literal_error(text, pos, "unfinished string")
end

local function parse_word(text, pos)
  local word = text:match("^[^{}=,; \t\r\n\"']+", pos)
  if not word then literal_error(text, pos, "expected a value") end
  return word, pos + #word
end

local function word_value(word)
  if word == "true" then return true end
  if word == "false" then return false end
  local n = tonumber(word)
  if n and word:match("^[-+]?[%d.]") and not word:match("^[-+]?0[xX]") and n == n and n ~= math.huge and n ~= -math.huge then
    return n
  end
  return word
end

local function parse_table(text, pos, depth)
  if depth > 16 then literal_error(text, pos, "tables nested too deep") end
  local t, n = {}, 0
  pos = skip_space(text, pos + 1)
  while text:sub(pos, pos) ~= "}" do
    if pos > #text then literal_error(text, pos, "unfinished table") end
    local key
    local word = text:match("^[%a_][%w_]*", pos)
    if word then
      local after = skip_space(text, pos + #word)
      if text:sub(after, after) == "=" then key, pos = word, skip_space(text, after + 1) end
    end
    local v
    v, pos = parse_value(text, pos, depth + 1)
    if key then
      if t[key] ~= nil then literal_error(text, pos, "key '" .. key .. "' given twice") end
      t[key] = v
    else
      n = n + 1
      t[n] = v
    end
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "" then literal_error(text, pos, "unfinished table") end
    if c == "," or c == ";" then
      pos = skip_space(text, pos + 1)
    elseif c ~= "}" then
      literal_error(text, pos, "expected ',' or '}'")
    end
  end
  return t, pos + 1
end

function parse_value(text, pos, depth)
  pos = skip_space(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then return parse_table(text, pos, depth) end
  if c == '"' or c == "'" then return parse_string(text, pos) end
  local word
  word, pos = parse_word(text, pos)
  return word_value(word), pos
end

-- The value of an override's text; raises {override = true, message = ...} when it cannot be read.
function declare.parse_literal(text)
  local v, pos = parse_value(text, 1, 0)
  pos = skip_space(text, pos)
  if pos <= #text then literal_error(text, pos, "unexpected text after the value") end
  return v
end

-- Splits command-line arguments into overrides ({path = {"budget"}, text = "0.3", value = 0.3} in
-- order) and flags (--fresh, --force); raises {override = true, message = ...} on anything else.
function declare.parse_args(args)
  local overrides, flags = {}, {}
  for _, a in ipairs(args) do
    if a == "--fresh" or a == "--force" then
      flags[a:sub(3)] = true
    else
      local key, text = a:match("^([%a_][%w_.]*)=(.*)$")
      if not key then
        error({override = true, message = string.format("argument %q is not KEY=VALUE (nor --fresh, --force)", a)}, 0)
      end
      local path = {}
      for part in key:gmatch("[^.]+") do path[#path + 1] = tonumber(part) or part end
      if #path == 0 or key:find("%.%.") or key:sub(-1) == "." then
        error({override = true, message = string.format("argument %q: the key %q is not a.b.c", a, key)}, 0)
      end
      local ok, v = pcall(declare.parse_literal, text)
      if not ok then
        error({override = true, message = key .. ": " .. (type(v) == "table" and v.message or tostring(v))}, 0)
      end
      overrides[#overrides + 1] = {key = key, path = path, text = text, value = v}
    end
  end
  return overrides, flags
end

-- ---- the schema ---------------------------------------------------------------------------------
-- Each top-level key: its kind, default (a value, or a function of the settings resolved so far),
-- and what it means (printed with the resolved settings).

local KINDS = {
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end,
  integer = function(v) return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v) and v == v and math.abs(v) < 2^53) end,
  boolean = function(v) return type(v) == "boolean" end,
  table = function(v) return type(v) == "table" end,
}

local function is_kind(kinds, v)
  for kind in kinds:gmatch("[^|]+") do
    if KINDS[kind](v) then return true end
  end
  return false
end

local function describe(kinds)
  return (kinds:gsub("|", " or "))
end

declare.schema = {
  {key = "name", kind = "string", doc = "outputs: RESULTS/NAME/ and FIGURES/NAME_*.png (default: the file's name with its overrides)"},
  {key = "model", kind = "string|table", default = "fmnist_vgg11_bn",
   doc = "a shipped reference model (results/models/NAME), a .safetensors saved by boengine, a torchvision builder name (vgg16, resnet50...) or a builder table {arch = \"vgg\", depth = 16, ...}"},
  {key = "weights", kind = "string", doc = "weights loaded into a builder model (a torchvision checkpoint converted to safetensors)"},
  {key = "data", kind = "string|table", default = "fashion_mnist",
   doc = "where the objective's inputs come from: fashion_mnist (its training split), an image folder, or a table of data.folder/data.fashion_mnist options"},
  {key = "test", kind = "string|table|boolean",
   doc = "the split whose top-1 accuracy is reported (default: fashion_mnist's test split, or the data folder itself); false: none"},
  {key = "test_count", kind = "integer", doc = "accuracy over the test split's first N examples only (default: all of them)"},
  {key = "compress", kind = "table", doc = "the compression families: a list of {family = \"vh\", layers = ..., bounds = ..., ...}"},
  {key = "objective", kind = "string", default = "fnorm", doc = "fnorm (function distance to the reference) or risk (top-1 error)"},
  {key = "samples", kind = "integer", default = 50, doc = "inputs per evaluation: the sampling size n of the U-statistic"},
  {key = "fixed", kind = "boolean", default = false, doc = "every evaluation uses the same sample (default: a fresh one each)"},
  {key = "ratio", kind = "string", default = "params",
   doc = "the size R that is traded: params (compressed layers' weights), params_net (whole network) or flops"},
  {key = "gamma", kind = "number|table", doc = "the weight of y = R + gamma*L: one number, or a list (a front of networks)"},
  {key = "budget", kind = "number", doc = "a size budget B: minimize L subject to R <= B, choosing gamma by the Lagrangian minimax"},
  {key = "rounds", kind = "integer", default = 6, doc = "budget: rounds of the minimax (updates of the multiplier)"},
  {key = "strategy", kind = "string", default = "bo",
   doc = "how points are proposed: bo (Bayesian optimization), or the baselines random, sobol, uniform, greedy (docs/baselines.md), or external (a driver such as scripts/tpe)"},
  {key = "acquisition", kind = "string", default = "nei", doc = "BO's acquisition: nei, ei_c (the paper's), ei, pi, pi_c, lcb"},
  {key = "init", kind = "integer", default = function(s) return s.dim and math.min(3 * s.dim, 30) end,
   doc = "initial design points (default: 3 per searched parameter, at most 30)"},
  {key = "evaluations", kind = "integer", default = 60, doc = "evaluations in all (design points included)"},
  {key = "mode", kind = "string", default = "sync",
   doc = "evaluations over the ranks of an MPI run: sync (batches of q) or async (a free rank gets the next point)"},
  {key = "batch", kind = "integer", doc = "q, the points proposed while others are pending (default: the ranks that evaluate; 1: sequential)",
   default = function(s)
     local ranks = boengine.ranks or 1
     return s.mode == "async" and math.max(ranks - 1, 1) or ranks
   end},
  {key = "seed", kind = "integer", default = function() return boengine.seed end, doc = "seed of the design, the samples and the GP"},
  {key = "rescore", kind = "integer", default = 2000, doc = "chosen networks are scored again on this many fixed inputs (0: not)"},
  {key = "score_rounds", kind = "boolean", default = true,
   doc = "each round of a budget's minimax has its choice scored like the chosen network (false: its R and settings only)"},
  {key = "original", kind = "boolean", default = true,
   doc = "measure the original network's top-1 for the summary (false: its row has none)"},
  {key = "uniform", kind = "boolean", default = true, doc = "compare with the uniform baseline: one shared fraction in every layer, at the same R"},
  {key = "save", kind = "boolean", default = true, doc = "save the chosen network as RESULTS/NAME/model.safetensors"},
  {key = "results", kind = "string", doc = "folder of the tables (default: results/ beside experiments/)"},
  {key = "figures", kind = "string", doc = "folder of the figures (default: figures/ beside experiments/)"},
}

local SCHEMA = {}
for _, s in ipairs(declare.schema) do SCHEMA[s.key] = s end

local function known_keys()
  local k = {}
  for _, s in ipairs(declare.schema) do k[#k + 1] = s.key end
  return table.concat(k, ", ")
end

-- Where an override goes: a copy of t with value set at path (tables on the way are copied too,
-- so that the declaration the file wrote stays as written).
local function set_path(t, path, value, key)
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  local head = path[1]
  if #path == 1 then
    copy[head] = value
  else
    local inner = copy[head]
    if inner == nil then inner = {} end
    if type(inner) ~= "table" then
      error({override = true, message = string.format("%s: %s is a %s, not a table", key, tostring(head), type(inner))}, 0)
    end
    copy[head] = set_path(inner, table.move(path, 2, #path, 1, {}), value, key)
  end
  return copy
end

-- FNV-1a of a text, as 8 hexadecimal digits: names for values too long to spell out.
local function short_hash(text)
  local h = 2166136261
  for i = 1, #text do h = ((h ~ text:byte(i)) * 16777619) & 0xffffffff end
  return string.format("%08x", h)
end

-- How an override names the run: key and value ("budget0.3"); a path by its last part, a table or
-- a long value by a hash of its text, so that names stay short and distinct.
local function name_part(o)
  local value = type(o.value) == "string" and o.value:match("([^/]+)/*$") or o.text
  value = value:gsub("[^%w%._-]+", "")
  if type(o.value) == "table" or #value > 16 then value = short_hash(o.text) end
  return o.key .. value
end

-- The declaration with the overrides applied, and the name suffix they make ("-budget0.3-seed2").
function declare.apply_overrides(decl, overrides)
  local out, parts = decl, {}
  for _, o in ipairs(overrides) do
    if not SCHEMA[o.path[1]] then
      error({override = true, message = string.format("unknown key '%s' (known: %s)", o.path[1], known_keys())}, 0)
    end
    out = set_path(out, o.path, o.value, o.key)
    if o.key ~= "name" and o.key ~= "results" and o.key ~= "figures" then parts[#parts + 1] = name_part(o) end
  end
  return out, #parts > 0 and "-" .. table.concat(parts, "-") or ""
end

-- Checks the top-level keys and kinds; raises {declaration = true, message = ...} naming the key.
function declare.check(decl)
  local function fail(fmt, ...) error({declaration = true, message = string.format(fmt, ...)}, 0) end
  if type(decl) ~= "table" then fail("an experiment is declared by a table, got %s", type(decl)) end
  for k, v in pairs(decl) do
    local s = SCHEMA[k]
    if not s then fail("unknown key '%s' (known: %s)", tostring(k), known_keys()) end
    if not is_kind(s.kind, v) then
      fail("'%s' must be %s, got %s", k, describe(s.kind), type(v) == "string" and string.format("%q", v) or tostring(v))
    end
  end
  if decl.gamma ~= nil and decl.budget ~= nil then fail("give either 'gamma' or 'budget', not both") end
  if decl.gamma == nil and decl.budget == nil then fail("give 'gamma' (a number or a list) or 'budget'") end
  if type(decl.gamma) == "table" then
    if #decl.gamma == 0 then fail("'gamma' is an empty list") end
    for i, g in pairs(decl.gamma) do
      if math.type(i) ~= "integer" or i < 1 or i > #decl.gamma or not KINDS.number(g) or g <= 0 then
        fail("'gamma' must be a positive number or a list of them (entry %s is %s)", tostring(i), tostring(g))
      end
    end
  elseif decl.gamma ~= nil and decl.gamma <= 0 then
    fail("'gamma' must be positive, got %s", tostring(decl.gamma))
  end
  if decl.budget ~= nil and not (decl.budget > 0 and decl.budget < 1) then
    fail("'budget' must be in (0, 1), got %s", tostring(decl.budget))
  end
  if decl.strategy == "greedy" and decl.budget == nil then
    fail("strategy 'greedy' needs a 'budget' (its target ratio)")
  end
  if decl.compress == nil then fail("'compress' is required: a list of {family = ..., layers = ...}") end
  for i, f in pairs(decl.compress) do
    if math.type(i) ~= "integer" or type(f) ~= "table" then
      fail("'compress' must be a list of tables ({family = \"vh\", layers = ...}); entry %s is a %s", tostring(i), type(f))
    end
    if type(f.family) ~= "string" then fail("compress[%d]: 'family' (vh, svd, tucker2, ...) is required", i) end
  end
  for _, k in ipairs({"samples", "evaluations", "rounds", "test_count", "batch"}) do
    if decl[k] ~= nil and decl[k] < 1 then fail("'%s' must be at least 1, got %s", k, tostring(decl[k])) end
  end
  for _, k in ipairs({"init", "rescore"}) do
    if decl[k] ~= nil and decl[k] < 0 then fail("'%s' must not be negative, got %s", k, tostring(decl[k])) end
  end
  local one_of = {objective = {fnorm = true, risk = true}, ratio = {params = true, params_net = true, flops = true},
                  strategy = {bo = true, random = true, sobol = true, uniform = true, greedy = true, external = true},
                  mode = {sync = true, async = true}}
  for k, allowed in pairs(one_of) do
    if decl[k] ~= nil and not allowed[decl[k]] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      fail("'%s' must be one of %s, got %q", k, table.concat(names, ", "), decl[k])
    end
  end
  return decl
end

-- Fills the defaults in schema order (a default may be a function of the settings known so far
-- and of context, e.g. the number of searched parameters; one that returns nil waits for a later
-- call) and returns the settings with the set of keys that took their default.
function declare.resolve(decl, context, defaulted)
  local s, known = {}, {}
  defaulted = defaulted or {}
  for k, v in pairs(decl) do s[k] = v end
  for k, v in pairs(context or {}) do known[k] = v end
  for _, spec in ipairs(declare.schema) do
    if s[spec.key] == nil and spec.default ~= nil then
      local d = spec.default
      if type(d) == "function" then
        setmetatable(known, {__index = s})
        d = d(known)
      end
      if d ~= nil then
        s[spec.key] = d
        defaulted[spec.key] = true
      end
    end
  end
  return s, defaulted
end

-- A value as one line of Lua-like text.
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end
  local keys = {}
  for k in pairs(v) do if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. show(v[k], depth + 1) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
declare.show = show
declare.short_hash = short_hash

-- The resolved settings as lines "  key = value   (default)", in schema order.
function declare.format(settings, defaulted)
  local lines = {}
  for _, spec in ipairs(declare.schema) do
    local v = settings[spec.key]
    if v ~= nil then
      lines[#lines + 1] = string.format("  %-12s = %s%s", spec.key, show(v), defaulted[spec.key] and "   (default)" or "")
    end
  end
  return lines
end

-- ---- plain-Lua experiments ----------------------------------------------------------------------

-- A shipped reference model: results/models/NAME.safetensors of the project ROOT, else of the
-- engine's own repository; nil when neither has it.
function declare.shipped_model(root, name)
  for _, base in ipairs({root, boengine.root}) do
    local path = base .. "/results/models/" .. name .. ".safetensors"
    local f = io.open(path, "r")
    if f then f:close() return path end
  end
end

-- The settings of an imperative experiment file (figures' scripts): a copy of DEFAULTS with the
-- command line's KEY=VALUE overrides, each key known and of its default's type (a false default
-- takes a string). results and figures default to the project's folders, and model_path is the
-- shipped model named by `model`, when DEFAULTS has one.
function declare.settings(defaults)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  local ok, overrides = pcall(declare.parse_args, arg or {})
  if not ok then boengine.fail(type(overrides) == "table" and overrides.message or tostring(overrides)) end
  for _, ov in ipairs(overrides) do
    local key = ov.path[1]
    if defaults[key] == nil or #ov.path ~= 1 then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = k end
      table.sort(known)
      boengine.fail(string.format("unknown key '%s' (known: %s)", ov.key, table.concat(known, ", ")))
    end
    local want = type(defaults[key]) == "boolean" and "string" or type(defaults[key])
    if type(ov.value) ~= want then boengine.fail(string.format("'%s' must be a %s, got %s", key, want, ov.text)) end
    o[key] = ov.value
  end
  local root = boengine.project
  local prefix = root == "." and "" or root .. "/"
  if defaults.results ~= nil then o.results = o.results or prefix .. "results" end
  if defaults.figures ~= nil then o.figures = o.figures or prefix .. "figures" end
  if defaults.model ~= nil then
    o.model_path = declare.shipped_model(root, o.model)
    if not o.model_path then boengine.fail("no shipped model " .. o.model) end
  end
  return o
end

return declare
