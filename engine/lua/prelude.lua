-- The prelude: engine helpers written in Lua, loaded after the C modules (tensor, nn, data, bo...).
-- Experiment-level conveniences live here so that they can be read and changed without C.

-- ---- where the experiment's project is ------------------------------------------------------------

-- boengine.project: the folder holding experiments/ when the running file is in such a folder, else
-- the file's own folder. Shipped models are read and outputs written under it, so that an experiment
-- runs the same from any working directory.
do
  local script = boengine.script or ""
  local dir = script:match("^(.*)/[^/]*$") or "."
  if dir:match("([^/]*)$") == "experiments" then dir = dir:match("^(.*)/[^/]*$") or "." end
  boengine.project = dir
end

-- ---- the scalarized objective y = R + γ·L (docs/method.md §1) -----------------------------------------

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

-- ---- trained models (nn.publish) ---------------------------------------------------------------

-- A short description of a network from its architecture record, e.g. "vgg-11-bn width 0.5".
local function describe_arch(json)
  local arch = json:match('"arch":"(%w+)"') or "?"
  if arch == "mlp" then
    return "mlp " .. (json:match('"widths":%[([%d,]+)%]') or "?"):gsub(",", "-")
  end
  local s = arch .. "-" .. (json:match('"depth":(%d+)') or "?")
  if json:find('"batchnorm":true', 1, true) then s = s .. "-bn" end
  local width = json:match('"width":([%d.e+-]+)')
  if width and tonumber(width) ~= 1 then s = s .. " width " .. width end
  if json:find('"stem":"small"', 1, true) then s = s .. ", small stem" end
  if json:find('"head":"small"', 1, true) then s = s .. "/head" end
  return s
end

