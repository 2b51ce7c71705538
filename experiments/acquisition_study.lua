-- The acquisition study (beyond the paper; docs/figures.md): how often each acquisition finds the
-- global minimum of a noisy test function, and how far its final recommendation is from it, over
-- many seeds, with random search as the floor; once with the initial design of the engine
-- (scrambled Sobol) and once with the design before (GSL's Sobol from its second point, "shifted").
--
--   scripts/boengine experiments/acquisition_study.lua [seeds=100] [branin_seeds=100]
--       [hartmann6_seeds=50] [jobs=2] [functions=sinone,branin,hartmann6] [designs=scrambled,shifted]
--       [results=PROJECT/results] [figures=PROJECT/figures]
--
-- Every run is bo.minimize with the problem's settings below, the GP told the honest standard error
-- (the noise's σ), its recommendation r.best (BO: the evaluated point of lowest posterior mean;
-- random search: of lowest observed y). The noise of evaluation i of seed s is drawn from the seed
-- 1000 s + i, the same for every acquisition. jobs = 2 splits the runs between two processes of the
-- engine (this script run again with worker=K/2), one core each.
--
-- PROJECT is the folder holding experiments/ (boengine.project), whatever the working directory.
-- Writes RESULTS/acquisition_study.{csv,md} (per function, method and design: success rate with a
-- 95% Wilson interval, final regret median and quartiles, time per run),
-- RESULTS/acquisition_study_design.{csv,md} (the two designs paired by seed) and
-- FIGURES/acquisition_regret.png, acquisition_success.png, acquisition_design.png.

local settings = {seeds = 100, branin_seeds = 100, hartmann6_seeds = 50, jobs = 2,
                  functions = "sinone,branin,hartmann6", designs = "scrambled,shifted",
                  results = boengine.project .. "/results", figures = boengine.project .. "/figures",
                  worker = "", out = ""}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or settings[k] == nil then
    local keys = {}
    for key in pairs(settings) do keys[#keys + 1] = key end
    table.sort(keys)
    error(string.format("acquisition_study: unknown argument '%s' (keys: %s)", a, table.concat(keys, ", ")), 0)
  end
  settings[k] = type(settings[k]) == "number" and assert(math.tointeger(tonumber(v)), k .. " must be an integer") or v
end

-- The problems. σ is about a tenth of f's standard deviation over the box for each (sinone 0.03 of
-- 0.25, Branin 5 of 51, Hartmann-6 0.05 of 0.38); the tolerances lie below the gap to the next-best
-- local minimum where there is one (sinone 0.051, Hartmann-6 0.119); docs/figures.md says why.
local problems = {
  sinone = {sigma = 0.03, init = 4, budget = 25, seeds = settings.seeds, label = "sinone (σ = 0.03)",
            criterion = "|x − x*| ≤ 0.01",
            success = function(x, regret, info) return math.abs(x[1] - info.argmin[1]) <= 0.01 end},
  branin = {sigma = 5, init = 6, budget = 40, seeds = settings.branin_seeds, label = "Branin (σ = 5)",
            criterion = "regret ≤ 0.5", success = function(x, regret) return regret <= 0.5 end},
  hartmann6 = {sigma = 0.05, init = 18, budget = 60, seeds = settings.hartmann6_seeds, label = "Hartmann-6 (σ = 0.05)",
               criterion = "regret ≤ 0.05", success = function(x, regret) return regret <= 0.05 end},
}
local ACQUISITIONS = {"nei", "ei_c", "ei", "pi", "lcb"}
local METHODS = {"nei", "ei_c", "ei", "pi", "lcb", "random"}
local COLORS = {nei = "blue", ei_c = "red", ei = "orange", pi = "purple", lcb = "green", random = "black"}

local functions, designs = {}, {}
for name in settings.functions:gmatch("[^,]+") do
  assert(problems[name], "acquisition_study: unknown function '" .. name .. "' (sinone, branin, hartmann6)")
  functions[#functions + 1] = name
end
for d in settings.designs:gmatch("[^,]+") do designs[#designs + 1] = d end

-- the runs, in an order that interleaves the costly ones, so that every worker gets its share
local units = {}
for _, fn in ipairs(functions) do
  for seed = 1, problems[fn].seeds do
    for _, design in ipairs(designs) do
      for _, acq in ipairs(ACQUISITIONS) do
        units[#units + 1] = {fn = fn, method = acq, design = design, seed = seed}
      end
    end
    units[#units + 1] = {fn = fn, method = "random", design = "", seed = seed}
  end
end

local function run(u)
  local p, info = problems[u.fn], bo.functions.info(u.fn)
  local f = bo.functions[u.fn]
  local curve, hits = {}, {}
  local t0 = boengine.clock()
  local r = bo.minimize{
    f = function(x, i) return f(u.fn == "sinone" and x[1] or x, p.sigma, 1000 * u.seed + i), p.sigma end,
    bounds = info.bounds, init = p.init, iterations = p.budget - p.init, seed = u.seed,
    strategy = u.method == "random" and "random" or "bo",
    acquisition = u.method ~= "random" and u.method or nil,
    design = u.design ~= "" and u.design or nil,
    callback = function(i, rec) -- the recommendation after each evaluation
      local x = rec.best.x
      curve[i] = f(u.fn == "sinone" and x[1] or x) - info.minimum
      hits[i] = p.success(x, curve[i], info)
    end,
  }
  return {fn = u.fn, method = u.method, design = u.design, seed = u.seed, regret = curve, hit = hits,
          x = r.best.x, seconds = boengine.clock() - t0}
end

-- progress on stderr (workers run --quiet to silence bo.minimize's lines; the variable keeps theirs)
local verbose = not boengine.quiet or os.getenv("BOENGINE_STUDY_PROGRESS") == "1"
local function progress(text)
  if verbose then io.stderr:write("acquisition_study: ", text, "\n") end
end

-- Runs the units k, k + jobs, k + 2 jobs, ... and returns their results.
local function run_share(k, jobs, label)
  local out, t0, last = {}, boengine.clock(), boengine.clock()
  local mine = 0
  for j = k, #units, jobs do mine = mine + 1 end
  for j = k, #units, jobs do
    out[#out + 1] = run(units[j])
    local now = boengine.clock()
    if now - last > 30 or #out == mine then
      last = now
      progress(string.format("%s%d/%d runs, %.0f s, ETA %.0f s", label, #out, mine, now - t0,
                             (now - t0) / #out * (mine - #out)))
    end
  end
  return out
end

local function write_results(path, results)
  local f = assert(io.open(path, "w"))
  f:write("return {\n")
  for _, r in ipairs(results) do
    local c, h, x = {}, {}, {}
    for i, v in ipairs(r.regret) do c[i], h[i] = string.format("%.17g", v), tostring(r.hit[i]) end
    for i, v in ipairs(r.x) do x[i] = string.format("%.17g", v) end
    f:write(string.format("{fn=%q,method=%q,design=%q,seed=%d,seconds=%.6g,x={%s},regret={%s},hit={%s}},\n", r.fn,
                          r.method, r.design, r.seed, r.seconds, table.concat(x, ","), table.concat(c, ","),
                          table.concat(h, ",")))
  end
  f:write("}\n")
  f:close()
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- a worker: its share of the runs into the file `out`
if settings.worker ~= "" then
  local k, jobs = settings.worker:match("^(%d+)/(%d+)$")
  k, jobs = assert(math.tointeger(tonumber(k)), "worker=K/JOBS"), math.tointeger(tonumber(jobs))
  write_results(settings.out, run_share(k, jobs, string.format("worker %d/%d: ", k, jobs)))
  return
end

local t0 = boengine.clock()
local results = {}
local jobs = math.max(1, settings.jobs)
progress(string.format("%d runs (%s), %d process%s", #units, table.concat(functions, ", "), jobs,
                       jobs > 1 and "es" or ""))
if jobs == 1 then
  results = run_share(1, 1, "")
else
  -- the engine that runs this script, and its script: the lowest index of arg is the program
  local lowest = -1
  while arg[lowest - 1] do lowest = lowest - 1 end
  local exe, script = arg[lowest], arg[0]
  local tmp = os.tmpname()
  local pipes, files = {}, {}
  for k = 1, jobs do
    files[k] = tmp .. "." .. k
    local argv = {shell_quote(exe), "--quiet", "--threads", "1", shell_quote(script)}
    for key, v in pairs(settings) do
      if key ~= "worker" and key ~= "out" and key ~= "jobs" then argv[#argv + 1] = shell_quote(key .. "=" .. v) end
    end
    argv[#argv + 1] = "worker=" .. k .. "/" .. jobs
    argv[#argv + 1] = "out=" .. shell_quote(files[k])
    if boengine.quiet then argv[#argv + 1] = "2>/dev/null" end
    pipes[k] = assert(io.popen((boengine.quiet and "" or "BOENGINE_STUDY_PROGRESS=1 ") .. table.concat(argv, " ")))
  end
  for k = 1, jobs do
    local ok, how, code = pipes[k]:close()
    if not ok then error(string.format("acquisition_study: worker %d/%d failed (%s %s)", k, jobs, how, code), 0) end
    for _, r in ipairs(dofile(files[k])) do results[#results + 1] = r end
    os.remove(files[k])
  end
  os.remove(tmp)
end
local elapsed = boengine.clock() - t0

-- ---- statistics

local function quantile(sorted, q) -- linear interpolation between order statistics (type 7)
  local n = #sorted
  if n == 0 then return 0 / 0 end
  local h = (n - 1) * q + 1
  local lo = math.floor(h)
  return sorted[lo] + (h - lo) * ((sorted[math.min(lo + 1, n)] or sorted[lo]) - sorted[lo])
end

local function wilson(k, n) -- 95% Wilson score interval of a binomial proportion
  if n == 0 then return 0 / 0, 0 / 0 end
  local z, p = 1.959963984540054, k / n
  local c = (p + z * z / (2 * n)) / (1 + z * z / n)
  local h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return k == 0 and 0 or c - h, k == n and 1 or c + h -- exact ends where rounding would miss them
end

local function sign_test(b, c) -- two-sided exact binomial test of b against c (p = 1/2)
  local n, m = b + c, math.min(b, c)
  if n == 0 then return 1 end
  local logc, s = 0, 0
  for i = 0, m do
    if i > 0 then logc = logc + math.log((n - i + 1) / i) end
    s = s + math.exp(logc - n * math.log(2))
  end
  return math.min(1, 2 * s)
end

local groups, order = {}, {}
for _, r in ipairs(results) do
  local key = r.fn .. "/" .. r.method .. "/" .. r.design
  if not groups[key] then
    groups[key] = {fn = r.fn, method = r.method, design = r.design, runs = {}}
    order[#order + 1] = key
  end
  groups[key].runs[#groups[key].runs + 1] = r
end
local function group(fn, method, design)
  return groups[fn .. "/" .. method .. "/" .. (method == "random" and "" or design)]
end

local rank = {}
for i, fn in ipairs(functions) do rank[fn] = i * 100 end
for i, m in ipairs(METHODS) do rank[m] = i * 10 end
for i, d in ipairs(designs) do rank[d] = i end
rank[""] = 0
table.sort(order, function(a, b)
  local ga, gb = groups[a], groups[b]
  return rank[ga.fn] + rank[ga.method] + rank[ga.design] < rank[gb.fn] + rank[gb.method] + rank[gb.design]
end)

local rows = {}
for _, key in ipairs(order) do
  local g, p = groups[key], problems[groups[key].fn]
  table.sort(g.runs, function(a, b) return a.seed < b.seed end)
  local finals, hits, secs = {}, 0, 0
  for _, r in ipairs(g.runs) do
    finals[#finals + 1] = r.regret[#r.regret]
    hits = hits + (r.hit[#r.hit] and 1 or 0)
    secs = secs + r.seconds
  end
  table.sort(finals)
  local lo, hi = wilson(hits, #g.runs)
  g.rate, g.lo, g.hi, g.median = hits / #g.runs, lo, hi, quantile(finals, 0.5)
  rows[#rows + 1] = {g.fn, p.sigma, p.init, p.budget, p.criterion, g.method, g.design ~= "" and g.design or "—",
                     #g.runs, hits, g.rate, lo, hi, quantile(finals, 0.25), g.median, quantile(finals, 0.75),
                     secs / #g.runs}
end
local provenance = {seeds = settings.seeds, branin_seeds = settings.branin_seeds,
                    hartmann6_seeds = settings.hartmann6_seeds, designs = settings.designs, seed = false}
report.table{
  path = settings.results .. "/acquisition_study",
  title = "Acquisitions on noisy test functions: success rate and final regret",
  columns = {"function", "sigma", "init", "evaluations", "success", "method", "design", "runs", "successes",
             {name = "success rate", digits = 2}, {name = "95% CI low", digits = 2}, {name = "95% CI high", digits = 2},
             {name = "regret Q1", digits = 2}, {name = "regret median", digits = 2}, {name = "regret Q3", digits = 2},
             {name = "s per run", digits = 2}},
  rows = rows, provenance = provenance,
}

-- the designs paired by seed: same noise, same acquisition, only the first init points differ
if #designs == 2 then
  local prow = {}
  for _, fn in ipairs(functions) do
    for _, acq in ipairs(ACQUISITIONS) do
      local a, b = group(fn, acq, designs[1]), group(fn, acq, designs[2])
      if a and b then
        local by = {}
        for _, r in ipairs(b.runs) do by[r.seed] = r end
        local only_a, only_b, lower_a, lower_b = 0, 0, 0, 0
        for _, r in ipairs(a.runs) do
          local s = by[r.seed]
          if s then
            local ha, hb = r.hit[#r.hit], s.hit[#s.hit]
            only_a = only_a + ((ha and not hb) and 1 or 0)
            only_b = only_b + ((hb and not ha) and 1 or 0)
            local ra, rb = r.regret[#r.regret], s.regret[#s.regret]
            lower_a = lower_a + (ra < rb and 1 or 0)
            lower_b = lower_b + (rb < ra and 1 or 0)
          end
        end
        prow[#prow + 1] = {fn, acq, #a.runs, a.rate, b.rate, only_a, only_b, sign_test(only_a, only_b), a.median,
                           b.median, lower_a, lower_b, sign_test(lower_a, lower_b)}
      end
    end
  end
  local d1, d2 = designs[1], designs[2]
  report.table{
    path = settings.results .. "/acquisition_study_design",
    title = string.format("Initial design %s against %s, paired by seed", d1, d2),
    columns = {"function", "acquisition", "seeds", {name = "success " .. d1, digits = 2},
               {name = "success " .. d2, digits = 2}, "only " .. d1 .. " succeeds", "only " .. d2 .. " succeeds",
               {name = "p (sign test)", digits = 2}, {name = "regret median " .. d1, digits = 2},
               {name = "regret median " .. d2, digits = 2}, "lower regret " .. d1, "lower regret " .. d2,
               {name = "p (regret sign test)", digits = 2}},
    rows = prow, provenance = provenance,
  }
end

-- ---- figures: per function, along the evaluations

local function curves(g, budget)
  local med, q1, q3, rate = {}, {}, {}, {}
  for i = 1, budget do
    local v, hits = {}, 0
    for _, r in ipairs(g.runs) do
      v[#v + 1] = r.regret[i]
      hits = hits + (r.hit[i] and 1 or 0)
    end
    table.sort(v)
    med[i], q1[i], q3[i], rate[i] = quantile(v, 0.5), quantile(v, 0.25), quantile(v, 0.75), hits / #g.runs
  end
  return med, q1, q3, rate
end

local function evals(n) local x = {} for i = 1, n do x[i] = i end return x end
local names = {nei = "noisy EI", ei_c = "corrected EI", ei = "EI", pi = "PI", lcb = "LCB", random = "random search"}
local main = designs[1]
local regret_panels, success_panels, design_panels = {}, {}, {}
for k, fn in ipairs(functions) do
  local p = problems[fn]
  local x = evals(p.budget)
  local rs, ss, ds = {}, {}, {}
  for _, m in ipairs(METHODS) do
    local g = group(fn, m, main)
    if g then
      local med, q1, q3, rate = curves(g, p.budget)
      local floor = 1e-6 -- a regret of 0 has no place on a log axis
      for i = 1, p.budget do
        med[i], q1[i], q3[i] = math.max(med[i], floor), math.max(q1[i], floor), math.max(q3[i], floor)
      end
      local label = k == #functions and names[m] or nil
      if m == "nei" or m == "ei_c" then
        rs[#rs + 1] = {kind = "band", x = x, lo = q1, hi = q3, color = COLORS[m]}
      end
      rs[#rs + 1] = {kind = "line", x = x, y = med, color = COLORS[m], label = label}
      ss[#ss + 1] = {kind = "line", x = x, y = rate, color = COLORS[m], label = label}
      local off = p.budget + 0.01 * p.budget * (#ss / 2) -- the intervals side by side past the end
      ss[#ss + 1] = {kind = "scatter", x = {off}, y = {g.rate}, lo = {g.lo}, hi = {g.hi}, color = COLORS[m]}
    end
  end
  local vline = {{at = p.init, color = "grey", style = "dotted"}}
  regret_panels[k] = {title = p.label, xlabel = "evaluations",
                      ylabel = k == 1 and "regret of the recommendation" or nil, ylog = true,
                      xlim = {1, p.budget}, series = rs, vlines = vline,
                      legend = k == #functions and "outside" or "none"}
  success_panels[k] = {title = p.label .. ": " .. p.criterion, xlabel = "evaluations",
                       ylabel = k == 1 and "share of runs successful" or nil, xlim = {1, p.budget * 1.07},
                       ylim = {0, 1.02}, series = ss, vlines = vline, legend = k == #functions and "outside" or "none"}
  if #designs == 2 then
    for _, m in ipairs{"nei", "ei_c", "ei"} do
      for j, d in ipairs(designs) do
        local g = group(fn, m, d)
        if g then
          local _, _, _, rate = curves(g, p.budget)
          ds[#ds + 1] = {kind = "line", x = x, y = rate, color = COLORS[m], style = j == 1 and "solid" or "dashed",
                         label = k == #functions and (m .. ", " .. d) or nil}
        end
      end
    end
    design_panels[k] = {title = p.label, xlabel = "evaluations", ylabel = k == 1 and "share of runs successful" or nil,
                        xlim = {1, p.budget}, ylim = {0, 1.02}, series = ds, vlines = vline,
                        legend = k == #functions and "outside" or "none"}
  end
end
local cols = #functions
report.figure{path = settings.figures .. "/acquisition_regret.png",
              title = "Regret of the recommendation: median over seeds (bands: quartiles of noisy EI and corrected EI)",
              columns = cols, panels = regret_panels, provenance = provenance, height = 460}
report.figure{path = settings.figures .. "/acquisition_success.png",
              title = "Share of runs whose recommendation meets the criterion (at the end: 95% Wilson interval)",
              columns = cols, panels = success_panels, provenance = provenance, height = 460}
if #designs == 2 then
  report.figure{path = settings.figures .. "/acquisition_design.png",
                title = string.format("Initial design: %s (solid) against %s (dashed), share of successful runs",
                                      designs[1], designs[2]),
                columns = cols, panels = design_panels, provenance = provenance, height = 460}
end

for _, row in ipairs(rows) do
  print(string.format("%-9s %-6s %-9s success %5.1f%% [%4.1f, %4.1f]  regret median %.3g", row[1], row[6], row[7],
                      100 * row[10], 100 * row[11], 100 * row[12], row[14]))
end
print(string.format("acquisition_study: %d runs in %.0f s with %d process%s", #results, elapsed, jobs,
                    jobs > 1 and "es" or ""))
