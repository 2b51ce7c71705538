-- Reference model: a deep bottleneck ResNet standing in for the supplement's ResNet-101 figure:
-- ResNet-50 (3-4-6-3 bottleneck blocks, 16 convolution layers deeper than ResNet-34) at quarter
-- width (planes 16-32-64-128, outputs 64-128-256-512) with the small stem, trained by the engine on
-- Fashion-MNIST. Writes results/models/fmnist_resnet50.safetensors and its README row.
--   boengine experiments/train_fmnist_resnet_deep.lua [epochs]
local seed = 1
local epochs = tonumber(arg[1]) or 10

local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local net = nn.resnet{depth = 50, width = 0.25, channels = 1, classes = 10, size = 28, stem = "small", seed = seed}

local run = nn.train{
  net = net, data = train, test = test, seed = seed,
  epochs = epochs, batch = 128,
  lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
  schedule = "cosine", warmup = 0.5,
  augment = {crop = 2, flip = true},
}
nn.publish{net = net, name = "fmnist_resnet50", test = test, run = run}
