-- bo.optimizer (ask/tell), bo.minimize, the journal with kill-and-resume, and bo.functions.
local tap = require "tap"
local files = require "files"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local read = files.read
local function lines(path) local n = 0; for _ in io.lines(path) do n = n + 1 end; return n end

-- test functions
local info = bo.functions.info("sinone")
tap.near(bo.functions.sinone(info.argmin), info.minimum, 1e-9, "sinone at its minimizer")
tap.near(bo.functions.sinone(0.6330132), 0.0429263, 1e-7, "sinone's minimum 0.0429263 at 0.6330132 (docs/method.md)")
for _, name in ipairs{"branin", "hartmann6", "levy", "ackley"} do
  local fi = bo.functions.info(name, (name == "levy" or name == "ackley") and 3 or nil)
  tap.near(bo.functions[name](fi.argmin), fi.minimum, 1e-9, name .. " at its minimizer")
  tap.is(#fi.bounds, fi.dim, name .. " has bounds per dimension")
end
tap.is(bo.functions.sinone(0.3, 0.1, 5), bo.functions.sinone(0.3, 0.1, 5), "noise is a function of the seed")
tap.ok(bo.functions.sinone(0.3, 0.1, 5) ~= bo.functions.sinone(0.3, 0.1, 6), "another seed, another draw")
local s, n = 0, 2000
for i = 1, n do s = s + (bo.functions.sinone(0.3, 0.1, i) - bo.functions.sinone(0.3)) ^ 2 end
tap.near(math.sqrt(s / n), 0.1, 0.01, "the noise has the given standard deviation")
tap.dies("noise needs an integer seed", "noise without a seed is refused", bo.functions.sinone, 0.3, 0.1)
tap.dies("expected a list of 2 numbers", "branin needs two coordinates", bo.functions.branin, {1})
tap.dies("unknown test function 'rosen'", "an unknown function is refused", bo.functions.info, "rosen")
tap.dies("branin has dimension 2", "a fixed dimension cannot change", bo.functions.info, "branin", 3)

-- ask and tell
local opt = bo.optimizer{bounds = {{0, 1}, {-2, 2}}, init = 3, seed = 4}
tap.is(tostring(opt), "bo.optimizer(2 dimensions, 0 evaluations)", "tostring")
local x1 = opt:ask()
tap.is(#x1, 2, "ask gives a point")
tap.is(opt:ask()[1], x1[1], "ask is repeatable until tell")
local function quad(x) return (x[1] - 0.7) ^ 2 + (x[2] + 1) ^ 2 end
local rec = opt:tell(x1, quad(x1), 0.01, {note = "first"})
tap.is(rec.i, 1, "tell returns the record")
tap.is(rec.info.note, "first", "with its info")
for _ = 1, 9 do local x = opt:ask(); opt:tell(x, quad(x), 0.01) end
tap.is(opt:count(), 10, "count")
local best = opt:best()
tap.ok(quad(best.x) < 0.05, string.format("best after 10 evaluations: %.4f", quad(best.x)))
tap.ok(best.mu and best.sd and best.y, "best has y, mu and sd")
tap.is(#opt:history(), 10, "history")
local mu, var = opt:predict{best.x}
tap.near(mu[1], best.mu, 1e-9, "predict at the best point gives its posterior mean")
tap.ok(var[1] >= 0, "and a variance")
tap.is(#opt:acquisition{{0.5, 0}, {0.1, 1}}, 2, "acquisition values at points")
tap.ok(opt:model().lengthscale[2] > 0, "model() shows the fitted hyperparameters")
tap.dies("outside the bounds", "telling a point outside the bounds is refused", opt.tell, opt, {2, 0}, 1)
tap.dies("y must be a finite number", "telling a NaN is refused", opt.tell, opt, {0.5, 0}, 0 / 0)
tap.dies("standard error must be a finite number >= 0", "a negative se is refused", opt.tell, opt, {0.5, 0}, 1, -1)
tap.dies("expected a list of 2 numbers", "a point of the wrong size is refused", opt.tell, opt, {0.5}, 1)
tap.dies("info: a function cannot be stored", "info must be JSON-like", opt.tell, opt, {0.5, 0}, 1, 0, {f = print})

-- integer dimensions are asked at integers
local io_opt = bo.optimizer{bounds = {{0, 1}, {1, 64}}, integer = {2}, init = 3, seed = 2}
local ints = true
for _ = 1, 6 do
  local x = io_opt:ask()
  ints = ints and x[2] == math.floor(x[2])
  io_opt:tell(x, (x[1] - 0.5) ^ 2 + (x[2] - 17) ^ 2 / 100)
end
tap.ok(ints, "integer dimensions are asked at integers")

-- option errors
tap.dies("bo.optimizer: unknown key 'bound'", "unknown optimizer key", bo.optimizer, {bound = {{0, 1}}})
tap.dies("'bounds' is required", "bounds are required", bo.optimizer, {})
tap.dies("lower 1 is not below upper 0", "empty bounds are refused", bo.optimizer, {bounds = {{1, 0}}})
tap.dies("unknown acquisition 'qei'", "unknown acquisition", bo.optimizer, {bounds = {{0, 1}}, acquisition = "qei"})
tap.dies("needs integer bounds", "integer dimensions need integer bounds", bo.optimizer,
         {bounds = {{0, 1.5}}, integer = {1}})
tap.dies("unknown acquisition optimizer 'cmaes'", "unknown acquisition optimizer", bo.optimizer,
         {bounds = {{0, 1}}, optimizer = "cmaes"})
tap.dies("bo.minimize: unknown key 'iters'", "unknown minimize key", bo.minimize,
         {f = function() return 0 end, bounds = {{0, 1}}, iters = 3})
tap.dies("'f' must be a function", "f is required", bo.minimize, {bounds = {{0, 1}}})
tap.dies("f returned nil for evaluation 1", "f must return a number", bo.minimize,
         {f = function() end, bounds = {{0, 1}}, iterations = 1})
tap.dies("f's second result: the standard error", "f's se is checked", bo.minimize,
         {f = function() return 1, -1 end, bounds = {{0, 1}}, iterations = 1})

-- bo.minimize: noisy sinone; the callback sees every evaluation and can stop the run
local seen, frames = {}, 0
local r = bo.minimize{f = function(x, i) return bo.functions.sinone(x, 0.03, 100 + i), 0.03 end,
                      bounds = {{0, 1}}, init = 5, iterations = 20, acquisition = "nei", seed = 1,
                      callback = function(i, rc, o)
                        seen[#seen + 1] = i
                        assert(rc.best and rc.x and rc.y)
                        local a = o:acquisition{{0.1}, {0.5}, {0.9}}
                        if #a == 3 and a[1] >= 0 and o:count() == i then frames = frames + 1 end
                      end}
tap.is(#r.history, 25, "init + iterations evaluations")
tap.is(#seen, 25, "the callback ran once per evaluation")
tap.is(frames, 25, "the callback can read the acquisition of the optimizer")
tap.ok(math.abs(r.best.x[1] - 0.6330) <= 0.01, "noisy sinone: best x " .. r.best.x[1])
local stopped = bo.minimize{f = function(x) return bo.functions.sinone(x) end, bounds = {{0, 1}}, init = 3,
                            iterations = 10, callback = function(i) return i < 4 end}
tap.ok(stopped.stopped and #stopped.history == 4, "a callback returning false stops the run")

-- a journal in the same process: a second optimizer resumes the first one's evaluations
local jpath = dir .. "/same.jsonl"
local o1 = bo.optimizer{bounds = {{0, 1}}, init = 2, seed = 3, journal = jpath}
for _ = 1, 3 do local x = o1:ask(); o1:tell(x, bo.functions.sinone(x), 0, {k = 1}) end
local next1 = o1:ask()
o1:close()
local o2 = bo.optimizer{bounds = {{0, 1}}, init = 2, seed = 3, journal = jpath}
tap.is(o2:count(), 3, "a new optimizer on the journal holds its evaluations")
local header = io.open(jpath):read("l")
tap.ok(header:find('"engine":"' .. boengine.version .. '"', 1, true) and header:find('"commit":"' .. boengine.commit, 1, true)
       and header:find('"script_sha256":"' .. boengine.script_sha256 .. '"', 1, true),
       "the journal records the engine version, commit and the experiment file's hash")
tap.is(o2:history()[2].info.k, 1, "with their info")
tap.is(o2:ask()[1], next1[1], "and asks what the first would have asked")
o2:close()
tap.dies("written for other bounds", "a journal for other bounds is refused", bo.optimizer,
         {bounds = {{0, 2}}, journal = jpath})

-- kill and resume: a child run killed at evaluation k, then rerun, ends as an uninterrupted run
local child = dir .. "/child.lua"
local f = io.open(child, "w")
f:write([[
local journal, stop_at, how, out, acq = arg[1], tonumber(arg[2]), arg[3], arg[4], arg[5]
local calls = 0
local r = bo.minimize{
  f = function(x, i)
    if i == stop_at then
      if how == "exit" then os.exit(3) else error("evaluation failed") end
    end
    calls = calls + 1
    return bo.functions.branin(x, 0.5, 1000 + i), 0.5
  end,
  bounds = {{-5, 10}, {0, 15}}, init = 4, iterations = 8, acquisition = acq, seed = 5, journal = journal}
local o = io.open(out, "w")
for _, rec in ipairs(r.history) do
  o:write(string.format("%d %.17g %.17g %.17g\n", rec.i, rec.x[1], rec.x[2], rec.y))
end
o:write(string.format("best %d\n", r.best.i))
o:close()
print(calls)
]])
f:close()
local function run(journal, stop_at, how, out, acq)
  return tap.run(string.format("%s --quiet %s %s %d %s %s %s", bin, child, journal, stop_at, how, out, acq))
end
for _, case in ipairs{{"exit", "ei_c", 7}, {"error", "nei", 5}} do
  local how, acq, k = case[1], case[2], case[3]
  local ja, jb, oa, ob = dir .. "/a.jsonl", dir .. "/b.jsonl", dir .. "/a.out", dir .. "/b.out"
  os.remove(ja); os.remove(jb)
  local ok_a, calls_a = run(ja, 0, how, oa, acq)
  local ok_b1, _, err_b1 = run(jb, k, how, ob, acq)
  tap.ok(ok_a and tonumber(calls_a) == 12, how .. "/" .. acq .. ": the uninterrupted run makes 12 evaluations")
  tap.ok(not ok_b1, how .. "/" .. acq .. ": the interrupted run stops at evaluation " .. k)
  if how == "error" then tap.ok(err_b1:find("evaluation failed", 1, true), "and reports the error") end
  tap.is(lines(jb), 1 + k - 1, how .. ": its journal holds the header and the " .. (k - 1) .. " finished evaluations")
  local ok_b2, calls_b = run(jb, 0, how, ob, acq)
  tap.ok(ok_b2 and tonumber(calls_b) == 12 - (k - 1),
         how .. ": the rerun evaluates only the " .. (12 - (k - 1)) .. " missing points (" .. tostring(tonumber(calls_b)) .. ")")
  tap.ok(read(oa) and read(oa) == read(ob), how .. "/" .. acq .. ": the resumed run's history equals the uninterrupted run's")
  tap.is(lines(jb), 13, how .. ": the journal ends with 12 evaluations")
  local ok_b3, calls_b3 = run(jb, 0, how, ob, acq)
  tap.ok(ok_b3 and tonumber(calls_b3) == 0 and read(oa) == read(ob), how .. ": a finished run rerun evaluates nothing")
end

-- bad input in a script is one line naming the script's line and the key
local bad = dir .. "/bad.lua"
f = io.open(bad, "w")
f:write("\nbo.minimize{f = function(x) return x[1] end, bounds = {{0, 1}}, iters = 3}\n")
f:close()
local ok_bad, _, err_bad = tap.run(bin .. " " .. bad)
tap.ok(not ok_bad and err_bad:find(bad .. ":2: bo.minimize: unknown key 'iters'", 1, true),
       "an unknown key in a script is reported with the script's line")
tap.is(select(2, err_bad:gsub("\n", "")), 1, "on one line")

os.execute("rm -rf " .. dir)
tap.done()
