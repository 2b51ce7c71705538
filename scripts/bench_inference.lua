-- boengine's side of scripts/bench-inference: forward throughput of the benchmark's networks.
--
-- Standalone:  boengine --threads 2 scripts/bench_inference.lua MODEL BATCH [WEIGHTS [INPUT]]
--   prints images/s (median of timed runs after two warm-up runs); MODEL is one of the names
--   below, WEIGHTS a safetensors file (default: the engine's own initialization), INPUT a file
--   holding x (default: zeros).
-- Worker:      boengine --threads 2 scripts/bench_inference.lua --serve
--   driven line by line on stdin by scripts/bench-inference, which alternates it with PyTorch:
--   "setup MODEL BATCH WEIGHTS|- INPUT|-" -> "ready", "run" -> "time WALL CPU" (seconds; WALL is
--   "-" when the engine has no wall clock: the driver then times both peers itself; CPU is the
--   process's CPU time, all threads, from os.clock), "save PATH" (writes the last logits as y),
--   "free", "quit".

local models = {
  vgg16 = {input = {3, 224, 224}, build = function()
    return nn.vgg{depth = 16, channels = 3, classes = 1000, size = 224} end},
  vgg16_convs = {input = {3, 224, 224}, build = function()
    return nn.vgg{depth = 16, channels = 3, classes = 1000, size = 224, head = "small"} end},
  vgg16_bn_small = {input = {1, 28, 28}, build = function()
    return nn.vgg{depth = 16, batchnorm = true, channels = 1, classes = 10, size = 28, width = 0.5,
                  stem = "small", head = "small"} end},
}

-- Wall seconds: boengine.clock() (monotonic) when the engine has it, else nil.
local clock = type(boengine.clock) == "function" and boengine.clock or nil

local function setup(name, batch, weights, input)
  local m = models[name]
  if not m then error("bench_inference: unknown model '" .. tostring(name) .. "'", 0) end
  local net = m.build()
  if weights and weights ~= "-" then net:load(weights) end
  local x
  if input and input ~= "-" then x = tensor.load(input, "x")
  else x = tensor.zeros{batch, m.input[1], m.input[2], m.input[3]} end
  assert(x:shape()[1] == batch, "bench_inference: input batch differs from " .. batch)
  net:forward(x); net:forward(x)  -- warm-up: primitive creation, first-touch of buffers
  return net, x
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

if arg[1] == "--serve" then
  local net, x, y
  io.stdout:setvbuf("line")
  for line in io.lines() do
    local cmd, a, b, c, d = line:match("^(%S+)%s*(%S*)%s*(%S*)%s*(%S*)%s*(%S*)")
    if cmd == "setup" then
      net, x, y = nil, nil, nil
      collectgarbage()
      net, x = setup(a, math.tointeger(tonumber(b)), c, d)
      print("ready")
    elseif cmd == "run" then
      local c0, t0 = os.clock(), clock and clock()
      y = net:forward(x)
      local wall = clock and string.format("%.9f", clock() - t0) or "-"
      print(string.format("time %s %.9f", wall, os.clock() - c0))
    elseif cmd == "save" then
      tensor.save(a, {y = y or net:forward(x)})
      print("saved")
    elseif cmd == "free" then
      net, x, y = nil, nil, nil
      collectgarbage()
      print("freed")
    elseif cmd == "quit" then
      break
    else
      error("bench_inference: unknown command '" .. line .. "'", 0)
    end
  end
  os.exit(0)
end

-- Standalone run.
local name, batch = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not models[name] or not batch then
  local names = {}
  for k in pairs(models) do names[#names + 1] = k end
  table.sort(names)
  io.stderr:write("usage: boengine [--threads N] scripts/bench_inference.lua MODEL BATCH [WEIGHTS [INPUT]]\n"
                  .. "  MODEL: " .. table.concat(names, ", ") .. "\n")
  os.exit(2)
end
local net, x = setup(name, batch, arg[3], arg[4])
local times = {}
if clock then
  for i = 1, 7 do
    local t0 = clock(); net:forward(x); times[i] = clock() - t0
  end
else
  -- No wall clock in this engine: os.time has 1 s resolution, so time one long stretch.
  io.stderr:write("bench_inference: boengine.clock() is missing; timing with os.time over >= 20 s\n")
  local t0, n = os.time(), 0
  repeat net:forward(x); n = n + 1 until os.time() - t0 >= 20
  times[1] = (os.time() - t0) / n
end
local t = median(times)
print(string.format("%s batch %d: %.2f images/s (%.4f s per forward, %d threads)",
                    name, batch, batch / t, t, boengine.threads))
