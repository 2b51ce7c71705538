-- BO over the VH ranks of the shipped Fashion-MNIST VGG's eight convolutions for a fixed γ: each
-- evaluation scores y = R + γ·L̂, R the parameter ratio of the compressed layers and L̂ the function
-- distance to the original on 50 fresh inputs (a U-statistic whose standard error, times γ, is the
-- GP's known noise; docs/method.md §1-4). Journaled: kill it and start it again, it continues.
--   boengine experiments/fmnist_vgg_vh.lua [gamma=0.05] [evaluations=100] [--fresh]
experiment{
  model = "fmnist_vgg11_bn",
  compress = {{family = "vh", layers = "features.*", bounds = {0.1, 0.9}}},
  gamma = 0.01,
  samples = 50,
  evaluations = 60,
}
