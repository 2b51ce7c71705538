-- Training from Lua: a few hundred steps whose loss falls, seeds that reproduce runs, callbacks,
-- the distillation loss and losses written in Lua, saving with metadata, and bad options.
local tap = require "tap"
local train = data.fashion_mnist{split = "train"}
local test = data.fashion_mnist{split = "test"}

local function same_params(a, b)
  local pa, pb = a:params(), b:params()
  for name, t in pairs(pa) do
    if t:rel_error(pb[name]) ~= 0 then return false end
  end
  return true
end

-- 300 steps of a small MLP on a 6400-example subset: the loss falls, the accuracy climbs
local net = nn.mlp{784, 64, 10, seed = 3}
local before = test:accuracy(net)
local epochs_seen = {}
local run = nn.train{net = net, data = train, subset = 6400, batch = 64, epochs = 3, lr = 0.05, seed = 2,
                     test = test, test_every = 3,
                     callback = function(epoch, s) epochs_seen[#epochs_seen + 1] = epoch .. ":" .. s.steps end}
tap.is(#run, 3, "one statistics table per epoch")
tap.is(table.concat(epochs_seen, ","), "1:100,2:100,3:100", "the callback sees every epoch of 100 steps")
tap.ok(run[3].loss < 0.75 * run[1].loss, string.format("the loss falls (%.3f → %.3f)", run[1].loss, run[3].loss))
tap.ok(run[1].test_accuracy == nil and run[3].test_accuracy ~= nil, "test accuracy every 3 epochs and after the last")
tap.ok(run[3].test_accuracy > 0.75 and before < 0.3,
       string.format("test accuracy climbs from %.3f to %.3f", before, run[3].test_accuracy))
tap.is(run[3].test_accuracy, test:accuracy(net), "the recorded test accuracy is ds:accuracy(net)")
tap.ok(run.seconds > 0 and run.seed == 2 and run.batch == 64 and run[2].images_per_second > 0 and run[2].lr > 0,
       "the run records time, seed, batch, throughput and learning rate")

-- the same seed gives the same weights; another seed other weights (a CNN with batch norm and dropout)
local function small_vgg(seed)
  return nn.vgg{depth = 11, batchnorm = true, width = 0.0625, channels = 1, classes = 10, size = 28,
                stem = "small", head = "small", dropout = 0.3, seed = seed}
end
local function short(n, seed)
  return nn.train{net = n, data = train, subset = 256, batch = 32, epochs = 1, lr = 0.05, seed = seed,
                  augment = {crop = 2, flip = true}}
end
local a, b, c = small_vgg(1), small_vgg(1), small_vgg(1)
local ra, rb = short(a, 7), short(b, 7)
short(c, 8)
tap.ok(same_params(a, b) and ra[1].loss == rb[1].loss, "the same seed trains the same weights (running statistics included)")
tap.ok(not same_params(a, c), "another seed trains other weights")
tap.ok(ra[1].loss == ra[1].loss and ra[1].loss > 0, "a VGG with batch norm, dropout and augmentation trains")

-- a residual network trains and its inference plans see the new weights
local r = nn.resnet{depth = 18, width = 0.0625, channels = 1, classes = 10, size = 28, stem = "small", seed = 1}
local x = train:sample(8, 1)
local y0 = r:forward(x)
nn.train{net = r, data = train, subset = 128, batch = 32, epochs = 1, lr = 0.05}
tap.ok(r:forward(x):rel_error(y0) > 1e-3, "after training, net:forward uses the trained weights")

-- a callback returning false stops the run; an error in it propagates
local stopped = nn.train{net = nn.mlp{784, 16, 10}, data = train, subset = 256, batch = 64, epochs = 5,
                         callback = function() return false end}
tap.is(#stopped, 1, "a callback returning false stops after that epoch")
tap.dies("boom in callback", "an error raised by the callback reaches the caller", nn.train,
         {net = nn.mlp{784, 16, 10}, data = train, subset = 256, batch = 64, epochs = 2,
          callback = function() error("boom in callback") end})

-- distillation: a student learns a teacher's outputs (the trained MLP above)
local student = nn.mlp{784, 32, 10, seed = 5}
local d = nn.train{net = student, data = train, subset = 3200, batch = 64, epochs = 3, lr = 0.002,
                   loss = "distill", teacher = net}
tap.ok(d[3].loss < 0.5 * d[1].loss, string.format("the distillation loss falls (%.3f → %.3f)", d[1].loss, d[3].loss))
tap.ok(test:accuracy(student) > 0.6, "the student classifies without ever seeing a label's loss")

-- a loss written in Lua: cross-entropy by hand gives the built-in's losses
local function cross_entropy(y, labels)
  local rows, grad, total = y:to_table(), {}, 0
  for i, row in ipairs(rows) do
    local max = math.max(table.unpack(row))
    local sum = 0
    for _, v in ipairs(row) do sum = sum + math.exp(v - max) end
    local lse = math.log(sum) + max
    total = total + lse - row[labels[i] + 1]
    grad[i] = {}
    for j, v in ipairs(row) do grad[i][j] = (math.exp(v - lse) - (j == labels[i] + 1 and 1 or 0)) / #rows end
  end
  return total / #rows, tensor.from_table(grad)
end
local m1, m2 = nn.mlp{784, 16, 10, seed = 4}, nn.mlp{784, 16, 10, seed = 4}
local l1 = nn.train{net = m1, data = train, subset = 640, batch = 64, epochs = 2, seed = 3}
local l2 = nn.train{net = m2, data = train, subset = 640, batch = 64, epochs = 2, seed = 3, loss = cross_entropy}
tap.near(l2[2].loss, l1[2].loss, 1e-5, "a Lua loss function trains like the built-in one")
tap.dies("must return a number and a 64x10 gradient tensor", "a Lua loss must return a gradient", nn.train,
         {net = m2, data = train, subset = 640, batch = 64, loss = function() return 1 end})

-- schedules from Lua: the learning rate of each epoch's last step
local function lrs(schedule, extra)
  local o = {net = nn.mlp{784, 8, 10}, data = train, subset = 64, batch = 32, epochs = 4, lr = 0.1, schedule = schedule}
  for k, v in pairs(extra or {}) do o[k] = v end
  local r, out = nn.train(o), {}
  for i = 1, #r do out[i] = string.format("%.4g", r[i].lr) end
  return table.concat(out, " ")
end
tap.is(lrs({step = 2, gamma = 0.5}), "0.1 0.1 0.05 0.05", "step schedule: ×gamma every 2 epochs")
tap.is(lrs({milestones = {1, 3}, gamma = 0.1}), "0.1 0.01 0.01 0.001", "milestones: ×gamma from epochs 2 and 4")
tap.is(lrs("constant"), "0.1 0.1 0.1 0.1", "constant schedule")
tap.is(lrs("cosine", {lr_min = 0.02}), "0.09696 0.07531 0.04469 0.02304", "cosine towards lr_min, per step (8 steps)")
tap.is(lrs("constant", {warmup = 1.5}), "0.06667 0.1 0.1 0.1", "linear warm-up over 1.5 epochs")

-- saving with training metadata
local path = os.tmpname()
net:save(path, {["train.seed"] = 2, note = "for the test", good = true})
local meta = tensor.metadata(path)
tap.ok(meta["train.seed"] == "2" and meta.note == "for the test" and meta.good == "true" and meta["boengine.arch"],
       "net:save writes extra metadata beside the architecture")
tap.is(test:accuracy(nn.load(path)), run[3].test_accuracy, "the saved network reloads with its accuracy")
tap.dies("metadata key boengine.arch is written by the engine", "the engine's own keys cannot be overridden",
         net.save, net, path, {["boengine.arch"] = "x"})
os.remove(path)

-- nn.publish: weights with the training facts, the per-epoch curve, one README row per model
local pdir = os.tmpname(); os.remove(pdir)
local acc = nn.publish{net = net, name = "m1", test = test, run = run, dir = pdir}
nn.publish{net = net, name = "m2", test = test, run = run, dir = pdir}
nn.publish{net = net, name = "m1", test = test, run = run, dir = pdir}
local pm = tensor.metadata(pdir .. "/m1.safetensors")
tap.ok(pm["train.seed"] == "2" and pm["train.epochs"] == "3" and pm["train.test_accuracy"] == string.format("%.4f", acc)
       and pm["train.script_sha256"] == boengine.script_sha256 and pm["boengine.commit"] == boengine.commit,
       "the published file records seed, epochs, accuracy, the experiment file's hash and the commit")
local curve = {}
for line in io.lines(pdir .. "/m1.curve.csv") do curve[#curve + 1] = line end
tap.ok(#curve == 4 and curve[1]:match("^epoch,loss") and curve[4]:match("^3,"), "the curve has a line per epoch")
local rows = {}
for line in io.lines(pdir .. "/README.md") do
  local name = line:match("^| (m%d) |")
  if name then rows[#rows + 1] = name end
end
tap.is(table.concat(rows, " "), "m1 m2", "README.md holds one row per model, replaced when it is published again")
os.execute("rm -rf " .. pdir)

-- checkpoints: a run killed after an epoch and started again ends with the uninterrupted run's
-- weights and statistics (a child process exits inside the callback right after epoch 2 is saved)
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
local child = dir .. "/child.lua"
local f = assert(io.open(child, "w"))
f:write([[
local ckpt, die = arg[1], tonumber(arg[2])
local net = nn.vgg{depth = 11, batchnorm = true, width = 0.0625, channels = 1, classes = 10, size = 28,
                   stem = "small", head = "small", dropout = 0.3, seed = 1}
local run = nn.train{net = net, data = data.fashion_mnist{split = "train"}, subset = 192, batch = 32, epochs = 3,
                     lr = 0.05, seed = 4, augment = {crop = 2, flip = true}, momentum = 0.9, nesterov = true,
                     schedule = "cosine", checkpoint = ckpt,
                     callback = function(e) if e == die then os.exit(3) end end}
net:save(arg[3])
for e = 1, #run do io.write(string.format("%a ", run[e].loss)) end
]])
f:close()
local bin = tap.boengine()
local once, resumed = dir .. "/once.safetensors", dir .. "/resumed.safetensors"
local ok1, out1 = tap.run(bin .. " --threads 2 " .. child .. " " .. dir .. "/a.ckpt 0 " .. once)
local killed = tap.run(bin .. " --threads 2 " .. child .. " " .. dir .. "/b.ckpt 2 " .. resumed)
local ok2, out2, err2 = tap.run(bin .. " --threads 2 " .. child .. " " .. dir .. "/b.ckpt 0 " .. resumed)
tap.ok(ok1 and not killed and ok2, "an uninterrupted run, a run killed after epoch 2, its restart")
tap.ok(err2:find("resuming from " .. dir .. "/b.ckpt after epoch 2 of 3", 1, true), "the restart says where it resumes")
tap.ok(out1 ~= "" and out2 == out1, "the resumed run reports every epoch's loss, as the uninterrupted one")
local wa, wb = nn.load(once), nn.load(resumed)
tap.ok(same_params(wa, wb), "the resumed run ends with the uninterrupted run's weights, bit for bit")
local again = nn.vgg{depth = 11, batchnorm = true, width = 0.0625, channels = 1, classes = 10, size = 28,
                     stem = "small", head = "small", dropout = 0.3, seed = 1}
local done = nn.train{net = again, data = train, subset = 192, batch = 32, epochs = 3, lr = 0.05, seed = 4,
                      augment = {crop = 2, flip = true}, momentum = 0.9, nesterov = true, checkpoint = dir .. "/a.ckpt"}
tap.ok(#done == 3 and same_params(again, wa), "a finished checkpoint returns its statistics and weights at once")
tap.dies("a.ckpt: a checkpoint of another run (its options: seed 4, 3 epochs of 32", "a checkpoint of other options is refused",
         nn.train, {net = again, data = train, subset = 192, batch = 32, epochs = 3, lr = 0.1, seed = 4,
                    checkpoint = dir .. "/a.ckpt"})
tap.dies("a.ckpt: parameter features.0.weight is missing or of another shape", "a checkpoint of another network is refused",
         nn.train, {net = nn.vgg{depth = 11, batchnorm = true, width = 0.125, channels = 1, classes = 10, size = 28,
                                 stem = "small", head = "small", dropout = 0.3, seed = 1},
                    data = train, subset = 192, batch = 32, epochs = 3, lr = 0.05, seed = 4,
                    augment = {crop = 2, flip = true}, momentum = 0.9, nesterov = true, checkpoint = dir .. "/a.ckpt"})
tap.dies("/no/such/dir/x.ckpt: cannot write a checkpoint there", "an unwritable checkpoint is refused before training",
         nn.train, {net = nn.mlp{784, 8, 10}, data = train, subset = 64, batch = 32, checkpoint = "/no/such/dir/x.ckpt"})
os.execute("rm -rf " .. dir)

-- training a compressed candidate (distillation towards its reference) leaves the reference alone:
-- the candidate shares the layers it does not compress with it until they are trained
local teacher = nn.vgg{depth = 11, batchnorm = true, width = 0.0625, channels = 1, classes = 10, size = 28,
                       stem = "small", head = "small", seed = 2}
local x8 = train:sample(8, 3)
local y_before = teacher:forward(x8)
local snapshot = teacher:params()
local vh = compress.vh{net = teacher, layers = "features.4", bounds = {0.5, 0.5}}
local student = compress.apply(teacher, vh, {0.5})
nn.train{net = student, data = train, subset = 128, batch = 32, epochs = 1, lr = 0.01, loss = "distill", teacher = teacher}
local unchanged = true
for name, t in pairs(teacher:params()) do unchanged = unchanged and t:rel_error(snapshot[name]) == 0 end
tap.ok(unchanged and teacher:forward(x8):rel_error(y_before) == 0, "the reference keeps its weights and outputs")
tap.ok(student:params()["classifier.0.weight"]:rel_error(snapshot["classifier.0.weight"]) > 0,
       "the candidate's shared layers trained on copies")

-- bad options: one clear message each
local function bad(pattern, opts, what)
  opts.net = opts.net == nil and nn.mlp{784, 8, 10} or opts.net or nil
  if opts.data == nil then opts.data = train elseif opts.data == false then opts.data = nil end
  tap.dies(pattern, what, nn.train, opts)
end
bad("nn.train: unknown key 'epoch' (known: net, data, epochs", {epoch = 3}, "an unknown key is named")
bad("nn.train: 'net' is required", {net = false}, "net is required")
bad("nn.train: 'data' is required", {data = false}, "data is required")
bad("nn.train: 'test' must be a dataset, got number", {test = 3}, "test must be a dataset")
bad("schedule must be \"cosine\", \"constant\"", {schedule = "linear"}, "an unknown schedule is named")
bad("a table needs step (epochs between decays) or milestones", {schedule = {gamma = 0.5}}, "a step schedule needs step")
bad("milestones must be increasing", {schedule = {milestones = {3, 2}}}, "milestones must increase")
bad("augment must be a table", {augment = 4}, "augment must be a table")
bad("nn.train: augment: unknown key 'rotate'", {augment = {rotate = 10}}, "augment's unknown key is named")
bad("loss must be \"cross_entropy\", \"distill\" or a function", {loss = "mse"}, "an unknown loss is named")
bad("the distillation loss needs a teacher network", {loss = "distill"}, "distillation needs a teacher")
bad("a batch of 512 is larger than the 100 training examples", {subset = 100, batch = 512}, "a batch larger than the data")
bad("momentum must be in [0, 1)", {momentum = 1}, "momentum of 1 is refused")
bad("Nesterov momentum needs a momentum above 0", {momentum = 0, nesterov = true}, "Nesterov without momentum")
bad("warm-up of 5 epochs is not in [0, 2]", {epochs = 2, warmup = 5}, "a warm-up longer than the run")
bad("a subset of 70000 examples out of 60000", {subset = 70000}, "a subset larger than the data")
bad("the network has 5 outputs for 10 classes", {net = nn.mlp{784, 5}, subset = 64, batch = 32}, "too few outputs for the classes")
bad("layer fc1 (linear, #1): input has 784 features, the weights expect 100", {net = nn.mlp{100, 10}, subset = 64, batch = 32},
    "a network that does not fit the images is named")
bad("the teacher must be another network", {net = net, teacher = net, loss = "distill"}, "a network cannot teach itself")
bad("training diverged; lower the learning rate", {net = nn.mlp{784, 8, 10}, subset = 640, batch = 64, lr = 1e30},
    "divergence is reported")

tap.done()
