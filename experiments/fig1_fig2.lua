-- Figures 1 and 2 of the supplement (section B; docs/figures.md): is the function-distance estimate
-- L̂ = mean of ||f~(x_i) - f*(x_i)||² over n inputs close enough to normal for the GP's Gaussian noise?
-- The shipped Fashion-MNIST ResNet-18 is the reference f*; the candidate f~ is VH on the 16 3×3
-- convolutions of its residual stages with θ drawn uniformly in [0.1, 0.5] (a fixed seed). For
-- each sampling size n, `estimates` evaluations of objective.fnorm, each on a fresh sample drawn
-- without replacement from one pool of training images; the pool's every distance, computed
-- directly, is the population the samples come from (its mean is the L they estimate, its standard
-- deviation predicts their spread). Writes figures/fig1_qq.png, figures/fig2_density.png,
-- results/fig1_fig2.{csv,md} (one row per n) and results/fig1_fig2_estimates.{csv,md} (every estimate).
--   boengine experiments/fig1_fig2.lua [estimates=500] [sizes={5,10,20,50,100}] [pool=5000] [seed=1]
local declare = require "boengine.declare"

local DEFAULTS = {
  estimates = 500,                -- estimates per sampling size
  sizes = {5, 10, 20, 50, 100},   -- sampling sizes n
  pool = 5000,                    -- training images the samples are drawn from
  theta = {0.1, 0.5},             -- VH rank fractions (of each layer's break-even rank) drawn in this box
  layers = "layer*",              -- the compressed layers: every 3×3 convolution of the residual stages
  seed = 1,                       -- θ, the pool and the samples
  test_count = 10000,             -- test images for the two networks' accuracies (0: not measured)
  model = "fmnist_resnet18",
  results = false, figures = false, -- output folders (default: results/ and figures/ of the project)
}

-- ---- statistics -----------------------------------------------------------------------------------

-- Mean, standard deviation (ddof 1), skewness g1 = m3/m2^1.5 and excess kurtosis g2 = m4/m2² - 3
-- (the moment estimators, m_k the central moments with divisor N).
local function moments(v)
  local n, mean = #v, 0
  for _, x in ipairs(v) do mean = mean + x end
  mean = mean / n
  local m2, m3, m4 = 0, 0, 0
  for _, x in ipairs(v) do
    local d = x - mean
    m2, m3, m4 = m2 + d * d, m3 + d * d * d, m4 + d * d * d * d
  end
  m2, m3, m4 = m2 / n, m3 / n, m4 / n
  return mean, math.sqrt(m2 * n / (n - 1)), m3 / m2 ^ 1.5, m4 / (m2 * m2) - 3
end

-- erfc(x): the power series of erf below 3 (in double it keeps 13 digits there), the continued
-- fraction erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) above, evaluated from
-- its 80th term back.
local function erfc(x)
  if x < 0 then return 2 - erfc(-x) end
  if x < 3 then
    local term, sum, k = x, x, 0
    repeat
      k = k + 1
      term = -term * x * x / k
      sum = sum + term / (2 * k + 1)
    until math.abs(term / (2 * k + 1)) < 1e-17 * math.abs(sum)
    return 1 - 2 / math.sqrt(math.pi) * sum
  end
  local f = x
  for k = 80, 1, -1 do f = x + (k / 2) / f end
  return math.exp(-x * x) / math.sqrt(math.pi) / f
end

local function normal_cdf(z) return 0.5 * erfc(-z / math.sqrt(2)) end

-- Jarque–Bera: JB = N/6 (g1² + g2²/4), asymptotically χ² with 2 degrees of freedom: p = exp(-JB/2).
local function jarque_bera(n, g1, g2)
  local jb = n / 6 * (g1 * g1 + g2 * g2 / 4)
  return jb, math.exp(-jb / 2)
end

-- Anderson–Darling against a normal of the sample's mean and standard deviation (ddof 1):
-- A² = -N - (1/N) Σ (2i-1) [ln Φ(z_(i)) + ln(1 - Φ(z_(N+1-i)))], corrected A*² = A²(1 + 0.75/N + 2.25/N²),
-- p-value by D'Agostino and Stephens' (1986) piecewise fit for this case (mean and variance estimated).
local function anderson_darling(v, mean, sd)
  local z = {}
  for i, x in ipairs(v) do z[i] = (x - mean) / sd end
  table.sort(z)
  local n, s = #z, 0
  for i = 1, n do
    s = s + (2 * i - 1) * (math.log(normal_cdf(z[i])) + math.log(normal_cdf(-z[n + 1 - i])))
  end
  local a = (-n - s / n) * (1 + 0.75 / n + 2.25 / (n * n))
  local p
  if a >= 0.6 then p = math.exp(1.2937 - 5.709 * a + 0.0186 * a * a)
  elseif a >= 0.34 then p = math.exp(0.9177 - 4.279 * a - 1.38 * a * a)
  elseif a >= 0.2 then p = 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a * a)
  else p = 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a * a) end
  return a, math.min(1, math.max(0, p))
