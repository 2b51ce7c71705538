-- Figures 1-3 (experiments/fig1_fig2.lua, experiments/fig3.lua), shortened, in a scratch project:
-- their tables parse, hold one row per sampling size / per point, and their statistics agree with
-- the same statistics computed here from the rows they summarize (moments, Jarque–Bera,
-- Anderson–Darling with its own normal CDF, coverage, Spearman with ties); the figures decode and
-- are not blank. Then the committed full runs: 500 estimates per n, 6+ layers × 8+ ranks on the
-- whole test split.
local tap = require "tap"
local files = require "files"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end

-- rows keyed by column name, and the provenance
local function csv(path)
  local rows, _, prov = files.csv(path)
  return rows, prov
end

local function png_ok(path, what)
  local ok, i = pcall(report.inspect, path)
  tap.ok(ok and i.format == "png" and i.width >= 600 and i.ink > 0.02 and i.colors > 8 and i.text.seed,
         what .. ": " .. path:match("[^/]*$") .. " decodes, is not blank and records its seed")
end

local function near(a, b, tol) return type(a) == "number" and math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

-- statistics, written again here
local function moments(v)
  local n, s = #v, 0
  for _, x in ipairs(v) do s = s + x end
  local mean, c2, c3, c4 = s / n, 0, 0, 0
  for _, x in ipairs(v) do c2, c3, c4 = c2 + (x - mean) ^ 2, c3 + (x - mean) ^ 3, c4 + (x - mean) ^ 4 end
  return mean, math.sqrt(c2 / (n - 1)), (c3 / n) / (c2 / n) ^ 1.5, (c4 / n) / (c2 / n) ^ 2 - 3
end

-- Φ(z) by Simpson's rule on the density from 0 (2000 intervals), an independent route to the CDF
local function phi(z)
  local a, h, s = 0, z / 2000, 0
  local function f(t) return math.exp(-t * t / 2) end
  for i = 0, 2000 do s = s + f(a + i * h) * ((i == 0 or i == 2000) and 1 or (i % 2 == 1 and 4 or 2)) end
  return 0.5 + s * h / 3 / math.sqrt(2 * math.pi)
end

local function anderson(v, mean, sd)
  local z = {}
  for i, x in ipairs(v) do z[i] = (x - mean) / sd end
  table.sort(z)
  local n, s = #z, 0
  for i = 1, n do s = s + (2 * i - 1) * (math.log(phi(z[i])) + math.log(1 - phi(z[n + 1 - i]))) end
  return (-n - s / n) * (1 + 0.75 / n + 2.25 / n ^ 2)
end

local function spearman(x, y)
  local function ranks(v) -- rank = number below + (number equal + 1) / 2
    local r = {}
    for i = 1, #v do
      local below, equal = 0, 0
      for j = 1, #v do
        if v[j] < v[i] then below = below + 1 elseif v[j] == v[i] then equal = equal + 1 end
      end
      r[i] = below + (equal + 1) / 2
    end
    return r
  end
  local rx, ry = ranks(x), ranks(y)
  local n, mx, my, sxy, sxx, syy = #x, 0, 0, 0, 0, 0
  for i = 1, n do mx, my = mx + rx[i] / n, my + ry[i] / n end
  for i = 1, n do
    sxy, sxx, syy = sxy + (rx[i] - mx) * (ry[i] - my), sxx + (rx[i] - mx) ^ 2, syy + (ry[i] - my) ^ 2
  end
  return sxy / math.sqrt(sxx * syy)
end

-- ---- shortened runs in a scratch project -----------------------------------------------------------

local dir = os.tmpname(); os.remove(dir)
os.execute("mkdir -p " .. dir .. "/experiments && cp " .. root .. "/experiments/fig1_fig2.lua " .. root
           .. "/experiments/fig3.lua " .. dir .. "/experiments/")
