-- The compression benchmark (run by scripts/bench-compress): for VGG16 at 224×224 (random weights)
-- and a Fashion-MNIST VGG, the cost of one candidate evaluation (VH on every convolution, function
-- distance on n samples) split into its parts, and the speed-up of the compressed forward pass.
--
--   boengine scripts/bench_compress.lua [vgg16|fmnist|all] [key=value ...]
--     n=50          samples per evaluation
--     evals=5       candidates timed (θ drawn uniformly in the bounds, seeded)
--     runs=5        alternated latency runs per ratio (medians)
--     batch16=8     batch of the VGG16 latency runs (fmnist: batchf=50)
--     chunk=0       forward passes of an evaluation in batches of this many (0: the estimator's default)
--     fmnist=PATH   a trained Fashion-MNIST VGG (default: results/models/*vgg*.safetensors if
--                   there is one, else the architecture of experiments/train_fmnist_vgg.lua,
--                   VGG-11-BN at width 0.5 on 28×28 inputs, with random weights)
local which = "all"
local opt = {n = 50, evals = 5, runs = 5, batch16 = 8, batchf = 50, chunk = 0}
for _, a in ipairs(arg) do
  local k, v = a:match("^(%w+)=(.*)$")
  if k then opt[k] = tonumber(v) or v else which = a end
end

local function median(t)
  local s = {table.unpack(t)}
  table.sort(s)
  local m = #s
  if m == 0 then return 0 end
  return m % 2 == 1 and s[(m + 1) // 2] or 0.5 * (s[m // 2] + s[m // 2 + 1])
end

local function fmnist_model()
  if opt.fmnist then return nn.load(opt.fmnist), opt.fmnist end
  local p = io.popen("ls results/models/*vgg*.safetensors 2>/dev/null")
  local path = p:read("l")
  p:close()
  if path then return nn.load(path), path end
  -- the architecture of experiments/train_fmnist_vgg.lua (the reference model), random weights
  return nn.vgg{depth = 11, batchnorm = true, width = 0.5, channels = 1, classes = 10, size = 28, stem = "small",
                head = "small"}, "VGG-11-BN width 0.5, 28×28 (random weights)"
end

local function bench(name, net, ds, batch)
  print(string.format("== %s: %d parameters, %.2f GMAC per image", name, net:param_count(),
                      compress.measure(net).macs / 1e9))
  local vh = compress.vh{net = net, layers = "features.*", bounds = {0.2, 0.7}}
  local mid = {}
  for i = 1, #vh do mid[i] = 0.5 end
  local first <close>, info0 = compress.apply(net, vh, mid) -- computes the factors
  print(string.format("factors (%d SVDs, once per run): %.2f s", #vh, info0.time.prepare))
  -- a fixed sample: its reference outputs are computed once, outside the timings below
  local est = objective.fnorm{reference = net, data = ds, samples = opt.n, pool = opt.n, fixed = true, seed = 1,
                              batch = opt.chunk}
  est:prepare()
  local function evaluations(fam, label)
    local parts = {truncate = {}, rebuild = {}, compile = {}, forward = {}, distance = {}, data = {}, overhead = {}}
    local seed = 12345
    local function uniform() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end
    for _ = 1, opt.evals do
      local theta = {}
      for i, b in ipairs(compress.bounds(fam)) do theta[i] = b[1] + (b[2] - b[1]) * uniform() end
      local cand <close>, info = compress.apply(net, fam, theta)
      local _, _, first = est:evaluate(cand)
      local _, _, again = est:evaluate(cand) -- the plans exist now: the forward pass alone
      local t = {truncate = info.time.truncate, rebuild = info.time.rebuild,
                 compile = math.max(0, first.time.forward - again.time.forward), forward = again.time.forward,
                 distance = first.time.distance, data = first.time.data}
      t.overhead = (t.truncate + t.rebuild + t.compile + t.distance + t.data) / t.forward
      for k, v in pairs(t) do table.insert(parts[k], v) end
    end
    print(string.format("one evaluation, %s (n = %d, medians of %d candidates, ms): truncation %.2f, rebuild %.2f, "
                        .. "plan compile and first run %.2f, forward %.2f, distance %.3f, data %.3f; overhead beyond "
                        .. "the forward pass %.1f%% (goal < 10%%)", label, opt.n, opt.evals,
                        1e3 * median(parts.truncate), 1e3 * median(parts.rebuild), 1e3 * median(parts.compile),
                        1e3 * median(parts.forward), 1e3 * median(parts.distance), 1e3 * median(parts.data),
                        100 * median(parts.overhead)))
  end
  evaluations(vh, "exact ranks")
  local vh16 = compress.vh{net = net, layers = "features.*", bounds = {0.2, 0.7}, multiple = 16}
  evaluations(vh16, "ranks rounded up to multiples of 16")
  print(string.format("speed-up of the compressed forward (batch %d, medians of %d alternated runs):", batch, opt.runs))
  local x = {}
  for _, r in ipairs{0.5, 0.3, 0.2, 0.1} do
    local theta = {}
    for i = 1, #vh do theta[i] = r end
    local wide = compress.vh{net = net, layers = "features.*", bounds = {0.05, 1}}
    local cand <close>, info = compress.apply(net, wide, theta)
    local tr, tc = {}, {}
    compress.latency(net, {batch = batch, runs = 1, warmup = 1})
    compress.latency(cand, {batch = batch, runs = 1, warmup = 1})
    for _ = 1, opt.runs do
      table.insert(tr, compress.latency(net, {batch = batch, runs = 1, warmup = 0}))
      table.insert(tc, compress.latency(cand, {batch = batch, runs = 1, warmup = 0}))
    end
    print(string.format("  θ = %.2f: parameter ratio %.3f (convolutions), FLOP ratio %.3f: original %.1f ms, "
                        .. "compressed %.1f ms, speed-up %.2fx", r, info.params, info.flops, 1e3 * median(tr),
                        1e3 * median(tc), median(tr) / median(tc)))
  end
end

local load = io.open("/proc/loadavg")
if load then
  local l1 = tonumber(load:read("n"))
  load:close()
  print(string.format("load average before the run: %.2f%s", l1, l1 > 0.5 and " (the machine is busy: timings are "
                      .. "inflated, OpenMP threads wait for each other)" or ""))
end
if which == "all" or which == "vgg16" then
  local net = nn.vgg{depth = 16, seed = 1}
  local ds = data.fashion_mnist{channels = 3, size = 224, fit = "resize"}
  bench("VGG16, 224×224, random weights", net, ds, opt.batch16)
end
if which == "all" or which == "fmnist" then
  local net, what = fmnist_model()
  local ds = data.fashion_mnist{size = (net:arch():match('"size":(%d+)') or 28) + 0}
  bench("Fashion-MNIST VGG: " .. what, net, ds, opt.batchf)
end