local function format_seconds(s)
  return s >= 60 and string.format("%dm%02ds", s // 60, math.floor(s % 60)) or string.format("%.0fs", s)
end

-- Replaces the row of `name` in the Markdown table of path (or appends it), atomically.
local function set_table_row(path, header, name, row)
  local lines, found = {}, false
  local f = io.open(path, "r")
  if f then
    for line in f:lines() do
      if line:match("^| " .. name:gsub("%p", "%%%0") .. " |") then
        lines[#lines + 1] = row
        found = true
      else
        lines[#lines + 1] = line
      end
    end
    f:close()
  else
    for _, line in ipairs(header) do lines[#lines + 1] = line end
  end
  if not found then
    while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
    lines[#lines + 1] = row
  end
  boengine.write_file(path, table.concat(lines, "\n") .. "\n")
end

local MODELS_HEADER = {
  "# Reference models",
  "",
  "Trained by boengine itself on Fashion-MNIST (the 60000 training images; accuracy on the 10000 test",
  "images, normalized with mean 0.2860 and std 0.3530 as `data.fashion_mnist` does) by the experiment",
  "files `experiments/train_fmnist_*.lua`, which rewrite their row when they run. Each file records the",
  "same facts in its metadata (`tensor.metadata(path)`) and rebuilds with `nn.load(path)`; NAME.curve.csv",
  "holds the per-epoch loss, accuracies, learning rate, time and throughput. Training time is the",
  "wall-clock time of the training steps (test evaluations excluded) on the threads listed, on a machine",
  "shared with other work: see the curve's images/s for the throughput of each epoch.",
  "",
  "| model | architecture | parameters | seed | epochs | test accuracy | training time | threads | engine | commit |",
  "|---|---|---|---|---|---|---|---|---|---|",
}

-- report.read(path): a CSV that report.table wrote, read back: its rows keyed by column name
-- (numbers converted, NaN and inf/-inf too, quoted cells unquoted), the header as a list and the
-- provenance of its '#' lines ({seed = "1", commit = ...}); nil when the file cannot be opened.
local function csv_cells(line)
  local cells, i, n = {}, 1, #line
  while i <= n + 1 do
    local cell
    if line:sub(i, i) == '"' then
      local j, buf = i + 1, {}
      while j <= n do
        local c = line:sub(j, j)
        if c == '"' and line:sub(j + 1, j + 1) == '"' then buf[#buf + 1], j = '"', j + 2
        elseif c == '"' then break
        else buf[#buf + 1], j = c, j + 1 end
      end
      cell, i = table.concat(buf), j + 2
    else
      local j = line:find(",", i, true) or n + 1
      cell, i = line:sub(i, j - 1), j + 1
    end
    cells[#cells + 1] = cell
  end
  return cells
end

local SPECIAL = {NaN = 0 / 0, inf = math.huge, ["-inf"] = -math.huge}

function report.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local rows, header, provenance = {}, nil, {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "#" then
      local k, v = line:match("^# ([^:]+): (.*)$")
      if k then provenance[k] = v end
    elseif header then
      local cells, row = csv_cells(line), {}
      for k, h in ipairs(header) do row[h] = SPECIAL[cells[k]] or tonumber(cells[k]) or cells[k] end
      rows[#rows + 1] = row
    else
      header = csv_cells(line)
    end
  end
  return rows, header, provenance
end

-- nn.publish{net =, name =, test =, run =, dir = PROJECT/results/models, force = false}: measures the
-- test accuracy, saves dir/name.safetensors with the training facts in its metadata, the
-- per-epoch curve in dir/name.curve.csv and sets the model's row in dir/README.md. Returns the
-- accuracy. A model already published under that name is replaced only by one of the same
-- architecture and at least its accuracy, unless force is set.
function nn.publish(t)
  local keys = {net = true, name = true, test = true, run = true, dir = true, force = true}
  if type(t) ~= "table" then boengine.fail("nn.publish: expects a table {net =, name =, test =, run =}") end
  for k in pairs(t) do
    if not keys[k] then boengine.fail("nn.publish: unknown key '" .. tostring(k) .. "' (known: net, name, test, run, dir, force)") end
  end
  if not (t.net and t.name and t.test and t.run) then boengine.fail("nn.publish: net, name, test and run are required") end
  local dir = t.dir or (boengine.project .. "/results/models")
  os.execute("mkdir -p '" .. dir .. "'")
  local accuracy = t.test:accuracy(t.net)
  local run, arch = t.run, t.net:arch()
  local path = dir .. "/" .. t.name .. ".safetensors"
  local existing = io.open(path, "r")
  if existing and not t.force then
    existing:close()
    local meta = tensor.metadata(path)
    local old = tonumber(meta["train.test_accuracy"])
    if meta["boengine.arch"] ~= arch then
      boengine.fail(string.format("nn.publish: %s holds a model of another architecture (%s); publish under another "
                                  .. "name, or set force = true to replace it", path, describe_arch(meta["boengine.arch"] or "{}")))
    elseif old and accuracy < old then
      boengine.fail(string.format("nn.publish: %s holds a better model (test accuracy %.4f against %.4f); publish under "
                                  .. "another name, or set force = true to replace it", path, old, accuracy))
    end
  elseif existing then
    existing:close()
  end
  local meta = {
    ["train.seed"] = run.seed, ["train.epochs"] = #run, ["train.batch"] = run.batch,
    ["train.test_accuracy"] = string.format("%.4f", accuracy), ["train.seconds"] = string.format("%.1f", run.seconds),
    ["train.threads"] = boengine.threads, ["train.script"] = boengine.script, ["train.data"] = "fashion-mnist",
    ["train.script_sha256"] = boengine.script_sha256,
  }
  t.net:save(path, meta)
  local curve = {"epoch,loss,train_accuracy,test_accuracy,lr,seconds,images_per_second\n"}
  for _, e in ipairs(run) do
    curve[#curve + 1] = string.format("%d,%.5f,%.5f,%s,%.6g,%.1f,%.1f\n", e.epoch, e.loss, e.accuracy,
      e.test_accuracy and string.format("%.4f", e.test_accuracy) or "", e.lr, e.seconds, e.images_per_second)
  end
  boengine.write_file(dir .. "/" .. t.name .. ".curve.csv", table.concat(curve))
  local params = t.net:param_count()
  local row = string.format("| %s | %s | %.2f M | %d | %d | %.4f | %s | %d | %s | %s |", t.name, describe_arch(arch),
    params / 1e6, run.seed, #run, accuracy, format_seconds(run.seconds), boengine.threads, boengine.version,
    boengine.commit)
  set_table_row(dir .. "/README.md", MODELS_HEADER, t.name, row)
  print(string.format("%s: test accuracy %.4f after %d epochs in %s; saved %s", t.name, accuracy, #run,
    format_seconds(run.seconds), path))
  return accuracy
end