local function run(file, args)
  return tap.run("cd " .. dir .. " && " .. bin .. " --quiet --threads 2 experiments/" .. file .. " " .. args)
end

-- 1. Figures 1-2: 30 estimates for n = 5 and 20 from a pool of 400
local ok, out, err = run("fig1_fig2.lua", "estimates=30 sizes={5,20} pool=400 test_count=200")
tap.ok(ok and out:find("pool of 400 training images", 1, true), "fig1_fig2 runs shortened")
if not ok then tap.diag(err) end
local summary, prov = csv(dir .. "/results/fig1_fig2.csv")
local raw = csv(dir .. "/results/fig1_fig2_estimates.csv")
tap.ok(summary and #summary == 2 and summary[1].n == 5 and summary[2].n == 20 and summary[1].estimates == 30,
       "fig1_fig2.csv: one row per n, 30 estimates each")
tap.ok(raw and #raw == 60 and prov.pool == "400" and prov.seed == "1", "fig1_fig2_estimates.csv: every estimate, with the run's settings")
local by_n = {}
for _, r in ipairs(raw or {}) do
  by_n[r.n] = by_n[r.n] or {L = {}, se = {}, samples = {}}
  table.insert(by_n[r.n].L, r.L); table.insert(by_n[r.n].se, r.SE); by_n[r.n].samples[r.sample] = true
end
local fresh = 0
for _, b in pairs(by_n) do for _ in pairs(b.samples) do fresh = fresh + 1 end end
tap.is(fresh, 60, "every estimate has its own sample number")
for _, s in ipairs(summary or {}) do
  local b = by_n[s.n]
  local mean, sd, g1, g2 = moments(b.L)
  local mse, cover = 0, 0
  for k, L in ipairs(b.L) do
    mse = mse + b.se[k] / #b.L
    if math.abs(L - s["L (pool)"]) <= 1.959963984540054 * b.se[k] then cover = cover + 1 end
  end
  local jb = #b.L / 6 * (g1 ^ 2 + g2 ^ 2 / 4)
  tap.ok(near(s.mean, mean, 1e-9) and near(s.sd, sd, 1e-9) and near(s.skewness, g1, 1e-9)
         and near(s["excess kurtosis"], g2, 1e-9) and near(s["SE (mean of estimates)"], mse, 1e-9),
         "n = " .. s.n .. ": mean, sd, skewness, excess kurtosis and mean SE agree with the estimates")
  tap.ok(near(s.JB, jb, 1e-9) and near(s["JB p"], math.exp(-jb / 2), 1e-9) and near(s.AD, anderson(b.L, mean, sd), 1e-6)
         and s["AD p"] >= 0 and s["AD p"] <= 1 and near(s["coverage 95%"], cover / #b.L, 1e-12),
         "n = " .. s.n .. ": Jarque–Bera, Anderson–Darling and the coverage of L̂ ± 1.96 SE agree")
  tap.ok(s["SE (pool)"] > 0 and near(s["sd / SE (pool)"], s.sd / s["SE (pool)"], 1e-9)
         and near(s["skewness (pool)"] * math.sqrt(s.n), summary[1]["skewness (pool)"] * math.sqrt(5), 1e-9),
         "n = " .. s.n .. ": the pool's predictions scale as 1/√n")
end
tap.ok(summary and near(summary[1]["SE (pool)"] * math.sqrt(5 / (1 - 5 / 400)),
                        summary[2]["SE (pool)"] * math.sqrt(20 / (1 - 20 / 400)), 1e-9),
       "SE (pool) = s/√n · √(1 − n/M)")
png_ok(dir .. "/figures/fig1_qq.png", "fig1_fig2")
png_ok(dir .. "/figures/fig2_density.png", "fig1_fig2")

-- 2. Figure 3: two layers, three ranks, 150 fixed inputs, 200 test images
ok, out, err = run("fig3.lua", "ranks=3 samples=150 test_count=200 'layers={\"layer1.0.conv2\",\"layer4.0.conv2\"}'")
tap.ok(ok and out:find("Spearman", 1, true), "fig3 runs shortened")
if not ok then tap.diag(err) end
local points, p3 = csv(dir .. "/results/fig3.csv")
local rho = csv(dir .. "/results/fig3_spearman.csv")
tap.ok(points and #points == 6 and p3.test_count == "200" and p3.samples == "150", "fig3.csv: 2 layers × 3 ranks")
local layers, order = {}, {}
for _, p in ipairs(points or {}) do
  if not layers[p.layer] then layers[p.layer] = {L = {}, err = {}, rank = {}}; order[#order + 1] = p.layer end
  local l = layers[p.layer]
  table.insert(l.L, p.L); table.insert(l.err, p["top-1 error"]); table.insert(l.rank, p.rank)
  l.top = p["break-even rank"]
end
local spread = true
for _, name in ipairs(order) do
  local l = layers[name]
  spread = spread and l.rank[1] == 1 and l.rank[#l.rank] == l.top and l.rank[2] > 1 and l.rank[2] < l.top
           and l.L[1] > l.L[#l.L]
end
tap.ok(#order == 2 and spread, "ranks run from 1 to the break-even rank, and L̂ falls from the first to the last")
local all_L, all_err = {}, {}
for _, name in ipairs(order) do
  for i, v in ipairs(layers[name].L) do all_L[#all_L + 1], all_err[#all_err + 1] = v, layers[name].err[i] end
end
local good = rho and #rho == 3
for i, name in ipairs(order) do
  local want = spearman(layers[name].L, layers[name].err)
  good = good and rho[i].layer == name and rho[i].points == 3
         and ((want ~= want and rho[i]["Spearman rho"] ~= rho[i]["Spearman rho"]) or near(rho[i]["Spearman rho"], want, 1e-12))
end
good = good and rho[3].layer == "all layers" and near(rho[3]["Spearman rho"], spearman(all_L, all_err), 1e-12)
tap.ok(good, "fig3_spearman.csv: Spearman's ρ per layer and over all points agree with ranks computed here")
png_ok(dir .. "/figures/fig3_norm_error.png", "fig3")
local bad_ok, _, bad_err = run("fig3.lua", "rnaks=3")
tap.ok(not bad_ok and bad_err:find("unknown key 'rnaks'", 1, true), "an unknown key is refused by name")
os.execute("rm -rf " .. dir)

-- ---- the committed full runs --------------------------------------------------------------------

local full, fprov = csv(root .. "/results/fig1_fig2.csv")
local sizes, all500 = {}, true
for _, r in ipairs(full or {}) do sizes[#sizes + 1] = r.n; all500 = all500 and r.estimates == 500 end
tap.ok(full and table.concat(sizes, ",") == "5,10,20,50,100" and all500 and fprov.commit and not fprov.commit:find("dirty"),
       "results/fig1_fig2.csv: 500 estimates for each n in 5, 10, 20, 50, 100, from a clean commit")
local fraw = csv(root .. "/results/fig1_fig2_estimates.csv")
tap.is(fraw and #fraw, 2500, "results/fig1_fig2_estimates.csv holds the 2500 estimates")
local fpoints, f3 = csv(root .. "/results/fig3.csv")
local names, count = {}, 0
for _, p in ipairs(fpoints or {}) do
  names[p.layer] = (names[p.layer] or 0) + 1
end
local ok8 = true
for _, c in pairs(names) do count = count + 1; ok8 = ok8 and c >= 8 end
tap.ok(count >= 6 and ok8 and f3.test_count == "10000" and not f3.commit:find("dirty"),
       "results/fig3.csv: " .. count .. " layers with 8 or more ranks each, on the 10000 test images, from a clean commit")
for _, f in ipairs({"fig1_qq", "fig2_density", "fig3_norm_error"}) do png_ok(root .. "/figures/" .. f .. ".png", "committed") end

tap.done()
