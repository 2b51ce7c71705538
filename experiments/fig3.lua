-- Figure 3 of the supplement (section B; docs/figures.md): the estimated function distance against
-- the top-1 error, layer by layer, in a deep ResNet. The shipped Fashion-MNIST ResNet-50 (width
-- 0.125) stands in for the supplement's ImageNet ResNet-101. Each listed 3×3 convolution is
-- compressed alone by VH at `ranks` ranks spread geometrically from 1 to its break-even rank; each
-- candidate gets L̂ ± SE on one fixed sample of `samples` training images (objective.fnorm) and its
-- top-1 error on the test split. Writes figures/fig3_norm_error.png, results/fig3.{csv,md} (every
-- point) and results/fig3_spearman.{csv,md} (Spearman's rank correlation per layer and over all).
--   boengine experiments/fig3.lua [ranks=8] [samples=2000] [test_count=10000] [layers={"layer1.0.conv2", ...}]
local declare = require "boengine.declare"

local DEFAULTS = {
  -- the 3×3 convolution of the first bottleneck of each stage, and of the last block of the two
  -- deepest stages
  layers = {"layer1.0.conv2", "layer2.0.conv2", "layer3.0.conv2", "layer3.5.conv2", "layer4.0.conv2", "layer4.2.conv2"},
  ranks = 8,            -- ranks per layer, from 1 to the break-even rank
  samples = 2000,       -- the fixed sample of training images for L̂
  test_count = 10000,   -- test images for the top-1 error (the whole split)
  seed = 1,             -- the sample
  model = "fmnist_resnet50",
  results = false, figures = false, -- output folders (default: results/ and figures/ of the project)
}

-- ---- statistics -----------------------------------------------------------------------------------

-- Ranks 1..N of v, ties given the mean of the ranks they span.
local function ranks_of(v)
  local order = {}
  for i = 1, #v do order[i] = i end
  table.sort(order, function(a, b) return v[a] < v[b] end)
  local r, i = {}, 1
  while i <= #order do
    local j = i
    while j < #order and v[order[j + 1]] == v[order[i]] do j = j + 1 end
    for k = i, j do r[order[k]] = (i + j) / 2 end
    i = j + 1
  end
  return r
end

-- Spearman's ρ: Pearson's correlation of the ranks (NaN when either side is constant).
local function spearman(x, y)
  local rx, ry = ranks_of(x), ranks_of(y)
  local n, mx, my = #x, 0, 0
  for i = 1, n do mx, my = mx + rx[i] / n, my + ry[i] / n end
  local sxy, sxx, syy = 0, 0, 0
  for i = 1, n do
    sxy = sxy + (rx[i] - mx) * (ry[i] - my)
    sxx = sxx + (rx[i] - mx) ^ 2
    syy = syy + (ry[i] - my) ^ 2
  end
  return sxy / math.sqrt(sxx * syy)
end

-- `count` distinct integer ranks from 1 to top, spread geometrically (a rank taken moves up by one).
local function spread(top, count)
  local r = {}
  for i = 0, count - 1 do
    local k = math.floor(top ^ (i / (count - 1)) + 0.5)
    if #r > 0 and k <= r[#r] then k = r[#r] + 1 end
    r[#r + 1] = k
  end
  for i = #r, 1, -1 do -- keep the top at the break-even rank: push the collisions back down
    if i < #r and r[i] >= r[i + 1] then r[i] = r[i + 1] - 1 end
  end
  return r
end

-- ---- the run --------------------------------------------------------------------------------------

local o = declare.settings(DEFAULTS)
if o.ranks < 2 then boengine.fail("'ranks' must be at least 2") end
local t0 = boengine.clock()
local net = nn.load(o.model_path)
local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local est <close> = objective.fnorm{reference = net, data = train, samples = o.samples, pool = o.samples, fixed = true,
                                    seed = o.seed}
est:prepare()
local t = boengine.clock()
local ref_error = 1 - test:accuracy(net, {count = o.test_count})
local pass = boengine.clock() - t
print(string.format("reference %s: top-1 error %.4f on %d test images (%.1f s a pass)", o.model, ref_error, o.test_count, pass))

local rows, by_layer, all_L, all_err, series = {}, {}, {}, {}, {}
for li, name in ipairs(o.layers) do
  local fam <close> = compress.vh{net = net, layers = name, rank = "absolute"}
  local l = fam:layers()[1]
  local ks = spread(l.break_even, math.min(o.ranks, l.break_even))
  local xs, ys, Ls, errs = {}, {}, {}, {}
  for _, k in ipairs(ks) do
    local cand <close>, info = compress.apply(net, fam, {k})
    local L, se = est:evaluate(cand)
    local err = 1 - test:accuracy(cand, {count = o.test_count})
    rows[#rows + 1] = {name, table.concat(l.shape, "×"), k, l.break_even, info.params, L, se, err}
    xs[#xs + 1], ys[#ys + 1] = L, 100 * err
    Ls[#Ls + 1], errs[#errs + 1] = L, err
    all_L[#all_L + 1], all_err[#all_err + 1] = L, err
    print(string.format("%-16s rank %3d of break-even %3d: L = %-10.5g ± %-9.3g top-1 error %.4f", name, k,
                        l.break_even, L, se, err))
  end
  by_layer[li] = {name, #Ls, spearman(Ls, errs)}
  series[#series + 1] = {kind = "line", x = xs, y = ys, marker = ({"circle", "square", "triangle", "diamond"})[(li - 1) % 4 + 1],
                         label = string.format("%s (%s)", name, table.concat(l.shape, "×"))}
end
by_layer[#by_layer + 1] = {"all layers", #all_L, spearman(all_L, all_err)}

local prov = {seed = o.seed, model = o.model, samples = o.samples, test_count = o.test_count, ranks = o.ranks,
              reference_error = string.format("%.4f", ref_error)}
report.table{path = o.results .. "/fig3", title = "Figure 3: function distance against top-1 error, one layer compressed at a time",
  columns = {"layer", "shape", "rank", "break-even rank", {name = "params ratio", digits = 3}, {name = "L", digits = 5},
             {name = "SE", digits = 3}, {name = "top-1 error", digits = 4}},
  rows = rows, provenance = prov}
report.table{path = o.results .. "/fig3_spearman", title = "Figure 3: Spearman rank correlation of L and the top-1 error",
  columns = {"layer", "points", {name = "Spearman rho", digits = 4}}, rows = by_layer, provenance = prov}
report.plot{path = o.figures .. "/fig3_norm_error.png", width = 1000, height = 640,
  title = "Figure 3. Estimated function distance vs top-1 error, ResNet-50 (w0.125) on Fashion-MNIST",
  xlabel = string.format("function distance L̂ (squared logit distance, %d fixed training images)", o.samples),
  ylabel = string.format("top-1 error on %d test images (%%)", o.test_count), xlog = true, series = series,
  hlines = {{at = 100 * ref_error, color = "grey", style = "dashed", label = "uncompressed"}}, provenance = prov}

print(string.format("Spearman ρ over all %d points: %.3f", #all_L, by_layer[#by_layer][3]))
print(string.format("wrote %s/fig3.{csv,md}, %s/fig3_spearman.{csv,md}, %s/fig3_norm_error.png in %.1f s", o.results,
                    o.results, o.figures, boengine.clock() - t0))
