-- Reference model: a deep bottleneck ResNet standing in for the supplement's ResNet-101 figure:
-- ResNet-50 (3-4-6-3 bottleneck blocks, 53 convolutions) at width 0.125 (planes 8-16-32-64,
-- block outputs 32-64-128-256) with the small stem (3x3/1 convolution, no max pool), trained by
-- the engine on Fashion-MNIST. Writes results/models/fmnist_resnet50.safetensors and its README row.
--   boengine experiments/train_fmnist_resnet_deep.lua [epochs]
local seed = 1
local epochs = tonumber(arg[1]) or 12

local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local net = nn.resnet{depth = 50, width = 0.125, channels = 1, classes = 10, size = 28, stem = "small", seed = seed}

-- a killed run resumes from its last finished epoch; the checkpoint goes once the model is published
local checkpoint = boengine.project .. "/results/models/fmnist_resnet50.ckpt.safetensors"
local run = nn.train{
  checkpoint = checkpoint,
  net = net, data = train, test = test, seed = seed,
  epochs = epochs, batch = 128,
  lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
  schedule = "cosine", warmup = 0.5,
  augment = {crop = 2, flip = true},
}
nn.publish{net = net, name = "fmnist_resnet50", test = test, run = run}
os.remove(checkpoint)
