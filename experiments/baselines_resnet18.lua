-- Problem (b) of the baselines comparison (experiments/baselines.lua, docs/baselines.md): the
-- shipped Fashion-MNIST ResNet-18 (width 0.25), VH on the sixteen 3×3 convolutions of its residual
-- stages, R <= B = 0.25.
--   boengine experiments/baselines_resnet18.lua strategy=random seed=2 evaluations=30
experiment{
  model = "fmnist_resnet18",
  compress = {{family = "vh", layers = "layer*", bounds = {0.05, 1}}},
  budget = 0.25,
  rounds = 4,
  init = 10,
  samples = 50,
  evaluations = 60,
  uniform = false,
  save = false,
}
