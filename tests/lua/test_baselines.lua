-- The baselines (docs/baselines.md): the uniform strategy on the box's diagonal, random and Sobol
-- proposals moved onto R = B, greedy's binary search against an independent scan of its score table,
-- its cached table reused for another target without new evaluations, and the re-scored distance
-- of the chosen network against a direct computation of mean ‖f~(x) − f*(x)‖² on the same inputs.
local tap = require "tap"
local files = require "files"
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

-- ---- uniform: on the diagonal, integer dimensions in their cells, deterministic ----------------
local function proposals(seed)
  local o = bo.optimizer{bounds = {{0, 1}, {2, 10}, {-5, 5}}, integer = {false, true, false}, strategy = "uniform",
                         seed = seed}
  local out = {}
  for i = 1, 16 do
    local x = o:ask()
    out[i] = x
    o:tell(x, x[1])
  end
  return out
end
local a, b, c = proposals(3), proposals(3), proposals(4)
local diagonal, same, differ, inside = true, true, false, true
for i, x in ipairs(a) do
  local t1, t3 = x[1], (x[3] + 5) / 10
  diagonal = diagonal and math.abs(t1 - t3) < 1e-12 and x[2] == 2 + math.floor(t1 * 9)
  same = same and x[1] == b[i][1] and x[2] == b[i][2]
  differ = differ or x[1] ~= c[i][1]
  inside = inside and x[1] >= 0 and x[1] <= 1 and x[2] >= 2 and x[2] <= 10 and x[2] % 1 == 0
end
tap.ok(diagonal, "uniform: every coordinate at the same relative place, the integer one in its cell")
tap.ok(same and differ, "uniform: the same seed gives the same fractions, another seed others")
tap.ok(inside, "uniform: in the bounds, integers at integers")

-- ---- declarations on the shipped MLP ---------------------------------------------------------------
local decl = {
  model = "fmnist_mlp", compress = {{family = "svd", layers = "fc*", bounds = {0.05, 1}}},
  budget = 0.25, samples = 20, rescore = 200, test_count = 200, uniform = false, save = false,
  results = dir .. "/results", figures = dir .. "/figures",
}
local function with(t)
  local d = {}
  for k, v in pairs(decl) do d[k] = v end
  for k, v in pairs(t) do d[k] = v end
  return d
end

-- random and uniform under the budget: every evaluation moved onto R = B from below
local r = experiment(with{strategy = "random", evaluations = 6, init = 3, name = "random"})
local onto, differ2 = true, false
for _, rec in ipairs(r.history) do
  onto = onto and rec.info.R <= 0.25 and rec.info.R > 0.24
  differ2 = differ2 or rec.x[1] ~= r.history[1].x[1]
end
tap.ok(onto and differ2, "random under a budget: each proposal moved onto R = B (0.24 < R <= 0.25)")
tap.ok(r.chosen.R <= 0.25 and r.chosen.R > 0.249, "random: the chosen network fills the budget: R " .. r.chosen.R)
-- its evaluations table: no γ for a baseline, yet every cell under its own column
local ev, header = files.csv(dir .. "/results/random/evaluations.csv")
local aligned = ev and #ev == #r.history and #header == 3 + 2 * 3 + 7
for k, row in ipairs(ev or {}) do
  local info = r.history[k].info
  aligned = aligned and row.gamma == "" and row.R == info.R and row.L == info.L and row["theta svd:fc1"] == r.history[k].x[1]
end
tap.ok(aligned, "random: evaluations.csv holds each evaluation's θ, R and L in their columns (the γ cell empty)")
local u = experiment(with{strategy = "uniform", evaluations = 2, init = 1, name = "uniform"})
local x = u.history[1].x
tap.ok(math.abs(x[1] - x[2]) < 1e-12 and math.abs(x[2] - x[3]) < 1e-12 and u.history[1].info.R <= 0.25,
       "uniform under a budget: on the diagonal at R <= B")

