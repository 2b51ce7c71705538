-- Baselines of a declaration under a budget B that need the network's ratio model, so they live in
-- the runner rather than in bo/ (experiment.lua calls them; docs/baselines.md):
--
-- - project: a proposal of random, sobol or uniform moved onto R = B. The point x defines a ray from
--   the box's lower corner, lo + s·(x − lo); s is the largest (up to the box's upper face) whose R
--   stays <= B. R adds over the layers (each layer's weights depend on its own θ only), so the
--   ray is searched on a per-layer table of weights (65 points of each layer's range, built once
--   by 65 applications), and the last step is checked by compress.apply itself.
-- - greedy: AIMET's per-layer ratio selection. Each layer is compressed alone (the others at their
--   upper bounds) at the places k/N of its range, k = 1..N−1, N = 10; L̂ of each is its score (lower
--   is better). The table is kept in RESULTS/greedy_scores/KEY.csv (KEY: the model, the families, the
--   samples, the objective and the seed), so that another target reuses it without evaluating. Then a
--   common level ℓ is binary-searched: each layer takes its most compressed place whose L̂ stays at
--   or under ℓ (its upper bound when none does), and ℓ is the lowest level whose network has R <= B.

local declare = require "boengine.declare"

local M = {}
M.N = 10        -- greedy's places k/N of each layer's range
M.GRID = 64     -- project's table: GRID + 1 places of each layer's range

local function fail(fmt, ...) boengine.fail(string.format(fmt, ...)) end

-- θ with every coordinate j at the relative place t[j] of its range (integer coordinates rounded).
local function at_places(bounds, integer, t)
  local x = {}
  for j, b in ipairs(bounds) do
    local v = b[1] + t[j] * (b[2] - b[1])
    if integer[j] then v = math.floor(v + 0.5) end
    x[j] = math.max(b[1], math.min(b[2], v))
  end
  return x
end

-- The per-layer weights of θ (the quantity R = Σ weights / Σ weights_ref adds), checked against
-- the ratio the declaration trades, which must be `params`.
local function layer_weights(run, info)
  local w, ref, sw, sr = {}, {}, 0, 0
  for j, l in ipairs(info.layers) do
    w[j], ref[j] = l.weights, l.weights_ref
    sw, sr = sw + l.weights, sr + l.weights_ref
  end
  if run.s.ratio ~= "params" or math.abs(sw / sr - info.params) > 1e-9 then
    fail("strategy '%s' under a budget needs ratio = \"params\" with one searched parameter per layer (R adds over "
         .. "the layers), got ratio %q", run.s.strategy, run.s.ratio)
  end
  return w, ref, sr
end

-- ---- project ------------------------------------------------------------------------------------

local function weight_table(run)
  if run.weight_table then return run.weight_table end
  local bounds, integer = compress.bounds(run.families), compress.integer(run.families)
  local d, tab, total = #bounds, {}, nil
  for j = 1, d do tab[j] = {} end
  for g = 0, M.GRID do
    local t = {}
    for j = 1, d do t[j] = g / M.GRID end
    local _ <close>, info = run:apply(at_places(bounds, integer, t))
    local w, _, sr = layer_weights(run, info)
    for j = 1, d do tab[j][g] = w[j] end
    total = sr
  end
  run.weight_table = {w = tab, total = total, bounds = bounds, integer = integer}
  return run.weight_table
end

-- R of x from the table: each layer's weights at the nearest table place at or above its θ (an
-- upper bound of the layer's weights, as they grow with θ).
local function table_R(wt, x)
  local sum = 0
  for j, b in ipairs(wt.bounds) do
    local t = b[2] > b[1] and (x[j] - b[1]) / (b[2] - b[1]) or 0
    local g = math.min(M.GRID, math.max(0, math.ceil(t * M.GRID - 1e-9)))
    sum = sum + wt.w[j][g]
  end
  return sum / wt.total
end

-- x moved along the ray from the lower corner through x onto R = B (from below).
function M.project(run, x, B)
  local wt = weight_table(run)
  local bounds, integer = wt.bounds, wt.integer
  local u = {}
  local smax = math.huge
  for j, b in ipairs(bounds) do
    u[j] = b[2] > b[1] and (x[j] - b[1]) / (b[2] - b[1]) or 0
    if u[j] > 0 then smax = math.min(smax, 1 / u[j]) end
  end
  if smax == math.huge then return x end -- x is the lower corner: the ray is a point
  local function point(s)
    local t = {}
    for j = 1, #u do t[j] = math.min(1, s * u[j]) end
    return at_places(bounds, integer, t)
  end
  local function exact(s)
    local _ <close>, info = run:apply(point(s))
    return info.params
  end
  local lo, hi = 0, smax
  if table_R(wt, point(hi)) <= B and exact(hi) <= B then return point(hi) end
  for _ = 1, 40 do
    local mid = (lo + hi) / 2
    if table_R(wt, point(mid)) <= B then lo = mid else hi = mid end
  end
  -- the table bounds R from above, so point(lo) is within the budget; the exact R may allow more:
  -- walk up in small steps while the real ratio stays under B
  local step = smax / (4 * M.GRID)
  local s = lo
  for _ = 1, 8 do
    if s + step > smax or exact(s + step) > B then break end
    s = s + step
  end
  return point(s)
