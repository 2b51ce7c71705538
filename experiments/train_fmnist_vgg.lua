-- Reference model: VGG-11 with batch norm at half width (32-64-128-128-256-256-256-256 channels,
-- max pools in ceil mode, a 256-256-10 classifier on a global average pool), trained by the engine
-- on Fashion-MNIST. Writes results/models/fmnist_vgg11_bn.safetensors and its README row.
--   boengine experiments/train_fmnist_vgg.lua [epochs]
local seed = 1
local epochs = tonumber(arg[1]) or 15

local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local net = nn.vgg{depth = 11, batchnorm = true, width = 0.5, channels = 1, classes = 10, size = 28,
                   stem = "small", head = "small", dropout = 0.25, seed = seed}

-- a killed run resumes from its last finished epoch; the checkpoint goes once the model is published
local checkpoint = boengine.project .. "/results/models/fmnist_vgg11_bn.ckpt.safetensors"
local run = nn.train{
  checkpoint = checkpoint,
  net = net, data = train, test = test, seed = seed,
  epochs = epochs, batch = 128,
  lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
  schedule = "cosine", warmup = 0.5,
  augment = {crop = 2, flip = true},
}
nn.publish{net = net, name = "fmnist_vgg11_bn", test = test, run = run}
os.remove(checkpoint)
