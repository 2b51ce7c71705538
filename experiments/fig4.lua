-- The supplement's Figure 4 (its section C; docs/figures.md): Bayesian optimization of sinone with
-- Gaussian noise σ = 0.03, the GP told the honest standard error 0.03, one frame per iteration after
-- the design. Top: the noise-free objective, the GP posterior mean ± 2 standard deviations and the
-- observations; bottom: the acquisition the next step maximizes; a blue vertical line at the
-- current best point (lowest posterior mean) and a red one at the next point. For corrected EI
-- (ei_c, the paper's) and noisy EI (nei, the default): the frames FIGURES/fig4/ACQ_NN.png, a grid of
-- the first frames (ACQ_grid.png) and the animation (ACQ.gif). FIGURES is PROJECT/figures, PROJECT
-- the folder holding experiments/ (boengine.project), whatever the working directory.
--
--   scripts/boengine experiments/fig4.lua [seed=1] [iterations=21] [init=4] [grid=8]
--                                         [acquisitions=ei_c,nei] [figures=PROJECT/figures]
--
-- The run of each acquisition is the study's run of the same seed (experiments/acquisition_study.lua:
-- same noise draws, same settings), so the study tells how typical the frames are. Seed 1, the
-- engine's default, is also the lowest seed on which the two end differently (corrected EI stays in
-- a local minimum, noisy EI finds the global one), as they do in about 3 seeds of 10: chosen for
-- that, and said so in docs/figures.md.

local settings = {seed = 1, iterations = 21, init = 4, grid = 8, acquisitions = "ei_c,nei", sigma = 0.03,
                  figures = boengine.project .. "/figures"}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or settings[k] == nil then
    error(string.format("fig4: unknown argument '%s' (keys: seed, iterations, init, grid, acquisitions, sigma, "
                        .. "figures)", a), 0)
  end
  settings[k] = type(settings[k]) == "number" and assert(tonumber(v), k .. " must be a number") or v
end

local names = {ei_c = "Corrected EI (ei_c)", nei = "Noisy EI (nei)", ei = "EI (ei)", pi = "PI (pi)", lcb = "LCB (lcb)"}
local seed, sigma, init = math.tointeger(settings.seed), settings.sigma, math.tointeger(settings.init)
local info = bo.functions.info("sinone")
local out = settings.figures .. "/fig4"

-- the plotting grid and the noise-free objective
local M = 401
local xs, grid, truth = {}, {}, {}
for k = 1, M do
  xs[k] = (k - 1) / (M - 1)
  grid[k] = {xs[k]}
  truth[k] = bo.functions.sinone(xs[k])
end
local YLIM = {-0.3, 1.3} -- fixed, so that nothing moves between frames

local function clamp(v) return math.max(YLIM[1], math.min(YLIM[2], v)) end

local function frame(path, acq, k, opt, best, nextx)
  local mu, var = opt:predict(grid)
  local lo, hi = {}, {}
  for i = 1, M do
    local sd = math.sqrt(math.max(var[i], 0))
    lo[i], hi[i] = clamp(mu[i] - 2 * sd), clamp(mu[i] + 2 * sd)
    mu[i] = clamp(mu[i])
  end
  local a = opt:acquisition(grid)
  local top = 0
  for i = 1, M do top = math.max(top, a[i]) end
  for i = 1, M do a[i] = top > 0 and a[i] / top or 0 end
  local ox, oy = {}, {}
  for i, rec in ipairs(opt:history()) do ox[i], oy[i] = rec.x[1], clamp(rec.y) end
  local lines = {{at = best, color = "blue", style = "solid", label = "current best"},
                 {at = nextx, color = "red", style = "solid", label = "next point"}}
  report.figure{
    path = path,
    title = string.format("%s on sinone, σ = %.2f, seed %d: iteration %d (%d evaluations)", names[acq] or acq, sigma,
                          seed, k, #ox),
    columns = 1, heights = {3, 2}, sharex = true, width = 900, height = 640,
    provenance = {seed = seed, acquisition = acq, iteration = k, evaluations = #ox, sigma = sigma},
    panels = {
      {ylabel = "f(x)", xlim = {0, 1}, ylim = YLIM, legend = "outside",
       series = {
         {kind = "band", x = xs, lo = lo, hi = hi, color = "green", label = "GP mean ± 2 sd"},
         {kind = "line", x = xs, y = truth, color = "black", style = "dashed", label = "objective"},
         {kind = "line", x = xs, y = mu, color = "green", label = "GP mean"},
         {kind = "scatter", x = ox, y = oy, color = "black", label = "observations"},
       },
       vlines = lines},
      {xlabel = "x", ylabel = "acquisition / max", xlim = {0, 1}, ylim = {0, 1.08}, legend = "outside",
       series = {{kind = "line", x = xs, y = a, color = "purple", label = string.format("max %.2g", top)}},
       vlines = {{at = best, color = "blue", style = "solid"}, {at = nextx, color = "red", style = "solid"}}},
    },
  }
end

local t0 = boengine.clock()
for acq in settings.acquisitions:gmatch("[^,]+") do
  local frames, k = {}, 0
  local iterations = math.tointeger(settings.iterations)
  local r = bo.minimize{
    f = function(x, i) return bo.functions.sinone(x, sigma, 1000 * seed + i), sigma end,
    bounds = info.bounds, init = init, iterations = iterations, acquisition = acq, seed = seed,
    callback = function(i, rec, opt)
      -- a frame after each evaluation from the design's last on: the model of i evaluations, its
      -- acquisition, and the point it proposes for evaluation i + 1 (the run then evaluates it)
      if i < init or i >= init + iterations then return end
      k = k + 1
      local path = string.format("%s/%s_%02d.png", out, acq, k)
      frame(path, acq, k, opt, rec.best.x[1], opt:ask()[1])
      frames[#frames + 1] = path
    end,
  }
  local first = {}
  for j = 1, math.min(math.tointeger(settings.grid), #frames) do first[j] = frames[j] end
  report.montage{path = string.format("%s/%s_grid.png", out, acq), images = first, columns = math.min(4, #first),
                 provenance = {seed = seed, acquisition = acq}}
  report.gif{path = string.format("%s/%s.gif", out, acq), frames = frames, delay = 0.7, last_delay = 3,
             provenance = {seed = seed, acquisition = acq, sigma = sigma}}
  print(string.format("fig4: %s: %d frames; recommends x = %.4f, f(x) = %.4f (minimum %.4f at %.4f)", acq, #frames,
                      r.best.x[1], bo.functions.sinone(r.best.x[1]), info.minimum, info.argmin[1]))
end
print(string.format("fig4: seed %d, %.1f s", seed, boengine.clock() - t0))
