-- Problem (d) of the baselines comparison (experiments/baselines.lua, docs/baselines.md): the
-- shipped Fashion-MNIST MLP 784-1000-1000-10, truncated SVD of its three linear layers, R <= B = 0.25.
--   boengine experiments/baselines_mlp.lua strategy=random seed=2 evaluations=30
experiment{
  model = "fmnist_mlp",
  compress = {{family = "svd", layers = "fc*", bounds = {0.05, 1}}},
  budget = 0.25,
  rounds = 4,
  init = 10,
  samples = 50,
  evaluations = 60,
  uniform = false,
  save = false,
}
