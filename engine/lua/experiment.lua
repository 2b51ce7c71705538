-- experiment{...}: runs a declared compression search (declare.lua checks the declaration): builds
-- the model, the data and the families, runs the search through a journaled bo.optimizer (its
-- rounds of γ derived from the journal, so that a killed run resumes where it stopped), scores the
-- chosen networks, and writes the tables (results/NAME/) and figures (figures/NAME_*.png).

local declare = require "boengine.declare"

-- ---- errors and paths ---------------------------------------------------------------------------

-- Raises an input error of the experiment (one line, no traceback, naming the experiment's line).
local function fail(fmt, ...)
  boengine.fail(string.format(fmt, ...))
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function basename(path)
  return (path:match("([^/]*)$"):gsub("%.lua$", ""))
end

local function mkdir(path)
  local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  if not ok then fail("cannot create the folder %s", path) end
end

-- The project folder of an experiment file: the folder holding experiments/ when the file is in
-- one (outputs go to results/ and figures/ beside it), else the file's own folder.
local function project_root(script)
  local dir = dirname(script)
  if basename(dir) == "experiments" then return dirname(dir) end
  return dir
end

-- A shipped reference model: NAME.safetensors under results/models of the project, else of the
-- engine's own repository.
local function shipped_model(root, name)
  for _, base in ipairs({root, boengine.root}) do
    local path = base and (base .. "/results/models/" .. name .. ".safetensors")
    if path and exists(path) then return path end
  end
  return nil
end

-- ---- building the pieces ------------------------------------------------------------------------

local BUILDERS = {vgg = nn.vgg, resnet = nn.resnet, mlp = nn.mlp}

local function build_model(s, root)
  local m = s.model
  local net, source
  if type(m) == "table" then
    local spec = {}
    for k, v in pairs(m) do if k ~= "arch" then spec[k] = v end end
    local builder = BUILDERS[m.arch]
    if not builder then fail("model: 'arch' must be vgg, resnet or mlp, got %s", tostring(m.arch)) end
    net, source = builder(spec), m.arch
  elseif m:match("%.safetensors$") then
    if not exists(m) then fail("model: %s: no such file", m) end
    net, source = nn.load(m), m
  else
    local path = shipped_model(root, m)
    if path then
      net, source = nn.load(path), path
    else
      local arch, depth, bn = m:match("^(%a+)(%d+)(_?b?n?)$")
      if not (arch and BUILDERS[arch]) then
        fail("model: %q is neither a shipped model (results/models) nor a builder name such as vgg16 or resnet50", m)
      end
      net, source = BUILDERS[arch]{depth = tonumber(depth), batchnorm = arch == "vgg" and bn == "_bn" or nil}, m
    end
  end
  if s.weights then
    if not exists(s.weights) then fail("weights: %s: no such file", s.weights) end
    net:load(s.weights)
    source = source .. " with " .. s.weights
  end
  return net, source
end

-- The search data and the accuracy split. The network's input decides the image size of folders.
local function build_data(s, net)
  local layers = net:layers()
  local input = layers[1] and layers[1].input or nil
  local function folder(opts)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    return data.folder(o)
  end
  local function make(d, split)
    if d == "fashion_mnist" then return data.fashion_mnist{split = split} end
    if type(d) == "string" then return folder{path = d, size = input and input[2] or nil} end
    if d.path then return folder(d) end
    local o = {split = split}
    for k, v in pairs(d) do if k ~= "fashion_mnist" then o[k] = v end end
    return data.fashion_mnist(o)
  end
  local search = make(s.data, "train")
  local test
  if s.test == false then
    test = nil
  elseif s.test == nil or s.test == true then
    test = s.data == "fashion_mnist" and data.fashion_mnist{split = "test"} or search
  else
    test = make(s.test, "test")
  end
  return search, test
end

local function build_families(s, net)
  local families = {}
  for i, decl in ipairs(s.compress) do
    local make = compress[decl.family]
    if type(make) ~= "function" or decl.family:sub(1, 1) == "_" then
      fail("compress[%d]: unknown family %q (vh, svd, tucker2, prune_channels, prune_weights, quantize)", i, decl.family)
    end
    local opts = {net = net}
    for k, v in pairs(decl) do if k ~= "family" then opts[k] = v end end
    families[i] = make(opts)
  end
  return families
end

-- ---- the rounds: which weight γ each evaluation was told with -----------------------------------

-- Evaluations (b_{r-1}, b_r] belong to round r; round 1 holds the design.
local function round_ends(s, count)
  local ends, E, n0 = {}, s.evaluations, math.min(s.init, s.evaluations)
  for r = 1, count do ends[r] = n0 + math.floor((E - n0) * r / count + 0.5) end
  ends[count] = E
  return ends
end

local function median(values)
  local v = {table.unpack(values)}
  table.sort(v)
  local n = #v
  if n == 0 then return nil end
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

-- The budget's next γ from the bracket: R grows with γ (more weight on fidelity, less compression).
local function next_gamma(bracket, gamma, R, B)
  if R > B then bracket.hi = math.min(bracket.hi or math.huge, gamma) else bracket.lo = math.max(bracket.lo or 0, gamma) end
  if bracket.lo and bracket.hi then return math.sqrt(bracket.lo * bracket.hi) end
  return bracket.hi and bracket.hi / 4 or bracket.lo * 4
end

-- ---- the run ------------------------------------------------------------------------------------

local Run = {}
Run.__index = Run

function Run:log(fmt, ...)
  if not boengine.quiet then io.stderr:write(self.name, ": ", string.format(fmt, ...), "\n") end
end

function Run:apply(theta)
  return compress.apply(self.net, self.families, theta)
end

-- Per-θ-entry settings of a candidate: rank, kept channels, bits or kept fraction.
local function settings_of(info)
  local out = {}
  for i, l in ipairs(info.layers or {}) do
    out[i] = l.rank or l.keep or l.bits or l.kept or (l.ranks and (l.ranks[1] .. "x" .. l.ranks[2])) or ""
  end
  return out
end

-- One evaluation: the candidate of θ, its L̂ on sample i, and what the tables need.
function Run:evaluate(theta, i)
  local t0 = boengine.clock()
  local cand <close>, info = self:apply(theta)
  local L, se = self.estimator:evaluate(cand, {sample = i})
  return {L = L, se = se, R = info[self.s.ratio], R_net = info.params_net, flops = info.flops,
          settings = settings_of(info), seconds = boengine.clock() - t0}
end

function Run:scalarize(rec, gamma)
  local info = rec.info
  return info.R + gamma * info.L, gamma * info.se
end

-- The γ of every round, derived from the evaluations recorded so far (the journal): fixed for a
-- number or a list, chosen by the minimax for a budget once a round's evaluations are all known.
function Run:plan(history)
  local s, rounds = self.s, {}
  for r, e in ipairs(self.ends) do rounds[r] = {index = r, last = e} end
  if s.budget == nil then
    for r, round in ipairs(rounds) do round.gamma = type(s.gamma) == "table" and s.gamma[r] or s.gamma end
    return rounds
  end
  local n0 = math.min(s.init, s.evaluations)
  if #history < n0 then return rounds end
  local Rs, Ls = {}, {}
  for i = 1, n0 do Rs[i], Ls[i] = history[i].info.R, history[i].info.L end
  local bracket = {}
  rounds[1].gamma = (median(Rs) or 1) / math.max(median(Ls) or 1, 1e-12)
  for r = 1, #rounds - 1 do
    if #history < rounds[r].last then break end
    local choice = self:choose(history, rounds[r].last, rounds[r].gamma)
    rounds[r].choice = choice
    rounds[r + 1].gamma = next_gamma(bracket, rounds[r].gamma, choice.info.R, s.budget)
  end
  return rounds
end

-- The round that evaluation i (1-based) belongs to.
local function round_of(rounds, i)
  for _, r in ipairs(rounds) do if i <= r.last then return r end end
  return rounds[#rounds]
end

-- Re-weights the first n evaluations by γ and returns the one of lowest posterior mean.
function Run:choose(history, n, gamma)
  self.opt:rescore(function(rec) return self:scalarize(rec, gamma) end, n)
  local best = self.opt:best()
  return history[best.i]
end

function Run:search()
  local s = self.s
  local opt = bo.optimizer{
    bounds = compress.bounds(self.families), integer = compress.integer(self.families),
    init = s.init, acquisition = s.acquisition, seed = s.seed,
    journal = self.dir .. "/journal.jsonl", fresh = self.flags.fresh or nil,
    resume = self.flags.force and "force" or nil,
  }
  self.opt = opt
  local history = opt:history()
  if #history > 0 then self:log("resuming after %d of %d evaluations", #history, s.evaluations) end
  local progress = boengine.progress(self.name, s.evaluations)
  local rounds = self:plan(history)
  local current
  for i = #history + 1, s.evaluations do
    local round = round_of(rounds, i)
    local gamma = round.gamma or 1 -- the budget's design points before γ₁ is known: rescored later
    if round ~= current and round.gamma then
      opt:rescore(function(rec) return self:scalarize(rec, gamma) end)
      current = round
      if s.budget and round.index > 1 then
        local prev = rounds[round.index - 1]
        self:log("round %d: gamma %.4g (round %d chose R %.4f, budget %.4g)", round.index, gamma, prev.index,
                 prev.choice.info.R, s.budget)
      end
    end
    local x = opt:ask()
    local info = self:evaluate(x, i)
    info.round, info.gamma = round.index, gamma
    local y, noise = info.R + gamma * info.L, gamma * info.se
    opt:tell(x, y, noise, info)
    history = opt:history()
    progress:update(i, string.format("R %.3f L %.4g", info.R, info.L))
    if s.budget and (i == math.min(s.init, s.evaluations) or round.last == i) then rounds = self:plan(history) end
  end
  progress:done()
  return opt:history(), self:plan(opt:history())
end

-- ---- scoring the chosen networks ----------------------------------------------------------------

-- θ scaled towards the upper bounds until R reaches the budget from below: the minimax ends at a
-- point of R ≤ B, usually below it; ranks left unused by the budget only lower L.
function Run:fill(theta, budget)
  local bounds = compress.bounds(self.families)
  local integer = compress.integer(self.families)
  local function at(t)
    local x = {}
    for j, v in ipairs(theta) do
      local lo, hi = bounds[j][1], bounds[j][2]
      local y = v + t * (hi - v)
      if integer[j] then y = math.floor(y + 0.5) end
      x[j] = math.max(lo, math.min(hi, y))
    end
    return x
  end
  local function R(t)
    local cand <close>, info = self:apply(at(t))
    return info[self.s.ratio]
  end
  if R(0) > budget then return theta end
  local lo, hi = 0, 1
  if R(1) <= budget then return at(1) end
  for _ = 1, 40 do
    local mid = (lo + hi) / 2
    if R(mid) <= budget then lo = mid else hi = mid end
  end
  return at(lo)
end

-- The uniform baseline at ratio R: one fraction t for every θ entry (clamped to its bounds),
-- the largest whose ratio stays at or below R.
function Run:uniform(target)
  local bounds = compress.bounds(self.families)
  local integer = compress.integer(self.families)
  local tlo, thi = math.huge, -math.huge
  for _, b in ipairs(bounds) do tlo, thi = math.min(tlo, b[1]), math.max(thi, b[2]) end
  local function at(t)
    local x = {}
    for j, b in ipairs(bounds) do
      local v = integer[j] and math.floor(b[1] + (t - tlo) / (thi - tlo) * (b[2] - b[1]) + 0.5) or t
      x[j] = math.max(b[1], math.min(b[2], v))
    end
    return x
  end
  local function R(t)
    local cand <close>, info = self:apply(at(t))
    return info[self.s.ratio]
  end
  local lo, hi = tlo, thi
  if R(lo) > target then return at(lo) end
  for _ = 1, 40 do
    local mid = (lo + hi) / 2
    if R(mid) <= target then lo = mid else hi = mid end
  end
  return at(lo)
end

-- A network's facts for the tables: ratios, L̂ on the large fixed sample, top-1 accuracy.
function Run:score(theta)
  local cand <close>, info = self:apply(theta)
  local out = {theta = theta, R = info[self.s.ratio], R_net = info.params_net, flops = info.flops,
               settings = settings_of(info), layers = info.layers}
  if self.rescorer then out.L, out.se = self.rescorer:evaluate(cand) end
  if self.test then out.accuracy = self.test:accuracy(cand) end
  return out
end

-- ---- outputs ------------------------------------------------------------------------------------

local function fmt(v, digits)
  if v == nil then return "" end
  if type(v) ~= "number" then return tostring(v) end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%." .. (digits or 4) .. "g", v)
end

function Run:provenance()
  return {seed = self.s.seed, engine = boengine.version, commit = boengine.commit,
          experiment = boengine.script, experiment_sha256 = boengine.script_sha256, name = self.name}
end

function Run:table(name, columns, rows, title)
  report.table{path = self.dir .. "/" .. name, columns = columns, rows = rows, title = title,
               provenance = self:provenance()}
end

function Run:write_evaluations(history)
  local names = compress.names(self.families)
  local columns = {"evaluation", "round", "gamma"}
  for _, n in ipairs(names) do columns[#columns + 1] = "theta:" .. n end
  for _, n in ipairs(names) do columns[#columns + 1] = "setting:" .. n end
  for _, c in ipairs({"R", "R_net", "flops", "L", "se", "y", "seconds"}) do columns[#columns + 1] = c end
  local rows = {}
  for _, rec in ipairs(history) do
    local info, row = rec.info, {rec.i, info.round, info.gamma}
    for _, v in ipairs(rec.x) do row[#row + 1] = v end
    for j = 1, #names do row[#row + 1] = info.settings and info.settings[j] or "" end
    for _, v in ipairs({info.R, info.R_net, info.flops, info.L, info.se, rec.y, rec.seconds}) do row[#row + 1] = v end
    rows[#rows + 1] = row
  end
  self:table("evaluations", columns, rows, self.name .. ": every evaluation")
end

-- The per-layer table of a chosen network, as AIMET and NNI print it.
function Run:layer_rows(chosen)
  local rows = {}
  for _, l in ipairs(chosen.layers or {}) do
    rows[#rows + 1] = {l.name, l.family, l.shape and table.concat(l.shape, "x") or "",
                       l.rank or l.keep or l.bits or l.kept or "", l.weights_ref, l.weights,
                       l.macs_ref or "", l.macs or ""}
  end
  return {"layer", "family", "shape", "setting", "weights before", "weights after", "MACs before", "MACs after"}, rows
end

function Run:write_summary(chosen, uniform, original)
  local columns = {"network", "R", "R_net", "flops", "L", "se", "accuracy"}
  local rows = {{"original", 1, 1, 1, 0, 0, original}}
  rows[#rows + 1] = {"chosen (evaluation " .. (chosen.i or "-") .. ")", chosen.R, chosen.R_net, chosen.flops,
                     chosen.L, chosen.se, chosen.accuracy}
  if uniform then
    rows[#rows + 1] = {"uniform", uniform.R, uniform.R_net, uniform.flops, uniform.L, uniform.se, uniform.accuracy}
  end
  self:table("summary", columns, rows, self.name .. ": the chosen network")
  local lc, lr = self:layer_rows(chosen)
  self:table("layers", lc, lr, self.name .. ": the chosen network, layer by layer")
end

function Run:write_figures(history, chosen, uniform)
  local best, xs, ys = math.huge, {}, {}
  for k, rec in ipairs(history) do
    best = math.min(best, rec.info.R + self.final_gamma * rec.info.L)
    xs[k], ys[k] = rec.i, best
  end
  local figs = self.s.figures
  report.plot{path = figs .. "/" .. self.name .. "_convergence.png", title = self.name .. ": convergence",
              xlabel = "evaluation", ylabel = string.format("best y = R + %.3g L", self.final_gamma),
              series = {{kind = "line", x = xs, y = ys, label = "best observed"}},
              provenance = self:provenance()}
  local R, L = {}, {}
  for k, rec in ipairs(history) do R[k], L[k] = rec.info.R, rec.info.L end
  local series = {{kind = "scatter", x = R, y = L, label = "evaluations"},
                  {kind = "scatter", x = {chosen.R}, y = {chosen.L}, label = "chosen (large sample)", marker = "star"}}
  if uniform then series[#series + 1] = {kind = "scatter", x = {uniform.R}, y = {uniform.L}, label = "uniform", marker = "square"} end
  local vlines = self.s.budget and {{x = self.s.budget, label = "budget"}} or nil
  report.plot{path = figs .. "/" .. self.name .. "_tradeoff.png", title = self.name .. ": size against function distance",
              xlabel = "R, parameter ratio of the compressed layers", ylabel = "L, function distance", ylog = true,
              series = series, vlines = vlines, provenance = self:provenance()}
end

-- ---- the declaration's entry point --------------------------------------------------------------

local function input_error(e)
  if type(e) == "table" and (e.override or e.declaration) then fail("%s", e.message) end
  error(e, 0)
end

function experiment(decl)
  local script = boengine.script
  local args = {}
  if arg and arg[0] == script then for i = 1, #arg do args[i] = arg[i] end end
  local ok, overrides, flags = pcall(declare.parse_args, args)
  if not ok then input_error(overrides) end
  local suffix
  ok, decl, suffix = pcall(declare.apply_overrides, decl, overrides)
  if not ok then input_error(decl) end
  ok = pcall(declare.check, decl)
  if not ok then input_error(select(2, pcall(declare.check, decl))) end

  local root = project_root(script)
  local s, defaulted = declare.resolve(decl)
  local net, source = build_model(s, root)
  local families = build_families(s, net)
  s, defaulted = declare.resolve(s, {dim = compress.dim(families)}, defaulted)
  if s.init > s.evaluations then s.init = s.evaluations end
  local name = s.name or (basename(script) .. suffix)
  s.results = s.results or (root .. "/results")
  s.figures = s.figures or (root .. "/figures")
  local run = setmetatable({s = s, name = name, net = net, families = families, flags = flags,
                            dir = s.results .. "/" .. name}, Run)
  run.search_data, run.test = build_data(s, net)
  local est = s.objective == "fnorm" and objective.fnorm or objective.risk
  run.estimator = est{reference = s.objective == "fnorm" and net or nil, data = run.search_data,
                      samples = s.samples, fixed = s.fixed, seed = s.seed}
  if s.rescore > 0 then
    run.rescorer = est{reference = s.objective == "fnorm" and net or nil, data = run.search_data,
                       samples = s.rescore, fixed = true, seed = s.seed + 1}
  end
  run.ends = round_ends(s, s.budget and s.rounds or type(s.gamma) == "table" and #s.gamma or 1)

  print(string.format("%s: %s, %d parameters to search (%s)", name, source, compress.dim(families),
                      table.concat(compress.names(families), " ")))
  print("settings (defaults marked):")
  for _, line in ipairs(declare.format(s, defaulted)) do print(line) end
  mkdir(run.dir)
  mkdir(s.figures)

  local history, rounds = run:search()
  return run:finish(history, rounds)
end

function Run:finish(history, rounds)
  local s = self.s
  local original = self.test and self.test:accuracy(self.net) or nil
  local final_gamma = rounds[#rounds].gamma
  local chosen_rec
  if s.budget then
    -- the lowest posterior mean of L alone among the evaluated points within the budget, filled up
    self.opt:rescore(function(rec) return rec.info.L, rec.info.se end)
    local mu = self.opt:predict(self:xs(history))
    local best
    for k, rec in ipairs(history) do
      if rec.info.R <= s.budget and (not best or mu[k] < mu[best]) then best = k end
    end
    if not best then fail("no evaluated network is within the budget %g: raise 'evaluations' or the bounds", s.budget) end
    chosen_rec = history[best]
    final_gamma = rounds[#rounds].gamma
  else
    final_gamma = type(s.gamma) == "table" and s.gamma[#s.gamma] or s.gamma
    chosen_rec = self:choose(history, #history, final_gamma)
  end
  self.final_gamma = final_gamma
  local theta = chosen_rec.x
  if s.budget then theta = self:fill(theta, s.budget) end
  local chosen = self:score(theta)
  chosen.i = chosen_rec.i
  local uniform = s.uniform and self:score(self:uniform(chosen.R)) or nil

  self:write_evaluations(history)
  self:write_summary(chosen, uniform, original)
  self:write_figures(history, chosen, uniform)
  if s.save then
    local cand <close> = self:apply(theta)
    cand:save(self.dir .. "/model.safetensors")
  end
  print(string.format("chosen: evaluation %s, R %.4f (network %.4f, FLOPs %.4f), L %s ± %s%s", tostring(chosen.i), chosen.R,
                      chosen.R_net, chosen.flops, fmt(chosen.L), fmt(chosen.se, 2),
                      chosen.accuracy and string.format(", top-1 %.4f (original %.4f)", chosen.accuracy, original) or ""))
  if uniform then
    print(string.format("uniform: R %.4f, L %s ± %s%s", uniform.R, fmt(uniform.L), fmt(uniform.se, 2),
                        uniform.accuracy and string.format(", top-1 %.4f", uniform.accuracy) or ""))
  end
  return {name = self.name, chosen = chosen, uniform = uniform, original = original, history = history, rounds = rounds,
          settings = s}
end

function Run:xs(history)
  local X = {}
  for k, rec in ipairs(history) do X[k] = rec.x end
  return X
end
