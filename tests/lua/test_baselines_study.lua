-- The baselines study's report (experiments/baselines.lua) from given rows of runs.csv: with every
-- run already there it starts no child and rebuilds results/baselines{,_paired}.{csv,md} and the
-- figures. Medians, quartiles, failed runs, wins and the paired sign test against numbers worked
-- out by hand for these rows.
local tap = require "tap"
local files = require "files"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end

local dir = os.tmpname(); os.remove(dir)
os.execute("mkdir -p " .. dir .. "/experiments " .. dir .. "/results/baselines && cp " .. root
           .. "/experiments/baselines.lua " .. dir .. "/experiments/")

-- MLP at 10 evaluations, seeds 1..4: noisy EI L = 1, 2, 3 and a failed run; random 2, 1.5, 4, 5;
-- greedy (one run per seed, listed under every budget) 0.5.
local COLUMNS = {"problem", "method", "seed", "budget", "name", "status", "evaluations", "R", "L", "SE", "accuracy",
                 "search seconds", "optimizer seconds", "wall seconds", "trace"}
local L = {nei = {1, 2, 3, false}, random = {2, 1.5, 4, 5}, greedy = {0.5, 0.5, 0.5, 0.5}}
local rows = {}
for _, m in ipairs({"nei", "random", "greedy"}) do
  for seed = 1, 4 do
    local l = L[m][seed]
    local trace = {}
    for i = 1, 10 do trace[i] = l and string.format("%g", l * (1 + (10 - i) / 10)) or "-" end
    rows[#rows + 1] = {"mlp", m, seed, 10, m .. seed, l and "ok" or "failed", 10, l and 0.25 or nil, l or nil,
                       l and 0.01 or nil, l and 0.9 or nil, 1, 0.1, 2, table.concat(trace, " ")}
  end
end
-- and a fifth seed of random search, which a report of seeds 1..4 leaves out
rows[#rows + 1] = {"mlp", "random", 5, 10, "random5", "ok", 10, 0.25, 100, 0.01, 0.9, 1, 0.1, 2, "100"}
report.table{path = dir .. "/results/baselines/runs", title = "given rows", columns = COLUMNS, rows = rows,
             provenance = {seed = 1, experiment = "test"}}

local ok, out, err = tap.run("cd " .. dir .. " && " .. bin .. " experiments/baselines.lua seeds=4 'budgets={10}'"
                             .. " 'problems={\"mlp\"}' 'methods={\"nei\",\"random\",\"greedy\"}'")
tap.ok(ok and out:find("13 runs in", 1, true), "the report is rebuilt from the 13 given rows")
if not ok then tap.diag(err) end
tap.ok(not err:find("baselines: [", 1, true) and not io.open(dir .. "/results/baselines/runs/nei1"),
       "no run is started when every row is there")

local t = files.csv(dir .. "/results/baselines.csv") or {}
local by = {}
for _, r in ipairs(t) do by[r.method] = r end
local nei, rnd, gr = by["BO, noisy EI"] or {}, by["random search"] or {}, by["greedy (AIMET)"] or {}
local function near(a, b) return type(a) == "number" and math.abs(a - b) < 1e-9 end
tap.ok(nei.seeds == 3 and nei.failed == 1 and near(nei["L median"], 2) and near(nei["L q25"], 1.5)
       and near(nei["L q75"], 2.5), "noisy EI: 3 seeds, 1 failed, L median 2, quartiles 1.5 and 2.5")
tap.ok(rnd.seeds == 4 and near(rnd["L median"], 3) and near(rnd["L q25"], 1.875) and near(rnd["L q75"], 4.25),
       "random: seeds 1..4 only, L median 3, quartiles 1.875 and 4.25 (linear between order statistics)")
tap.ok(gr.wins == 4 and nei.wins == 0 and rnd.wins == 0, "greedy has the lowest L on all 4 seeds")

local p = files.csv(dir .. "/results/baselines_paired.csv") or {}
local pr = {}
for _, r in ipairs(p) do pr[r.method] = r end
local vr, vg = pr["random search"] or {}, pr["greedy (AIMET)"] or {}
-- noisy EI against random: seeds 1 and 3 won, 2 lost, 4 failed (lost): 2-2, p = 2·(1+4+6)/16 > 1 → 1;
-- ratios of the finite pairs 2, 0.75, 4/3: median 4/3
tap.ok(vr.seeds == 4 and vr["BO, noisy EI lower"] == 2 and vr["method lower"] == 2 and vr.ties == 0
       and near(vr["sign test p"], 1) and near(vr["median L ratio (method / BO, noisy EI)"], 4 / 3),
       "paired against random: 2 won, 2 lost (the failed run), p 1, median ratio 4/3")
-- against greedy: every seed lost, p = 2/16
tap.ok(vg["BO, noisy EI lower"] == 0 and vg["method lower"] == 4 and near(vg["sign test p"], 0.125)
       and near(vg["median L ratio (method / BO, noisy EI)"], 0.25),
       "paired against greedy: 0 won, 4 lost, p = 0.125, median ratio 0.25")

for _, f in ipairs({"baselines_mlp", "baselines_summary"}) do
  local ok_png, info = pcall(report.inspect, dir .. "/figures/" .. f .. ".png")
  tap.ok(ok_png and info.width >= 400 and info.ink > 0.02 and info.text.seed, f .. ".png is written")
end

os.execute("rm -rf " .. dir)
tap.done()
