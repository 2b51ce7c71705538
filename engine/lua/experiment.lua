-- experiment{...}: runs a declared compression search (declare.lua checks the declaration): builds
-- the model, the data and the families; searches through a journaled bo.optimizer whose rounds of
-- γ are derived from the journal, so that a killed run resumes where it stopped; scores the chosen
-- networks on a large fixed sample and the test split; writes the tables (RESULTS/NAME/) and the
-- figures (FIGURES/NAME_*.png). The method: docs/method.md; the declaration's keys: docs/experiments.md.

local declare = require "boengine.declare"
local baselines = require "boengine.baselines"
local parallel = require "boengine.parallel"

-- ---- errors, paths, small helpers ---------------------------------------------------------------

local function fail(fmt, ...) boengine.fail(string.format(fmt, ...)) end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end
local function basename(path) return (path:match("([^/]*)$"):gsub("%.lua$", "")) end

local function mkdir(path)
  if not os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'") then fail("cannot create the folder %s", path) end
end

-- The project folder of an experiment file: the one holding experiments/ when the file is in such
-- a folder (outputs go to results/ and figures/ beside it), else the file's own folder.
local function project_root(script)
  local dir = dirname(script)
  if basename(dir) == "experiments" then return dirname(dir) end
  return dir
end

local function median(values)
  local v = {table.unpack(values)}
  table.sort(v)
  local n = #v
  if n == 0 then return nil end
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

-- The L̂ each evaluation observed: what a strategy without a model chooses by under a budget.
local function observed_L(history)
  local L = {}
  for k, rec in ipairs(history) do L[k] = rec.info.L end
  return L
end

local function fmt(v, digits)
  if v == nil then return "-" end
  if math.type(v) == "integer" or type(v) ~= "number" then return tostring(v) end
  return string.format("%." .. (digits or 4) .. "g", v)
end

-- ---- building the pieces ------------------------------------------------------------------------

local BUILDERS = {vgg = nn.vgg, resnet = nn.resnet, mlp = nn.mlp}

local function build_model(s, root)
  local m, net, source = s.model
  if type(m) == "table" then
    local spec = {}
    for k, v in pairs(m) do if k ~= "arch" then spec[k] = v end end
    if not BUILDERS[m.arch] then fail("model: 'arch' must be vgg, resnet or mlp, got %s", tostring(m.arch)) end
    net, source = BUILDERS[m.arch](spec), m.arch
  elseif m:match("%.safetensors$") then
    if not exists(m) then fail("model: %s: no such file", m) end
    net, source = nn.load(m), m
  else
    local path = declare.shipped_model(root, m)
    if path then
      net, source = nn.load(path), "results/models/" .. m
    else
      local arch, depth, bn = m:match("^(%a+)(%d+)(_?b?n?)$")
      if not (arch and BUILDERS[arch] and arch ~= "mlp") then
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

-- The search data and the accuracy split; an image folder is cropped to the network's input size.
local function build_data(s, net)
  local size = tonumber(net:arch():match('"size":(%d+)'))
  local function make(d, split)
    if d == "fashion_mnist" then return data.fashion_mnist{split = split} end
    if type(d) == "string" then return data.folder{path = d, size = size} end
    local o = {}
    for k, v in pairs(d) do o[k] = v end
    if o.path then
      o.size = o.size or size
      return data.folder(o)
    end
    o.split = o.split or split
    return data.fashion_mnist(o)
  end
  local search = make(s.data, "train")
  local test
  if s.test == nil or s.test == true then
    test = s.data == "fashion_mnist" and data.fashion_mnist{split = "test"} or search
  elseif s.test then
    test = make(s.test, "test")
  end
  return search, test
end

local function build_families(s, net)
  local families, known = {}, {}
  for _, n in ipairs(compress.families) do known[n] = true end
  for i, decl in ipairs(s.compress) do
    local make = compress[decl.family]
    if not known[decl.family] then
      fail("compress[%d]: unknown family %q (%s)", i, decl.family, table.concat(compress.families, ", "))
    end
    local opts = {net = net}
    for k, v in pairs(decl) do if k ~= "family" then opts[k] = v end end
    families[i] = make(opts)
  end
  return families
end

-- ---- the run ------------------------------------------------------------------------------------

local Run = {}
Run.__index = Run

-- A budget's final choice: how many of the most promising feasible networks are filled and measured.
local FINALISTS = 5

function Run:log(fmt_, ...)
  if not boengine.quiet then io.stderr:write(self.name, ": ", string.format(fmt_, ...), "\n") end
end

function Run:apply(theta) return compress.apply(self.net, self.families, theta) end

-- θ's settings as short text, one per searched parameter ("rank 12", "bits 4").
local function settings_of(info)
  local out = {}
  for i, l in ipairs(info.layers) do out[i] = l.setting end
  return out
end

