-- The MPI benchmark's parts (run by scripts/bench-mpi, which assembles results/bench_mpi.md):
--
--   boengine scripts/bench_mpi.lua quality [seeds=10] [cseeds=4] [out=results/bench_mpi]
--     (a) regret of batch (sync) and asynchronous BO at q = 2, 4, 8 against sequential BO at the same
--     number of evaluations, over seeds, on noisy Branin, Hartmann-6 and Levy-4 and on compressing
--     the shipped Fashion-MNIST MLP (SVD of its three layers, y = R + 0.1 L). The proposals of a q
--     and a mode do not depend on the ranks (boengine.parallel), so one rank computes exactly what N
--     ranks would.
--   mpirun -n N boengine --threads 1 scripts/bench_mpi.lua busy [work=2e7] [evals=16]
--     (b) wall time of a search whose evaluations are `work` iterations of arithmetic (Branin, q = N)
--   boengine scripts/bench_mpi.lua sim seconds=FILE [tp=S] [out=...]
--     (c) N = 8 .. 64 ranks simulated, evaluation times drawn from FILE (one per line, measured):
--     utilization of the synchronous and the asynchronous mode
local parallel = require "boengine.parallel"
local what = arg[1] or "quality"
local opt = {seeds = 10, cseeds = 4, out = "results/bench_mpi", work = 20000000, evals = 16, tp = 0.05}
for i = 2, #arg do
  local k, v = arg[i]:match("^(%w+)=(.*)$")
  if not k then boengine.fail("bench_mpi: arguments are KEY=VALUE, got " .. arg[i]) end
  opt[k] = tonumber(v) or v
end

local function mean_se(v)
  local n, s = #v, 0
  for _, x in ipairs(v) do s = s + x end
  local m = s / n
  local ss = 0
  for _, x in ipairs(v) do ss = ss + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(ss / (n - 1) / n) or 0
end

local CONFIGS = {{mode = "sync", q = 1, label = "sequential"}, {mode = "sync", q = 2}, {mode = "sync", q = 4},
                 {mode = "sync", q = 8}, {mode = "async", q = 2}, {mode = "async", q = 4}, {mode = "async", q = 8}}
for _, c in ipairs(CONFIGS) do c.label = c.label or (c.mode .. " q=" .. c.q) end

-- One search of `evals` evaluations of f (x, i -> y, se) with q and mode on this rank alone; returns
-- the optimizer and the seconds spent proposing.
local function search(bounds, init, evals, seed, c, f, integer)
  local o = bo.optimizer{bounds = bounds, integer = integer, seed = seed, init = init}
  local t_eval = 0
  local t0 = boengine.clock()
  parallel.search{optimizer = o, first = 1, upto = evals, init = init, batch = c.q, mode = c.mode,
    evaluate = function(x, i)
      local t1 = boengine.clock()
      local y, se = f(x, i)
      t_eval = t_eval + boengine.clock() - t1
      return {y = y, se = se}
    end,
    tell = function(x, i, r) o:tell(x, r.y, r.se) end}
  return o, boengine.clock() - t0 - t_eval
end

