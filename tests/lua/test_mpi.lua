-- Runs over MPI ranks (mpirun -n 2/3 --oversubscribe): the declaration runner, synchronous and
-- asynchronous over a budget's rounds, writes the journal and the outputs of a one-rank run of the
-- same q; ds:accuracy and est:prepare() split over the ranks give one rank's values; an
-- asynchronous run killed and started again ends with the journal of the uninterrupted one-rank
-- reference; bad input, an error on a worker and one inside a collective are reported on one line.
-- Skipped, saying why, where boengine was built without MPI or mpirun is missing.
local tap = require "tap"
local files = require "files"
local par = require "boengine.par"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end

if not par.compiled then
  print("1..0 # SKIP boengine was built without MPI (libopenmpi-dev was absent when CMake configured build/)")
  os.exit(0)
end
if not os.execute("command -v mpirun >/dev/null 2>&1") then
  print("1..0 # SKIP mpirun not found (Debian package openmpi-bin)")
  os.exit(0)
end

local p = io.popen("id -u")
local uid = p:read("l")
p:close()
local MPIRUN = "mpirun -q --oversubscribe" .. (uid == "0" and " --allow-run-as-root" or "")
-- Under AddressSanitizer (scripts/test --sanitize) the ranks run without leak detection: Open MPI's
-- components keep memory past MPI_Finalize and are unloaded by then, so their leaks cannot be named
-- in a suppression; memory errors are still caught, and the one-rank runs here keep leak detection.
local asan = os.getenv("ASAN_OPTIONS")
if asan then MPIRUN = "ASAN_OPTIONS=" .. asan .. ":detect_leaks=0 " .. MPIRUN end
local function mpirun(n) return MPIRUN .. " -n " .. n .. " " end

local dir = os.tmpname(); os.remove(dir)
os.execute("mkdir -p " .. dir .. "/experiments")
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "w")); f:write(text); f:close()
  return dir .. "/" .. name
end
local function in_dir(cmd) return tap.run("cd " .. dir .. " && " .. cmd) end

