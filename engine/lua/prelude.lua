-- The prelude: engine helpers written in Lua, loaded after the C modules (tensor, nn, data, bo...).
-- Experiment-level conveniences live here so that they can be read and changed without C.

-- ---- compression search spaces ------------------------------------------------------------------

-- A list of families (or one family) as a list.
local function family_list(families)
  if type(families) == "userdata" then return {families} end
  return families
end

-- compress.bounds(families) -> {{lo, hi}, ...}: the search box, in the order compress.apply reads θ.
function compress.bounds(families)
  local b = {}
  for _, f in ipairs(family_list(families)) do
    for _, l in ipairs(f:layers()) do b[#b + 1] = {l.lo, l.hi} end
  end
  return b
end

-- compress.names(families) -> {"vh:features.0", ...}: one label per θ entry.
function compress.names(families)
  local n = {}
  for _, f in ipairs(family_list(families)) do
    for _, l in ipairs(f:layers()) do n[#n + 1] = f:kind() .. ":" .. l.name end
  end
  return n
end

-- compress.integer(families) -> {false, true, ...}: which θ entries are integers (ranks, bits).
function compress.integer(families)
  local n = {}
  for _, f in ipairs(family_list(families)) do
    for _, l in ipairs(f:layers()) do n[#n + 1] = l.integer end
  end
  return n
end

-- compress.dim(families) -> number of θ entries.
function compress.dim(families)
  local d = 0
  for _, f in ipairs(family_list(families)) do d = d + f:dim() end
  return d
end

-- ---- the scalarized objective y = R + γ·L (METHOD.md §1) -----------------------------------------

-- objective.scalarize{families = {...}, estimator = objective.fnorm{...}, gamma = 1, ratio = "params"}
-- returns a function f and its state s (also callable): f(theta [, i]) -> y, noise, record with
-- y = R(θ) + γ·L^(θ) and noise = γ·SE, ready for bo.minimize{f = f, bounds = s:bounds(),
-- integer = s:integer()}. i (bo's evaluation number) picks the estimator's sample i, so that a
-- resumed run draws the samples of the uninterrupted one. Every evaluation is kept in s.history
-- ({theta, L, se, R, y, noise, sample, info, time}); s:reweight(gamma) re-scores the history for
-- another γ without evaluating anything again (R is exact, so only the weight changes). The
-- options are checked in C (objective.scalarize), which then calls this.
function objective._scalarize(opts)
  local families = opts.families
  if type(families) == "userdata" then families = {families} end
  local est, ratio = opts.estimator, opts.ratio or "params"
  local net = families[1]:net()
  local self = {families = families, estimator = est, gamma = opts.gamma or 1, ratio = ratio, history = {},
                net = net}
  function self.evaluate(theta, i)
    local cand <close>, info = compress.apply(net, families, theta)
    local L, se, e = est:evaluate(cand, i and {sample = i} or nil)
    local R = info[ratio]
    local rec = {theta = {table.unpack(theta)}, L = L, se = se, R = R, y = R + self.gamma * L,
                 noise = self.gamma * se, sample = e.sample, info = info, time = e.time}
    self.history[#self.history + 1] = rec
    return rec.y, rec.noise, rec
  end
  function self:reweight(gamma)
    self.gamma = gamma
    for _, r in ipairs(self.history) do r.y, r.noise = r.R + gamma * r.L, gamma * r.se end
    return self.history
  end
  function self:bounds() return compress.bounds(families) end
  function self:integer() return compress.integer(families) end
  self.f = function(theta, i) return self.evaluate(theta, i) end
  setmetatable(self, {__call = function(_, theta, i) return self.evaluate(theta, i) end,
                      __tostring = function() return "objective.scalarize(" .. tostring(est) .. ")" end})
  return self.f, self
end
