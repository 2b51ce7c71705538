-- Does the BO pay? The comparison of docs/baselines.md: on four problems under the budget R <= 0.25
-- (the declarations experiments/baselines_{vgg,mlp,resnet18,resnet50}.lua), BO with noisy EI,
-- corrected EI and EI against random search, a Sobol sequence, the uniform baseline, AIMET's greedy
-- per-layer selection and (collected, not run here) Optuna's TPE, over seeds and evaluation budgets.
-- Each run is a child `boengine DECL strategy=... seed=S evaluations=E` writing RESULTS/baselines/runs/
-- NAME/; its chosen network is re-scored on 2,000 fixed inputs and its top-1 measured on the whole
-- test split. One row per run is kept in RESULTS/baselines/runs.csv (with its convergence trace),
-- so that a run already there is skipped and the report is rebuilt from it:
-- RESULTS/baselines{,_paired}.{csv,md}, FIGURES/baselines_PROBLEM.png and FIGURES/baselines_summary.png.
--   boengine experiments/baselines.lua                            3 seeds, 30 and 60 evaluations
--   boengine experiments/baselines.lua seeds=10 'budgets={30,60,120}'                  the full study
--   boengine experiments/baselines.lua 'problems={"mlp"}' 'methods={"nei","random"}' seeds=1 'budgets={12}'
-- --fresh runs everything again (the rows, the runs' journals and greedy's score tables).
local declare = require "boengine.declare"

local o = declare.settings{
  seeds = 3,                                          -- seeds 1..seeds
  budgets = {30, 60},                                 -- evaluation counts
  problems = {"mlp", "vgg", "resnet18", "resnet50"},  -- experiments/baselines_PROBLEM.lua
  methods = {"nei", "ei_c", "ei", "random", "sobol", "uniform", "greedy", "tpe"},
  test_count = 0,                                     -- top-1 over the first N test images (0: all)
  tpe = false,                                        -- the TPE driver (scripts/tpe) that runs method tpe
  results = false, figures = false,
}

local BO = {nei = "BO, noisy EI", ei_c = "BO, corrected EI", ei = "BO, EI"}
local LABEL = {nei = BO.nei, ei_c = BO.ei_c, ei = BO.ei, random = "random search", sobol = "Sobol sequence",
               uniform = "uniform (1-D)", greedy = "greedy (AIMET)", tpe = "TPE (Optuna)"}
local PROBLEM = {vgg = "(a) VGG-11-BN, VH on 8 convolutions", resnet18 = "(b) ResNet-18, VH on 16 3×3 convolutions",
                 resnet50 = "(c) ResNet-50, SVD energy on 16 bottleneck 3×3", mlp = "(d) MLP, SVD on 3 linear layers"}
local B = 0.25 -- the declarations' budget

local function fail(fmt, ...) boengine.fail(string.format(fmt, ...)) end
for _, m in ipairs(o.methods) do if not LABEL[m] then fail("methods: unknown method %q", tostring(m)) end end
for _, p in ipairs(o.problems) do if not PROBLEM[p] then fail("problems: unknown problem %q", tostring(p)) end end
for _, e in ipairs(o.budgets) do
  if math.type(e) ~= "integer" or e < 2 then fail("budgets: evaluation counts must be integers >= 2, got %s", tostring(e)) end
end
if math.type(o.seeds) ~= "integer" or o.seeds < 1 then fail("seeds must be a positive integer, got %s", tostring(o.seeds)) end

local root = boengine.project
local prefix = root == "." and "" or root .. "/"
local out = o.results .. "/baselines"
local runs_dir = out .. "/runs"
local runs_path = out .. "/runs"
local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
os.execute("mkdir -p " .. sh(runs_dir) .. " " .. sh(o.figures))
local exe = arg[-1]
do local i = -1; while arg[i - 1] do i = i - 1 end; exe = arg[i] end

-- ---- reading what the runs wrote ----------------------------------------------------------------

local function read_csv(path) return (report.read(path)) end -- nil when missing