if what == "quality" then
  local problems = {
    {name = "branin", f = "branin", d = 2, evals = 32, init = 6, sigma = 0.5},
    {name = "hartmann6", f = "hartmann6", d = 6, evals = 64, init = 12, sigma = 0.05},
    {name = "levy4", f = "levy", d = 4, evals = 48, init = 12, sigma = 0.5},
  }
  local rows = {}
  for _, p in ipairs(problems) do
    local info = bo.functions.info(p.f, p.d)
    local fn = bo.functions[p.f]
    for _, c in ipairs(CONFIGS) do
      local regrets, tprop = {}, 0
      for seed = 1, opt.seeds do
        local o, tp = search(info.bounds, p.init, p.evals, seed, c, function(x, i)
          return fn(x, p.sigma, seed * 100000 + i), p.sigma
        end)
        tprop = tprop + tp
        regrets[#regrets + 1] = fn(o:best().x) - info.minimum -- at the recommendation, noise-free
      end
      local m, se = mean_se(regrets)
      rows[#rows + 1] = {p.name, p.evals, c.label, opt.seeds, m, se, tprop / (opt.seeds * p.evals)}
      io.stderr:write(string.format("%-10s %-11s regret %.4g ± %.2g\n", p.name, c.label, m, se))
    end
  end
  -- the compression problem: the shipped MLP, SVD rank fractions of its three layers
  local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
  local families = {compress.svd{net = net, layers = "*"}}
  local ds = data.fashion_mnist{split = "train"}
  local fixed = objective.fnorm{reference = net, data = ds, samples = 1000, fixed = true, seed = 99}
  local gamma, evals = 0.1, 24
  local function y_fixed(theta)
    local cand <close>, i = compress.apply(net, families, theta)
    return i.params + gamma * fixed:evaluate(cand)
  end
  for _, c in ipairs(CONFIGS) do
    local ys, tprop = {}, 0
    for seed = 1, opt.cseeds do
      local est = objective.fnorm{reference = net, data = ds, samples = 20, seed = seed}
      local o, tp = search(compress.bounds(families), 6, evals, seed, c, function(x, i)
        local cand <close>, info = compress.apply(net, families, x)
        local L, se = est:evaluate(cand, {sample = i})
        return info.params + gamma * L, gamma * se
      end, compress.integer(families))
      tprop = tprop + tp
      ys[#ys + 1] = y_fixed(o:best().x)
    end
    local m, se = mean_se(ys)
    rows[#rows + 1] = {"mlp_svd (y on 1000 fixed inputs)", evals, c.label, opt.cseeds, m, se, tprop / (opt.cseeds * evals)}
    io.stderr:write(string.format("mlp_svd    %-11s y %.4g ± %.2g\n", c.label, m, se))
  end
  report.table{path = opt.out .. "_quality",
               title = "batch and asynchronous BO against sequential BO at the same number of evaluations",
               columns = {"problem", "evaluations", "proposals", "seeds", "mean regret (or y)", "SE",
                          "proposal seconds per evaluation"},
               rows = rows, provenance = {seed = 1, experiment = "bench_mpi quality"}}

elseif what == "busy" then
  -- every rank: the same search, rank 0 proposing, evaluations a fixed amount of arithmetic (work
  -- iterations: the same CPU time whatever the machine's load, unlike a loop that watches the clock)
  local function f(x)
    local t0, c0 = boengine.clock(), os.clock()
    local s = 0
    for i = 1, opt.work do s = s + (i % 7) * 0.5 end
    return {y = bo.functions.branin(x) + s * 0, seconds = boengine.clock() - t0, cpu = os.clock() - c0}
  end
  if parallel.rank > 0 then
    parallel.serve{evaluate = function(t) return f(t.x) end}
    require("boengine.par").finish()
  end
  local o = bo.optimizer{bounds = bo.functions.info("branin").bounds, seed = 1, init = 4}
  local t0 = boengine.clock()
  local cpu = 0
  local st = parallel.search{optimizer = o, first = 1, upto = opt.evals, init = 4, batch = parallel.ranks,
                             mode = "sync", evaluate = function(x) return f(x) end,
                             tell = function(x, i, r) o:tell(x, r.y); cpu = cpu + r.cpu end}
  print(string.format("ranks %d evaluations %d wall %.3f busy %.3f cpu %.3f", parallel.ranks, opt.evals,
                      boengine.clock() - t0, st.busy, cpu))

elseif what == "sim" then
  -- evaluation times: the measured ones, drawn with replacement
  local times = {}
  for line in io.lines(opt.seconds) do
    local v = tonumber(line)
    if v then times[#times + 1] = v end
  end
  if #times == 0 then boengine.fail("bench_mpi sim: no times in " .. tostring(opt.seconds)) end
  local tp = opt.tp
  local rows = {}
  for _, N in ipairs({8, 16, 32, 64}) do
    local K = 20 * N
    local function draw() return times[math.random(#times)] end
    -- sync: q = N, rank 0 proposes the batch's points one after the other, each sent out at once
    math.randomseed(N)
    local t, work = 0, 0
    for _ = 1, K // N do
      -- rank r > 0 gets the r-th point as soon as it is proposed; rank 0 the last, after proposing all
      local batch_end = 0
      for r = 1, N do
        local e = draw()
        work, batch_end = work + e, math.max(batch_end, r * tp + e)
      end
      t = t + batch_end
    end
    local u_sync = work / (N * t)
    -- async: q = N - 1 workers, rank 0 proposes one at a time; proposal k waits for 1 .. k - 2q
    math.randomseed(N)
    local q = N - 1
    local lag = 2 * q
    local finish, done_at = {}, {}  -- worker free times; completion time of evaluation k
    for w = 1, q do finish[w] = 0 end
    local told_upto, clock0, awork = 0, 0, 0
    local master = 0 -- when rank 0 is free to propose
    for k = 1, K do
      -- the earliest free worker
      local w = 1
      for j = 2, q do if finish[j] < finish[w] then w = j end end
      local ready = finish[w]
      -- evaluations 1 .. k - lag must be told (done) before proposal k
      local need = k - lag
      if need >= 1 then ready = math.max(ready, done_at[need] and (function()
        local m = 0
        for j = 1, need do m = math.max(m, done_at[j]) end
        return m
      end)() or 0) end
      local start = math.max(ready, master) + tp
      master = start
      local e = draw()
      awork = awork + e
      finish[w] = start + e
      done_at[k] = finish[w]
    end
    local tend = 0
    for w = 1, q do tend = math.max(tend, finish[w]) end
    local u_async = awork / (N * tend)
    rows[#rows + 1] = {N, K, #times, tp, u_sync, u_async, awork / (q * tend), t / tend}
    io.stderr:write(string.format("N %2d: sync %.3f async %.3f (workers %.3f)\n", N, u_sync, u_async, awork / (q * tend)))
  end
  report.table{path = opt.out .. "_sim",
               title = "simulated utilization of N ranks (evaluation times drawn from a measured run)",
               columns = {"ranks N", "evaluations", "measured times", "proposal seconds", "sync utilization",
                          "async utilization (all N ranks)", "async utilization (N - 1 workers)",
                          "async speed-up over sync (evaluations per second)"},
               rows = rows, provenance = {seed = 1, experiment = "bench_mpi sim"}}
else
  boengine.fail("bench_mpi: the part is quality, busy or sim, got " .. what)
end
