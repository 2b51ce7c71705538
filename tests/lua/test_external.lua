-- The external strategy's protocol (docs/experiments.md, "External drivers") against a driver in
-- plain sh (tests/lua/lib/external_driver.sh) through two named pipes, no Python: the space line,
-- the driver's answers evaluated and reported, the journal's evaluations replayed to a new driver on
-- resume, re-scored evaluations sent again, wrong answers (wrong length, NaN, outside the box, not an
-- integer, not JSON, an error) refused with one line naming the ask, a driver that exits early, no
-- driver at all, and a declaration run with strategy=external.
local tap = require "tap"
local files = require "files"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end
local driver = root .. "/tests/lua/lib/external_driver.sh"
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local read = files.read
local function write(path, text) local f = assert(io.open(path, "w")); f:write(text); f:close() end
local function lines(text) local t = {} for l in text:gmatch("[^\n]+") do t[#t + 1] = l end return t end

-- The run: bo.minimize with strategy external on [0, 1] x {0, ..., 4}, init 3, journaled; prints
-- "i x1 x2 y" per evaluation; "rescore" doubles every y afterwards and asks once more.
write(dir .. "/run.lua", [[
local iterations, journal, extra = tonumber(arg[1]), arg[2], arg[3]
local r = bo.minimize{f = function(x, i) return (x[1] - 0.3) ^ 2 + x[2] / 10, 0.01 end,
                      bounds = {{0, 1}, {0, 4}}, integer = {2}, init = 3, iterations = iterations,
                      strategy = "external", seed = 7, journal = journal}
for _, rec in ipairs(r.history) do print(string.format("%d %.17g %.17g %.17g", rec.i, rec.x[1], rec.x[2], rec.y)) end
if extra == "rescore" then
  r.optimizer:rescore(function(rec) return rec.y * 2, 0.02 end)
  r.optimizer:ask()
end
]])

-- Runs run.lua under the driver in MODE, its messages logged to LOG; returns ok, stdout, stderr.
local function external(mode, log, iterations, journal, extra)
  os.execute("rm -f " .. dir .. "/ask " .. dir .. "/answer; mkfifo " .. dir .. "/ask " .. dir .. "/answer")
  return tap.run(string.format("cd %s && (sh %s %s %s <ask >answer & BOENGINE_ASK_FD=3 BOENGINE_ANSWER_FD=4 %s "
                               .. "--quiet run.lua %d %s %s 3>ask 4<answer; rc=$?; wait; exit $rc)", dir, driver,
                               mode, log, bin, iterations, journal, extra or ""))
end

local function f(x1, x2) return (x1 - 0.3) ^ 2 + x2 / 10 end

-- 1. the space line, the answers evaluated, every evaluation reported
local journal, log = dir .. "/j.jsonl", dir .. "/log1"
local ok, out, err = external("good", log, 5, journal)
tap.ok(ok and err == "", "a run of 8 evaluations through the driver succeeds" .. (ok and "" or ": " .. err))
local hist = lines(out)
tap.is(#hist, 8, "8 evaluations")
local answered, evaluated = true, true
for k, l in ipairs(hist) do
  local i, x1, x2, y = l:match("^(%d+) (%S+) (%S+) (%S+)$")
  answered = answered and tonumber(i) == k and tonumber(x1) == tonumber("0." .. k) and tonumber(x2) == k % 5
  evaluated = evaluated and tonumber(y) == f(tonumber(x1), tonumber(x2))
end
tap.ok(answered, "every evaluation is at the point the driver answered")
tap.ok(evaluated, "and its y is f there")
local msgs = lines(read(log))
local space = msgs[1] or ""
tap.ok(space:find('"protocol":"boengine-external/1"', 1, true) and space:find('"d":2', 1, true)
       and space:find('"lower":[0,0]', 1, true) and space:find('"upper":[1,4]', 1, true)
       and space:find('"integer":[false,true]', 1, true) and space:find('"seed":7', 1, true)
       and space:find('"init":3', 1, true), "the first line is the space: " .. space)
local asks, reports, replayed = 0, 0, 0
for k = 2, #msgs do
  if msgs[k]:find('^{"ask":%d+}$') then asks = asks + 1 end
  if msgs[k]:find('"number":') then reports = reports + 1 end
  if msgs[k]:find('"replayed"', 1, true) then replayed = replayed + 1 end
end
tap.ok(asks == 8 and reports == 8 and replayed == 0, string.format("8 asks, 8 reports, none replayed (%d, %d, %d)",
                                                                      asks, reports, replayed))
tap.ok(msgs[2] == '{"ask":1}' and msgs[3]:find('^{"number":1,"x":%[0.1,1%],"y":')
       and msgs[3]:find('"se":0.01', 1, true),
       "ask 1, then evaluation 1 with its x, y and se: " .. tostring(msgs[3]))

-- 2. resume: a new driver hears the journal's 8 evaluations as replayed, then answers asks 9 to 11
log = dir .. "/log2"
ok, out, err = external("good", log, 8, journal)
tap.ok(ok and #lines(out) == 11, "the run resumes to 11 evaluations" .. (ok and "" or ": " .. err))
tap.is(table.concat(lines(out), "\n", 1, 8), table.concat(hist, "\n"), "the first 8 are the journal's")
msgs = lines(read(log))
replayed = 0
for k = 2, 9 do
  if msgs[k]:find('"number":' .. (k - 1) .. ',', 1, true) and msgs[k]:find('"replayed":true', 1, true) then
    replayed = replayed + 1
  end
end
tap.is(replayed, 8, "the driver hears evaluations 1 to 8 replayed, in order, after the space line")
tap.is(msgs[10], '{"ask":9}', "then it is asked for evaluation 9")

-- 3. re-scored evaluations are sent again with their new values before the next ask
log = dir .. "/log3"
ok, out, err = external("good", log, 8, journal, "rescore")
msgs = lines(read(log))
local rescored = 0
for _, m in ipairs(msgs) do
  if m:find('"rescored":true', 1, true) and m:find('"se":0.02', 1, true) then rescored = rescored + 1 end
end
tap.ok(ok and rescored == 11 and msgs[#msgs] == '{"ask":12}',
       string.format("after a re-scoring the driver hears the 11 new values, then ask 12 (%d)", rescored))

-- 4. wrong answers are refused with one line naming the ask and the fault; the journal keeps the
-- evaluations before, and a good driver resumes from them
local cases = {
  {"short", 'answer to ask 3: "x" has 1 numbers, expected 2'},
  {"nan", "answer to ask 3 is not one JSON object (JSON has no NaN or Infinity)"},
  {"outside", "answer to ask 3: x[1] = 1.5 is outside the bounds [0, 1]"},
  {"fraction", "answer to ask 3: x[2] = 1.5 must be an integer"},
  {"text", "answer to ask 3 is not one JSON object"},
  {"nul", "answer to ask 3 is not one JSON object"},
  {"error", "external driver: the sampler gave up"},
  {"exit", "external driver: it ended without answering ask 3"},
}
for _, case in ipairs(cases) do
  local j = dir .. "/" .. case[1] .. ".jsonl"
  ok, out, err = external(case[1], dir .. "/log-" .. case[1], 5, j)
  local one = err:match("^boengine: [^\n]*\n$")
  tap.ok(not ok and one and err:find(case[2], 1, true), case[1] .. ": refused in one line: " .. err:gsub("\n$", ""))
  tap.is(#lines(read(j)), 3, case[1] .. ": the journal holds its header and evaluations 1 and 2")
end
ok, out, err = external("good", dir .. "/log-again", 5, dir .. "/exit.jsonl")
local third = ok and lines(out)[3] or ""
local i3, a3, b3 = third:match("^(%d+) (%S+) (%S+) ")
tap.ok(ok and #lines(out) == 8 and tonumber(i3) == 3 and tonumber(a3) == 0.3 and tonumber(b3) == 3,
       "a good driver then resumes the run to 8, answering ask 3")

-- 5. no driver: the variables are required, and named
ok, out, err = tap.run("cd " .. dir .. " && env -u BOENGINE_ASK_FD -u BOENGINE_ANSWER_FD " .. bin
                       .. " --quiet run.lua 2 nodriver.jsonl")
tap.ok(not ok and err:find("strategy 'external' needs a driver: BOENGINE_ASK_FD and BOENGINE_ANSWER_FD", 1, true)
       and select(2, err:gsub("\n", "")) == 1, "without a driver: one line naming the variables: " .. err)
ok, out, err = tap.run("cd " .. dir .. " && BOENGINE_ASK_FD=9 BOENGINE_ANSWER_FD=0 " .. bin
                       .. " --quiet run.lua 2 closed.jsonl")
tap.ok(not ok and err:find("BOENGINE_ASK_FD=9 is not an open file descriptor", 1, true),
       "a descriptor that is not open is named: " .. err)

-- 6. a declaration accepts strategy=external and writes its usual outputs
os.execute("mkdir -p " .. dir .. "/p/experiments && cp " .. root .. "/experiments/fmnist_vgg_vh.lua " .. dir
           .. "/p/experiments/")
os.execute("rm -f " .. dir .. "/ask " .. dir .. "/answer; mkfifo " .. dir .. "/ask " .. dir .. "/answer")
ok, out, err = tap.run(string.format("cd %s/p && (sh %s good %s/log-decl <../ask >../answer & BOENGINE_ASK_FD=3 "
                                     .. "BOENGINE_ANSWER_FD=4 %s --quiet --threads 2 experiments/fmnist_vgg_vh.lua "
                                     .. "strategy=external evaluations=4 init=2 compress.1.bounds={0.1,1} rescore=100 "
                                     .. "test_count=200 uniform=false save=false 3>../ask 4<../answer; rc=$?; wait; "
                                     .. "exit $rc)", dir, driver, dir, bin))
tap.ok(ok, "fmnist_vgg_vh with strategy=external runs" .. (ok and "" or ": " .. err))
local name = "fmnist_vgg_vh-strategyexternal-evaluations4-init2-compress.1.bounds"
local rdir
for entry in io.popen("ls " .. dir .. "/p/results"):lines() do if entry:find(name, 1, true) then rdir = entry end end
local evals = rdir and files.csv(dir .. "/p/results/" .. rdir .. "/evaluations.csv")
tap.ok(evals and #evals == 4 and evals[1]["theta vh:features.0"] == 0.1 and evals[3]["theta vh:features.25"] == 0.3,
       "its evaluations table holds the driver's 4 points")
tap.ok(rdir and read(dir .. "/p/results/" .. rdir .. "/journal.jsonl"):find('"strategy":"external"', 1, true),
       "its journal records the strategy")

os.execute("rm -rf " .. dir)
tap.done()