end

-- ---- the run --------------------------------------------------------------------------------------

local o = declare.settings(DEFAULTS)
local t0 = boengine.clock()
local net = nn.load(o.model_path)
local train = data.fashion_mnist{split = "train"}

-- the candidate: θ uniform in the box, one per layer, from a generator seeded here alone
local vh <close> = compress.vh{net = net, layers = o.layers, bounds = o.theta}
math.randomseed(o.seed)
local theta = {}
for i = 1, vh:dim() do theta[i] = o.theta[1] + (o.theta[2] - o.theta[1]) * math.random() end
local cand <close>, info = compress.apply(net, vh, theta)
local ranks = {}
for i, l in ipairs(info.layers) do ranks[i] = l.rank end
print(string.format("candidate: VH on %d convolutions (%s), ranks %s; parameter ratio of those layers %.3f, "
                    .. "of the network %.3f", vh:dim(), o.layers, table.concat(ranks, " "), info.params, info.params_net))
local acc_ref, acc_cand
if o.test_count > 0 then
  local test = data.fashion_mnist{split = "test"}
  acc_ref = test:accuracy(net, {count = o.test_count})
  acc_cand = test:accuracy(cand, {count = o.test_count})
  print(string.format("top-1 accuracy on %d test images: reference %.4f, candidate %.4f", o.test_count, acc_ref, acc_cand))
end