-- A journal without the wall-clock fields (the time of day and each evaluation's duration).
local function journal(path)
  local text = files.read(path)
  if not text then return nil end
  return (text:gsub('"time":[^,}]*', ""):gsub('"seconds":[^,}]*', ""))
end

-- 1. The declaration runner: mpirun -n 2 (q = 2, sync) against one rank with batch = 2.
write("experiments/mlp.lua", [[
experiment{model = "fmnist_mlp", compress = {{family = "svd", layers = "*"}}, gamma = 0.1, samples = 20,
           evaluations = 8, init = 4, rescore = 40, test_count = 301, save = false, uniform = false}
]])
local ok1, out1, err1 = in_dir(bin .. " --threads 1 experiments/mlp.lua batch=2 name=one")
local ok2, out2, err2 = in_dir(mpirun(2) .. bin .. " --threads 1 experiments/mlp.lua name=two")
tap.ok(ok1 and ok2, "the declaration runs on one rank (batch=2) and on two (mpirun -n 2)")
if not (ok1 and ok2) then tap.diag(err1 .. err2) end
tap.ok(err2:find("2 ranks, q = 2 (sync)", 1, true), "two ranks: q = 2 by default, synchronous")
local j1, j2 = journal(dir .. "/results/one/journal.jsonl"), journal(dir .. "/results/two/journal.jsonl")
local _, lines = (j2 or ""):gsub("\n", "")
tap.ok(j1 and j1 == j2 and lines == 9, "the same journal, evaluation for evaluation (" .. lines .. " lines)")
local function body(path) return ((files.read(path) or "x"):gsub("#[^\n]*\n", "")) end
local s1, s2 = body(dir .. "/results/one/summary.csv"), body(dir .. "/results/two/summary.csv")
tap.ok(s1 == s2 and s1:find("original", 1, true), "the same summary: chosen network, L on the fixed sample, top-1 "
       .. "accuracy measured over both ranks")
tap.ok(out2:find("chosen (evaluation", 1, true) and not err2:find("rank 1", 1, true), "rank 0 alone speaks for the run")

-- The budget's rounds, asynchronous on 3 ranks (2 workers, q = 2 by default): one rank's journal again.
write("experiments/mlpb.lua", [[
experiment{model = "fmnist_mlp", compress = {{family = "svd", layers = "*"}}, budget = 0.4, rounds = 2, samples = 20,
           evaluations = 10, init = 4, rescore = 40, test_count = 301, save = false, uniform = false}
]])
local oka1, _, erra1 = in_dir(bin .. " --threads 1 experiments/mlpb.lua mode=async batch=2 name=as1")
local oka3, _, erra3 = in_dir(mpirun(3) .. bin .. " --threads 1 experiments/mlpb.lua mode=async name=as3")
local ja1, ja3 = journal(dir .. "/results/as1/journal.jsonl"), journal(dir .. "/results/as3/journal.jsonl")
tap.ok(oka1 and oka3 and erra3:find("3 ranks, q = 2 (async)", 1, true) and ja1 and ja1 == ja3 and
       body(dir .. "/results/as1/summary.csv") == body(dir .. "/results/as3/summary.csv"),
       "a budget's rounds, asynchronous on 3 ranks: the journal and summary of one rank with q = 2")
if not (oka1 and oka3) then tap.diag(erra1 .. erra3) end

-- 2. ds:accuracy split over the ranks: the count of correct answers is summed, so the accuracy is
-- one rank's, for a count the ranks do not divide evenly.
write("acc.lua", [[
local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
local ds = data.fashion_mnist{split = "test"}
local all = ds:accuracy(net, {count = 1001, batch = 64})
local here = ds:accuracy(net, {count = 1001, batch = 100, ranks = false})
print(string.format("%.17g %.17g %d", all, here, boengine.ranks))
]])
local oka, outa = in_dir(bin .. " --threads 1 acc.lua")
local okb, outb = in_dir(mpirun(2) .. bin .. " --threads 1 acc.lua")
local a1, a1h = outa:match("^(%S+) (%S+) 1")
local b2, b2h = outb:match("^(%S+) (%S+) 2")
tap.ok(oka and okb and a1 and a1 == b2 and a1 == a1h and b2h == a1,
       "ds:accuracy over 2 ranks equals one rank's (" .. tostring(a1) .. ", " .. tostring(b2) .. ")")

-- The reference outputs of the pool, computed in shares by est:prepare() and shared: every rank
-- then evaluates without computing any (no time spent on reference outputs), with the values of one rank.
write("prep.lua", [[
local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
local fam = {compress.svd{net = net, layers = "*"}}
local est = objective.fnorm{reference = net, data = data.fashion_mnist{split = "test"}, samples = 50, pool = 999,
                            seed = 4}
est:prepare()
local cand <close> = compress.apply(net, fam, {0.2, 0.3, 0.5})
local out, reference = {}, 0
for k = 1, 4 do
  local L, se, info = est:evaluate(cand, {sample = k})
  out[#out + 1] = string.format("%.17g %.17g", L, se)
  reference = reference + info.time.reference
end
-- a lookup takes microseconds, a forward pass of the reference network milliseconds or more
print(table.concat(out, " ") .. " | " .. (reference < 0.01 and "none computed" or "computed"))
]])
local okp1, outp1 = in_dir(bin .. " --threads 1 prep.lua")
local okp2, outp2 = in_dir(mpirun(2) .. bin .. " --threads 1 prep.lua")
tap.ok(okp1 and okp2 and outp1 == outp2 and outp2:find("| none computed", 1, true),
       "est:prepare() over 2 ranks: each computes half the pool, all share it; the same L and SE as one rank")
if outp1 ~= outp2 then tap.diag(outp1 .. outp2) end

-- 3. Asynchronous, killed and resumed: the journal of the one-rank reference of the same q.
write("async.lua", [[
local parallel = require "boengine.parallel"
local journal, slow = arg[1], tonumber(arg[2])
local function f(x)
  local t0 = boengine.clock()
  while boengine.clock() - t0 < slow do end -- an evaluation that takes time
  return {y = bo.functions.hartmann6(x), seconds = boengine.clock() - t0}
end
if parallel.rank > 0 then
  parallel.serve{evaluate = function(t) return f(t.x) end}
  require("boengine.par").finish()
end
local opt = bo.optimizer{bounds = bo.functions.info("hartmann6").bounds, seed = 5, journal = journal, init = 6,
                         raw_samples = 64, fit_restarts = 0}
parallel.search{optimizer = opt, first = 1, upto = 16, init = 6, batch = 2, mode = "async",
                evaluate = function(x) return f(x) end,
                tell = function(x, i, r) opt:tell(x, r.y, 0.01, {y = r.y}) end}
print(opt:count())
]])
local okr = in_dir(bin .. " --threads 1 async.lua ref.jsonl 0")
local run = mpirun(3) .. bin .. " --threads 1 async.lua killed.jsonl 0.3"
os.execute("cd " .. dir .. " && (" .. run .. " >/dev/null 2>&1 & echo $! > pid)")
local pid = files.read(dir .. "/pid"):match("%d+")
local seen = 0
for _ = 1, 400 do -- up to 20 s: kill once half the evaluations are in the journal
  local _, n = (files.read(dir .. "/killed.jsonl") or ""):gsub("\n", "")
  seen = n - 1
  if seen >= 6 then break end
  os.execute("sleep 0.05")
end
os.execute("kill -TERM " .. pid .. " 2>/dev/null; sleep 0.5")
local _, n_killed = (files.read(dir .. "/killed.jsonl") or ""):gsub("\n", "")
tap.ok(okr and seen >= 6 and n_killed - 1 < 16, "an asynchronous run on 3 ranks killed after " .. (n_killed - 1)
       .. " of 16 evaluations")
local okk, outk, errk = in_dir(run)
tap.ok(okk and outk == "16\n", "started again, it resumes and ends")
local ref, killed = journal(dir .. "/ref.jsonl"), journal(dir .. "/killed.jsonl")
tap.ok(ref and ref == killed, "with the journal of the uninterrupted one-rank reference")
if ref ~= killed then tap.diag(errk) end

-- 4. Errors: bad input once, not once per rank; a worker's failure named by rank 0 and the run stopped.
local okx, _, errx = in_dir(mpirun(2) .. bin .. " experiments/mlp.lua budgte=3")
local _, nl = errx:gsub("\n", "")
tap.ok(not okx and nl == 1 and errx:find("unknown key 'budgte'", 1, true), "bad input on 2 ranks: one line")
if nl ~= 1 then tap.diag(errx) end
write("fails.lua", [[
local parallel = require "boengine.parallel"
if parallel.rank > 0 then
  parallel.serve{evaluate = function(t) if t.i == 3 then error("no memory left for evaluation 3", 0) end
                                        return {y = t.i} end}
  require("boengine.par").finish()
end
local opt = bo.optimizer{bounds = {{0, 1}}, init = 4, seed = 1}
parallel.search{optimizer = opt, first = 1, upto = 4, init = 4, batch = 2, mode = "async",
                evaluate = function(x, i) return {y = i} end, tell = function(x, i, r) opt:tell(x, r.y) end}
]])
local oky, _, erry = in_dir(mpirun(2) .. bin .. " fails.lua")
_, nl = erry:gsub("\n", "")
tap.ok(not oky and nl == 1 and erry:find("rank 1: no memory left for evaluation 3", 1, true),
       "an error on a worker: the run stops, one line names the rank")
if nl ~= 1 then tap.diag(erry) end

write("collective.lua", [[
local net = nn.load(boengine.root .. "/results/models/fmnist_mlp.safetensors")
local ds = data.fashion_mnist{split = "test"}
if boengine.rank == 1 then -- fails before its share of a collective measurement, and says so in the sum
  require("boengine.par").sum{0, 1}
  boengine.fail("no space left on the node's disk")
end
ds:accuracy(net, {count = 200})
]])
local okz, _, errz = in_dir(mpirun(2) .. bin .. " collective.lua")
_, nl = errz:gsub("\n", "")
tap.ok(not okz and nl == 1 and errz:find("rank 1: collective.lua:5: no space left", 1, true),
       "a rank failing in a collective accuracy: the run stops, one line names that rank and its error")
if nl ~= 1 then tap.diag(errz) end

os.execute("rm -rf " .. dir)
tap.done()