-- One evaluation: the candidate of θ and its L̂ on sample i.
-- The evaluation's record (journaled) and, beside it, the compression's full info (its layers).
function Run:evaluate(theta, i)
  local cand <close>, info = self:apply(theta)
  local L, se = self.estimator:evaluate(cand, {sample = i})
  return {L = L, se = se, R = info[self.s.ratio], R_net = info.params_net, flops = info.flops,
          settings = settings_of(info)}, info
end

-- y = R + γ·L̂ with noise γ·SE: R is exact, L̂ carries the U-statistic's standard error. Without γ
-- (a baseline's points moved onto R = B, greedy's score table) y is L̂ itself.
local function scalarize(info, gamma)
  if not gamma then return info.L, info.se end
  return info.R + gamma * info.L, gamma * info.se
end

-- ---- rounds: which γ each evaluation was told with, derived from the journal ---------------------
-- Evaluations (end_{r-1}, end_r] belong to round r; round 1 holds the design. A number γ is one
-- round, a list one round per γ; a budget runs the minimax: round r's γ comes from the choices of
-- the rounds before it, each made from the evaluations up to its end only.

function Run:round_ends(count)
  local s, ends = self.s, {}
  for r = 1, count do ends[r] = s.init + math.floor((s.evaluations - s.init) * r / count + 0.5) end
  ends[count] = s.evaluations
  return ends
end

