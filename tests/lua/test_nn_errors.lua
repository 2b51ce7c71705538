-- nn's bad input, each run as its own boengine process: one line on stderr naming the problem,
-- a non-zero exit. Weights come from the PyTorch fixtures of test_nn_torch.lua.
local tap = require "tap"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
local fixture = "tests/fixtures/nn/vgg11_bn_small.safetensors"
local vgg_args = 'depth = 11, batchnorm = true, channels = 1, classes = 10, size = 28, stem = "small", head = "small"'

local function script(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w")); f:write(text); f:close()
  return path
end

-- Runs a script that must fail; returns its stderr when it failed with exactly one line.
local function fails(name, text, what)
  local path = script(name, text)
  local ok, _, err = tap.run(bin .. " --quiet " .. path)
  local _, lines = err:gsub("\n", "")
  tap.ok(not ok and lines == 1, what .. ": non-zero exit, one line on stderr")
  if ok or lines ~= 1 then tap.diag("exit ok: " .. tostring(ok) .. ", stderr: " .. err) end
  return err, path
end

local function has(err, s) return err:find(s, 1, true) ~= nil end
local function shape_str(t) return table.concat(t:shape(), "x") end

-- A frontier match so that features.1.weight does not match features.11.weight.
local function names(err, name)
  local i = 1
  while true do
    local s, e = err:find(name, i, true)
    if not s then return false end
    if not err:sub(e + 1, e + 1):match("[%w%.]") and not err:sub(s - 1, s - 1):match("[%w%.]") then
      return true
    end
    i = e + 1
  end
end

-- 1. Weights of width 0.1 loaded into a width-0.2 network: the error names a tensor and both shapes.
do
  local err = fails("width.lua", string.format([[
local net = nn.vgg{%s, width = 0.2}
net:load(%q)
]], vgg_args, fixture), "weights of another width")
  tap.ok(has(err, "width.lua:2:") and has(err, fixture), "the error names the script line and the weights file")
  -- Which mismatched tensor is reported first is the engine's choice: any one will do, with
  -- its shape in the file and the network's shape.
  local file = tensor.load(fixture)
  local ref = nn.vgg(load("return {" .. vgg_args .. ", width = 0.2}")())
  local mine = os.tmpname(); ref:save(mine)
  local want = tensor.load(mine); os.remove(mine)
  local found
  for name, t in pairs(file) do
    local w = want[name]
    if w and shape_str(w) ~= shape_str(t) and names(err, name)
       and has(err, shape_str(t)) and has(err, shape_str(w)) then found = name end
  end
  tap.ok(found, "the error names a mismatched tensor, its shape in the file and the expected shape")
  tap.diag((err:gsub("\n$", "")))
end

-- 2. A weights file without one tensor: the error names it.
do
  local err = fails("missing.lua", string.format([[
local w = tensor.load(%q)
w["features.4.weight"] = nil
tensor.save(%q, w)
local net = nn.vgg{%s, width = 0.1}
net:load(%q)
]], fixture, dir .. "/missing.safetensors", vgg_args, dir .. "/missing.safetensors"), "a missing tensor")
  tap.ok(names(err, "features.4.weight") and has(err, "missing.safetensors"),
         "the error names the missing tensor and the file")
end

-- 3. Unknown keys in the builders' option tables are named.
do
  local err = fails("vggkey.lua", "nn.vgg{depth = 11, widht = 0.5}\n", "an unknown nn.vgg key")
  tap.ok(has(err, "widht") and has(err, "vggkey.lua:1:"), "the error names the key and the script line")
  err = fails("resnetkey.lua", "nn.resnet{depth = 18, stride = 2}\n", "an unknown nn.resnet key")
  tap.ok(has(err, "stride"), "the error names the key")
  err = fails("vggdepth.lua", "nn.vgg{depth = 12}\n", "an unsupported VGG depth")
  tap.ok(has(err, "depth") and has(err, "12"), "the error names the depth")
  err = fails("resnetdepth.lua", "nn.resnet{depth = 20}\n", "an unsupported ResNet depth")
  tap.ok(has(err, "depth") and has(err, "20"), "the error names the depth")
  err = fails("stem.lua", 'nn.resnet{depth = 18, stem = "tiny"}\n', "an unknown stem")
  tap.ok(has(err, "tiny"), "the error names the stem")
end

-- 4. An input with the wrong number of channels.
do
  local err = fails("channels.lua", string.format([[
local net = nn.vgg{%s, width = 0.1}
net:load(%q)
net:forward(tensor.zeros{2, 3, 28, 28})
]], vgg_args, fixture), "an input of 3 channels into a 1-channel network")
  tap.ok(has(err, "channels.lua:3:"), "the error names the script line")
end

os.execute("rm -rf " .. dir)
tap.done()