-- greedy: the score table, the binary search, the cache
local g = experiment(with{strategy = "greedy", name = "greedy"})
tap.is(g.new_evaluations, 3 * 9, "greedy: layers x (N - 1) evaluations")
tap.ok(math.abs(g.chosen.R - 0.25) <= 0.001, "greedy: the network's ratio meets the target within 0.001: " .. g.chosen.R)
local scores = files.csv(g.greedy.cache)
tap.is(#scores, 27, "greedy: the score table is on disk, one row per layer and place")

-- an independent scan of every level: the lowest level whose configuration has R <= B
local bounds = compress.bounds(compress.svd{net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors"),
                                            layers = "fc*", bounds = {0.05, 1}})
local w_up, w_ref = {}, {}
do
  local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
  local fam = compress.svd{net = net, layers = "fc*", bounds = {0.05, 1}}
  local cand <close>, info = compress.apply(net, fam, {1, 1, 1})
  for j, l in ipairs(info.layers) do w_up[j], w_ref[j] = l.weights, l.weights_ref end
end
local function scan(target)
  local best_level, best_theta
  for _, lv in ipairs(scores) do
    local level, sum, ref, theta = lv.L, 0, 0, {}
    for j = 1, 3 do
      local pick
      for _, row in ipairs(scores) do
        if row.layer == j and row.L <= level and (not pick or row.k < pick.k) then pick = row end
      end
      theta[j] = pick and pick.theta or bounds[j][2]
      sum, ref = sum + (pick and pick.weights or w_up[j]), ref + w_ref[j]
    end
    if sum / ref <= target and (not best_level or level < best_level) then best_level, best_theta = level, theta end
  end
  return best_level, best_theta
end
local level, theta = scan(0.25)
tap.ok(level == g.greedy.level and theta[1] == g.greedy.theta[1] and theta[2] == g.greedy.theta[2]
       and theta[3] == g.greedy.theta[3], "greedy: the binary search finds the level an exhaustive scan finds")

-- another target: the cached table, no new evaluation
local g2 = experiment(with{strategy = "greedy", budget = 0.4, name = "greedy2"})
tap.is(g2.new_evaluations, 0, "greedy: another target reuses the cached score table (no new evaluations)")
local level2 = scan(0.4)
tap.ok(g2.greedy.level == level2 and g2.greedy.cache == g.greedy.cache and math.abs(g2.chosen.R - 0.4) <= 0.001,
       "greedy at 0.4: the scan's level, R " .. g2.chosen.R)

-- re-scoring: the chosen network's L ± SE on the 200 fixed inputs, computed directly
do
  local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
  local fam = compress.svd{net = net, layers = "fc*", bounds = {0.05, 1}}
  local ds = data.fashion_mnist{split = "train"}
  local d = objective.fnorm{reference = net, data = ds, samples = 200, fixed = true, seed = g.settings.seed + 1}
  local idx = d:indices(1)
  local xs = ds:get(idx)
  local cand <close> = compress.apply(net, fam, g.chosen.theta)
  local f, fs = cand:forward(xs):to_table(), net:forward(xs):to_table()
  local n, sum, sum2 = #f, 0, 0
  local di = {}
  for i = 1, n do
    local s = 0
    for k = 1, #f[i] do s = s + (f[i][k] - fs[i][k]) ^ 2 end
    di[i], sum = s, sum + s
  end
  local mean = sum / n
  for i = 1, n do sum2 = sum2 + (di[i] - mean) ^ 2 end
  local se = math.sqrt(sum2 / (n - 1) / n)
  tap.ok(n == 200 and math.abs(mean - g.chosen.L) <= 1e-4 * mean and math.abs(se - g.chosen.se) <= 1e-3 * se,
         string.format("re-scoring: L %.6g ± %.4g, directly %.6g ± %.4g", g.chosen.L, g.chosen.se, mean, se))
end

-- declarations: greedy needs a budget; the strategies by name
local nob = with{strategy = "greedy", gamma = 0.01}
nob.budget = nil
local ok, err = pcall(require("boengine.declare").check, nob)
tap.ok(not ok and err.message:find("strategy 'greedy' needs a 'budget'", 1, true), "greedy without a budget is refused")
ok, err = pcall(require("boengine.declare").check, with{strategy = "grid"})
tap.ok(not ok and err.message:find("'strategy' must be one of bo, external, greedy, random, sobol, uniform", 1, true),
       "an unknown strategy is refused, the known ones listed")

os.execute("rm -rf " .. dir)
tap.done()
