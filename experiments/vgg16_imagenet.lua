-- The ImageNet-scale search: torchvision's VGG16 at 224×224 (random weights unless `weights` gives
-- yours), VH on all 13 convolutions with the follow-up's bounds (θ in [0.2, 0.7] of each layer's
-- break-even rank), n = 50 images per evaluation from an image folder, 100 evaluations, under a
-- budget on the convolutions' parameter ratio (the Lagrangian minimax, docs/method.md §5).
-- The image folder is required (one subfolder per class; scripts/gen-image-folder writes a
-- synthetic one). scripts/bench-search times this declaration's search.
--   boengine experiments/vgg16_imagenet.lua data=FOLDER [weights=vgg16.safetensors] [budget=0.3]
-- The chosen networks are re-scored on 250 fixed inputs and their top-1 accuracy measured on the
-- folder's first 500 images (each costs VGG16 forward passes: on 50,000 ImageNet images the
-- defaults of 2,000 and all would take longer than the search).
local given = false
for _, a in ipairs(arg or {}) do given = given or a:match("^data=") ~= nil end
if not given then
  boengine.fail("vgg16_imagenet.lua needs the image folder: data=FOLDER (one subfolder per class; "
                .. "scripts/gen-image-folder writes a synthetic one)")
end
experiment{
  model = "vgg16",
  compress = {{family = "vh", layers = "features.*", bounds = {0.2, 0.7}}},
  budget = 0.4,
  rounds = 4,
  samples = 50,
  evaluations = 100,
  rescore = 250,
  test_count = 500,
}