-- The population: the distance of every pool example, by forward passes of both networks here
-- (the pool's indices are those of an estimator of the same seed and pool).
local whole = objective.fnorm{reference = net, data = train, samples = o.pool, pool = o.pool, seed = o.seed, fixed = true}
local pool_idx, dist = whole:indices(1), {}
for first = 1, #pool_idx, 500 do
  local part = {table.unpack(pool_idx, first, math.min(first + 499, #pool_idx))}
  local x = train:get(part)
  local yr, yc = net:forward(x):to_table(), cand:forward(x):to_table()
  for i = 1, #part do
    local s = 0
    for c = 1, #yr[i] do s = s + (yc[i][c] - yr[i][c]) ^ 2 end
    dist[#dist + 1] = s
  end
end
local L, s_pool, g1_pool, g2_pool = moments(dist)
local M = #dist
print(string.format("pool of %d training images: L = %.5g, standard deviation of the distances %.5g, skewness %.3f, "
                    .. "excess kurtosis %.3f", M, L, s_pool, g1_pool, g2_pool))

-- The estimates: sampling size j draws samples (j-1)·E+1 .. j·E of one seed, so that every estimate
-- has a fresh sample, independent of the other sizes', from the same pool.
local E = o.estimates
local rows, raw, by_n = {}, {}, {}
local p = boengine.progress("estimates", E * #o.sizes)
for j, n in ipairs(o.sizes) do
  -- batch: prepare() runs the reference over the pool in chunks of 500 (an evaluation's n <= 500
  -- still runs at once)
  local est <close> = objective.fnorm{reference = net, data = train, samples = n, pool = o.pool, seed = o.seed,
                                      batch = 500}
  est:prepare()
  local values, ses, covered = {}, {}, 0
  for k = 1, E do
    local sample = (j - 1) * E + k
    local v, se = est:evaluate(cand, {sample = sample})
    values[k], ses[k] = v, se
    if math.abs(v - L) <= 1.959963984540054 * se then covered = covered + 1 end
    raw[#raw + 1] = {n, sample, v, se}
    p:update((j - 1) * E + k)
  end
  local mean, sd, g1, g2 = moments(values)
  local mean_se = 0
  for _, se in ipairs(ses) do mean_se = mean_se + se / E end
  local jb, jb_p = jarque_bera(E, g1, g2)
  local ad, ad_p = anderson_darling(values, mean, sd)
  -- sampling without replacement from M: Var(mean) = s²/n (1 - n/M); skewness and excess kurtosis
  -- of a mean of n i.i.d. draws: g1/√n and g2/n
  local predicted = s_pool / math.sqrt(n) * math.sqrt(1 - n / M)
  rows[#rows + 1] = {n, E, L, mean, sd, mean_se, predicted, sd / predicted, g1, g1_pool / math.sqrt(n), g2,
                     g2_pool / n, covered / E, jb, jb_p, ad, ad_p}
  by_n[j] = values
end
p:done()

-- ---- tables -----------------------------------------------------------------------------------------

local prov = {seed = o.seed, model = o.model, pool = M, estimates = E, theta = string.format("[%g, %g]", o.theta[1], o.theta[2]),
              layers = o.layers, ranks = table.concat(ranks, " "), params_ratio = string.format("%.4f", info.params)}
if acc_ref then
  prov.test_accuracy = string.format("reference %.4f, candidate %.4f (%d images)", acc_ref, acc_cand, o.test_count)
end
report.table{path = o.results .. "/fig1_fig2",
  title = "Figures 1-2: distribution of the function-distance estimate by sampling size n",
  columns = {"n", "estimates", {name = "L (pool)", digits = 5}, {name = "mean", digits = 5},
             {name = "sd", digits = 4}, {name = "SE (mean of estimates)", digits = 4},
             {name = "SE (pool)", digits = 4}, {name = "sd / SE (pool)", digits = 3},
             {name = "skewness", digits = 3}, {name = "skewness (pool)", digits = 3},
             {name = "excess kurtosis", digits = 3}, {name = "excess kurtosis (pool)", digits = 3},
             {name = "coverage 95%", digits = 3}, {name = "JB", digits = 4}, {name = "JB p", digits = 3},
             {name = "AD", digits = 4}, {name = "AD p", digits = 3}},
  rows = rows, provenance = prov}
report.table{path = o.results .. "/fig1_fig2_estimates", title = "Figures 1-2: every estimate",
  columns = {"n", "sample", {name = "L", digits = 6}, {name = "SE", digits = 6}}, rows = raw, provenance = prov}

-- ---- figures ----------------------------------------------------------------------------------------

local panels = {}
for j, n in ipairs(o.sizes) do
  panels[j] = {title = string.format("n = %d", n), xlabel = "standard normal quantile",
               ylabel = "L̂ (squared logit distance)",
               series = {{kind = "qq", values = by_n[j], label = string.format("%d estimates", E)}},
               hlines = {{at = L, color = "grey", style = "dashed", label = "L of the pool"}}}
end
-- the sixth cell: the skewness of the estimates against n, beside the i.i.d. prediction g1/√n from
-- the pool's distances
local skew, sizes, curve_n, curve = {}, {}, {}, {}
for j, r in ipairs(rows) do skew[j], sizes[j] = r[9], r[1] end
for i = 0, 40 do
  local n = sizes[1] * (sizes[#sizes] / sizes[1]) ^ (i / 40)
  curve_n[#curve_n + 1], curve[#curve + 1] = n, g1_pool / math.sqrt(n)
end
panels[#panels + 1] = {title = "skewness of L̂ against n", xlabel = "sampling size n", ylabel = "skewness",
  xlog = true, hlines = {{at = 0, color = "grey", style = "dotted", label = "normal"}},
  series = {{kind = "line", x = curve_n, y = curve, color = "black", style = "dashed",
             label = "pool's skewness / √n"},
            {kind = "scatter", x = sizes, y = skew, color = "vermillion", label = "observed"}}}
report.figure{path = o.figures .. "/fig1_qq.png", columns = 3,
  title = string.format("Figure 1. Q-Q plots of the function-distance estimate L̂ against a normal "
                        .. "(ResNet-18, %d estimates per sampling size n)", E),
  panels = panels, provenance = prov}

-- The raw estimates, not standardized: the supplement's point is where the mass of the small-n
-- estimates lies relative to L (mode left of it, long tail right) and how it centres on L as n grows;
-- standardizing would remove both and leave the skew only in tails that 500 estimates draw noisily.
local series = {}
for j, n in ipairs(o.sizes) do
  series[j] = {kind = "density", values = by_n[j], label = string.format("n = %d", n)}
end
report.plot{path = o.figures .. "/fig2_density.png",
  title = "Figure 2. Density of the function-distance estimate L̂ by sampling size n",
  xlabel = string.format("L̂ (squared logit distance), %d estimates per n", E), ylabel = "density",
  series = series, vlines = {{at = L, color = "black", style = "dashed", label = string.format("L of the pool (%d images)", M)}},
  provenance = prov}

print(string.format("wrote %s/fig1_fig2.{csv,md}, %s/fig1_qq.png, %s/fig2_density.png in %.1f s", o.results,
                    o.figures, o.figures, boengine.clock() - t0))
