-- The reference outputs of objective.fnorm, computed lazily: only the pool examples a sample
-- misses, in forward passes of one size whose last one is filled up with other missing pool
-- examples. The estimates must equal those of an estimator that computed the whole pool up front
-- (other pass compositions) and a direct computation in Lua; each pool example's reference runs
-- once. Also the time accounts of boengine.timing that scripts/bench-search reads.
local tap = require "tap"
local MODEL = "tests/fixtures/compress/vgg_fmnist.safetensors"

local net = nn.load(MODEL)
local ds = data.fashion_mnist{}
local vh = compress.vh{net = net, layers = "features.*", bounds = {0.2, 0.7}}
local theta = {}
for i = 1, #vh do theta[i] = 0.2 + 0.05 * i end
local cand <close> = compress.apply(net, vh, theta)

local POOL, N, B = 37, 10, 4 -- a pool that is no multiple of the pass size
local before = boengine.timing()
local lazy = objective.fnorm{reference = net, data = ds, samples = N, seed = 4, pool = POOL, batch = B}
local eager = objective.fnorm{reference = net, data = ds, samples = N, seed = 4, pool = POOL, batch = 5}
eager:prepare()
tap.is(eager:known(), POOL, "prepare computes the whole pool")
tap.is(lazy:known(), 0, "a fresh estimator knows no reference output")

local function passes() local a = boengine.timing()["objective.reference"] return a and a.calls or 0 end
local drawn, ok_known, ok_eager, ok_direct, worst = {}, true, true, true, 0
local p0 = passes()
for k = 1, 8 do
  local L, se, info = lazy:evaluate(cand, {sample = k})
  for _, i in ipairs(info.indices) do drawn[i] = true end
  local distinct = 0
  for _ in pairs(drawn) do distinct = distinct + 1 end
  local known, rows = lazy:known(), (passes() - p0) * B
  -- whole passes of B rows, each row a pool example not known before (filled up with other pool
  -- examples), zero rows only once the pool is exhausted: no example is computed twice
  ok_known = ok_known and known >= distinct and (rows == known or (known == POOL and rows < POOL + B))
  local Le, see = eager:evaluate(cand, {sample = k})
  ok_eager = ok_eager and math.abs(L - Le) <= 1e-6 * L and math.abs(se - see) <= 1e-5 * se
  -- direct: both networks on the sample's inputs, the distance in double here
  local x = ds:get(info.indices)
  local a, b = cand:forward(x), net:forward(x)
  local sum = 0
  for i = 1, N do
    for c = 1, b:shape()[2] do sum = sum + (a:get(i, c) - b:get(i, c)) ^ 2 end
  end
  worst = math.max(worst, math.abs(L - sum / N) / (sum / N))
  ok_direct = ok_direct and math.abs(L - sum / N) <= 1e-5 * (sum / N)
end
tap.ok(ok_known, "only missing pool examples are computed, in whole passes of " .. B .. " (filled up)")
tap.ok(ok_eager, "lazy reference outputs give the estimates of the whole pool computed up front")
tap.ok(ok_direct, string.format("and of a direct computation (worst relative difference %.1e)", worst))
for k = 9, 30 do lazy:evaluate(cand, {sample = k}) end
tap.ok(lazy:known() == POOL and (passes() - p0) * B < POOL + B,
       "after 30 samples every pool example is known, each computed once (" .. (passes() - p0) .. " passes)")

local after = boengine.timing()
local function delta(key)
  local a, b = after[key] or {seconds = 0, calls = 0}, before[key] or {seconds = 0, calls = 0}
  return a.seconds - b.seconds, a.calls - b.calls
end
local rs, rc = delta("objective.reference")
tap.ok(rs > 0 and rc >= math.ceil(POOL / B), "objective.reference accounts for the reference passes (" .. rc .. ")")
local fs, fc = delta("objective.forward")
tap.ok(fs > 0 and fc == 38, "objective.forward counts the evaluations' forward passes (" .. fc .. ")")

-- the optimizer's accounts: a GP fit and an acquisition per model-based step
local b0 = boengine.timing()
bo.minimize{f = function(x) return (x[1] - 0.3) ^ 2, 0.01 end, bounds = {{0, 1}}, init = 3, iterations = 2, seed = 1}
local b1 = boengine.timing()
local fits = b1["bo.fit"].calls - (b0["bo.fit"] and b0["bo.fit"].calls or 0)
local acqs = b1["bo.acquisition"].calls - (b0["bo.acquisition"] and b0["bo.acquisition"].calls or 0)
tap.ok(fits >= 2 and acqs == 2, string.format("bo.fit and bo.acquisition count the steps (%d fits, %d acquisitions)",
                                              fits, acqs))
tap.done()
