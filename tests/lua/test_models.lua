-- The shipped reference models (results/models): each rebuilds from its file alone, reproduces the
-- test accuracy recorded in its metadata and in results/models/README.md to within 0.1%, and is
-- the network its experiment file describes.
local tap = require "tap"
local DIR = "results/models"
local MODELS = {
  {"fmnist_vgg11_bn", "vgg", 0.93},
  {"fmnist_resnet18", "resnet", 0.93},
  {"fmnist_resnet50", "resnet", 0.92},
  {"fmnist_mlp", "mlp", 0.89},
}

local readme = {}
local f = io.open(DIR .. "/README.md")
if f then
  for line in f:lines() do
    local name, acc = line:match("^| (%S+) |.-| (0%.%d%d%d%d) |")
    if name then readme[name] = tonumber(acc) end
  end
  f:close()
end

local test = data.fashion_mnist{split = "test"}
for _, m in ipairs(MODELS) do
  local name, arch, target = m[1], m[2], m[3]
  local path = DIR .. "/" .. name .. ".safetensors"
  local h = io.open(path)
  if not h then
    tap.ok(false, name .. ": " .. path .. " is shipped")
  else
    h:close()
    local meta = tensor.metadata(path)
    local recorded = tonumber(meta["train.test_accuracy"])
    local net = nn.load(path)
    tap.ok(net:arch():find('"arch":"' .. arch .. '"', 1, true) ~= nil, name .. ": rebuilds as a " .. arch .. " from the file alone")
    local acc = test:accuracy(net)
    tap.ok(recorded and math.abs(acc - recorded) <= 0.001,
           string.format("%s: ds:accuracy %.4f reproduces the recorded %s", name, acc, tostring(recorded)))
    tap.ok(readme[name] and math.abs(readme[name] - recorded) < 1e-9,
           string.format("%s: README.md records the same accuracy (%s)", name, tostring(readme[name])))
    tap.ok(acc >= target, string.format("%s: test accuracy %.4f reaches the target %.2f", name, acc, target))
    tap.ok(meta["train.seed"] and meta["train.epochs"] and meta["boengine.version"] and meta["boengine.commit"],
           name .. ": seed, epochs, engine version and commit are recorded")
  end
end
tap.done()
