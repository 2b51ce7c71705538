-- The report module from Lua: tables read back, every kind of plot, a multi-panel figure, an
-- animated GIF and a montage decoded by report.inspect, and the errors of bad declarations.
local tap = require "tap"
local files = require "files"

local dir = os.tmpname()
os.remove(dir)
local function at(name) return dir .. "/" .. name end

local read = files.read

-- Splits one CSV line without quotes (the test's cells hold none).
local function fields(line)
  local t = {}
  for f in (line .. ","):gmatch("([^,]*),") do t[#t + 1] = f end
  return t
end

-- tables ----------------------------------------------------------------------------------------

local rows = {}
for i = 1, 6 do rows[i] = {i, 1 / (i + 2), i % 2 == 0 and "even" or "odd", i * 1e6} end
rows[7] = {n = 7, ratio = 0.125}  -- keyed by column name; the others stay empty
local csv, md = report.table{path = at("results/t.csv"), title = "Six rows", columns = {"n", {name = "ratio", digits = 3}, "parity", "params"},
                             rows = rows, provenance = {run = "unit test", script = false}}
tap.is(csv, at("results/t.csv"), "report.table returns the CSV path (the .csv given is the base)")
tap.is(md, at("results/t.md"), "and the Markdown path")
local text = read(csv)
tap.ok(text and text:find("# seed: " .. boengine.seed .. "\n", 1, true), "CSV provenance: the seed from boengine")
tap.ok(text and text:find("# version: " .. boengine.version .. "\n", 1, true) and text:find("# commit: " .. boengine.commit, 1, true),
       "CSV provenance: version and commit")
tap.ok(text and text:find("# script_sha256: " .. boengine.script_sha256, 1, true), "CSV provenance: the experiment's SHA-256")
tap.ok(text and text:find("# run: unit test\n", 1, true) and not text:find("# script: ", 1, true),
       "caller's keys are added, and false removes a default")
local header, back = nil, {}
for line in text:gmatch("[^\n]+") do
  if not line:match("^#") then
    if header then back[#back + 1] = fields(line) else header = fields(line) end
  end
end
tap.is(table.concat(header, "|"), "n|ratio|parity|params", "CSV header")
tap.is(#back, 7, "one CSV line per row")
local same = true
for i = 1, 6 do
  same = same and tonumber(back[i][1]) == i and tonumber(back[i][2]) == 1 / (i + 2) and back[i][3] == rows[i][3]
              and tonumber(back[i][4]) == i * 1e6
end
tap.ok(same, "CSV numbers read back exactly (1/3 included)")
tap.is(table.concat(back[7], "|"), "7|0.125||", "a keyed row leaves missing cells empty")
local mdtext = read(md)
local lines = 0
for _ in mdtext:gmatch("\n|") do lines = lines + 1 end
tap.is(lines, 7 + 2, "Markdown: header, separator and 7 rows")
tap.ok(mdtext:find("| 0.333 |", 1, true) and mdtext:find("6,000,000", 1, true), "Markdown rounds to the column's digits")

tap.dies("unknown key 'colums'", "an unknown table key is named", report.table, {path = at("x"), colums = {}})
tap.dies("rows[2]: no column named 'ration'", "a keyed row with an unknown column is refused",
         report.table, {path = at("x"), columns = {"n", "ratio"}, rows = {{1, 2}, {ration = 3}}})
tap.dies("a cell must be a number, a string, a boolean or nil", "a table cell is refused",
         report.table, {path = at("x"), columns = {"n"}, rows = {{{}}}})
tap.dies("column 'n' is named twice", "duplicate columns are refused (in C)", report.table, {path = at("x"), columns = {"n", "n"}, rows = {}})

-- plots -----------------------------------------------------------------------------------------

local xs, ys, lo, hi, samples, samples2 = {}, {}, {}, {}, {}, {}
for i = 0, 60 do
  local x = i / 60
  xs[#xs + 1], ys[#ys + 1] = x, math.sin(6 * x)
  lo[#lo + 1], hi[#hi + 1] = ys[#ys] - 0.2, ys[#ys] + 0.2
end
local seed = 12345
local function uniform() seed = (seed * 1103515245 + 12345) % 2147483648; return (seed + 0.5) / 2147483648 end
for i = 1, 300 do
  samples[i] = math.sqrt(-2 * math.log(uniform())) * math.cos(2 * math.pi * uniform())
  samples2[i] = 1 + 0.5 * math.sqrt(-2 * math.log(uniform())) * math.cos(2 * math.pi * uniform())
end

-- A PNG that is really a figure: the size asked for, a good share of ink, several colours, provenance.
local function drawn(path, w, h, what)
  local info = report.inspect(path)
  tap.ok(info.format == "png" and info.width == w and info.height == h, what .. ": " .. w .. " x " .. h .. " PNG")
  tap.ok(info.ink > 0.03 and info.colors >= 8,
         string.format("%s: not blank (%.1f%% ink, %d colours)", what, 100 * info.ink, info.colors))
  tap.is(info.text.seed, tostring(boengine.seed), what .. ": provenance in the PNG's text chunks")
  return info
end

local kinds = {
  line = {{kind = "line", x = xs, y = ys, label = "sin"}, {kind = "line", x = xs, y = lo, style = "dashed", marker = "circle"}},
  step = {{kind = "step", x = xs, y = ys, label = "best so far"}},
  scatter = {{kind = "scatter", x = xs, y = ys, lo = lo, hi = hi, label = "± se"}},
  band = {{kind = "band", x = xs, lo = lo, hi = hi, label = "band"}, {kind = "line", x = xs, y = ys}},
  hist = {{kind = "hist", values = samples, label = "N(0,1)"}, {kind = "hist", values = samples2, bins = 20, normalize = true}},
  density = {{kind = "density", values = samples, label = "N(0,1)"}, {kind = "density", values = samples2, bandwidth = 0.1}},
  qq = {{kind = "qq", values = samples, label = "sample"}},
}
for _, kind in ipairs{"line", "step", "scatter", "band", "hist", "density", "qq"} do
  local path = report.plot{path = at("figures/" .. kind .. ".png"), title = kind, xlabel = "x (units)", ylabel = "y",
                           series = kinds[kind], vlines = {0.5}, hlines = {{at = 0, color = "grey", label = "zero"}},
                           width = 480, height = 320}
  drawn(path, 480, 320, kind)
end
drawn(report.plot{path = at("figures/log.png"), xlog = true, ylog = true, series = {{x = {1, 10, 100}, y = {0.01, 1, 30}}},
                  annotations = {{x = 10, y = 1, text = "here"}}, legend = "none", footer = false}, 800, 560, "log axes")

local fig = report.figure{path = at("figures/grid.png"), title = "Four panels", columns = 2, sharex = true,
                          panels = {{title = "a", series = kinds.line}, {title = "b", series = kinds.hist},
                                    {title = "c", series = kinds.qq}, {title = "d", series = kinds.band, legend = "lower left"}}}
local info = drawn(fig, 2 * 560, 2 * 420 + 36 + 24, "a 2 x 2 figure")
drawn(report.figure{path = at("figures/frame.png"), columns = 1, heights = {3, 1}, width = 600, height = 500,
                    panels = {{series = kinds.band}, {series = kinds.step, xlabel = "x"}}}, 600, 500, "panels of unequal heights")

tap.dies("series 1: unknown key 'colour'", "an unknown series key is named",
         report.plot, {path = at("x.png"), series = {{x = {1}, y = {1}, colour = "red"}}})
tap.dies("report.plot: unknown key 'xlabels'", "an unknown plot key is named", report.plot, {path = at("x.png"), xlabels = "x"})
tap.dies("panel 2: unknown key 'colums'", "an unknown panel key is named",
         report.figure, {path = at("x.png"), columns = 2, panels = {{}, {colums = 1}}})
tap.dies("unknown kind 'lines'", "an unknown kind lists the known ones", report.plot, {path = at("x.png"), series = {{kind = "lines"}}})
tap.dies("'x' has 2 numbers, 'y' 3", "x and y of different lengths", report.plot, {path = at("x.png"), series = {{x = {1, 2}, y = {1, 2, 3}}}})
tap.dies("unknown colour 'bleu'", "an unknown colour", report.plot, {path = at("x.png"), series = {{x = {1}, y = {1}, color = "bleu"}}})
tap.dies("values apply to hist, density and qq", "values on a line are refused (in C)",
         report.plot, {path = at("x.png"), series = {{values = {1, 2}}}})
tap.dies("y[2] is not a number", "a non-number in a list", report.plot, {path = at("x.png"), series = {{x = {1, 2}, y = {1, "a"}}}})
tap.dies("'heights' has 1 numbers for 2 rows", "heights must match the rows",
         report.figure, {path = at("x.png"), panels = {{}, {}}, heights = {1}})
tap.ok(not read(at("x.png")), "refused figures write nothing")

-- a path that cannot be written: one line naming it, nothing left
local blocker = at("figures/line.png") .. "/inside.png"
local ok, err = pcall(report.plot, {path = blocker, series = kinds.line})
tap.ok(not ok and err:find("line.png", 1, true) and not err:find("\n"), "an unwritable path fails with one line naming it")

-- animation and montage -------------------------------------------------------------------------

local frames = {}
for k = 1, 3 do
  local y = {}
  for i, x in ipairs(xs) do y[i] = math.sin(6 * x + k) end
  frames[k] = report.plot{path = at(string.format("figures/anim/f%02d.png", k)), width = 320, height = 240,
                          ylim = {-1.2, 1.2}, legend = "upper right", series = {{x = xs, y = y, label = "frame " .. k}},
                          vlines = {{at = k / 4, color = "red", style = "solid"}}}
end
local gif = report.gif{path = at("figures/anim.gif"), frames = frames, delay = 0.3, provenance = {figure = "4"}}
local g = report.inspect(gif)
tap.ok(g.format == "gif" and g.frames == 3 and g.width == 320 and g.height == 240, "GIF: 3 frames of 320 x 240")
tap.ok(math.abs(g.delay - 0.3) < 1e-9 and g.loop == true, "GIF: 0.3 s a frame, looping")
tap.ok(g.ink > 0.03 and g.colors >= 8, string.format("GIF: not blank (%.1f%% ink, %d colours)", 100 * g.ink, g.colors))
tap.is(g.text.figure, "4", "GIF: provenance in its comment")
tap.dies("frame 2", "a missing frame is named", report.gif, {path = at("bad.gif"), frames = {frames[1], at("nothing.png")}})
tap.dies("unknown key 'fps'", "an unknown gif key is named", report.gif, {path = at("bad.gif"), frames = frames, fps = 3})
local m = report.inspect(report.montage{path = at("figures/montage.png"), images = frames, columns = 2})
tap.ok(m.width == 640 and m.height == 480 and m.ink > 0.03, "montage: 3 frames in a 2 x 2 grid")

tap.is(report.colors.blue, "#0072b2", "report.colors names the palette")
tap.is(#report.palette, 8, "report.palette lists the colours series take in turn")

-- report.read: what report.table wrote comes back cell by cell
report.table{path = dir .. "/back", columns = {"name", "x", "note"}, provenance = {budget = 0.25},
             rows = {{"a, b", 0.1, 'say "hi"'}, {"c", 0 / 0}, {"d", math.huge, "#1"}, {"e", -1e-300}}}
local rows, header, prov = report.read(dir .. "/back.csv")
tap.ok(rows and #rows == 4 and table.concat(header, "|") == "name|x|note", "report.read: four rows and the header")
tap.ok(rows[1].name == "a, b" and rows[1].x == 0.1 and rows[1].note == 'say "hi"', "report.read: quoted text, exact numbers")
tap.ok(rows[2].x ~= rows[2].x and rows[2].note == "" and rows[3].x == math.huge and rows[3].note == "#1"
       and rows[4].x == -1e-300, "report.read: NaN, an empty cell, inf, a '#' in text, a tiny number")
tap.ok(prov.budget == "0.25" and prov.seed ~= nil, "report.read: the provenance lines")
tap.ok(report.read(dir .. "/missing.csv") == nil, "report.read: nil for a missing file")

os.execute("rm -rf " .. dir)
tap.done()
