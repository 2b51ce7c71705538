-- bo.gp from Lua: predictions and the marginal likelihood against closed forms, fitting, options
-- and the errors that bad input gets.
local tap = require "tap"

-- Matérn-5/2 in one dimension, written out here as the reference
local function m52(a, b, l, s2)
  local r = math.abs(a - b) / l
  return s2 * (1 + math.sqrt(5) * r + 5 / 3 * r * r) * math.exp(-math.sqrt(5) * r)
end

-- one observation: every quantity has a closed form
local l, s2, m, nz, x0, y0 = 0.4, 1.7, 0.3, 0.05, 0.2, 1.1
local g = bo.gp{X = {{x0}}, y = {y0}, noise = {nz}, lengthscale = l, outputscale = s2, mean = m}
local mu, var = g:predict{{0.5}, {0.9}}
for i, x in ipairs{0.5, 0.9} do
  local k = m52(x, x0, l, s2)
  tap.near(mu[i], m + k / (s2 + nz) * (y0 - m), 1e-12, "one-point posterior mean at " .. x)
  tap.near(var[i], s2 - k * k / (s2 + nz), 1e-12, "one-point posterior variance at " .. x)
end
local lml, grad = g:lml()
local v = s2 + nz
tap.near(lml, -0.5 * (y0 - m) ^ 2 / v - 0.5 * math.log(2 * math.pi * v), 1e-12, "one-point log marginal likelihood")
tap.near(grad[1], (y0 - m) / v, 1e-12, "d lml / d mean")
tap.is(#grad, 3, "gradient over mean, log lengthscale, log outputscale")

-- a noise given as one number applies to every point; the covariance option
local X = {{0.1, 0.2}, {0.4, 0.9}, {0.8, 0.3}, {0.6, 0.6}}
local y = {0.5, -0.2, 0.9, 0.1}
local a = bo.gp{X = X, y = y, noise = 0.01, lengthscale = {0.5, 0.7}}
local b = bo.gp{X = X, y = y, noise = {0.01, 0.01, 0.01, 0.01}, lengthscale = {0.5, 0.7}}
tap.is(a:lml(), b:lml(), "noise as a number equals the same noise per point")
local mu2, var2, cov = a:predict({{0.3, 0.3}, {0.7, 0.5}}, {cov = true})
tap.near(cov[1][1], var2[1], 1e-14, "the covariance's diagonal is the variance")
tap.near(cov[1][2], cov[2][1], 1e-15, "the covariance is symmetric")
tap.ok(math.abs(cov[1][2]) > 1e-6, "points nearby covary")
for _, kernel in ipairs{"matern52", "matern32", "se"} do
  local gk = bo.gp{X = X, y = y, noise = 0.01, kernel = kernel}
  tap.is(gk:params().kernel, kernel, "kernel " .. kernel)
end

-- fitting raises the log posterior and keeps the hyperparameters positive; seeds make it repeatable
local n, Xf, yf = 40, {}, {}
math.randomseed(7)
for i = 1, n do
  local t = (i - 0.5) / n
  Xf[i] = {t}
  yf[i] = math.sin(6 * t) + 0.05 * (math.random() + math.random() + math.random() - 1.5) * 2 -- sd 0.05
end
local f1 = bo.gp{X = Xf, y = yf, noise = 0.0025}
local before = f1:lml()
f1:fit()
local p = f1:params()
tap.ok(f1:lml() > before, string.format("fit raises the marginal likelihood (%.2f -> %.2f)", before, f1:lml()))
tap.ok(p.lengthscale[1] > 0.05 and p.lengthscale[1] < 2, "a plausible lengthscale: " .. p.lengthscale[1])
local f2 = bo.gp{X = Xf, y = yf, noise = 0.0025}:fit{restarts = 2, seed = 9}
local f3 = bo.gp{X = Xf, y = yf, noise = 0.0025}:fit{restarts = 2, seed = 9}
tap.is(f2:params().lengthscale[1], f3:params().lengthscale[1], "the same seed gives the same fit")
local mf = f1:predict{{0.25}}
tap.near(mf[1], math.sin(1.5), 0.05, "the fitted GP predicts sin(6x)")
local nofit = bo.gp{X = Xf, y = yf, noise = 0.0025, priors = false}:fit()
tap.ok(nofit:params().outputscale > 0, "fitting without priors works")
local learned = bo.gp{X = Xf, y = yf, learn_noise = true, noise_level = 0.1}:fit()
local nl = learned:params().noise_level
tap.ok(nl > 0.0025 / 4 and nl < 0.0025 * 4, "a learned noise variance near 0.05^2: " .. nl)
local pri = bo.gp{X = Xf, y = yf, priors = {lengthscale = {3, 6}, outputscale = false}}:fit()
tap.ok(pri:params().outputscale > 0, "priors per group")
local acq = f1:acquisition({{0.1}, {0.75}, {0.9}}, {kind = "ei"})
tap.ok(acq[2] > acq[1] and acq[1] >= 0, "EI is larger near the minimum of sin(6x) (x = 0.785) than at 0.1")
local lcb = f1:acquisition({{0.75}}, {kind = "lcb", kappa = 0})
tap.near(lcb[1], f1:predict{{0.75}}[1], 1e-12, "LCB with kappa 0 is the posterior mean")

-- duplicate points without noise still work, in any units
local dup = bo.gp{X = {{1}, {1}, {2}}, y = {3e9, 3e9, 1e9}}:fit()
local md = dup:predict{{1}}
tap.near(md[1] / 3e9, 1, 1e-6, "duplicate inputs, zero noise and y ~ 1e9")

-- errors name the problem
tap.dies("bo.gp: unknown key 'lenghtscale'", "an unknown key is refused", bo.gp, {X = X, y = y, lenghtscale = 1})
tap.dies("'X' (the list of input points) is required", "X is required", bo.gp, {y = y})
tap.dies("y has 3 numbers, expected 4", "y must match X", bo.gp, {X = X, y = {1, 2, 3}})
tap.dies("point 2 has 1 coordinates, expected 2", "ragged X is refused", bo.gp, {X = {{1, 2}, {3}}, y = {1, 2}})
tap.dies("point 1, coordinate 2 is not a finite number", "NaN in X is refused", bo.gp, {X = {{1, 0 / 0}}, y = {1}})
tap.dies("unknown kernel 'matern'", "an unknown kernel is refused", bo.gp, {X = X, y = y, kernel = "matern"})
tap.dies("noise variance 2 is negative", "a negative noise is refused", bo.gp, {X = X, y = y, noise = {0, -1, 0, 0}})
tap.dies("lengthscale 1 must be a positive number", "a zero lengthscale is refused", bo.gp, {X = X, y = y, lengthscale = 0})
tap.dies("gp:fit: unknown key 'restart'", "fit options are checked", a.fit, a, {restart = 1})
tap.dies("point 1 has 1 coordinates, expected 2", "predicting at points of another dimension is refused", a.predict, a, {{1}})
tap.dies("unknown acquisition 'ucb'", "an unknown acquisition is refused", a.acquisition, a, {{1, 1}}, {kind = "ucb"})
tap.dies("priors: unknown key 'length'", "priors are checked", bo.gp, {X = X, y = y, priors = {length = {1, 1}}})
tap.dies("needs shape > 0 and rate > 0", "a bad prior is refused", bo.gp, {X = X, y = y, priors = {lengthscale = {0, 1}}})
tap.done()
