-- Reference model: the follow-up code's "FC3", a 784-1000-1000-10 MLP (fc1..fc3), trained by the
-- engine on Fashion-MNIST. Writes results/models/fmnist_mlp.safetensors and its README row.
--   boengine experiments/train_fmnist_mlp.lua [epochs]
local seed = 1
local epochs = tonumber(arg[1]) or 30

local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local net = nn.mlp{784, 1000, 1000, 10, seed = seed}

local run = nn.train{
  net = net, data = train, test = test, seed = seed,
  epochs = epochs, batch = 128,
  lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
  schedule = "cosine",
  augment = {flip = true},
}
nn.publish{net = net, name = "fmnist_mlp", test = test, run = run}
