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

-- 5. A hostile architecture record: nn.load checks the record against the file's tensors before
-- allocating anything (an MLP of a billion hidden units once built 4 billion floats first). The
-- process runs under a 2 GiB address-space limit, so that allocating first cannot pass (not under
-- AddressSanitizer, whose shadow memory alone exceeds it).
do
  local function record(name, arch, tensors)
    local path = dir .. "/" .. name
    tensor.save(path, tensors, {["boengine.arch"] = arch})
    return path
  end
  local small = {["fc1.weight"] = tensor.zeros{3, 4}, ["fc1.bias"] = tensor.zeros{3},
                 ["fc2.weight"] = tensor.zeros{2, 3}, ["fc2.bias"] = tensor.zeros{2}}
  local function load_fails(name, arch, tensors, want, what)
    local path = record(name .. ".safetensors", arch, tensors)
    local lua = script(name .. ".lua", string.format("nn.load(%q)\n", path))
    local limit = os.getenv("ASAN_OPTIONS") and "" or "ulimit -v 2097152; "
    local ok, _, err = tap.run(limit .. bin .. " --quiet --threads 1 " .. lua)
    local _, lines = err:gsub("\n", "")
    tap.ok(not ok and lines == 1 and has(err, path) and has(err, want), what)
    if ok or lines ~= 1 or not has(err, want) then tap.diag("stderr: " .. err) end
  end
  load_fails("huge_mlp", '{"arch":"mlp","widths":[4,100000000,2]}', small,
             "tensor fc1.weight has shape 3x4, expected 100000000x4",
             "an MLP record of 10^8 hidden units is refused by the tensors' shapes, nothing allocated")
  load_fails("huger_mlp", '{"arch":"mlp","widths":[4,1000000000,2]}', small,
             "architecture record: width 2 is not an integer in [1, 268435456]", "an MLP width beyond the bound")
  load_fails("huge_resnet", '{"arch":"resnet","depth":152,"width":64,"size":224}',
             {["conv1.weight"] = tensor.zeros{4, 3, 7, 7}},
             "tensor conv1.weight has shape 4x3x7x7, expected 4096x3x7x7",
             "a ResNet-152 record of width 64 is refused by the tensors, nothing allocated")
  load_fails("huge_size", '{"arch":"vgg","depth":11,"size":1e12}', small,
             "architecture record: size is not an integer in [1, 16384]", "an input size beyond int")
  load_fails("widths", '{"arch":"mlp","widths":[4,2.5,2]}', small,
             "architecture record: width 2 is not an integer", "a fractional MLP width")
  load_fails("rank", '{"arch":"mlp","widths":[4,3,2],"rewrites":[{"layer":"fc1","op":"svd","rank":100000000}]}',
             {["fc1.a.weight"] = tensor.zeros{2, 4}, ["fc1.b.weight"] = tensor.zeros{3, 2},
              ["fc1.b.bias"] = tensor.zeros{3}, ["fc2.weight"] = tensor.zeros{2, 3}, ["fc2.bias"] = tensor.zeros{2}},
             "tensor fc1.a.weight has shape 2x4, expected 100000000x4",
             "a rewrite of rank 10^8 is refused by the tensors, nothing allocated")
  -- and a record that fits its tensors still loads
  local path = record("fits.safetensors", '{"arch":"mlp","widths":[4,3,2]}', small)
  local ok, err = pcall(nn.load, path)
  tap.ok(ok and err:param_count() == 3 * 4 + 3 + 2 * 3 + 2, "a record that fits its tensors loads")
end

os.execute("rm -rf " .. dir)
tap.done()
