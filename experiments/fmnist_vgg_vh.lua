-- Compresses the shipped Fashion-MNIST VGG by Bayesian optimization over the VH ranks of its eight
-- convolutions (METHOD.md §1-4): each evaluation scores y = R + γ·L, with R the parameter ratio of
-- the compressed layers and L the function distance to the original on fresh test images (a
-- U-statistic whose standard error, times γ, is the GP's known noise). The run is journaled: kill it
-- and start it again, and it continues where it stopped.
--   boengine experiments/fmnist_vgg_vh.lua [gamma] [evaluations]
local gamma = tonumber(arg[1]) or 0.01
local evaluations = tonumber(arg[2]) or 60
local seed = 1
local name = string.format("fmnist_vgg_vh_gamma%g", gamma)

local model = "results/models/fmnist_vgg11_bn.safetensors"
local net = nn.load(model)
local test = data.fashion_mnist{split = "test"}

-- one θ per convolution: its rank as a fraction of the break-even rank
local vh = compress.vh{net = net, layers = "features.*", bounds = {0.1, 0.9}}
local fnorm = objective.fnorm{reference = net, data = test, samples = 50, seed = seed}
local f, run = objective.scalarize{families = {vh}, estimator = fnorm, gamma = gamma}

local r = bo.minimize{
  f = function(theta, i)
    local y, noise, rec = f(theta, i)
    return y, noise, {L = rec.L, se = rec.se, R = rec.R}
  end,
  bounds = run:bounds(), integer = run:integer(),
  init = 16, iterations = evaluations - 16, seed = seed,
  journal = "results/" .. name .. ".jsonl",
}

-- the chosen network: the evaluated point of lowest posterior mean, rebuilt, measured and saved
local best, info = compress.apply(net, vh, r.best.x)
local ranks = {}
for i, layer in ipairs(info.layers or {}) do ranks[i] = layer.rank end
print(string.format("best of %d evaluations (#%d): parameter ratio %.3f of the convolutions (%.3f of the network), "
                    .. "FLOP ratio %.3f, L %.4g ± %.2g", #r.history, r.best.i, info.params, info.params_net, info.flops,
                    r.best.info.L, r.best.info.se))
print(string.format("test accuracy %.4f (original %s)", test:accuracy(best), tensor.metadata(model)["train.test_accuracy"]))
if #ranks > 0 then print("ranks: " .. table.concat(ranks, " ")) end
best:save("results/" .. name .. ".safetensors")
