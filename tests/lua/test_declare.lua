-- Experiment declarations: the override literal syntax, command-line arguments, the schema's
-- checks and defaults, and the one-line errors a user sees for each kind of bad input.
local tap = require "tap"
local declare = require "boengine.declare"
local bin = tap.boengine()

-- 1. Override values: a literal syntax that is read, never executed.
local function lit(text) return declare.parse_literal(text) end
tap.is(lit("0.3"), 0.3, "a number")
tap.is(math.type(lit("40")), "integer", "an integer stays an integer")
tap.is(lit("-1e-3"), -1e-3, "a signed exponent")
tap.is(lit("true"), true, "true")
tap.is(lit("false"), false, "false")
tap.is(lit("vgg16"), "vgg16", "a bare word is a string")
tap.is(lit("/srv/images/val"), "/srv/images/val", "a path is a string")
tap.is(lit("0x10"), "0x10", "hexadecimal is not a number here (a word)")
tap.is(lit("nan"), "nan", "nan is not a number here (a word)")
tap.is(lit("'a b'"), "a b", "a quoted string keeps its spaces")
tap.is(lit('"x\\"y"'), 'x"y', "escapes in strings")
local t = lit("{0.2, 0.7}")
tap.ok(type(t) == "table" and t[1] == 0.2 and t[2] == 0.7 and #t == 2, "a list")
t = lit("{ {family = vh, layers = 'features.*', bounds = {0.1, 0.9}} }")
tap.ok(t[1].family == "vh" and t[1].layers == "features.*" and t[1].bounds[2] == 0.9, "nested tables with keys")
t = lit("{}")
tap.ok(type(t) == "table" and next(t) == nil, "an empty table")
local function bad_literal(text, part, what)
  local ok, e = pcall(declare.parse_literal, text)
  local good = not ok and type(e) == "table" and e.override and e.message:find(part, 1, true) ~= nil
  tap.ok(good, what)
  if not good then tap.diag(ok and "accepted" or tostring(type(e) == "table" and e.message or e)) end
end
bad_literal("{1, 2", "unfinished table", "an unfinished table")
bad_literal("'abc", "unfinished string", "an unfinished string")
bad_literal("{1 2}", "expected ',' or '}'", "a missing separator")
bad_literal("{a = 1, a = 2}", "key 'a' given twice", "a key given twice")
bad_literal("1 2", "unexpected text after the value", "trailing text")
bad_literal(string.rep("{", 40) .. string.rep("}", 40), "nested too deep", "tables nested too deep")
bad_literal("'\\q'", "unknown escape", "an unknown escape")
bad_literal("", "expected a value", "nothing at all")

-- 2. Arguments: KEY=VALUE overrides (dotted paths into tables) and the flags.
local overrides, flags = declare.parse_args({"budget=0.3", "seed=2", "--fresh", "compress.1.bounds={0.2,0.7}"})
tap.ok(#overrides == 3 and overrides[1].key == "budget" and overrides[1].value == 0.3 and overrides[2].value == 2,
       "overrides in order, with their values")
tap.ok(overrides[3].path[1] == "compress" and overrides[3].path[2] == 1 and overrides[3].path[3] == "bounds",
       "a dotted key is a path (numbers index lists)")
tap.ok(flags.fresh and not flags.force, "--fresh is a flag")
local ok, e = pcall(declare.parse_args, {"budget"})
tap.ok(not ok and e.message:find("is not KEY=VALUE", 1, true), "an argument without '=' is refused")
ok, e = pcall(declare.parse_args, {"--frsh"})
tap.ok(not ok and e.message:find("--frsh", 1, true), "an unknown flag is named")
ok, e = pcall(declare.parse_args, {"seed={1,"})
tap.ok(not ok and e.message:find("seed: cannot read", 1, true), "a bad value names its key")

-- 3. Overrides apply to a copy, and name the run.
local decl = {compress = {{family = "vh", layers = "features.*", bounds = {0.1, 0.9}}}, budget = 0.25}
local applied, suffix = declare.apply_overrides(decl, overrides)
tap.ok(applied.budget == 0.3 and applied.seed == 2 and applied.compress[1].bounds[1] == 0.2 and
       applied.compress[1].layers == "features.*", "overrides reach top-level keys and nested tables")
tap.ok(decl.budget == 0.25 and decl.compress[1].bounds[1] == 0.1, "the declaration itself is left as written")
tap.is(suffix, "-budget0.3-seed2-compress.1.bounds" .. suffix:match("bounds(%x+)$"), "the overrides name the run")
tap.ok(#suffix:match("bounds(%x+)$") == 8, "a table value is named by a hash of its text")
local _, s2 = declare.apply_overrides(decl, declare.parse_args({"data=/srv/imagenet/val/", "model=vgg16"}))
tap.is(s2, "-dataval-modelvgg16", "a path names the run by its last part")
ok, e = pcall(declare.apply_overrides, decl, declare.parse_args({"buget=0.3"}))
tap.ok(not ok and e.message:find("unknown key 'buget'", 1, true), "an override of an unknown key is refused by name")
ok, e = pcall(declare.apply_overrides, decl, declare.parse_args({"budget.x=1"}))
tap.ok(not ok and e.message:find("not a table", 1, true), "a path through a number is refused")

-- 4. Checks name the key at fault.
local function bad(d, part, what)
  local ok2, err = pcall(declare.check, d)
  local good = not ok2 and type(err) == "table" and err.message:find(part, 1, true) ~= nil
  tap.ok(good, what)
  if not good then tap.diag(ok2 and "accepted" or tostring(type(err) == "table" and err.message or err)) end
end
local vh = {{family = "vh", layers = "features.*"}}
bad({compress = vh, budget = 0.25, evaluatoins = 3}, "unknown key 'evaluatoins'", "an unknown key")
bad({compress = vh, budget = "a lot"}, "'budget' must be number", "a string where a number belongs")
bad({compress = vh, budget = 0.25, samples = 2.5}, "'samples' must be integer", "a fraction where an integer belongs")
bad({compress = vh, budget = 0.25, samples = 0}, "'samples' must be at least 1", "a zero sampling size")
bad({compress = vh, budget = 1.5}, "'budget' must be in (0, 1)", "a budget beyond 1")
bad({compress = vh, budget = 0/0}, "'budget' must be number", "a NaN budget")
bad({compress = vh, gamma = 0.1, budget = 0.2}, "either 'gamma' or 'budget'", "gamma and budget together")
bad({compress = vh}, "give 'gamma'", "neither gamma nor budget")
bad({compress = vh, gamma = {}}, "'gamma' is an empty list", "an empty list of gamma")
bad({compress = vh, gamma = {0.1, -1}}, "entry 2 is -1", "a negative gamma in a list")
bad({budget = 0.2}, "'compress' is required", "no compression")
bad({compress = {"vh"}, budget = 0.2}, "entry 1 is a string", "a family that is not a table")
bad({compress = {{layers = "x"}}, budget = 0.2}, "compress[1]: 'family'", "a family without its kind")
bad({compress = vh, budget = 0.2, objective = "kl"}, "'objective' must be one of fnorm, risk", "an unknown objective")
bad({compress = vh, budget = 0.2, ratio = "bits"}, "'ratio' must be one of", "an unknown ratio")
tap.ok(pcall(declare.check, {compress = vh, gamma = {0.1, 1}}), "a list of gamma is accepted")

-- 5. Defaults: filled in schema order, marked, and computed from what is known.
local s, defaulted = declare.resolve({compress = vh, budget = 0.25, seed = 7}, {dim = 8})
tap.ok(s.init == 24 and s.samples == 50 and s.acquisition == "nei" and s.seed == 7, "defaults filled, given keys kept")
tap.ok(defaulted.init and defaulted.samples and not defaulted.seed, "defaults are marked as such")
local lines = table.concat(declare.format(s, defaulted), "\n")
tap.ok(lines:find("samples      = 50   (default)", 1, true) and lines:find("seed         = 7\n", 1, true),
       "the resolved settings print one per line, defaults marked")

-- 6. From the command line: one line naming the key, a non-zero exit, nothing written.
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir .. "/experiments")
local function run_file(text, args)
  local path = dir .. "/experiments/exp.lua"
  local f = assert(io.open(path, "w")); f:write(text); f:close()
  return tap.run(bin .. " --quiet " .. path .. " " .. (args or ""))
end
local good_decl = 'experiment{compress = {{family = "vh", layers = "features.*"}}, budget = 0.25, evaluations = 2}\n'
local function one_line_error(text, args, part, what)
  local ok2, out, err = run_file(text, args)
  local _, lines2 = err:gsub("\n", "")
  local good = not ok2 and lines2 == 1 and err:find(part, 1, true) ~= nil and err:find("exp.lua:1:", 1, true) ~= nil
  tap.ok(good, what)
  if not good then tap.diag("exit ok " .. tostring(ok2) .. "; stdout: " .. out .. "; stderr: " .. err) end
end
one_line_error('experiment{compress = {{family = "vh"}}, budget = 0.25, sample = 5}\n', "",
               "unknown key 'sample'", "an unknown key in the file")
one_line_error(good_decl, "evaluations=abc", "'evaluations' must be integer", "an override of the wrong kind")
one_line_error(good_decl, "evaluations=3 budgte=0.3", "unknown key 'budgte'", "an override of an unknown key")
one_line_error(good_decl, "budget={0.3", "budget: cannot read", "an override that cannot be read")
one_line_error(good_decl, "0.3", "is not KEY=VALUE", "an argument that is not an override")
one_line_error(good_decl, "compress.1.family=vhh", "unknown family \"vhh\"", "an unknown family")
one_line_error(good_decl, "model=nosuchmodel", "model: \"nosuchmodel\" is neither", "an unknown model")

-- 7. Plain-Lua experiment files read their overrides through declare.settings.
local plain = 'local o = require("boengine.declare").settings{n = 3, name = "a", model = "fmnist_mlp", results = false}\n' ..
              'print(o.n, o.name, o.model_path:match("fmnist_mlp.safetensors$") ~= nil, o.results:match("results$") ~= nil)\n'
local ok7, out7 = run_file(plain, "n=5 name=b")
tap.is(ok7 and out7, "5\tb\ttrue\ttrue\n", "declare.settings: overrides applied, the shipped model and the results folder found")
local function plain_error(args, part, what)
  local ok2, _, err = run_file(plain, args)
  local good = not ok2 and select(2, err:gsub("\n", "")) == 1 and err:find(part, 1, true) ~= nil
  tap.ok(good, what)
  if not good then tap.diag(err) end
end
plain_error("m=5", "unknown key 'm' (known: model, n, name, results)", "declare.settings: an unknown key, the known ones listed")
plain_error("n=x", "'n' must be a number, got x", "declare.settings: a value of the wrong type")
plain_error("model=nosuch", "no shipped model nosuch", "declare.settings: a model that is not shipped")
os.remove(dir .. "/experiments/exp.lua")
local _, listing = tap.run("ls -A " .. dir)
tap.is(listing, "experiments\n", "no results or figures folder is left behind by refused runs")
os.execute("rm -rf " .. dir)

tap.done()
