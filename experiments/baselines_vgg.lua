-- Problem (a) of the baselines comparison (experiments/baselines.lua, docs/baselines.md): the
-- shipped Fashion-MNIST VGG-11-BN, VH on its eight convolutions, R <= B = 0.25.
--   boengine experiments/baselines_vgg.lua strategy=random seed=2 evaluations=30
--   (strategy: bo, random, sobol, uniform, greedy; acquisition for bo: nei, ei_c, ei)
experiment{
  model = "fmnist_vgg11_bn",
  compress = {{family = "vh", layers = "features.*", bounds = {0.05, 1}}},
  budget = 0.25,
  rounds = 4,
  init = 10,
  samples = 50,
  evaluations = 60,
  uniform = false,
  save = false,
}
