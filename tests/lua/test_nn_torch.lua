-- nn against PyTorch: torchvision's VGG and ResNet and a hand-written MLP with random weights and
-- batch-norm statistics (fixtures written by scripts/gen-nn-fixtures), rebuilt with nn.vgg,
-- nn.resnet and nn.mlp, loaded from the same safetensors file and run on the same input.
local tap = require "tap"
local dir = "tests/fixtures/nn/"
local tmp = os.tmpname()

local cases = {
  {name = "vgg11_bn_small", build = function()
    return nn.vgg{depth = 11, batchnorm = true, channels = 1, classes = 10, size = 28,
                  width = 0.1, stem = "small", head = "small"} end},
  -- default head: 32x32 reaches 1x1, the adaptive pool replicates it to 7x7 for 4096-wide layers
  {name = "vgg11_head_default", sparse = true, build = function()
    return nn.vgg{depth = 11, channels = 3, classes = 10, size = 32, width = 1 / 32} end},
  {name = "resnet18_small", build = function()
    return nn.resnet{depth = 18, channels = 1, classes = 10, size = 28, width = 0.1, stem = "small"} end},
  {name = "resnet50", build = function()
    return nn.resnet{depth = 50, channels = 3, classes = 10, size = 64, width = 0.07} end},
  {name = "mlp", build = function() return nn.mlp{784, 32, 16, 10} end},
}

local function shape_str(t) return table.concat(t:shape(), "x") end

-- The 4096-wide weights of VGG's default head are stored as a few non-zeros per row
-- (W:shape, W:cols 0-based, W:values); all other entries are zero, in PyTorch too.
local function densify(weights, sparse, out)
  local w, s = tensor.load(weights), tensor.load(sparse)
  for key, shape in pairs(s) do
    local name = key:match("^(.*):shape$")
    if name then
      local rows, cols = math.tointeger(shape:get(1)), math.tointeger(shape:get(2))
      local dense = tensor.zeros{rows, cols}
      local c, v = s[name .. ":cols"], s[name .. ":values"]
      local k = c:shape()[2]
      for i = 1, rows do
        for j = 1, k do dense:set(i, math.tointeger(c:get(i, j)) + 1, v:get(i, j)) end
      end
      w[name] = dense
    end
  end
  tensor.save(out, w)
  return out
end

local function numel_sum(tensors)
  local n = 0
  for _, t in pairs(tensors) do n = n + t:numel() end
  return n
end

for _, c in ipairs(cases) do
  local io_ = tensor.load(dir .. c.name .. ".io.safetensors")
  local meta = tensor.metadata(dir .. c.name .. ".io.safetensors")
  local net = c.build()
  local weights = dir .. c.name .. ".safetensors"
  if c.sparse then weights = densify(weights, dir .. c.name .. ".sparse.safetensors", tmp) end
  net:load(weights)
  local y = net:forward(io_.x)
  if tap.is(shape_str(y), shape_str(io_.y), c.name .. ": logits shape") then
    local e = y:rel_error(io_.y)
    tap.ok(e <= 1e-4, c.name .. ": logits match PyTorch (rel error <= 1e-4)")
    tap.diag(string.format("%s: rel error %.2e", c.name, e))
  else
    tap.ok(false, c.name .. ": logits match PyTorch (rel error <= 1e-4)")
  end
  local params, buffers = math.tointeger(tonumber(meta.params)), math.tointeger(tonumber(meta.buffers))
  tap.is(net:param_count(), params, c.name .. ": parameter count as PyTorch's")
  tap.is(numel_sum(net:params()), params + buffers, c.name .. ": net:params() holds parameters and running statistics")
  local sum, macs = 0, 0
  for _, l in ipairs(net:layers()) do sum = sum + l.params; macs = macs + l.macs end
  tap.is(sum, params, c.name .. ": layers' params add up to PyTorch's count")
  tap.is(macs, math.tointeger(tonumber(meta.macs)), c.name .. ": layers' multiply-adds as counted in PyTorch")
end

-- net:save writes torchvision's names and shapes, and a saved net reloads to the same outputs.
do
  local c = cases[1]
  local io_ = tensor.load(dir .. c.name .. ".io.safetensors")
  local net = c.build()
  net:load(dir .. c.name .. ".safetensors")
  net:save(tmp)
  local saved, ref = tensor.load(tmp), tensor.load(dir .. c.name .. ".safetensors")
  local missing, wrong = {}, {}
  for name, t in pairs(ref) do
    if not name:find("num_batches_tracked", 1, true) then
      if not saved[name] then missing[#missing + 1] = name
      elseif shape_str(saved[name]) ~= shape_str(t) or saved[name]:rel_error(t) ~= 0 then
        wrong[#wrong + 1] = name end
    end
  end
  tap.is(#missing, 0, "net:save writes every torchvision tensor name")
  if #missing > 0 then tap.diag("missing: " .. table.concat(missing, ", ")) end
  tap.is(#wrong, 0, "net:save writes the loaded values unchanged")
  if #wrong > 0 then tap.diag("differ: " .. table.concat(wrong, ", ")) end
  local again = c.build()
  again:load(tmp)
  tap.is(again:forward(io_.x):rel_error(net:forward(io_.x)), 0, "a saved net reloads to the same logits")
end

os.remove(tmp)
tap.done()