-- The next γ of the minimax. R grows with γ (more weight on L, less compression): the rounds whose
-- choice fell under B and over it bracket the γ sought (lo, hi, with their R); between them the next
-- γ interpolates log γ linearly in R to B (a secant step, kept inside the bracket's middle 80%); on
-- one side only, γ is doubled or halved.
local function next_gamma(bracket, gamma, R, B)
  if R > B then
    if not bracket.hi or gamma < bracket.hi then bracket.hi, bracket.R_hi = gamma, R end
  elseif not bracket.lo or gamma > bracket.lo then
    bracket.lo, bracket.R_lo = gamma, R
  end
  if not (bracket.lo and bracket.hi) then return bracket.hi and bracket.hi / 2 or bracket.lo * 2 end
  local a, b = math.log(bracket.lo), math.log(bracket.hi)
  local t = bracket.R_hi > bracket.R_lo and (B - bracket.R_lo) / (bracket.R_hi - bracket.R_lo) or 0.5
  t = math.max(0.1, math.min(0.9, t))
  return math.exp(a + t * (b - a))
end

-- γ₁: the trade-off at the budget by the design's evaluations. With L ≈ c·R^k fitted by least squares
-- in log-log, minimizing R + γ·L puts the optimum where 1 + γ·dL/dR = 0, i.e. γ = -B / (k·L(B)).
-- Falls back to balancing the medians (median R = γ · median L) when the fit does not slope down.
local function first_gamma(history, n, B)
  local sx, sy, sxx, sxy, m = 0, 0, 0, 0, 0
  local Rs, Ls = {}, {}
  for i = 1, n do
    local R, L = history[i].info.R, history[i].info.L
    Rs[i], Ls[i] = R, L
    if R > 0 and L > 0 then
      local x, y = math.log(R), math.log(L)
      sx, sy, sxx, sxy, m = sx + x, sy + y, sxx + x * x, sxy + x * y, m + 1
    end
  end
  local den = m * sxx - sx * sx
  local k = m >= 3 and den > 0 and (m * sxy - sx * sy) / den or 0
  if k < 0 then
    local logc = (sy - k * sx) / m
    local L_at_B = math.exp(logc + k * math.log(B))
    return -B / (k * L_at_B)
  end
  return median(Rs) / math.max(median(Ls), 1e-12)
end

-- The evaluation of lowest posterior mean among the first n, scored with γ.
function Run:choose(n, gamma)
  self.opt:rescore(function(rec) return scalarize(rec.info, gamma) end, n)
  self.scored = nil
  return self.opt:history()[self.opt:best().i]
end

function Run:plan(history)
  local s, rounds = self.s, {}
  for r, e in ipairs(self.ends) do rounds[r] = {index = r, last = e} end
  if not s.budget then
    for r, round in ipairs(rounds) do round.gamma = type(s.gamma) == "table" and s.gamma[r] or s.gamma end
    return rounds
  end
  if #history < s.init then return rounds end
  rounds[1].gamma = first_gamma(history, s.init, s.budget)
  local bracket = {}
  for r = 1, #rounds do
    if #history < rounds[r].last then break end
    rounds[r].choice = self:choose(rounds[r].last, rounds[r].gamma)
    if rounds[r + 1] then
      rounds[r + 1].gamma = next_gamma(bracket, rounds[r].gamma, rounds[r].choice.info.R, s.budget)
    end
  end
  return rounds
end

local function round_of(rounds, i)
  for _, r in ipairs(rounds) do if i <= r.last then return r end end
  return rounds[#rounds]
end

-- A baseline under a budget: its proposals moved onto R = B (baselines.project), y = L̂, one round.
function Run:projected() return self.s.budget ~= nil and self.s.strategy ~= "bo" end

-- The search over the ranks of an MPI run, or in batches (s.batch > 1, or async): the evaluations
-- go in segments that end where the sequential loop re-plans (a budget's design, each round's end),
-- each one searched by parallel.search with the round's γ (boengine.parallel: the proposals and
-- the journal depend on q and the mode, not on the ranks).
function Run:search_parallel(opt)
  local s = self.s
  local ends, seen = {}, {}
  if s.budget and s.init < s.evaluations then ends[1], seen[s.init] = s.init, true end
  for _, e in ipairs(self.ends) do if not seen[e] then ends[#ends + 1], seen[e] = e, true end end
  table.sort(ends)
  local rounds = self:plan(opt:history())
  local progress = boengine.progress(self.name, s.evaluations)
  local first, busy, wall = 1, 0, 0
  for _, last in ipairs(ends) do
    if opt:count() < last then
      local round = round_of(rounds, first)
      local gamma = round.gamma or 1 -- a budget's design before γ₁ is known: re-scored at once after
      if self.scored ~= gamma and opt:count() > 0 then
        opt:rescore(function(rec) return scalarize(rec.info, gamma) end)
      end
      self.scored = gamma
      local stats = parallel.search{
        optimizer = opt, first = first, upto = last, init = s.init, batch = s.batch, mode = s.mode,
        evaluate = function(x, i) return self:timed_evaluate(x, i) end,
        tell = function(x, i, info)
          info.round, info.gamma = round.index, gamma
          local y, noise = scalarize(info, gamma)
          opt:tell(x, y, noise, info)
          progress:update(i, string.format("round %d, R %.3f, L %s (%.2fs)", round.index, info.R, fmt(info.L, 3),
                                           info.seconds))
        end}
      busy, wall = busy + stats.busy, wall + stats.wall
      if s.budget and last < s.evaluations then
        rounds = self:plan(opt:history())
        local r = round_of(rounds, last + 1)
        if r.index > 1 then
          local prev = rounds[r.index - 1]
          self:log("round %d: gamma %.4g (round %d chose R %.4f against the budget %g)", r.index, r.gamma,
                   prev.index, prev.choice.info.R, s.budget)
        end
      end
    end
    first = last + 1
  end
  progress:done()
  if wall > 0 then
    self:log("%d ranks, q = %d (%s): the search took %.2f s, evaluating %.0f%% of the time", parallel.ranks, s.batch,
             s.mode, wall, 100 * busy / (wall * parallel.ranks))
  end
  local history = opt:history()
  return history, self:plan(history)
end

-- An evaluation with its duration, as a rank sends it.
function Run:timed_evaluate(x, i)
  local t0 = boengine.clock()
  local info = self:evaluate(x, i)
  info.seconds = boengine.clock() - t0
  return info
end

-- A rank other than 0: evaluates and measures what rank 0 asks until it ends the run, then ends
-- this process with it (parallel.serve, par.finish).
function Run:serve()
  parallel.serve{
    evaluate = function(t) return self:timed_evaluate(t.x, t.i) end,
    accuracy = function(t) -- collective: a failure before the sum still takes part in it
      local ok, err = pcall(function()
        if not t.theta then return self:accuracy_here(self.net) end
        local cand <close> = self:apply(t.theta)
        return self:accuracy_here(cand)
      end)
      if not ok then
        if not tostring(err):find("failed on another rank", 1, true) then require("boengine.par").sum{0, 1} end
        error(err, 0)
      end
    end,
  }
  require("boengine.par").finish()
end

function Run:search()
  local s = self.s
  local t_search = boengine.clock()
  local spread = parallel.ranks > 1 or s.batch > 1 or s.mode == "async"
  if spread and (s.strategy == "greedy" or self:projected()) then
    fail("strategy '%s' under a budget runs on one rank and one point at a time (batch = 1, mode = sync)", s.strategy)
  end
  if s.strategy == "greedy" then
    local history
    self.greedy_theta, history, self.new_evaluations = baselines.greedy(self)
    self.search_seconds = boengine.clock() - t_search
    return history, {{index = 1, last = #history}}
  end
  local projected = self:projected()
  self.opt = bo.optimizer{
    bounds = compress.bounds(self.families), integer = compress.integer(self.families),
    init = s.init, strategy = s.strategy, acquisition = s.acquisition, seed = s.seed,
    journal = self.dir .. "/journal.jsonl", fresh = self.flags.fresh or nil,
    resume = self.flags.force and "force" or nil,
  }
  local opt = self.opt
  local done = opt:count()
  if done > 0 then self:log("resuming after %d of %d evaluations", done, s.evaluations) end
  if spread then
    local history, rounds = self:search_parallel(opt)
    self.new_evaluations, self.search_seconds = s.evaluations - done, boengine.clock() - t_search
    return history, rounds
  end
  local rounds = projected and {{index = 1, last = s.evaluations}} or self:plan(opt:history())
  local progress = boengine.progress(self.name, s.evaluations)
  local best_y = math.huge
  for i = done + 1, s.evaluations do
    local round = round_of(rounds, i)
    local gamma = round.gamma or 1 -- a budget's design before γ₁ is known: re-scored at once after
    if projected then gamma = nil end
    if not projected and self.scored ~= gamma and i > 1 then
      opt:rescore(function(rec) return scalarize(rec.info, gamma) end)
    end
    self.scored = gamma
    local x = opt:ask()
    if projected then x = baselines.project(self, x, s.budget) end
    local t0 = boengine.clock()
    local info = self:evaluate(x, i)
    info.round, info.gamma, info.seconds = round.index, gamma, boengine.clock() - t0
    local y, noise = scalarize(info, gamma)
    opt:tell(x, y, noise, info)
    best_y = math.min(best_y, y)
    progress:update(i, string.format("round %d, R %.3f, L %s (%.2fs)", round.index, info.R, fmt(info.L, 3),
                                     boengine.clock() - t0))
    if s.budget and not projected and (i == s.init or i == round.last) and i < s.evaluations then
      rounds = self:plan(opt:history())
      local r = round_of(rounds, i + 1)
      if r.index > 1 then
        local prev = rounds[r.index - 1]
        self:log("round %d: gamma %.4g (round %d chose R %.4f against the budget %g)", r.index, r.gamma, prev.index,
                 prev.choice.info.R, s.budget)
      end
    end
  end
  progress:done()
  if done < s.evaluations then self:log("the search took %.2f s", boengine.clock() - t_search) end
  local history = opt:history()
  self.new_evaluations = s.evaluations - done
  self.search_seconds = boengine.clock() - t_search
  return history, projected and rounds or self:plan(history)
end

-- ---- the chosen networks ------------------------------------------------------------------------

-- θ moved towards the upper bounds until R reaches the budget from below: the minimax ends at a
-- point of R <= B, usually under it, and ranks the budget leaves unused only lower L.
function Run:fill(theta, budget)
  local bounds, integer = compress.bounds(self.families), compress.integer(self.families)
  local function at(t)
    local x = {}
    for j, v in ipairs(theta) do
      local y = v + t * (bounds[j][2] - v)
      if integer[j] then y = math.floor(y + 0.5) end
      x[j] = math.max(bounds[j][1], math.min(bounds[j][2], y))
    end
    return x
  end
  local function R(t)
    local _ <close>, info = self:apply(at(t))
    return info[self.s.ratio]
  end
  if R(0) > budget then return theta end
  if R(1) <= budget then return at(1) end
  local lo, hi = 0, 1
  while hi - lo > 1e-5 do -- 17 halvings: far finer than a rank, each one a compress.apply
    local mid = (lo + hi) / 2
    if R(mid) <= budget then lo = mid else hi = mid end
  end
  return at(lo)
end

-- The uniform baseline: one fraction t for every searched parameter (clamped to its bounds; an
-- integer parameter at the same relative place in its range), the largest whose R stays <= target.
function Run:uniform(target)
  local bounds, integer = compress.bounds(self.families), compress.integer(self.families)
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
    local _ <close>, info = self:apply(at(t))
    return info[self.s.ratio]
  end
  local lo, hi = tlo, thi
  if R(lo) > target then return at(lo) end
  while hi - lo > 1e-5 * (thi - tlo) do
    local mid = (lo + hi) / 2
    if R(mid) <= target then lo = mid else hi = mid end
  end
  return at(lo)
end

-- A network's facts that need no forward pass: ratios, settings, layers (info: compress.apply's).
function Run:facts(theta, info)
  return {theta = theta, R = info[self.s.ratio], R_net = info.params_net, flops = info.flops,
          settings = settings_of(info), layers = info.layers}
end

function Run:describe(theta)
  local _ <close>, info = self:apply(theta)
  return self:facts(theta, info)
end

-- A network's facts for the tables: ratios, L̂ on the large fixed sample, top-1 accuracy. Scores
-- are kept by θ, so that a network met twice (a round's choice that is also the final one) is
-- measured once.
function Run:score(theta)
  local key = table.concat(theta, ",")
  if self.scores[key] then return self.scores[key] end
  local cand <close>, info = self:apply(theta)
  local out = self:facts(theta, info)
  if self.rescorer then out.L, out.se = self:distance(theta) end
  if self.test then out.accuracy = self:accuracy(cand, theta) end
  self.scores[key] = out
  return out
end

-- Top-1 accuracy of net (θ's network; nil: the original). Under MPI every rank measures its share
-- of the test split (ds:accuracy is collective): the workers are sent θ first.
function Run:accuracy(net, theta)
  parallel.collective("accuracy", {theta = theta})
  return self:accuracy_here(net)
end

function Run:accuracy_here(net)
  return self.test:accuracy(net, self.s.test_count and {count = math.min(self.s.test_count, #self.test)} or nil)
end

-- L̂ ± SE of θ's network on the large fixed sample, kept by θ.
function Run:distance(theta)
  local key = table.concat(theta, ",")
  self.distances = self.distances or {}
  local d = self.distances[key]
  if not d then
    local cand <close> = self:apply(theta)
    d = {self.rescorer:evaluate(cand)}
    self.distances[key] = d
  end
  return d[1], d[2]
end

-- ---- where the search's time went ---------------------------------------------------------------

-- The parts of a search, from the engine's time accounts (boengine.timing): the evaluations' own
-- parts, then the optimizer's. The compile of oneDNN plans happens inside the forward passes (of
-- the candidates and of the reference) and is listed beside them, not added.
local TIME_PARTS = {
  {"objective.reference", "reference outputs"},
  {"compress.prepare", "factors (SVDs, once)"},
  {"compress.build", "candidate build"},
  {"objective.data", "inputs (decode, cache)"},
  {"objective.forward", "candidate forward"},
  {"objective.distance", "distance"},
  {"bo.fit", "GP fit"},
  {"bo.acquisition", "acquisition"},
}

-- {wall, evaluations, reference_images, pool, parts = {{key, label, seconds, calls}, ..., other}, compile, compiles}:
-- the accounts since `before`, over the search's wall time and the evaluations it made (Run:search)
function Run:time_split(before)
  local wall = self.search_seconds or 0
  local now, parts, sum = boengine.timing(), {}, 0
  local function delta(key)
    local a, b = now[key] or {seconds = 0, calls = 0}, before[key] or {seconds = 0, calls = 0}
    return a.seconds - b.seconds, a.calls - b.calls
  end
  for _, p in ipairs(TIME_PARTS) do
    local sec, calls = delta(p[1])
    parts[#parts + 1] = {key = p[1], label = p[2], seconds = sec, calls = calls}
    sum = sum + sec
  end
  parts[#parts + 1] = {key = "other", label = "other (journal, Lua, rounds)", seconds = math.max(0, wall - sum),
                       calls = 0}
  local compile, compiles = delta("nn.compile")
  return {wall = wall, evaluations = self.new_evaluations or 0, parts = parts, compile = compile, compiles = compiles,
          reference_images = self.estimator.known and self.estimator:known() or 0, pool = self.estimator:pool()}
end

function Run:write_time_split(t)
  local rows = {}
  for _, p in ipairs(t.parts) do
    rows[#rows + 1] = {p.label, p.seconds, t.wall > 0 and p.seconds / t.wall or 0, p.calls}
  end
  rows[#rows + 1] = {"(plan compiles, inside the forward passes)", t.compile, t.wall > 0 and t.compile / t.wall or 0,
                     t.compiles}
  rows[#rows + 1] = {"search", t.wall, 1, t.evaluations}
  self:table("time_split", string.format("where the search's time went (%d evaluations in this process)", t.evaluations),
             {"part", {name = "seconds", digits = 3}, {name = "share", digits = 3}, "calls"}, rows)
end

-- ---- outputs ------------------------------------------------------------------------------------

function Run:table(file, title, columns, rows)
  report.table{path = self.dir .. "/" .. file, title = self.name .. ": " .. title, columns = columns, rows = rows,
               provenance = self.provenance}
end

function Run:figure_path(what) return self.s.figures .. "/" .. self.name .. "_" .. what .. ".png" end

function Run:write_evaluations(history, rounds)
  local names = compress.names(self.families)
  local columns = {"evaluation", "round", "gamma"}
  for _, n in ipairs(names) do columns[#columns + 1] = "theta " .. n end
  for _, n in ipairs(names) do columns[#columns + 1] = "setting " .. n end
  for _, c in ipairs({"R", "R network", "FLOP ratio", "L", "SE", "y", "seconds"}) do columns[#columns + 1] = c end
  local rows = {}
  for k, rec in ipairs(history) do
    local info, round = rec.info, round_of(rounds, rec.i)
    -- by position: a cell may be nil (γ before γ₁ is known or for a baseline, an unknown SE), and a
    -- nil must leave its cell empty rather than shift the rest of the row
    local row, n = {rec.i, round.index, round.gamma}, 3
    local function put(v) n = n + 1; row[n] = v end
    for j = 1, #names do put(rec.x[j]) end
    for j = 1, #names do put(info.settings[j]) end
    local y = scalarize(info, round.gamma)
    for _, v in ipairs({"R", "R_net", "flops", "L", "se"}) do put(info[v]) end
    put(y)
    put(info.seconds)
    rows[k] = row
  end
  self:table("evaluations", "every evaluation", columns, rows)
end

local NET_COLUMNS = {"network", "R", "R network", "FLOP ratio", "L (large sample)", "SE", "top-1 accuracy"}
local function net_row(label, n)
  return {label, n.R, n.R_net, n.flops, n.L, n.se, n.accuracy}
end

function Run:write_summary(networks)
  local rows = {{"original", 1, 1, 1, 0, 0, self.original}}
  for _, n in ipairs(networks) do rows[#rows + 1] = net_row(n.label, n.net) end
  self:table("summary", "the chosen network against the original and the uniform baseline", NET_COLUMNS, rows)
  local chosen, lrows = networks[1].net, {}
  for k, l in ipairs(chosen.layers) do
    lrows[k] = {l.name, l.family, table.concat(l.shape, "x"), l.setting, l.params_ref, l.params, l.macs_ref, l.macs}
  end
  self:table("layers", "the chosen network, layer by layer",
             {"layer", "family", "shape", "setting", "parameters before", "parameters after", "MACs before",
              "MACs after"}, lrows)
end

-- The search's time split into the evaluations made by this process (apply + L̂) and the rest
-- (proposals, GP fits, acquisitions, projections); total: since the declaration started.
function Run:wall_times(history)
  local eval_s, n = 0, #history
  for k = n - (self.new_evaluations or 0) + 1, n do
    if history[k] and history[k].info.seconds then eval_s = eval_s + history[k].info.seconds end
  end
  local search = self.search_seconds or 0
  return {self.s.strategy, n, self.new_evaluations or 0, search, eval_s, math.max(0, search - eval_s),
          boengine.clock() - self.t_start}
end

function Run:write_convergence(history)
  local xs, ys, best = {}, {}, math.huge
  for k, rec in ipairs(history) do
    local y = scalarize(rec.info, self.final_gamma)
    best = math.min(best, y)
    xs[k], ys[k] = rec.i, best
  end
  report.plot{path = self:figure_path("convergence"), title = self.name .. ": convergence",
              xlabel = "evaluation",
              ylabel = self.final_gamma and string.format("best y = R + %s·L̂", fmt(self.final_gamma, 3))
                       or "best L̂ (function distance)",
              series = {{kind = "step", x = xs, y = ys, label = "best observed y"}},
              ylog = true, provenance = self.provenance}
end

function Run:write_tradeoff(history, networks)
  local R, L = {}, {}
  for k, rec in ipairs(history) do R[k], L[k] = rec.info.R, rec.info.L end
  local series = {{kind = "scatter", x = R, y = L, color = "grey", label = "evaluations (n = " .. self.s.samples .. ")"}}
  local markers = {"diamond", "square", "triangle", "circle"}
  for k, n in ipairs(networks) do
    if n.net.L then
      series[#series + 1] = {kind = "scatter", x = {n.net.R}, y = {n.net.L}, lo = {n.net.L - n.net.se},
                             hi = {n.net.L + n.net.se}, marker = markers[(k - 1) % #markers + 1],
                             label = n.label .. " (n = " .. self.s.rescore .. ")"}
    end
  end
  report.plot{path = self:figure_path("tradeoff"), title = self.name .. ": size against function distance",
              xlabel = "R, " .. self.ratio_text, ylabel = "function distance L̂", ylog = true, series = series,
              vlines = self.s.budget and {{at = self.s.budget, color = "black", style = "dashed", label = "budget"}} or nil,
              provenance = self.provenance}
end

function Run:write_rounds(rounds)
  local rows, xs, gammas, Rs = {}, {}, {}, {}
  for _, r in ipairs(rounds) do
    -- unscored rounds still show what was measured anyway (the last round's choice, often the chosen)
    local x = r.choice.x
    local n = (self.s.score_rounds or self.scores[table.concat(x, ",")]) and self:score(x) or self:describe(x)
    rows[#rows + 1] = {r.index, 1 / r.gamma, r.gamma, r.last, table.concat(n.settings, " "), n.R, n.L, n.se, n.accuracy}
    xs[#xs + 1], gammas[#gammas + 1], Rs[#Rs + 1] = r.index, 1 / r.gamma, n.R
  end
  self:table("rounds", "rounds of the Lagrangian minimax",
             {"round", "lambda", "gamma", "evaluations", "settings", "R", "L (large sample)", "SE", "top-1 accuracy"}, rows)
  report.figure{path = self:figure_path("rounds"), title = self.name .. ": the minimax, round by round",
                columns = 1, sharex = true, provenance = self.provenance, panels = {
    {ylabel = "multiplier λ = 1/γ", ylog = true,
     series = {{kind = "line", x = xs, y = gammas, marker = "circle", label = "λ of the round"}}},
    {xlabel = "round", ylabel = "R of the round's choice",
     series = {{kind = "line", x = xs, y = Rs, marker = "square", label = "R"}},
     hlines = {{at = self.s.budget, color = "vermillion", style = "dashed", label = "budget B"}}},
  }}
end

-- The front of a list of γ: each γ's choice beside the uniform baseline at the same R.
function Run:write_front(fronts)
  local rows, bx, by, ux, uy = {}, {}, {}, {}, {}
  for _, f in ipairs(fronts) do
    rows[#rows + 1] = {f.gamma, f.net.R, f.net.L, f.net.accuracy, f.uniform and f.uniform.R, f.uniform and f.uniform.L,
                       f.uniform and f.uniform.accuracy}
    bx[#bx + 1], by[#by + 1] = f.net.R, f.net.accuracy
    if f.uniform then ux[#ux + 1], uy[#uy + 1] = f.uniform.R, f.uniform.accuracy end
  end
  self:table("front", "the networks chosen for each gamma, and the uniform baseline at their ratio",
             {"gamma", "R", "L (large sample)", "top-1 accuracy", "uniform R", "uniform L", "uniform top-1 accuracy"}, rows)
  if not self.test then return end
  local order = {}
  for k = 1, #bx do order[k] = k end
  table.sort(order, function(a, b) return bx[a] < bx[b] end)
  local sx, sy = {}, {}
  for k, j in ipairs(order) do sx[k], sy[k] = bx[j], by[j] end
  local series = {{kind = "line", x = sx, y = sy, marker = "circle", label = "BO, one network per γ"}}
  if #ux > 0 then
    table.sort(ux)
    local ords, suy = {}, {}
    for k = 1, #fronts do if fronts[k].uniform then ords[#ords + 1] = fronts[k].uniform end end
    table.sort(ords, function(a, b) return a.R < b.R end)
    for k, u in ipairs(ords) do ux[k], suy[k] = u.R, u.accuracy end
    series[#series + 1] = {kind = "line", x = ux, y = suy, marker = "square", style = "dashed",
                           label = "uniform: one fraction in every layer"}
  end
  report.plot{path = self:figure_path("front"), title = self.name .. ": accuracy against size",
              xlabel = "R, " .. self.ratio_text, ylabel = "top-1 accuracy (test split)", series = series,
              hlines = self.original and {{at = self.original, color = "black", style = "dotted", label = "original network"}},
              provenance = self.provenance}
end

-- ---- the declaration's entry point --------------------------------------------------------------

local RATIO_TEXT = {params = "parameter ratio of the compressed layers", params_net = "parameter ratio of the network",
                    flops = "ratio of multiply-adds"}

local function input_error(e)
  if type(e) == "table" and (e.override or e.declaration) then fail("%s", e.message) end
  error(e, 0)
end

-- Runs a declaration; returns {name, chosen, uniform, original, history, rounds, fronts, settings}.
function experiment(decl)
  local script = boengine.script
  local args = {}
  if arg and arg[0] == script then for i = 1, #arg do args[i] = arg[i] end end
  local ok, overrides, flags = pcall(declare.parse_args, args)
  if not ok then input_error(overrides) end
  local suffix
  ok, decl, suffix = pcall(declare.apply_overrides, decl, overrides)
  if not ok then input_error(decl) end
  local checked
  ok, checked = pcall(declare.check, decl)
  if not ok then input_error(checked) end

  local t_start = boengine.clock()
  local root = project_root(script)
  local s, defaulted = declare.resolve(decl)
  local net, source = build_model(s, root)
  local families = build_families(s, net)
  s, defaulted = declare.resolve(s, {dim = compress.dim(families)}, defaulted)
  s.init = math.min(s.init, s.evaluations)
  local name = s.name or (basename(script) .. suffix)
  for _, k in ipairs({"results", "figures"}) do
    if not s[k] then s[k], defaulted[k] = (root == "." and "" or root .. "/") .. k, true end
  end
  local run = setmetatable({s = s, name = name, net = net, families = families, flags = flags,
                            dir = s.results .. "/" .. name, ratio_text = RATIO_TEXT[s.ratio], t_start = t_start,
                            scores = {}}, Run)
  run.provenance = {seed = s.seed, experiment = name}
  run.search_data, run.test = build_data(s, net)
  local estimator = s.objective == "fnorm" and objective.fnorm or objective.risk
  local reference = s.objective == "fnorm" and net or nil
  run.estimator = estimator{reference = reference, data = run.search_data, samples = s.samples, fixed = s.fixed,
                            seed = s.seed}
  if s.rescore > #run.search_data then
    run:log("rescore: %d fixed inputs asked, the data has %d: all of them", s.rescore, #run.search_data)
    s.rescore = #run.search_data
  end
  if s.rescore > 0 then
    run.rescorer = estimator{reference = reference, data = run.search_data, samples = s.rescore, fixed = true,
                             seed = s.seed + 1}
  end
  run.ends = run:round_ends(s.budget and s.rounds or type(s.gamma) == "table" and #s.gamma or 1)
  if parallel.rank > 0 then return run:serve() end -- rank 0 searches, writes and speaks for the run

  print(string.format("%s: %s; %d parameters searched (%s)", name, source, compress.dim(families),
                      table.concat(compress.names(families), ", ")))
  print("settings (defaults marked):")
  for _, line in ipairs(declare.format(s, defaulted)) do print(line) end
  mkdir(run.dir)
  mkdir(s.figures)
  local before = boengine.timing()
  local history, rounds = run:search()
  run.timing = run:time_split(before)
  return run:finish(history, rounds)
end

function Run:finish(history, rounds)
  local s = self.s
  self.original = self.test and s.original and self:accuracy(self.net) or nil
  local networks, fronts = {}, nil
  if s.budget and self.greedy_theta then
    -- greedy's network, filled towards the upper bounds until R reaches B from below
    self.final_gamma = nil
    local chosen = self:score(self:fill(self.greedy_theta, s.budget))
    chosen.i = "greedy"
    networks[1] = {label = "chosen", net = chosen}
  elseif s.budget then
    -- the evaluated networks within the budget ranked by L alone: BO by its posterior mean, a
    -- baseline (its points moved onto R = B, told y = L̂) by the L̂ it observed
    local mu
    if s.strategy == "bo" then
      self.opt:rescore(function(rec) return rec.info.L, rec.info.se end)
      local X = {}
      for k, rec in ipairs(history) do X[k] = rec.x end
      mu = self.opt:predict(X)
    else
      mu = observed_L(history)
    end
    local feasible = {}
    for k, rec in ipairs(history) do if rec.info.R <= s.budget then feasible[#feasible + 1] = k end end
    if #feasible == 0 then
      fail("no evaluated network is within the budget %g: raise 'evaluations', 'rounds' or the bounds", s.budget)
    end
    table.sort(feasible, function(a, b) return mu[a] < mu[b] or (mu[a] == mu[b] and a < b) end)
    -- filling the budget helps some networks more than others: the few most promising ones are
    -- filled and measured on the fixed sample, and the best of them is chosen
    local best, best_L, best_theta
    for c = 1, math.min(FINALISTS, #feasible) do
      local k = feasible[c]
      local theta = self:fill(history[k].x, s.budget)
      local L = self.rescorer and self:distance(theta) or mu[k]
      if not best_L or L < best_L then best, best_L, best_theta = k, L, theta end
    end
    self.final_gamma = rounds[#rounds].gamma -- nil for a baseline (one round, no γ)
    local chosen = self:score(best_theta)
    chosen.i = history[best].i
    networks[1] = {label = "chosen", net = chosen}
  else
    local gammas = type(s.gamma) == "table" and s.gamma or {s.gamma}
    fronts = {}
    for k, g in ipairs(gammas) do
      local rec = self:choose(#history, g)
      local n = self:score(rec.x)
      n.i = rec.i
      fronts[k] = {gamma = g, net = n}
    end
    self.final_gamma = gammas[#gammas]
    networks[1] = {label = "chosen", net = fronts[#fronts].net}
  end
  local chosen = networks[1].net
  if s.uniform then
    networks[2] = {label = "uniform", net = self:score(self:uniform(chosen.R))}
    for _, f in ipairs(fronts or {}) do f.uniform = self:score(self:uniform(f.net.R)) end
  end

  self:write_evaluations(history, rounds)
  if self.timing then self:write_time_split(self.timing) end
  self:write_summary(networks)
  if #history > 0 then -- (greedy with its score table cached evaluates nothing)
    self:write_convergence(history)
    self:write_tradeoff(history, networks)
  end
  if s.budget and s.strategy == "bo" then self:write_rounds(rounds) end
  self:table("timing", "wall time of the search (evaluations and the optimizer's own work) and of the run",
             {"strategy", "evaluations", "new evaluations", "search seconds", "evaluation seconds", "optimizer seconds",
              "total seconds"}, {self:wall_times(history)})
  if fronts and #fronts > 1 then self:write_front(fronts) end
  if s.save then
    local cand <close> = self:apply(chosen.theta)
    cand:save(self.dir .. "/model.safetensors")
  end

  print(string.format("chosen (evaluation %s): %s", tostring(chosen.i), table.concat(chosen.settings, ", ")))
  for _, n in ipairs(networks) do
    print(string.format("%-8s R %.4f (network %.4f, FLOPs %.4f), L %s ± %s on %d fixed inputs%s", n.label, n.net.R,
                        n.net.R_net, n.net.flops, fmt(n.net.L), fmt(n.net.se, 2), s.rescore,
                        n.net.accuracy and string.format(", top-1 %.4f", n.net.accuracy) or ""))
  end
  if self.original then print(string.format("original top-1 %.4f", self.original)) end
  local t = self.timing
  if t and t.evaluations > 0 then
    local short = {}
    for _, p in ipairs(t.parts) do
      if p.seconds >= 0.005 * t.wall then short[#short + 1] = string.format("%s %.1f s", p.label, p.seconds) end
    end
    print(string.format("search: %d evaluations in %.1f s (%s)", t.evaluations, t.wall, table.concat(short, ", ")))
  end
  print(string.format("outputs: %s/ and %s_*.png", self.dir, s.figures .. "/" .. self.name))
  return {name = self.name, chosen = chosen, uniform = networks[2] and networks[2].net, original = self.original,
          history = history, rounds = rounds, fronts = fronts, settings = s, new_evaluations = self.new_evaluations,
          timing = t, macs = compress.measure(self.net).macs,
          greedy = self.greedy_theta and {theta = self.greedy_theta, R = self.greedy_R, level = self.greedy_level,
                                          cache = self.greedy_cache} or nil}
end
