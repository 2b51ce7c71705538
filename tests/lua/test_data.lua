-- The data module: Fashion-MNIST and image folders from Lua, samples, batches, accuracy, bad input.
local tap = require "tap"
local bin = tap.boengine()
local FM = "/usr/share/datasets/fashion-mnist"
local FIX = "tests/fixtures/images"

local function have(path) local f = io.open(path); if f then f:close() end; return f ~= nil end
local function mean(x) return x:sum() / x:numel() end

-- image folder (always available: fixtures made by scripts/gen-image-fixtures)
local f = data.folder{path = FIX .. "/folder", size = 24, resize = 28}
tap.is(#f, 9, "folder: 9 images")
tap.is(table.concat(f:classes(), ","), "Bees,ants", "folder: classes in sorted order")
tap.is(table.concat(f:shape(), "x"), "3x24x24", "folder: examples are 3x24x24")
local x, labels = f:batch(1, 9)
tap.ok(x:rel_error(tensor.load(FIX .. "/expected.safetensors", "x")) < 1e-6, "folder: the batch equals torchvision's")
local want = tensor.load(FIX .. "/expected.safetensors", "labels"):to_table()
local same = true
for i = 1, 9 do same = same and labels[i] == want[i] end
tap.ok(same, "folder: labels equal ImageFolder's targets")
local g, gl, gi = f:get{9, 2}
tap.is(table.concat(g:shape(), "x"), "2x3x24x24", "folder: get of 2 indices")
tap.ok(gl[1] == labels[9] and gl[2] == labels[2] and gi[1] == 9 and gi[2] == 2, "folder: get keeps the order asked")
tap.dies("data.folder: unknown key 'sise'", "folder: an unknown key is named", data.folder, {path = FIX, sise = 3})
tap.dies("'mean' must be a list of 3 numbers", "folder: a bad mean is refused", data.folder,
         {path = FIX .. "/folder", mean = {0.5}})
tap.dies("resize must be in 24..65535", "folder: resize below size is refused", data.folder,
         {path = FIX .. "/folder", size = 24, resize = 20})
tap.dies("'path' (the folder of class subfolders) is required", "folder: path is required", data.folder, {})

-- bad input, each in its own boengine: one line naming the path, non-zero exit
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
local function script(name, text)
  local p = dir .. "/" .. name
  local h = assert(io.open(p, "w")); h:write(text); h:close()
  return p
end
local function one_line_error(name, text, part, what, line)
  local p = script(name, text)
  local ok, out, err = tap.run(bin .. " " .. p)
  local _, lines = err:gsub("\n", "")
  local good = not ok and lines == 1 and err:find(part, 1, true) ~= nil and err:find(p .. ":" .. (line or 1) .. ":", 1, true) ~= nil
  tap.ok(good, what)
  if not good then tap.diag("exit ok=" .. tostring(ok) .. ", stderr: " .. err) end
end
one_line_error("nofm.lua", 'data.fashion_mnist{path = "' .. dir .. '/nothing"}',
               dir .. "/nothing/t10k-images-idx3-ubyte.gz: cannot open", "a missing Fashion-MNIST file is named")
one_line_error("nodir.lua", 'data.folder{path = "' .. dir .. '/imgs"}', dir .. "/imgs: cannot open folder",
               "a missing image folder is named")
one_line_error("badimg.lua", 'os.execute("mkdir -p ' .. dir .. '/bad/c && echo x > ' .. dir .. '/bad/c/a.png")\n'
               .. 'data.folder{path = "' .. dir .. '/bad", size = 8, resize = 8}:batch(1, 1)',
               dir .. "/bad/c/a.png: not a PNG or JPEG file", "an undecodable image is named", 2)
os.execute("rm -rf " .. dir)

if not have(FM .. "/t10k-images-idx3-ubyte.gz") then
  tap.ok(true, "# SKIP Fashion-MNIST is not installed (dataset-fashion-mnist)")
  tap.done()
end

local ds = data.fashion_mnist{}
tap.is(ds:size(), 10000, "fashion-mnist: the test split by default, 10000 examples")
tap.is(#ds, 10000, "#ds is the size")
local classes = ds:classes()
tap.ok(#classes == 10 and classes[1] == "T-shirt/top" and classes[10] == "Ankle boot", "ten class names")
tap.is(table.concat(ds:shape(), "x"), "1x28x28", "examples are 1x28x28")

local xs, ls, is = ds:sample(2000, 11)
tap.is(table.concat(xs:shape(), "x"), "2000x1x28x28", "sample(2000) gives a 2000x1x28x28 tensor")
local lo, hi, seen, dup = math.huge, -math.huge, {}, false
for i = 1, #ls do
  lo, hi = math.min(lo, ls[i]), math.max(hi, ls[i])
  dup = dup or seen[is[i]]; seen[is[i]] = true
end
tap.ok(#ls == 2000 and lo == 0 and hi == 9, "labels are 0-based, 0..9")
tap.ok(not dup, "no index is drawn twice")
tap.near(mean(xs), 0, 0.03, "normalized: the mean of 2000 examples is near 0")
local raw = data.fashion_mnist{normalize = false}
local xr = raw:sample(2000, 11)
tap.near(mean(xr), 0.2860, 0.01, "normalize = false: the mean is near 0.2860")
local recon = 0
for _, n in ipairs{1, 777, 2000} do
  for col = 1, 28 do
    recon = math.max(recon, math.abs(xs:get(n, 1, 14, col) - (xr:get(n, 1, 14, col) - 0.2860) / 0.3530))
  end
end
tap.ok(recon < 1e-5, "normalized = (x/255 - 0.2860) / 0.3530")

local a1, l1, i1 = ds:sample(100, 7)
local a2, l2, i2 = ds:sample(100, 7)
local a3, _, i3 = ds:sample(100, 8)
tap.ok(a1:rel_error(a2) == 0 and table.concat(i1, ",") == table.concat(i2, ",") and
       table.concat(l1, ",") == table.concat(l2, ","), "the same seed gives the same sample")
tap.ok(table.concat(i1, ",") ~= table.concat(i3, ",") and a1:rel_error(a3) > 0, "another seed gives another sample")
local _, _, iall = ds:sample(10000, 3)
local perm = {}
for _, i in ipairs(iall) do perm[i] = true end
local full = true
for i = 1, 10000 do full = full and perm[i] end
tap.ok(full, "a sample of the whole split is a permutation")
tap.dies("cannot sample 10001 distinct examples out of 10000", "n larger than the dataset is refused", ds.sample, ds, 10001, 1)
tap.dies("data.fashion_mnist: unknown key 'splt'", "an unknown key is named", data.fashion_mnist, {splt = "train"})
tap.dies('split must be "train" or "test"', "a bad split is refused", data.fashion_mnist, {split = "val"})

local b, bl, bi = ds:batch(9996, 5)
tap.ok(table.concat(b:shape(), "x") == "5x1x28x28" and bi[1] == 9996 and bi[5] == 10000, "batch(9996, 5) is the last 5")
local g1, gl1 = ds:get{9996, 10000}
tap.ok(g1:reshape{2, 784}:to_table()[2][400] == b:reshape{5, 784}:to_table()[5][400] and gl1[2] == bl[5],
       "get and batch agree")
tap.dies("runs outside examples 1..10000", "a batch past the end is refused", ds.batch, ds, 9996, 6)
tap.dies("is not in 1..10000", "get of index 0 is refused", ds.get, ds, {0})

local p32 = data.fashion_mnist{channels = 3, size = 32}
local x32 = p32:batch(1, 2)
tap.is(table.concat(x32:shape(), "x"), "2x3x32x32", "channels = 3, size = 32")
tap.near(x32:get(1, 2, 1, 1), -0.2860 / 0.3530, 1e-6, "the padding is black before normalization")
tap.near(x32:get(2, 3, 17, 17), ds:batch(2, 1):get(1, 1, 15, 15), 1e-6, "the image sits 2 pixels in, grey in every channel")
local r14 = data.fashion_mnist{size = 14, fit = "resize"}
tap.is(table.concat(r14:batch(1, 3):shape(), "x"), "3x1x14x14", "fit = \"resize\" shrinks to 14x14")
tap.dies('size 14 is smaller than 28: use fit = "resize"', "shrinking by padding is refused", data.fashion_mnist, {size = 14})

-- accuracy with fake nets: any table with a forward method
local _, truth = ds:batch(1, 10000)
local oracle = {pos = 0, shapes = {}}
function oracle:forward(x)
  local shape = x:shape()
  self.shapes[#self.shapes + 1] = shape[1]
  local y = tensor.zeros{shape[1], 10}
  for j = 1, shape[1] do y:set(j, truth[self.pos + j] + 1, 1) end
  self.pos = self.pos + shape[1]
  return y
end
tap.is(ds:accuracy(oracle), 1.0, "one-hot logits of the true labels: accuracy 1")
tap.ok(#oracle.shapes == 40 and oracle.shapes[1] == 250, "batches of 250 by default")
oracle.pos, oracle.shapes = 0, {}
local acc, n = ds:evaluate(oracle, {batch = 3000})
tap.ok(acc == 1.0 and n == 10000 and #oracle.shapes == 4 and oracle.shapes[4] == 1000, "evaluate: accuracy and count, batch = 3000")
local constant = {forward = function(_, x)
  local y = tensor.zeros{x:shape()[1], 10}
  for j = 1, x:shape()[1] do y:set(j, 4, 1) end
  return y
end}
tap.is(ds:accuracy(constant), 0.1, "a constant class on the balanced test split: accuracy 0.1")
local ties = {forward = function(_, x) return tensor.zeros{x:shape()[1], 10} end}
tap.is(ds:accuracy(ties), 0.1, "ties go to the first class, as torch.argmax")
tap.dies("net:forward returned 250x5 for a batch of 250", "logits of the wrong shape are refused", ds.accuracy, ds,
         {forward = function(_, x) return tensor.zeros{x:shape()[1], 5} end})
tap.dies("accuracy needs a net with a forward method", "a net without forward is refused", ds.accuracy, ds, {})
tap.dies("accuracy: unknown key 'bach'", "an unknown accuracy option is named", ds.accuracy, ds, oracle, {bach = 1})

local train = data.fashion_mnist{split = "train"}
tap.is(train:size(), 60000, "the train split has 60000 examples")
tap.done()
