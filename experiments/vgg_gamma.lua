-- Choosing γ under a size budget (the supplement's C.1; docs/method.md §5): minimize the function
-- distance L of the shipped Fashion-MNIST VGG-11-BN compressed by VH on its eight convolutions,
-- subject to the parameter ratio of those layers R <= budget, by the Lagrangian minimax: rounds of
-- BO over the per-layer ranks for y = R + γ·L̂, γ = 1/λ updated between rounds, every earlier
-- evaluation re-weighted by the new γ instead of evaluated again. The chosen network is compared
-- with the uniform baseline (one rank fraction in every layer) at the same R.
--   boengine experiments/vgg_gamma.lua [budget=0.3] [seed=2] [evaluations=300] [--fresh]
--   ImageNet's VGG16 with your weights and images:
--   boengine experiments/vgg_gamma.lua model=vgg16 weights=vgg16.safetensors data=/srv/imagenet/val \
--            'compress={{family=vh, layers="features.*", bounds={0.2, 0.7}}}'
experiment{
  model = "fmnist_vgg11_bn",
  compress = {{family = "vh", layers = "features.*", bounds = {0.05, 1}}},
  budget = 0.25,
  rounds = 6,
  samples = 50,
  evaluations = 200,
}
