-- Problem (c) of the baselines comparison (experiments/baselines.lua, docs/baselines.md): the
-- shipped Fashion-MNIST ResNet-50 (width 0.125), the follow-up's SVD-energy parametrization of its
-- sixteen bottleneck 3×3 convolutions (θ: the fraction of the singular values' sum kept; the layer
-- keeps its shape with the rank-K reconstruction, counted at its factored size), R <= B = 0.25.
--   boengine experiments/baselines_resnet50.lua strategy=random seed=2 evaluations=30
experiment{
  model = "fmnist_resnet50",
  compress = {{family = "svd", layers = "layer*.conv2", rank = "energy", dense = true, bounds = {0.05, 0.95}}},
  budget = 0.25,
  rounds = 4,
  init = 10,
  samples = 50,
  evaluations = 60,
  uniform = false,
  save = false,
}
