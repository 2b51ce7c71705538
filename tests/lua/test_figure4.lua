-- Figure 4 and the acquisition study, shortened, in a scratch folder: one frame per iteration for
-- each acquisition, a montage and a GIF that decode and are not blank, and the study's tables
-- (CSV parsed: the expected rows, counts and ordered statistics) and figures, with two worker
-- processes.
local tap = require "tap"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local function exists(path) local f = io.open(path); if f then f:close() end; return f ~= nil end
local function drawn(path, what)
  local ok, i = pcall(report.inspect, path)
  tap.ok(ok and i.ink > 0.02 and i.colors > 10, string.format("%s decodes and is not blank (ink %.3f, %s colours)",
         what, ok and i.ink or 0, ok and i.colors or "?"))
  return ok and i or {}
end

-- Figure 4: 3 iterations after the design
local ok, out, err = tap.run(string.format("%s --quiet experiments/fig4.lua iterations=3 grid=2 figures=%s", bin, dir))
tap.ok(ok, "fig4.lua runs") ; if not ok then tap.diag(err) end
tap.ok(out:find("fig4: seed 1", 1, true), "and reports its seed")
for _, acq in ipairs{"ei_c", "nei"} do
  local frames = 0
  while exists(string.format("%s/fig4/%s_%02d.png", dir, acq, frames + 1)) do frames = frames + 1 end
  tap.is(frames, 3, acq .. ": one frame per iteration")
  local first = drawn(string.format("%s/fig4/%s_01.png", dir, acq), acq .. ": frame 1")
  local last = drawn(string.format("%s/fig4/%s_03.png", dir, acq), acq .. ": frame 3")
  tap.ok(first.width == last.width and first.height == last.height, acq .. ": frames of one size")
  tap.is(first.text and first.text.acquisition, acq, acq .. ": the frame records its acquisition")
  tap.is(last.text and last.text.evaluations, "6", acq .. ": frame 3 shows the model of 6 evaluations (init 4)")
  local grid = drawn(string.format("%s/fig4/%s_grid.png", dir, acq), acq .. ": the grid of the first frames")
  tap.ok(grid.width == 2 * (first.width or 0) and grid.height == first.height,
         acq .. ": the grid holds 2 frames side by side")
  local gif = drawn(string.format("%s/fig4/%s.gif", dir, acq), acq .. ": the GIF")
  tap.is(gif.format, "gif", acq .. ": a GIF")
  tap.is(gif.frames, 3, acq .. ": with one frame per iteration")
end
tap.ok(not tap.run(string.format("%s --quiet experiments/fig4.lua iterations=x figures=%s", bin, dir)),
       "a bad argument is refused")

-- the study: 3 seeds of sinone, 2 of Branin, two workers
local res, fig = dir .. "/results", dir .. "/figures"
ok, out, err = tap.run(string.format("%s --quiet experiments/acquisition_study.lua functions=sinone,branin seeds=3 " ..
                                     "branin_seeds=2 jobs=2 results=%s figures=%s", bin, res, fig))
tap.ok(ok, "acquisition_study.lua runs with two workers"); if not ok then tap.diag(err) end
tap.ok(out:find("55 runs", 1, true), "and reports its 55 runs: (3 + 2 seeds) x (5 acquisitions x 2 designs + random)")

local function read_csv(path)
  local rows, header = {}, nil
  for line in io.lines(path) do
    if not line:find("^#") then
      local cells = {}
      for cell in (line .. ","):gmatch("([^,]*),") do cells[#cells + 1] = cell end
      if not header then header = cells
      else
        local row = {}
        for k, name in ipairs(header) do row[name] = tonumber(cells[k]) or cells[k] end
        rows[#rows + 1] = row
      end
    end
  end
  return rows, header
end

local rows, header = read_csv(res .. "/acquisition_study.csv")
tap.is(#rows, 22, "the table has a row per function, method and design (2 x (5 x 2 + 1))")
tap.is(header and header[1], "function", "with its header")
local counts, sane = {}, true
for _, r in ipairs(rows) do
  local key = r["function"] .. "/" .. r.method
  counts[key] = (counts[key] or 0) + 1
  local seeds = r["function"] == "sinone" and 3 or 2
  sane = sane and r.runs == seeds and r.successes >= 0 and r.successes <= seeds
             and math.abs(r["success rate"] - r.successes / seeds) < 1e-12
             and r["95% CI low"] <= r["success rate"] and r["success rate"] <= r["95% CI high"]
             and r["regret Q1"] <= r["regret median"] and r["regret median"] <= r["regret Q3"] and r["regret Q1"] >= 0
             and r["s per run"] > 0
end
tap.ok(sane, "every row: runs = seeds, the rate inside its interval, regret quartiles in order and >= 0")
tap.ok(counts["sinone/nei"] == 2 and counts["branin/ei_c"] == 2 and counts["sinone/random"] == 1,
       "two designs for each acquisition, one row for random search")
local drows = read_csv(res .. "/acquisition_study_design.csv")
tap.is(#drows, 10, "the paired design table has a row per function and acquisition")
for _, name in ipairs{"regret", "success", "design"} do
  drawn(fig .. "/acquisition_" .. name .. ".png", "figure " .. name)
end
tap.ok(not tap.run(string.format("%s --quiet experiments/acquisition_study.lua functions=rosen results=%s", bin, res)),
       "an unknown function is refused")

os.execute("rm -rf " .. dir)
tap.done()
