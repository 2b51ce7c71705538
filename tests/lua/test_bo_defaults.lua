-- The BO strategy's defaults: noisy EI as the acquisition (recorded in the journal; corrected EI one
-- option away) and the scrambled Sobol design that fills the strata ("shifted", the design before,
-- on request); both seeded.
local tap = require "tap"
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local function noisy(x, i) return bo.functions.sinone(x, 0.03, 500 + i), 0.03 end
local function run(t)
  t.f, t.bounds, t.init, t.iterations, t.seed = noisy, {{0, 1}}, 4, 3, t.seed or 2
  return bo.minimize(t)
end
local function xs(r) local out = {} for i, rec in ipairs(r.history) do out[i] = rec.x[1] end return out end
local function same(a, b)
  for i = 1, math.max(#a, #b) do if a[i] ~= b[i] then return false end end
  return true
end

-- the default acquisition is noisy EI
local default, nei, eic = run{}, run{acquisition = "nei"}, run{acquisition = "ei_c"}
tap.ok(same(xs(default), xs(nei)), "bo.minimize without acquisition runs noisy EI")
tap.ok(not same(xs(default), xs(eic)), "and corrected EI, named, runs another search")
local journal = dir .. "/default.jsonl"
run{journal = journal}
local header = io.open(journal):read("l")
tap.ok(header:find('"acquisition":"nei"', 1, true), "the journal records nei as the acquisition")
tap.dies("written with acquisition 'nei', this run uses 'ei_c'",
         "a journal of the default is refused to an ei_c run (one of the old default needs acquisition = \"ei_c\")",
         run, {journal = journal, acquisition = "ei_c"})

-- the design: 4 points on [0, 1] fill the quarters; the shifted design leaves one empty
local function quarters(design, seed)
  local o = bo.optimizer{bounds = {{0, 1}}, init = 4, seed = seed, design = design}
  local q, pts = {0, 0, 0, 0}, {}
  for i = 1, 4 do
    local x = o:ask()
    pts[i] = x[1]
    q[math.floor(x[1] * 4) + 1] = q[math.floor(x[1] * 4) + 1] + 1
    o:tell(x, bo.functions.sinone(x), 0.03)
  end
  return q[1] == 1 and q[2] == 1 and q[3] == 1 and q[4] == 1, pts
end
local filled, empty = 0, 0
for seed = 1, 30 do
  filled = filled + (quarters(nil, seed) and 1 or 0)
  empty = empty + (quarters("shifted", seed) and 0 or 1)
end
tap.is(filled, 30, "the default design puts one of 4 points in each quarter of [0, 1] (30 seeds)")
tap.is(empty, 30, "design = \"shifted\" (the design before) leaves a quarter empty (30 seeds)")
local _, a = quarters("scrambled", 9)
local _, b = quarters(nil, 9)
local _, c = quarters(nil, 10)
tap.ok(same(a, b) and not same(a, c), "the design is seeded: the same seed, the same points; another, others")

-- in 2-D, 16 design points are a (0, 4, 2)-net: one per cell of the 4 x 4, 2 x 8, 8 x 2, 1 x 16 and 16 x 1 grids
local o = bo.optimizer{bounds = {{-5, 10}, {0, 15}}, init = 16, seed = 3}
local P = {}
for i = 1, 16 do
  local x = o:ask(); P[i] = {(x[1] + 5) / 15, x[2] / 15}
  o:tell(x, bo.functions.branin(x), 1)
end
local net = true
for a = 0, 4 do
  local seen = {}
  for _, p in ipairs(P) do
    local cell = math.floor(p[1] * 2 ^ a) * 2 ^ (4 - a) + math.floor(p[2] * 2 ^ (4 - a))
    net = net and not seen[cell]; seen[cell] = true
  end
end
tap.ok(net, "2-D: 16 design points in the box make a (0, 4, 2)-net")

tap.dies("bo.optimizer: unknown design 'lhs' (known: scrambled, shifted)", "an unknown design is refused by name",
         bo.optimizer, {bounds = {{0, 1}}, design = "lhs"})
tap.dies("'design' must be a string", "design must be a string", bo.optimizer, {bounds = {{0, 1}}, design = 3})

os.execute("rm -rf " .. dir)
tap.done()
