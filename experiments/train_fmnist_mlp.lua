-- Reference model: the follow-up code's "FC3", a 784-1000-1000-10 MLP (fc1..fc3), trained by the
-- engine on Fashion-MNIST. Writes results/models/fmnist_mlp.safetensors and its README row.
--   boengine experiments/train_fmnist_mlp.lua [epochs]
local seed = 1
local epochs = tonumber(arg[1]) or 20

local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}
local net = nn.mlp{784, 1000, 1000, 10, seed = seed}

-- a killed run resumes from its last finished epoch; the checkpoint goes once the model is published
local checkpoint = boengine.project .. "/results/models/fmnist_mlp.ckpt.safetensors"
local run = nn.train{
  checkpoint = checkpoint,
  net = net, data = train, test = test, seed = seed,
  epochs = epochs, batch = 128,
  lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
  schedule = "cosine",
  augment = {flip = true},
}
nn.publish{net = net, name = "fmnist_mlp", test = test, run = run}
os.remove(checkpoint)
