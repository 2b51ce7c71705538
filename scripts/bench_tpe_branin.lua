-- One run of noisy Branin for scripts/bench-tpe: Gaussian noise of standard deviation sigma (told as
-- the standard error), evaluation i's noise drawn from the seed 1000·seed + i whatever the strategy,
-- so that BO and an external driver (scripts/tpe) meet the same noise. Prints one line:
--   branin STRATEGY SEED f(recommended x) regret
-- the recommendation being the strategy's best point (BO: the lowest posterior mean; a strategy
-- without a model: the lowest observed y), scored without noise.
--   boengine scripts/bench_tpe_branin.lua [strategy=bo] [seed=1] [evaluations=30] [sigma=0.5] [init=6]
local declare = require "boengine.declare"
local o = declare.settings{strategy = "bo", seed = 1, evaluations = 30, sigma = 0.5, init = 6}
local info = bo.functions.info("branin")
local r = bo.minimize{
  f = function(x, i) return bo.functions.branin(x, o.sigma, 1000 * o.seed + i), o.sigma end,
  bounds = info.bounds, init = o.init, iterations = o.evaluations - o.init, strategy = o.strategy, seed = o.seed,
}
local f = bo.functions.branin(r.best.x)
print(string.format("branin %s %d %.6f %.6f", o.strategy, o.seed, f, f - info.minimum))
