-- Compression and its objectives from Lua, on a small VGG trained with PyTorch on Fashion-MNIST
-- (tests/fixtures/compress, made by scripts/gen-compress-fixtures): families, ratios, function
-- distance and risk with their standard errors against direct computations, reproducible samples,
-- the scalarized objective, export and reload, and bad input.
local tap = require "tap"
local MODEL = "tests/fixtures/compress/vgg_fmnist.safetensors"

local net = nn.load(MODEL)
local ds = data.fashion_mnist{}
local acc = ds:accuracy(net)
tap.near(acc, tonumber(tensor.metadata(MODEL).accuracy), 0.001, "the trained fixture keeps PyTorch's test accuracy")

local function fill(n, v) local t = {} for i = 1, n do t[i] = v end return t end

-- families declared by pattern, with their break-even ranks and bounds
local vh = compress.vh{net = net, layers = "features.*", bounds = {0.05, 1.5}}
local layers = vh:layers()
tap.is(#vh, 8, "vh on features.*: the 8 convolutions")
tap.ok(layers[1].name == "features.0" and layers[8].name == "features.18", "layers in graph order")
-- features.3: 4 -> 8 channels, 3x3: break-even floor(3·4·8/12) = 8, full rank min(12, 24) = 12
tap.ok(layers[2].break_even == 8 and layers[2].max_rank == 12 and layers[2].lo == 0.05 and layers[2].hi == 1.5,
       "features.3: break-even rank 8, full rank 12, bounds as declared")
tap.is(#compress.bounds{vh}, 8, "compress.bounds lists one box side per layer")
tap.is(compress.names(vh)[3], "vh:features.6", "compress.names labels θ entries")

-- function distance grows as the rank falls (a trained network, one fixed sample)
local fixed = objective.fnorm{reference = net, data = ds, samples = 200, seed = 3, fixed = true}
local last, grows = -1, true
local dists = {}
for _, r in ipairs{1.5, 1.0, 0.7, 0.5, 0.3, 0.15} do
  local cand <close>, info = compress.apply(net, vh, fill(8, r))
  local L = fixed:evaluate(cand)
  dists[#dists + 1] = string.format("%.3g", L)
  grows = grows and L > last
  last = L
end
tap.ok(grows, "fnorm grows as the VH rank falls: " .. table.concat(dists, " < "))

-- exactness at full rank through the Lua API, and the distance is then ~0
local absolute = compress.vh{net = net, layers = "features.*", rank = "absolute"}
local full = {}
for i, l in ipairs(absolute:layers()) do full[i] = l.max_rank end
local cfull <close>, ifull = compress.apply(net, absolute, full)
local x = ds:batch(1, 64)
tap.ok(cfull:forward(x):rel_error(net:forward(x)) < 1e-4, "vh at full rank reproduces the logits")
local L0 = fixed:evaluate(cfull)
tap.ok(L0 < 1e-6, "function distance at full rank is ~0 (" .. L0 .. ")")
tap.ok(ifull.params > 1 and ifull.counts.weights_ref == 36036, "full-rank VH is larger than the layers it replaces")

-- the standard error against a direct computation on the same sample
local est = objective.fnorm{reference = net, data = ds, samples = 40, seed = 11}
local c05 <close> = compress.apply(net, vh, fill(8, 0.5))
local L, se, info = est:evaluate(c05)
local xs = ds:get(info.indices)
local a, b = c05:forward(xs), net:forward(xs)
local classes = b:shape()[2]
local d, sum = {}, 0
for i = 1, 40 do
  local s = 0
  for k = 1, classes do s = s + (a:get(i, k) - b:get(i, k)) ^ 2 end
  d[i] = s
  sum = sum + s
end
local mean, ss = sum / 40, 0
for i = 1, 40 do ss = ss + (d[i] - mean) ^ 2 end
tap.near(L, mean, 1e-6, "fnorm is the mean squared distance of the logits")
tap.near(se, math.sqrt(ss / 39) / math.sqrt(40), 1e-6, "its standard error is s/sqrt(n) with ddof 1")
tap.is(info.sample, 1, "the first evaluation is sample 1")
local chunked = objective.fnorm{reference = net, data = ds, samples = 40, seed = 11, batch = 7}
local Lk, sek = chunked:evaluate(c05)
tap.ok(math.abs(Lk - L) <= 1e-5 * L and math.abs(sek - se) <= 1e-4 * se,
       "batch = 7 (a padded last batch) gives the same estimate")
local root = objective.fnorm{reference = net, data = ds, samples = 40, seed = 11, squared = false}
local Lr = root:evaluate(c05)
local rsum = 0
for i = 1, 40 do rsum = rsum + math.sqrt(d[i]) end
tap.near(Lr, rsum / 40, 1e-6, "squared = false averages the norms themselves")

-- risk: top-1 error on the sample, binomial standard error, floored
local risk = objective.risk{data = ds, samples = 40, seed = 11}
local p, pse, rinfo = risk:evaluate(c05)
local _, labels = ds:get(rinfo.indices)
local wrong = 0
for i = 1, 40 do
  local best = 1
  for k = 2, classes do if a:get(i, k) > a:get(i, best) then best = k end end
  if best - 1 ~= labels[i] then wrong = wrong + 1 end
end
tap.near(p, wrong / 40, 1e-12, "risk is the top-1 error on the sample")
tap.near(pse, math.max(math.sqrt(p * (1 - p) / 40), math.sqrt(0.0125 * 0.9875 / 40)), 1e-12,
         "risk's standard error is sqrt(p(1-p)/n), floored")
local perfect
for seed = 1, 60 do
  local r5 = objective.risk{data = ds, samples = 5, seed = seed, fixed = true}
  local e5, s5 = r5:evaluate(net)
  if e5 == 0 then perfect = s5 break end
end
tap.near(perfect, math.sqrt(0.1 * 0.9 / 5), 1e-12, "at zero errors the floor sqrt(p0(1-p0)/n), p0 = 1/(2n), applies")

-- samples: fresh per evaluation, reproducible from (seed, index), fixed as an option
local e1 = objective.fnorm{reference = net, data = ds, samples = 30, seed = 5}
local e2 = objective.fnorm{reference = net, data = ds, samples = 30, seed = 5}
local La = {e1:evaluate(c05)}
local Lb = {e1:evaluate(c05)}
local Lc = {e2:evaluate(c05, {sample = 2})}
tap.ok(La[1] ~= Lb[1] and Lb[3].sample == 2, "each evaluation draws a new sample")
tap.ok(Lc[1] == Lb[1] and table.concat(Lc[3].indices, ",") == table.concat(e1:indices(2), ","),
       "sample i depends only on (seed, i)")
local f1 = {fixed:evaluate(c05)}
local f2 = {fixed:evaluate(c05)}
tap.ok(f1[1] == f2[1] and f2[3].sample == fixed:count(), "fixed = true reuses one sample")
local pooled = objective.fnorm{reference = net, data = ds, samples = 10, seed = 2, pool = 25}
local seen, count = {}, 0
for k = 1, 30 do
  for _, i in ipairs(pooled:indices(k)) do
    if not seen[i] then seen[i] = true; count = count + 1 end
  end
end
tap.ok(count <= 25 and count > 10, "samples come from a pool of 25 examples (" .. count .. " seen)")

-- several families in one search, the scalarized objective, export and reload
local fc = compress.svd{net = net, layers = {"classifier.0", "classifier.3"}, bounds = {0.1, 1}}
local q = compress.quantize{net = net, layers = "classifier.6", bounds = {2, 8}}
local pc = compress.prune_channels{net = net, layers = {"features.0", "features.3"}, bounds = {0.5, 1}}
local fams = {compress.vh{net = net, layers = {"features.6", "features.8"}, bounds = {0.2, 0.7}}, fc, q, pc}
tap.is(compress.dim(fams), 7, "four families, seven parameters")
tap.ok(compress.integer(fams)[5] == true and compress.integer(fams)[1] == false, "bits are integer parameters")
local theta = {0.4, 0.5, 0.3, 0.6, 4, 0.5, 0.75}
local mixed <close>, minfo = compress.apply(net, fams, theta)
tap.ok(minfo.params < 1 and minfo.params_net < 1 and minfo.flops < 1 and minfo.bits < minfo.params,
       string.format("mixed: ratios below 1 (params %.3f, net %.3f, flops %.3f, bits %.3f)", minfo.params,
                     minfo.params_net, minfo.flops, minfo.bits))
tap.ok(minfo.layers[5].bits == 4 and minfo.layers[6].keep == 2 and minfo.layers[7].keep == 6 and
       minfo.layers[1].rank == math.floor(0.4 * 16), "per-layer choices: bits, kept channels, ranks")
local path = os.tmpname()
mixed:save(path)
local back = nn.load(path)
tap.is(back:forward(x):rel_error(mixed:forward(x)), 0, "a saved candidate reloads with nn.load alone")
tap.near(ds:accuracy(back), ds:accuracy(mixed), 1e-12, "and ds:accuracy evaluates it")
tap.ok(back:param_count() == minfo.counts.params and back:param_count() < net:param_count(),
       "the reloaded network is the smaller one")
os.remove(path)

local f, run = objective.scalarize{families = fams, estimator = objective.fnorm{reference = net, data = ds,
                                   samples = 50}, gamma = 0.01}
tap.is(type(f), "function", "scalarize gives a plain function for bo.minimize")
local y, noise, rec = f(theta, 7)
tap.is(rec.sample, 7, "f(theta, i) evaluates on sample i")
tap.near(y, rec.R + 0.01 * rec.L, 1e-12, "scalarize: y = R + γ·L")
tap.near(noise, 0.01 * rec.se, 1e-12, "scalarize: noise γ·SE")
tap.near(rec.R, minfo.params, 1e-12, "scalarize: R is the parameter ratio of the compressed layers")
run{0.6, 0.6, 0.6, 0.6, 6, 0.6, 0.6}
run:reweight(1)
tap.ok(#run.history == 2 and math.abs(run.history[1].y - (run.history[1].R + run.history[1].L)) < 1e-12,
       "reweight re-scores the history for a new γ without new evaluations")

-- tucker2 with HOOI, dense svd with the energy rule, magnitude pruning
local tk = compress.tucker2{net = net, layers = "features.1*", hooi = 2}
local ctk <close>, itk = compress.apply(net, tk, fill(#tk, 0.5))
tap.ok(itk.layers[1].ranks[1] == 8 and itk.layers[1].ranks[2] == 16, "tucker2 ranks: round(θ·C), round(θ·N) (16 -> 32 channels)")
local energy = compress.svd{net = net, layers = "features.16", rank = "energy", dense = true, bounds = {0, 1}}
local ce <close>, ie = compress.apply(net, energy, {0})
tap.ok(ie.layers[1].rank == 0 and ie.counts.weights == 0, "energy rank can reach K = 0 (a zero layer)")
local pw = compress.prune_weights{net = net, layers = "*"}
local cpw <close>, ipw = compress.apply(net, pw, fill(#pw, 0.25))
tap.near(ipw.params, 0.25, 1e-3, "magnitude pruning keeps a quarter of the weights")
tap.is(ipw.flops, 1.0, "unstructured pruning does not reduce the dense FLOPs")
tap.ok(compress.latency(ctk, {batch = 2, runs = 3}) > 0, "latency of a candidate")

-- per-layer bounds in every family (the pairs were read from the wrong stack slot: with 8 layers an
-- error "attempt to index a number value", with 2 layers valid bounds refused)
local per = {}
for i = 1, 8 do per[i] = {0.05 * i, 0.5 + 0.1 * i} end
local vhp = compress.vh{net = net, layers = "features.*", bounds = per}
local as_given = true
for i, l in ipairs(vhp:layers()) do as_given = as_given and l.lo == per[i][1] and l.hi == per[i][2] end
tap.ok(as_given and compress.bounds(vhp)[8][2] == per[8][2], "vh: one pair of bounds per layer (8 layers)")
local pairs2 = {{0.1, 0.4}, {0.2, 0.9}}
for _, d in ipairs{{"vh", {"features.3", "features.6"}}, {"svd", {"classifier.0", "classifier.3"}},
                   {"tucker2", {"features.3", "features.6"}}, {"prune_channels", {"features.0", "features.3"}},
                   {"prune_weights", {"features.0", "classifier.0"}},
                   {"quantize", {"features.0", "classifier.0"}, {{2, 4}, {3, 8}}}} do
  local b = d[3] or pairs2
  local fam = compress[d[1]]{net = net, layers = d[2], bounds = b}
  local l = fam:layers()
  tap.ok(l[1].lo == b[1][1] and l[1].hi == b[1][2] and l[2].lo == b[2][1] and l[2].hi == b[2][2],
         d[1] .. ": one pair of bounds per layer (2 layers)")
end
tap.dies("a list of 1 bounds for 2 layers", "a list of bounds of another length", compress.svd,
         {net = net, layers = {"classifier.0", "classifier.3"}, bounds = {{0.1, 0.4}}})
tap.dies("bounds[2] must be a pair {lo, hi}", "a list with something else than a pair", compress.svd,
         {net = net, layers = {"classifier.0", "classifier.3"}, bounds = {{0.1, 0.4}, {0.2, "x"}}})
tap.dies("bounds {0.5, 2} of features.3 leave the range [0, 1]", "a pair outside one layer's range",
         compress.prune_channels, {net = net, layers = {"features.0", "features.3"}, bounds = {{0.1, 0.4}, {0.5, 2}}})

-- a split layer also quantized and pruned by magnitude saves and reloads with nn.load alone (its
-- values-only records named a layer that the split had replaced)
for _, first in ipairs{"split", "values"} do
  local s0 = compress.vh{net = net, layers = {"features.3", "features.6"}}
  local q0 = compress.quantize{net = net, layers = {"features.3", "classifier.0"}}
  local p0 = compress.prune_weights{net = net, layers = "features.3"}
  local fam, th = {s0, q0, p0}, {0.5, 0.7, 5, 4, 0.5}
  if first == "values" then fam, th = {q0, p0, s0}, {5, 4, 0.5, 0.5, 0.7} end
  local c <close> = compress.apply(net, fam, th)
  local p = os.tmpname()
  c:save(p)
  local ok, back = pcall(nn.load, p)
  tap.ok(ok and back:forward(x):rel_error(c:forward(x)) == 0,
         "vh + quantize + prune_weights on one layer (" .. first .. " first) reloads with nn.load: " ..
         (ok and "same logits" or tostring(back)))
  os.remove(p)
end

-- per-layer facts for reports: original shape, setting, parameters and MACs before and after
-- (features.8: features.6 would count the input channels it loses to the pruning of features.3)
local l1, l5 = minfo.layers[2], minfo.layers[5]
local N8, C8 = l1.shape[1], l1.shape[2]
tap.ok(#l1.shape == 4 and l1.shape[3] == 3 and l1.setting == "rank " .. l1.rank and l5.setting == "bits 4",
       "info.layers[i]: the original shape and the setting as text (" .. l1.setting .. ", " .. l5.setting .. ")")
tap.ok(l1.weights_ref == N8 * C8 * 9 and l1.params_ref == l1.weights_ref + N8 and l1.params == l1.weights + N8 and
       l1.weights == 3 * l1.rank * (C8 + N8),
       "vh of features.8: weights and parameters (with the bias) before and after")
tap.ok(l1.macs_ref == 7 * 7 * N8 * C8 * 9 and l1.macs == 7 * 7 * 3 * l1.rank * (C8 + N8),
       "vh of features.8 on 7×7 maps: MACs 49·9·C·N before, 49·3·K·(C + N) after")
tap.ok(l5.macs == l5.macs_ref and l5.params == l5.params_ref and l5.weights == l5.weights_ref,
       "a quantized layer keeps its counts (its bits change)")
local l0 = vh:layers()[2]
tap.ok(l0.min == 0 and l0.max == 12 / 8 and l0.shape[1] == 8 and l0.shape[2] == 4,
       "fam:layers() gives each layer's range of θ and its shape")

-- a family closed at the end of its block (to-be-closed) is freed
local closed
do
  local f0 <close> = compress.svd{net = net, layers = "classifier.0"}
  closed = f0
end
tap.dies("family has been freed", "a closed family cannot be used", function() return closed:dim() end)

-- bad input
tap.dies("compress.vh: unknown key 'layer'", "an unknown key is named", compress.vh, {net = net, layer = "x"})
tap.dies("no layer matches 'conv*'", "a pattern matching nothing", compress.vh, {net = net, layers = "conv*"})
tap.dies("layer features.1 is not a convolution", "an exact name of the wrong kind", compress.vh,
         {net = net, layers = "features.1"})
tap.dies("leave the range", "bounds outside the parameter's range", compress.prune_channels,
         {net = net, layers = "features.0", bounds = {0.5, 2}})
tap.dies("'rank' must be", "an unknown rank mode", compress.tucker2, {net = net, layers = "features.3", rank = "energy"})
tap.dies("theta has 3 entries, the families have 8", "theta of the wrong length", compress.apply, net, vh, {1, 1, 1})
tap.dies("is outside its bounds", "theta outside its bounds", compress.apply, net, vh, fill(8, 2))
tap.dies("in two families", "one layer in two structural families", compress.apply, net, {vh, absolute},
         fill(16, 1))
local other = nn.load(MODEL)
tap.dies("declared on another network", "a family of another network", compress.apply, other, vh, fill(8, 1))
tap.dies("'reference' is required", "fnorm without a reference", objective.fnorm, {data = ds})
tap.dies("samples = 20000 must be between 1 and the pool size 10000", "more samples than the pool",
         objective.fnorm, {reference = net, data = ds, samples = 20000})
tap.dies("objective.risk: unknown key 'reference'", "risk takes no reference", objective.risk,
         {data = ds, reference = net})
tap.dies("'estimator' is required", "scalarize without an estimator", objective.scalarize, {families = vh})
tap.dies("'estimator' must be objective.fnorm", "scalarize with something else", objective.scalarize,
         {families = vh, estimator = 3})
tap.dies("'data' must be a dataset", "fnorm on something that is not a dataset", objective.fnorm,
         {reference = net, data = {}})
tap.dies("'net' must be a network", "a family on something that is not a network", compress.svd,
         {net = "vgg", layers = "*"})
tap.dies("families[2] is number, not a family", "a list with a stranger", compress.apply, net, {vh, 3}, {})

-- a script's bad input is one line naming the script's line, whatever the layer that noticed it
local dir = os.tmpname()
local h = assert(io.open(dir, "w"))
h:write('local net = nn.mlp{784, 20, 10}\nlocal f = compress.svd{net = net, layers = "fc*"}\n',
        'local g = objective.scalarize{families = f, estimator = objective.risk{data = data.fashion_mnist{}}}\n',
        'g{0.5, 7}\n')
h:close()
local ok, out, err = tap.run(tap.boengine() .. " " .. dir)
tap.ok(not ok and err:match("^boengine: [^\n]*:4: compress.apply: theta%[2%] = 7 for fc2 %(svd%) is outside its bounds")
       and not err:find("traceback"), "an error raised under the prelude names the script's line: " .. err)
os.remove(dir)
tap.done()
