-- The accuracy-against-size front of the shipped Fashion-MNIST VGG-11-BN compressed by VH on its
-- eight convolutions: one BO round per γ of y = R + γ·L̂ (each round starting from every earlier
-- evaluation re-weighted by its γ), the network chosen for each γ measured on the test split, and
-- the uniform baseline (one rank fraction in every layer) at the same ratios: the figure that says
-- whether a per-layer search was worth it.
--   boengine experiments/vgg_front.lua [evaluations=300] [seed=2] [--fresh]
experiment{
  model = "fmnist_vgg11_bn",
  compress = {{family = "vh", layers = "features.*", bounds = {0.05, 1}}},
  gamma = {0.0008, 0.0012, 0.0018, 0.0025, 0.0035, 0.005, 0.008, 0.014},
  samples = 50,
  evaluations = 200,
  save = false,
}
