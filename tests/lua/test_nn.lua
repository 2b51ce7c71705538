-- Networks from Lua: torchvision's parameter counts, layer listing, save/load round trips.
local tap = require "tap"

-- parameter counts of torchvision's models (torchvision.models.*, 1000 classes)
local counts = {
  {nn.vgg{depth = 16}, 138357544, "vgg16"},
  {nn.vgg{depth = 11, batchnorm = true}, 132868840, "vgg11_bn"},
  {nn.resnet{depth = 18}, 11689512, "resnet18"},
  {nn.resnet{depth = 50}, 25557032, "resnet50"},
  {nn.resnet{depth = 101}, 44549160, "resnet101"},
}
for _, c in ipairs(counts) do
  tap.is(c[1]:param_count(), c[2], c[3] .. " has torchvision's parameter count")
end

local vgg16 = counts[1][1]
local conv_weights, conv_macs = 0, 0
for _, l in ipairs(vgg16:layers()) do
  if l.kind == "conv" then
    conv_weights = conv_weights + l.shape[1] * l.shape[2] * l.shape[3] * l.shape[4]
    conv_macs = conv_macs + l.macs
  end
end
tap.is(conv_weights, 14710464, "vgg16's 13 convolutions hold 14,710,464 weights")
tap.is(conv_macs, 15346630656, "vgg16's convolutions are 15.35 G multiply-adds at 224x224")
local l0 = vgg16:layers()[1]
tap.ok(l0.name == "features.0" and l0.kind == "conv" and table.concat(l0.shape, "x") == "64x3x3x3", "first layer is features.0, a 64x3x3x3 conv")
for i = 1, #counts do counts[i][1] = nil end
vgg16 = nil
collectgarbage()

-- a small network: save, load into a fresh one, rebuild from the file alone
local net = nn.resnet{depth = 18, channels = 1, classes = 10, size = 28, width = 0.25, stem = "small", seed = 3}
local x = tensor.zeros{2, 1, 28, 28}
for i = 1, 28 do x:set(1, 1, i, i, 1); x:set(2, 1, i, 29 - i, -1) end
local y = net:forward(x)
tap.is(table.concat(y:shape(), "x"), "2x10", "forward gives N x classes logits")
local path = os.tmpname()
net:save(path)
local other = nn.resnet{depth = 18, channels = 1, classes = 10, size = 28, width = 0.25, stem = "small", seed = 4}
tap.ok(other:forward(x):rel_error(y) > 1e-3, "another seed gives another network")
other:load(path)
tap.is(other:forward(x):rel_error(y), 0, "net:load restores the saved weights exactly")
local rebuilt = nn.load(path)
tap.is(rebuilt:forward(x):rel_error(y), 0, "nn.load rebuilds the network from the file's metadata")
tap.is(tensor.metadata(path)["boengine.version"], boengine.version, "saved files record the engine version")
local params = net:params()
tap.ok(params["layer1.0.bn1.running_var"] and params["conv1.weight"] and params["fc.bias"], "params() uses torchvision names")
os.remove(path)

-- the same seed gives the same initialization
local a = nn.mlp{784, 20, 10, seed = 5}
local b = nn.mlp{784, 20, 10, seed = 5}
tap.is(a:forward(x):rel_error(b:forward(x)), 0, "builders are deterministic for a seed")
tap.ok(a:forward(x:reshape{2, 784}):rel_error(a:forward(x)) < 1e-6, "an MLP takes N x 784 and N x 1 x 28 x 28 alike")

tap.dies("nn.vgg: unknown key 'deepth'", "an unknown key is named", nn.vgg, {deepth = 16})
tap.dies("depth 17 is not one of", "a wrong depth is refused", nn.resnet, {depth = 17})
tap.dies("'stem' must be", "a wrong stem is refused", nn.resnet, {stem = "tiny"})
local small_vgg = nn.vgg{depth = 11, channels = 1, classes = 10, size = 32, width = 0.125, head = "small"}
tap.dies("too small", "an input too small for the network is refused", small_vgg.forward, small_vgg, tensor.zeros{1, 1, 16, 16})
tap.done()