-- The run of a problem, method, seed and evaluation count: its overrides (which name it, as
-- experiment.lua forms names) and its evaluation count as run (uniform: 1; greedy: its table's).
local function overrides(problem, method, seed, evals)
  if BO[method] then return {"strategy=bo", "acquisition=" .. method, "seed=" .. seed, "evaluations=" .. evals} end
  if method == "uniform" then return {"strategy=uniform", "seed=" .. seed, "evaluations=1"} end
  if method == "greedy" then return {"strategy=greedy", "seed=" .. seed} end
  if method == "tpe" then return {"strategy=external", "seed=" .. seed, "evaluations=" .. evals} end
  return {"strategy=" .. method, "seed=" .. seed, "evaluations=" .. evals}
end

local function run_name(problem, ov)
  local parts = {}
  for _, a in ipairs(ov) do parts[#parts + 1] = (a:gsub("=", "")) end
  return "baselines_" .. problem .. "-" .. table.concat(parts, "-")
end

-- The row of a finished run from its folder: the chosen network, the timing, the convergence trace
-- (the lowest L̂ among the evaluations within the budget so far, "-" before the first).
local function collect(dir)
  local summary = read_csv(dir .. "/summary.csv")
  if not summary then return nil end
  local chosen
  for _, r in ipairs(summary) do if r.network == "chosen" then chosen = r end end
  if not chosen then return nil end
  local timing = (read_csv(dir .. "/timing.csv") or {})[1] or {}
  local trace, best = {}, math.huge
  for k, e in ipairs(read_csv(dir .. "/evaluations.csv") or {}) do
    if type(e.R) == "number" and type(e.L) == "number" and e.R <= B then best = math.min(best, e.L) end
    trace[k] = best < math.huge and string.format("%.6g", best) or "-"
  end
  return {R = chosen.R, L = chosen["L (large sample)"], SE = chosen.SE, accuracy = chosen["top-1 accuracy"],
          evaluations = timing.evaluations, search = timing["search seconds"],
          optimizer = timing["optimizer seconds"], trace = table.concat(trace, " ")}
end

-- ---- the runs -----------------------------------------------------------------------------------

local COLUMNS = {"problem", "method", "seed", "budget", "name", "status", "evaluations", "R", "L", "SE", "accuracy",
                 "search seconds", "optimizer seconds", "wall seconds", "trace"}
local rows, index = {}, {}
local function key(r) return table.concat({r.problem, r.method, r.seed, r.budget}, "/") end
if boengine.fresh then
  os.remove(runs_path .. ".csv")
  os.execute("rm -rf " .. sh(runs_dir .. "/greedy_scores"))
end
for _, r in ipairs(read_csv(runs_path .. ".csv") or {}) do
  if r.method ~= "tpe" or r.status == "ok" then rows[#rows + 1] = r; index[key(r)] = r end
end

local provenance = {seed = 1, experiment = "baselines"}
local function save_runs()
  local list = {}
  for k, r in ipairs(rows) do
    list[k] = {}
    for j, c in ipairs(COLUMNS) do list[k][j] = r[c] end
  end
  report.table{path = runs_path, title = "baselines: one row per run (the report is rebuilt from these)",
               columns = COLUMNS, rows = list, provenance = provenance}
end

-- seed by seed, so that a study cut short has every problem and method at its first seeds
local todo = {}
for seed = 1, o.seeds do
  for _, p in ipairs(o.problems) do
    for _, m in ipairs(o.methods) do
      -- uniform and greedy do not depend on the evaluation count: run once, listed under each
      local budgets = (m == "uniform" or m == "greedy") and {o.budgets[1]} or o.budgets
      for _, e in ipairs(budgets) do todo[#todo + 1] = {problem = p, method = m, seed = seed, budget = e} end
    end
  end
end

local tpe_missing = {}
local t_all = boengine.clock()
for n, t in ipairs(todo) do
  local ov = overrides(t.problem, t.method, t.seed, t.budget)
  local name = run_name(t.problem, ov)
  if t.method == "tpe" and not o.tpe and not index[key(t)] then
    -- collected: scripts/tpe DECL strategy=external seed=S evaluations=E writes results/NAME/
    local got = collect(o.results .. "/" .. name) or collect(runs_dir .. "/" .. name)
    if got then
      for k, v in pairs(t) do got[k] = v end
      got.name, got.status = name, "ok"
      rows[#rows + 1] = got
    else
      tpe_missing[#tpe_missing + 1] = name
    end
  elseif not index[key(t)] then
    local decl = prefix .. "experiments/baselines_" .. t.problem .. ".lua"
    -- TPE through its driver, which starts the engine itself with strategy=external (docs/experiments.md)
    local program = t.method == "tpe" and sh(prefix .. o.tpe) or sh(exe)
    local args = {program, "--quiet", boengine.fresh and "--fresh" or "", sh(decl)}
    for _, a in ipairs(ov) do args[#args + 1] = sh(a) end
    args[#args + 1] = sh("name=" .. name) -- as the overrides name it, test_count left out
    args[#args + 1] = "score_rounds=false original=false" -- the study reads the chosen network only
    args[#args + 1] = sh("results=" .. runs_dir)
    args[#args + 1] = sh("figures=" .. runs_dir .. "/figures")
    if o.test_count > 0 then args[#args + 1] = sh("test_count=" .. o.test_count) end
    io.stderr:write(string.format("baselines: [%d/%d] %s\n", n, #todo, name))
    local t0 = boengine.clock()
    local ok = os.execute(table.concat(args, " ") .. " > /dev/null")
    local wall = boengine.clock() - t0
    local got = ok and collect(runs_dir .. "/" .. name)
    if not got then
      -- kept as a failed run (e.g. BO found no network within the budget), counted in the report
      io.stderr:write(string.format("baselines: %s failed (run it alone: %s)\n", name, table.concat(args, " ")))
      got = {status = "failed"}
    end
    got.status = got.status or "ok"
    for k, v in pairs(t) do got[k] = v end
    got.name, got["wall seconds"] = name, wall
    got["search seconds"], got["optimizer seconds"] = got.search, got.optimizer
    rows[#rows + 1] = got
    index[key(t)] = got
    save_runs()
  end
end
for _, r in ipairs(rows) do
  r["search seconds"] = r["search seconds"] or r.search
  r["optimizer seconds"] = r["optimizer seconds"] or r.optimizer
end
save_runs()

-- ---- the report ---------------------------------------------------------------------------------

local function quantile(v, q)
  local s = {}
  for _, x in ipairs(v) do if type(x) == "number" and x == x then s[#s + 1] = x end end
  if #s == 0 then return nil end
  table.sort(s)
  local h = (#s - 1) * q + 1
  local lo = math.floor(h)
  return s[lo] + (h - lo) * ((s[math.min(lo + 1, #s)]) - s[lo])
end

-- whether a row counts for a problem, method and budget: seeds 1..seeds only (rows of later seeds,
-- a longer study under way, wait for a report that asks for them); uniform and greedy have one run
-- per seed, listed under every budget
local function counts(r, p, m, e)
  return r.problem == p and r.method == m and r.seed <= o.seeds and (r.budget == e or m == "uniform" or m == "greedy")
end

-- the finished rows of a problem, method and budget
local function select(p, m, e)
  local list = {}
  for _, r in ipairs(rows) do
    if counts(r, p, m, e) and r.status == "ok" then list[#list + 1] = r end
  end
  table.sort(list, function(a, b) return a.seed < b.seed end)
  return list
end

local function column(list, c)
  local v = {}
  for k, r in ipairs(list) do v[k] = r[c] end
  return v
end

-- wins: per problem, budget and seed, the method of lowest re-scored L̂ among those within the budget
local wins = {}
for _, p in ipairs(o.problems) do
  for _, e in ipairs(o.budgets) do
    for seed = 1, o.seeds do
      local best, best_m
      for _, m in ipairs(o.methods) do
        for _, r in ipairs(select(p, m, e)) do
          if r.seed == seed and type(r.L) == "number" and r.R <= B + 1e-3 and (not best or r.L < best) then
            best, best_m = r.L, m
          end
        end
      end
      if best_m then
        local k = p .. "/" .. e .. "/" .. best_m
        wins[k] = (wins[k] or 0) + 1
      end
    end
  end
end

local table_rows = {}
for _, p in ipairs(o.problems) do
  for _, e in ipairs(o.budgets) do
    for _, m in ipairs(o.methods) do
      local list = select(p, m, e)
      local failed = 0
      for _, r in ipairs(rows) do
        if r.problem == p and r.method == m and r.budget == e and r.status == "failed" and r.seed <= o.seeds then
          failed = failed + 1
        end
      end
      if #list > 0 then
        local L, R, A = column(list, "L"), column(list, "R"), column(list, "accuracy")
        table_rows[#table_rows + 1] = {
          p, e, LABEL[m], #list, quantile(column(list, "evaluations"), 0.5),
          quantile(L, 0.5), quantile(L, 0.25), quantile(L, 0.75),
          quantile(R, 0.5), quantile(R, 0.25), quantile(R, 0.75),
          quantile(A, 0.5), quantile(A, 0.25), quantile(A, 0.75),
          wins[p .. "/" .. e .. "/" .. m] or 0, failed,
          quantile(column(list, "search seconds"), 0.5), quantile(column(list, "optimizer seconds"), 0.5),
          quantile(column(list, "wall seconds"), 0.5)}
      elseif m == "tpe" then
        table_rows[#table_rows + 1] = {p, e, "tpe: not run (scripts/tpe)", 0}
      elseif failed > 0 then
        table_rows[#table_rows + 1] = {p, e, LABEL[m], 0, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 0, failed}
      end
    end
  end
end
report.table{path = o.results .. "/baselines",
             title = string.format("baselines at R <= %g: the chosen network re-scored on 2000 fixed inputs (L), its R and "
                                   .. "top-1, median and interquartile range over seeds 1..%d; wins: seeds where the method "
                                   .. "had the lowest L within the budget; seconds: median search (evaluations and the "
                                   .. "optimizer), the optimizer alone, and the whole run", B, o.seeds),
             -- (seeds: how many of them had finished; see docs/baselines.md)
             columns = {"problem", "budget", "method", "seeds", "evaluations",
                        {name = "L median", digits = 4}, {name = "L q25", digits = 4}, {name = "L q75", digits = 4},
                        {name = "R median", digits = 4}, {name = "R q25", digits = 4}, {name = "R q75", digits = 4},
                        {name = "top-1 median", digits = 4}, {name = "top-1 q25", digits = 4},
                        {name = "top-1 q75", digits = 4}, "wins", "failed",
                        {name = "search s", digits = 3}, {name = "optimizer s", digits = 3},
                        {name = "wall s", digits = 3}},
             rows = table_rows, provenance = provenance}

-- paired by seed: the reference method (noisy EI, else the first listed) against each other one.
-- A seed counts where both ran; a failed run (no network within the budget) loses to one that
-- found a network. The sign test's two-sided p-value leaves ties out: with 10 seeds, 9 or 10
-- wins of one side are needed for p < 0.05.
local function sign_test(w, l)
  local n, k = w + l, math.min(w, l)
  if n == 0 then return nil end
  local tail, c = 0, 1 -- c = C(n, i)
  for i = 0, k do
    tail = tail + c
    c = c * (n - i) / (i + 1)
  end
  return math.min(1, 2 * tail / 2 ^ n)
end
local ref = o.methods[1]
for _, m in ipairs(o.methods) do if m == "nei" then ref = m end end
local function by_seed(p, m, e)
  local t = {}
  for _, r in ipairs(rows) do
    if counts(r, p, m, e) then t[r.seed] = r.status == "ok" and type(r.L) == "number" and r.L or math.huge end
  end
  return t
end
local paired = {}
for _, p in ipairs(o.problems) do
  for _, e in ipairs(o.budgets) do
    local a = by_seed(p, ref, e)
    for _, m in ipairs(o.methods) do
      if m ~= ref then
        local b, w, l, ties, ratios = by_seed(p, m, e), 0, 0, 0, {}
        for seed, La in pairs(a) do
          local Lb = b[seed]
          if Lb then
            if La < Lb then w = w + 1 elseif Lb < La then l = l + 1 else ties = ties + 1 end
            if La < math.huge and Lb < math.huge and La > 0 then ratios[#ratios + 1] = Lb / La end
          end
        end
        if w + l + ties > 0 then
          paired[#paired + 1] = {p, e, LABEL[m], w + l + ties, w, l, ties, quantile(ratios, 0.5), sign_test(w, l)}
        end
      end
    end
  end
end
report.table{path = o.results .. "/baselines_paired",
             title = string.format("baselines at R <= %g, paired by seed: %s against each method (the re-scored L of "
                                   .. "the chosen networks; a failed run loses); p: two-sided sign test, ties left out",
                                   B, LABEL[ref]),
             columns = {"problem", "budget", "method", "seeds", LABEL[ref] .. " lower", "method lower", "ties",
                        {name = "median L ratio (method / " .. LABEL[ref] .. ")", digits = 4},
                        {name = "sign test p", digits = 3}},
             rows = paired, provenance = provenance}

-- convergence per problem, at the largest budget: the lowest L̂ (n = 50) among the evaluations
-- within the budget so far, median over seeds and the band between the quartiles; uniform and greedy
-- as lines at their re-scored L̂
local E = o.budgets[#o.budgets]
local colors = {nei = "blue", ei_c = "sky", ei = "green", random = "vermillion", sobol = "orange",
                tpe = "purple", uniform = "black", greedy = "grey"}
for _, p in ipairs(o.problems) do
  local series, hlines, nseeds = {}, {}, 0
  for _, m in ipairs(o.methods) do
    local list = select(p, m, E)
    nseeds = math.max(nseeds, #list)
    if #list > 0 and (m == "uniform" or m == "greedy") then
      local L = quantile(column(list, "L"), 0.5)
      local n = math.floor(quantile(column(list, "evaluations"), 0.5) + 0.5)
      hlines[#hlines + 1] = {at = L, color = colors[m], style = m == "greedy" and "dashed" or "dotted",
                             label = string.format("%s, %d ev.: median L̂ re-scored", LABEL[m], n)}
    elseif #list > 0 then
      local traces = {}
      for k, r in ipairs(list) do
        traces[k] = {}
        for v in tostring(r.trace or ""):gmatch("%S+") do traces[k][#traces[k] + 1] = tonumber(v) or math.huge end
      end
      local xs, med, lo, hi = {}, {}, {}, {}
      for i = 1, E do
        local at = {}
        for k = 1, #traces do at[k] = traces[k][i] or math.huge end
        local q50, q25, q75 = quantile(at, 0.5), quantile(at, 0.25), quantile(at, 0.75)
        if q50 and q75 and q75 < math.huge then
          xs[#xs + 1], med[#med + 1], lo[#lo + 1], hi[#hi + 1] = i, q50, q25, q75
        end
      end
      if #xs > 1 then
        series[#series + 1] = {kind = "band", x = xs, lo = lo, hi = hi, color = colors[m]}
        series[#series + 1] = {kind = "step", x = xs, y = med, color = colors[m], label = LABEL[m]}
      end
    end
  end
  if #series > 0 then
    report.plot{path = o.figures .. "/baselines_" .. p .. ".png",
                title = string.format("%s, R ≤ %g, %d seed%s", PROBLEM[p], B, nseeds, nseeds == 1 and "" or "s"),
                xlabel = string.format("evaluation (of %d; median over seeds, band: quartiles)", E),
                ylabel = "lowest L̂ within the budget (n = 50)", ylog = true,
                series = series, hlines = hlines, legend = "outside", width = 1120, provenance = provenance}
  end
end

-- the summary: per problem, the chosen networks' re-scored L̂ against the evaluation budget, median
-- and quartiles over seeds per method (offset sideways so that the bars do not hide each other);
-- uniform and greedy, whose cost does not depend on the budget, as lines
local panels = {}
local searched = {}
for _, m in ipairs(o.methods) do if m ~= "uniform" and m ~= "greedy" then searched[#searched + 1] = m end end
local order = {}
for _, p in ipairs(o.problems) do order[#order + 1] = p end
table.sort(order, function(a, b) return PROBLEM[a] < PROBLEM[b] end) -- (a) to (d)
local legend_at = order[#order] -- the last panel (the MLP's in the full study has room for it)
for _, p in ipairs(order) do
  local series, hlines = {}, {}
  for _, m in ipairs(o.methods) do
    if m == "uniform" or m == "greedy" then
      local list = select(p, m, o.budgets[1])
      if #list > 0 then
        hlines[#hlines + 1] = {at = quantile(column(list, "L"), 0.5), color = colors[m],
                               style = m == "greedy" and "dashed" or "dotted",
                               label = p == legend_at and LABEL[m] or nil}
      end
    else
      local xs, med, lo, hi = {}, {}, {}, {}
      local j = 0
      for i, s in ipairs(searched) do if s == m then j = i end end
      for _, e in ipairs(o.budgets) do
        local L = column(select(p, m, e), "L")
        if #L > 0 then
          xs[#xs + 1] = e + 1.5 * (j - (#searched + 1) / 2)
          med[#med + 1], lo[#lo + 1], hi[#hi + 1] = quantile(L, 0.5), quantile(L, 0.25), quantile(L, 0.75)
        end
      end
      if #xs > 0 then
        series[#series + 1] = {kind = "line", x = xs, y = med, color = colors[m], width = 1}
        series[#series + 1] = {kind = "scatter", x = xs, y = med, lo = lo, hi = hi, color = colors[m],
                               label = p == legend_at and LABEL[m] or nil}
      end
    end
  end
  if #series > 0 then
    panels[#panels + 1] = {title = PROBLEM[p], xlabel = "evaluation budget",
                           ylabel = "re-scored L̂ of the chosen network",
                           ylog = true, series = series, hlines = hlines,
                           xlim = {0, o.budgets[#o.budgets] + 10}, legend = p == legend_at and "auto" or "none"}
  end
end
if #panels > 0 then
  report.figure{path = o.figures .. "/baselines_summary.png", columns = math.min(2, #panels), width = 1200,
                height = #panels > 2 and 920 or 500,
                title = string.format("The chosen networks at R ≤ %g: median and quartiles over seeds 1..%d", B,
                                      o.seeds),
                panels = panels, provenance = provenance}
end
for _, name in ipairs(tpe_missing) do io.stderr:write("baselines: tpe: not run (scripts/tpe): no ", name, "\n") end
print(string.format("baselines: %d runs in %s.csv; report %s/baselines{,_paired}.{csv,md}; "
                    .. "figures %s/baselines_*.png (%.0f s)",
                    #rows, runs_path, o.results, o.figures, boengine.clock() - t_all))
