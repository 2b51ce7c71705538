-- The shipped experiment declarations, shortened, end to end in a scratch project: their outputs
-- exist, parse and hold what they claim; a second run resumes without evaluating again; a run
-- killed at random moments (kill -9) and started again ends with the outputs of an uninterrupted one.
local tap = require "tap"
local files = require "files"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end

local read, csv = files.read, files.csv

-- A scratch project with the experiment file in experiments/ (the shipped models are found in the
-- engine's repository).
local function project(file)
  local dir = os.tmpname(); os.remove(dir)
  os.execute("mkdir -p " .. dir .. "/experiments && cp " .. root .. "/experiments/" .. file .. " " .. dir .. "/experiments/")
  return dir
end

local function run(dir, file, args)
  return tap.run("cd " .. dir .. " && " .. bin .. " --threads 2 experiments/" .. file .. " " .. args)
end

local function png_ok(path, what)
  local ok, i = pcall(report.inspect, path)
  tap.ok(ok and i.format == "png" and i.width >= 400 and i.ink > 0.02 and i.colors > 8 and i.text.seed,
         what .. ": " .. path:match("[^/]*$") .. " decodes, is not blank and records its seed")
end

-- 1. vgg_gamma: the budget's minimax, shortened.
local ARGS = "evaluations=30 rounds=3 rescore=200 test_count=500"
local dir = project("vgg_gamma.lua")
local ok, out, err = run(dir, "vgg_gamma.lua", ARGS)
tap.ok(ok, "vgg_gamma runs 30 evaluations in 3 rounds")
if not ok then tap.diag(err) end
local name = "vgg_gamma-evaluations30-rounds3-rescore200-test_count500"
local res = dir .. "/results/" .. name
tap.ok(out:find("settings (defaults marked):", 1, true) and out:find("budget       = 0.25", 1, true)
       and out:find("acquisition  = \"nei\"   (default)", 1, true), "the resolved settings are printed, defaults marked")
local evals = csv(res .. "/evaluations.csv")
tap.is(evals and #evals, 30, "evaluations.csv has one row per evaluation")
local summary = csv(res .. "/summary.csv")
local chosen, uniform = summary and summary[2], summary and summary[3]
local Rc = chosen and chosen.R
tap.ok(Rc and Rc <= 0.25 and Rc >= 0.98 * 0.25, "the chosen network satisfies 0.98 B <= R <= B (" .. tostring(Rc) .. ")")
tap.ok(uniform and uniform.network == "uniform" and uniform.R <= Rc + 1e-9 and uniform.R > 0.9 * Rc,
       "the uniform baseline is scored at the same ratio")
tap.ok(chosen and chosen["top-1 accuracy"] > 0.1 and out:find("chosen   R ", 1, true) and out:find("uniform  R ", 1, true),
       "chosen and uniform are printed side by side")
local rounds = csv(res .. "/rounds.csv")
tap.is(rounds and #rounds, 3, "rounds.csv has one row per round")
local layers = csv(res .. "/layers.csv")
tap.is(layers and #layers, 8, "layers.csv has one row per compressed layer")
for _, t in ipairs({"evaluations", "summary", "rounds", "layers"}) do
  local md = read(res .. "/" .. t .. ".md")
  tap.ok(md and md:find("seed: 1", 1, true) and md:find("script_sha256: ", 1, true) and md:find("| ", 1, true),
         t .. ".md is a table with the run's provenance")
end
local journal = read(res .. "/journal.jsonl") or ""
local _, jlines = journal:gsub("\n", "")
tap.is(jlines, 31, "the journal holds its header and every evaluation")
for _, f in ipairs({"convergence", "tradeoff", "rounds"}) do png_ok(dir .. "/figures/" .. name .. "_" .. f .. ".png", "vgg_gamma") end
local net = io.open(res .. "/model.safetensors") and nn.load(res .. "/model.safetensors")
tap.ok(net and net:param_count() < nn.load(root .. "/results/models/fmnist_vgg11_bn.safetensors"):param_count(),
       "the chosen network is saved, smaller, and reloads with nn.load")

-- 2. Started again: resumes from the journal, evaluates nothing, writes the same outputs.
local first = {}
for _, t in ipairs({"summary.csv", "rounds.csv", "layers.csv", "model.safetensors"}) do first[t] = read(res .. "/" .. t) end
local ok2, out2, err2 = run(dir, "vgg_gamma.lua", ARGS)
tap.ok(ok2 and err2:find("resuming after 30 of 30 evaluations", 1, true), "a second run resumes from the journal")
local same = true
for t, text in pairs(first) do same = same and read(res .. "/" .. t) == text end
tap.ok(same and out2:match("chosen %(.-\n") == out:match("chosen %(.-\n"), "and ends with the same outputs")

-- 2b. score_rounds = false and original = false (what a study of many runs asks): the rounds keep
-- their R and settings, only the round choices that were measured anyway keep L and top-1; the
-- original network's row has no top-1; the chosen network is the same.
local ok5 = run(dir, "vgg_gamma.lua", ARGS .. " score_rounds=false original=false name=" .. name)
local r5 = csv(res .. "/rounds.csv") or {}
local kept, unscored = #r5 == #rounds, 0
for k, r in ipairs(r5) do
  kept = kept and rounds[k] and r.R == rounds[k].R and r.settings == rounds[k].settings
  if type(r["top-1 accuracy"]) ~= "number" then unscored = unscored + 1
  else kept = kept and r["top-1 accuracy"] == rounds[k]["top-1 accuracy"] end
end
local s5, columns = csv(res .. "/summary.csv")
local same_chosen = s5 and #s5 == #summary
for k = 2, same_chosen and #s5 or 0 do -- every network but the original, every column
  for _, c in ipairs(columns) do same_chosen = same_chosen and s5[k][c] == summary[k][c] end
end
tap.ok(ok5 and kept and unscored > 0 and same_chosen,
       "score_rounds=false: rounds keep R and settings, " .. unscored .. " of them unscored, the same chosen network")
tap.ok(s5 and s5[1].network == "original" and type(summary[1]["top-1 accuracy"]) == "number"
       and s5[1]["top-1 accuracy"] == "", "original=false: the original's row has no top-1 (an empty cell)")

-- 3. Killed at random moments and started again: the outputs of the uninterrupted run (but the
-- time each evaluation took).
local function without_seconds(path)
  local rows, header = csv(path)
  local t = {}
  for _, r in ipairs(rows or {}) do
    for _, h in ipairs(header) do if h ~= "seconds" then t[#t + 1] = tostring(r[h]) end end
    t[#t + 1] = "\n"
  end
  return table.concat(t, ",")
end
local killed = project("vgg_gamma.lua")
math.randomseed(os.time())
local kills = 0
for _ = 1, 3 do
  local delay = 0.5 + 2.5 * math.random()
  os.execute(string.format("cd %s && (%s --quiet --threads 2 experiments/vgg_gamma.lua %s >/dev/null 2>&1 & "
                           .. "pid=$!; sleep %.2f; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null)", killed, bin, ARGS, delay))
  kills = kills + 1
end
local ok3, _, err3 = run(killed, "vgg_gamma.lua", ARGS)
tap.ok(ok3, "after " .. kills .. " kills (-9) the run completes")
if not ok3 then tap.diag(err3) end
local kres = killed .. "/results/" .. name
tap.ok(without_seconds(kres .. "/evaluations.csv") == without_seconds(res .. "/evaluations.csv"),
       "its evaluations are those of the uninterrupted run")
tap.ok(read(kres .. "/summary.csv") == first["summary.csv"] and read(kres .. "/rounds.csv") == first["rounds.csv"]
       and read(kres .. "/model.safetensors") == first["model.safetensors"],
       "its summary, rounds and chosen network are identical")
local _, stale = tap.run("find " .. killed .. " -name '*.tmp.*'")
tap.is(stale, "", "no temporary file is left behind")

-- 4. A list of γ: one network per γ, and the front against the uniform baseline.
local fdir = project("fmnist_vgg_vh.lua")
local ok4, _, err4 = run(fdir, "fmnist_vgg_vh.lua", "gamma={0.003,0.03} evaluations=16 rescore=200 test_count=500")
tap.ok(ok4, "fmnist_vgg_vh runs with a list of gamma")
if not ok4 then tap.diag(err4) end
local fname
for entry in io.popen("ls " .. fdir .. "/results"):lines() do fname = entry end
local front = csv(fdir .. "/results/" .. fname .. "/front.csv")
tap.is(front and #front, 2, "front.csv has one network per gamma")
tap.ok(front and front[1].R <= front[2].R, "a larger gamma keeps more (R grows with gamma)")
png_ok(fdir .. "/figures/" .. fname .. "_front.png", "the front")

os.execute("rm -rf " .. dir .. " " .. killed .. " " .. fdir)
tap.done()