end

-- ---- greedy -------------------------------------------------------------------------------------

local short_hash = declare.short_hash -- FNV-1a of a text, 8 hexadecimal digits

local function read_scores(path, d, N)
  local f = io.open(path, "r")
  if not f then return nil end
  local rows, header = {}, nil
  for line in f:lines() do
    if not line:match("^#") then
      if not header then
        header = line
      else
        local v = {}
        for field in line:gmatch("[^,]+") do v[#v + 1] = tonumber(field) end
        if #v ~= 7 then f:close() fail("%s: a row of %d fields, expected 7 (delete the file to evaluate again)", path, #v) end
        rows[#rows + 1] = {layer = v[1], k = v[2], theta = v[3], weights = v[4], weights_ref = v[5], L = v[6], se = v[7]}
      end
    end
  end
  f:close()
  if #rows ~= d * (N - 1) then
    fail("%s: %d rows, expected %d layers x %d places (delete the file to evaluate again)", path, #rows, d, N - 1)
  end
  return rows
end

local function write_scores(path, rows, key_text)
  local lines = {"# greedy score table of " .. key_text:gsub("\n", " "),
                 "layer,k,theta,weights,weights_ref,L,SE"}
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("%d,%d,%.17g,%.17g,%.17g,%.17g,%.17g", r.layer, r.k, r.theta, r.weights,
                                      r.weights_ref, r.L, r.se)
  end
  boengine.write_file(path, table.concat(lines, "\n") .. "\n")
end

-- The score table (evaluating what the cache does not hold), the chosen θ at the budget and, for the
-- run's tables, the evaluations made now as history records.
function M.greedy(run)
  local s, N = run.s, M.N
  local bounds, integer = compress.bounds(run.families), compress.integer(run.families)
  local d = #bounds
  local key_text = table.concat({"model " .. declare.show(s.model), "weights " .. tostring(s.weights),
                                 "data " .. declare.show(s.data), "compress " .. declare.show(s.compress),
                                 "objective " .. s.objective, "samples " .. s.samples, "fixed " .. tostring(s.fixed),
                                 "seed " .. s.seed, "N " .. N}, "; ")
  local dir = s.results .. "/greedy_scores"
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local path = dir .. "/" .. short_hash(key_text) .. ".csv"
  local rows, history = read_scores(path, d, N), {}
  run.greedy_cache = path
  local upper = {}
  for j = 1, d do upper[j] = 1 end
  if rows then
    run:log("greedy: score table from %s (no new evaluations)", path)
  else
    rows = {}
    local progress = boengine.progress(run.name .. " greedy", d * (N - 1))
    local i = 0
    for j = 1, d do
      for k = 1, N - 1 do
        i = i + 1
        local t = {table.unpack(upper)}
        t[j] = k / N
        local theta = at_places(bounds, integer, t)
        local t0 = boengine.clock()
        local info, full = run:evaluate(theta, i)
        info.seconds, info.round = boengine.clock() - t0, 1
        local w, ref = layer_weights(run, full)
        rows[i] = {layer = j, k = k, theta = theta[j], weights = w[j], weights_ref = ref[j], L = info.L, se = info.se}
        history[i] = {i = i, x = theta, y = info.L, se = info.se, info = info}
        progress:update(i, string.format("layer %d at %d/%d: L %.4g", j, k, N, info.L))
      end
    end
    progress:done()
    write_scores(path, rows, key_text)
  end
  -- each layer's weights at its upper bound (where it stays when no place is good enough)
  local _ <close>, top = run:apply(at_places(bounds, integer, upper))
  local w_up, ref = layer_weights(run, top)
  local total = 0
  for j = 1, d do total = total + ref[j] end
  local by_layer = {}
  for j = 1, d do by_layer[j] = {} end
  for _, r in ipairs(rows) do by_layer[r.layer][r.k] = r end
  -- at level ℓ: each layer's most compressed place with L̂ <= ℓ
  local function config(level)
    local theta, sum = {}, 0
    for j = 1, d do
      local pick
      for k = 1, N - 1 do
        if by_layer[j][k].L <= level then pick = by_layer[j][k] break end
      end
      theta[j] = pick and pick.theta or bounds[j][2]
      sum = sum + (pick and pick.weights or w_up[j])
    end
    return theta, sum / total
  end
  local levels = {}
  for _, r in ipairs(rows) do levels[#levels + 1] = r.L end
  table.sort(levels)
  -- R falls as ℓ rises; the lowest level (fewest compromises) whose R meets the budget
  local theta, R = config(levels[#levels])
  if R > s.budget then
    run:log("greedy: even every layer at its most compressed scored place gives R %.4f > budget %g", R, s.budget)
  else
    local lo, hi = 0, #levels -- config(levels[hi]) within the budget; levels[lo] (or none) not
    while hi - lo > 1 do
      local mid = (lo + hi) // 2
      local _, Rm = config(levels[mid])
      if Rm <= s.budget then hi = mid else lo = mid end
    end
    theta, R = config(levels[hi])
    run.greedy_level = levels[hi]
  end
  run.greedy_R = R
  return theta, history, #history
end

return M
