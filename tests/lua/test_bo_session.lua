-- The BO session from Lua: strategies by name, journals refused when another experiment file, seed
-- or strategy wrote them (resume = "force", fresh = true, --fresh), one process per journal, missing
-- folders, a folder as journal, numbers checked in C with the key named, info through JSON, re-scoring.
local tap = require "tap"
local files = require "files"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local read = files.read
local function lines(path) local n = 0; for _ in io.lines(path) do n = n + 1 end; return n end
local function write(path, text) local f = assert(io.open(path, "w")); f:write(text); f:close() end
local function quad(x) return (x[1] - 0.3) ^ 2 + (x[2] - 2) ^ 2 / 10 end

-- strategies by name: random, sobol and uniform run through the same loop, journal and history
for _, name in ipairs{"random", "sobol", "uniform"} do
  local function run(seed)
    return bo.minimize{f = function(x) return quad(x) end, bounds = {{0, 1}, {0, 4}}, integer = {2},
                       init = 4, iterations = 12, strategy = name, seed = seed}
  end
  local a, b, c = run(1), run(1), run(2)
  local same, inside, ints, differ = true, true, true, false
  for i, rec in ipairs(a.history) do
    same = same and rec.x[1] == b.history[i].x[1] and rec.x[2] == b.history[i].x[2]
    differ = differ or rec.x[1] ~= c.history[i].x[1]
    inside = inside and rec.x[1] >= 0 and rec.x[1] <= 1 and rec.x[2] >= 0 and rec.x[2] <= 4
    ints = ints and rec.x[2] == math.floor(rec.x[2])
  end
  tap.is(#a.history, 16, name .. ": init + iterations evaluations")
  tap.ok(same and differ, name .. ": the same seed gives the same points, another seed others")
  tap.ok(inside and ints, name .. ": in the bounds, the integer dimension at integers")
  local low = 1
  for i, rec in ipairs(a.history) do if rec.y < a.history[low].y then low = i end end
  tap.is(a.best.i, low, name .. ": the best point is the lowest y")
  tap.dies("strategy '" .. name .. "' has no model", name .. ": no model to predict with", a.optimizer.predict,
           a.optimizer, {{0.5, 1}})
end
tap.dies("unknown strategy 'grid' (known: bo, random, sobol, uniform, external)", "an unknown strategy is refused", bo.optimizer,
         {bounds = {{0, 1}}, strategy = "grid"})

-- numbers are checked in C: NaN refused with the key named, counts beyond int refused, not truncated
local nan = 0 / 0
for _, case in ipairs{{"kappa", "'kappa' must be a finite number >= 0, got NaN"},
                      {"min_distance", "'min_distance' must be a finite number >= 0, got NaN"}} do
  tap.dies("bo.optimizer: " .. case[2], "a NaN " .. case[1] .. " is refused, naming it", bo.optimizer,
           {bounds = {{0, 1}}, [case[1]] = nan})
end
tap.dies("the mean must be a finite number, got NaN", "bo.gp: a NaN mean is refused, without -nan", bo.gp,
         {X = {{0}, {1}}, y = {0, 1}, mean = nan})
tap.dies("'init' must be at most 2147483647, got 4294967298", "init = 2^32 + 2 is refused", bo.optimizer,
         {bounds = {{0, 1}}, init = 2 ^ 32 + 2})
tap.dies("'iterations' must be from 0 to", "iterations beyond int are refused", bo.minimize,
         {f = function(x) return x[1] end, bounds = {{0, 1}}, init = 2, iterations = 2 ^ 32 + 1})
tap.dies("an integer dimension needs bounds within", "integer bounds beyond INT_MAX are refused", bo.optimizer,
         {bounds = {{0, 2 ^ 40}}, integer = {1}})
local o = bo.optimizer{bounds = {{0, 1}}}
local ok, err = pcall(o.tell, o, {0.5}, nan)
tap.ok(not ok and err:find("y must be a finite number, got NaN", 1, true) and not err:find("nan", 1, true),
       "a NaN observation is refused without printing -nan: " .. tostring(err))
ok, err = pcall(bo.minimize, {f = function() return nan end, bounds = {{0, 1}}, iterations = 1})
tap.ok(not ok and err:find("evaluation 1: f's result must be a finite number, got NaN", 1, true),
       "f returning NaN is refused naming the evaluation: " .. tostring(err))
tap.dies("gp:acquisition: 'kappa' must be a finite number >= 0, got NaN", "gp:acquisition: a NaN kappa is refused",
         function() bo.gp{X = {{0}, {1}}, y = {0, 1}}:acquisition({{0.5}}, {kind = "lcb", kappa = nan}) end)

-- info goes through JSON: what a resumed run reads back is what the live run held
local jpath = dir .. "/info.jsonl"
local o1 = bo.optimizer{bounds = {{0, 1}}, journal = jpath}
local rec = o1:tell({0.5}, 1, 0.1, {ratio = 0.1, ranks = {3, 4}, name = "a\"b\n", flag = true, [7] = "seven"})
o1:close()
local o2 = bo.optimizer{bounds = {{0, 1}}, journal = jpath}
local back = o2:history()[1].info
tap.ok(back.ratio == 0.1 and back.ranks[2] == 4 and back.name == "a\"b\n" and back.flag and back["7"] == "seven",
       "info reads back from the journal: numbers exact, strings escaped, integer keys as strings")
tap.ok(rec.info.ratio == back.ratio and rec.info["7"] == "seven", "and the live record holds the same values")
o2:close()

-- journals written by another experiment file, seed or strategy: refused, unless forced or fresh
local child = dir .. "/child.lua"
write(child, [[
local journal, seed, strategy, extra = arg[1], tonumber(arg[2]), arg[3], arg[4]
local opts = {f = function(x, i) return (x[1] - 0.4) ^ 2 end, bounds = {{0, 1}}, init = 3, iterations = 2,
              seed = seed, strategy = strategy, journal = journal}
if extra == "force" then opts.resume = "force" elseif extra == "fresh" then opts.fresh = true end
local r = bo.minimize(opts)
print(#r.history)
]])
local function run(journal, seed, strategy, extra, flags)
  return tap.run(string.format("%s --quiet %s %s %s %d %s %s", bin, flags or "", child, journal, seed, strategy,
                               extra or ""))
end
local j = dir .. "/runs/deep/j.jsonl"
local ok1, out1 = run(j, 1, "bo")
tap.ok(ok1 and tonumber(out1) == 5 and lines(j) == 6, "missing folders are created for the journal")
local ok2, _, err2 = run(j, 2, "bo")
tap.ok(not ok2 and err2:find("written with seed 1, this run has seed 2", 1, true), "another seed is refused")
tap.is(select(2, err2:gsub("\n", "")), 1, "on one line")
local ok3, _, err3 = run(j, 1, "random")
tap.ok(not ok3 and err3:find("written by strategy 'bo', this run uses 'random'", 1, true),
       "another strategy is refused")
local edited = dir .. "/child2.lua"
write(edited, read(child) .. "-- edited\n")
local ok4, _, err4 = tap.run(string.format("%s --quiet %s %s 1 bo", bin, edited, j))
tap.ok(not ok4 and err4:find("written by another experiment file", 1, true), "an edited experiment file is refused")
local ok5, out5 = run(j, 2, "bo", "force")
tap.ok(ok5 and tonumber(out5) == 5 and lines(j) == 6, "resume = \"force\" continues it anyway (nothing left to do)")
local ok6, out6 = run(j, 2, "bo", "fresh")
tap.ok(ok6 and tonumber(out6) == 5 and lines(j) == 6 and read(j):find('"seed":2,', 1, true),
       "fresh = true starts it over with the new settings")
local ok7, out7 = run(j, 3, "sobol", nil, "--fresh")
tap.ok(ok7 and tonumber(out7) == 5 and read(j):find('"strategy":"sobol"', 1, true), "--fresh starts journals over")
local leftovers = io.popen("ls " .. dir .. "/runs/deep"):read("a")
tap.is(leftovers, "j.jsonl\n", "and leaves no temporary file")

-- one process per journal: a second one is refused while the first holds it
local lj = dir .. "/lock.jsonl"
local held = bo.optimizer{bounds = {{0, 1}}, init = 3, seed = 3, strategy = "sobol", journal = lj}
tap.dies("is in use by another process or optimizer", "a second optimizer of the same script is refused too",
         bo.optimizer, {bounds = {{0, 1}}, init = 3, seed = 3, strategy = "sobol", journal = lj})
local ok8, _, err8 = run(lj, 3, "sobol", "force")
tap.ok(not ok8 and err8:find("is in use by another process", 1, true), "a second process is refused: " .. err8)
held:close()
tap.ok(run(lj, 3, "sobol", "force"), "once closed, another process may go on")
do
  local scoped <close> = bo.optimizer{bounds = {{0, 1}}, init = 3, seed = 3, strategy = "sobol", journal = lj,
                                      resume = "force"}
end
tap.ok(run(lj, 3, "sobol", "force"), "an optimizer closed by <close> releases its journal")

local failing = dir .. "/failing.jsonl"
ok = pcall(bo.minimize, {f = function(x, i) if i == 3 then error("boom") end return x[1] end, bounds = {{0, 1}},
                         init = 3, iterations = 1, journal = failing})
local again = bo.optimizer{bounds = {{0, 1}}, init = 3, journal = failing}
tap.ok(not ok and again:count() == 2, "after an error in f the journal is released at once: a retry resumes it")
again:close()

-- a folder as journal
tap.dies("is a folder, not a journal file", "a journal path that is a folder gets a clear message", bo.optimizer,
         {bounds = {{0, 1}}, journal = dir})

-- re-scoring: y_i = L_i + lambda R_i from the info, nothing evaluated again
local calls = 0
local r = bo.minimize{f = function(x)
                        calls = calls + 1
                        local L, R = (x[1] - 0.3) ^ 2, x[2] / 4
                        return L + R, 0.01, {L = L, R = R}
                      end,
                      bounds = {{0, 1}, {0, 4}}, init = 4, iterations = 3, seed = 2, raw_samples = 64}
local opt = r.optimizer
local before = calls
opt:rescore(function(rc) return rc.info.L + 5 * rc.info.R, 0.01 end)
local hist, right = opt:history(), true
for _, rc in ipairs(hist) do right = right and rc.y == rc.info.L + 5 * rc.info.R end
tap.ok(right and calls == before, "rescore gives every record its new y without evaluating")
local ref = bo.optimizer{bounds = {{0, 1}, {0, 4}}, init = 4, seed = 2, raw_samples = 64}
for _, rc in ipairs(hist) do ref:tell(rc.x, rc.y, rc.se) end
local a, b = opt:ask(), ref:ask()
tap.ok(a[1] == b[1] and a[2] == b[2], "and asks what an optimizer told the re-scored values asks")
tap.dies("bad", "an error in the re-scoring function is raised as it is",
         opt.rescore, opt, function(rc) if rc.i == 2 then error("bad") end return 1 end)
tap.dies("the re-scoring function returned nil for evaluation 1", "a re-scoring function must return a number",
         opt.rescore, opt, function() end)
tap.is(opt:history()[1].y, hist[1].y, "a failed re-scoring changes nothing")
opt:rescore(function(rc) return rc.info.L end, 4)
local first4 = bo.optimizer{bounds = {{0, 1}, {0, 4}}, init = 4, seed = 2, raw_samples = 64}
for k = 1, 4 do first4:tell(hist[k].x, hist[k].info.L) end
tap.is(opt:best().i, first4:best().i, "rescore(f, n): the best point of the first n re-scored")
tap.is(opt:history()[5].y, hist[5].y, "the later evaluations keep their y")
tap.dies("can re-score the first 1 to 7 evaluations, not 8", "n beyond the count is refused", opt.rescore, opt,
         function(rc) return rc.y end, 8)

os.execute("rm -rf " .. dir)
tap.done()
