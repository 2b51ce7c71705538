-- Hostile input, table-driven: every file format the engine reads and every option table, fed
-- malformed values. Each case runs as its own boengine process in a scratch folder and must end
-- with a non-zero exit (not a signal), exactly one line on stderr naming the file or key at fault,
-- and no file left behind.
local tap = require "tap"
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = os.getenv("PWD") .. "/" .. bin end
local root = os.getenv("PWD")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- ---- bytes of the inputs --------------------------------------------------------------------------

local function u64le(n)
  local t = {}
  for i = 1, 8 do t[i] = string.char(n % 256); n = n // 256 end
  return table.concat(t)
end
-- a safetensors file: header text, then data bytes
local function st(header, data, hlen)
  return u64le(hlen or #header) .. header .. (data or "")
end
local function f32s(n) return string.rep("\0\0\0\0", n) end
local MLP_ARCH = '{"arch":"mlp","widths":[4,3,2]}'
local function mlp_file(arch, extra)
  local h = '{"__metadata__":{"boengine.arch":' .. string.format("%q", arch):gsub("\\\n", "\\n") .. '},'
         .. '"fc1.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},'
         .. '"fc1.bias":{"dtype":"F32","shape":[3],"data_offsets":[48,60]},'
         .. '"fc2.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[60,84]},'
         .. '"fc2.bias":{"dtype":"F32","shape":[2],"data_offsets":[84,92]}' .. (extra or "") .. '}'
  return st(h, f32s(23))
end
-- a plain IDX file of unsigned bytes
local function idx(dims, payload, dtype)
  local t = {"\0\0", string.char(dtype or 8), string.char(#dims)}
  for _, d in ipairs(dims) do t[#t + 1] = string.pack(">I4", d) end
  return table.concat(t) .. (payload or "")
end
local function read_file(path)
  local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s
end
local labels_gz = read_file("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
local png = read_file(root .. "/tests/fixtures/images/folder/ants/small.png")
local jpeg = read_file(root .. "/tests/fixtures/images/folder/ants/grey.jpeg")

-- ---- the cases ------------------------------------------------------------------------------------
-- files: name -> bytes (a name ending in / is a folder); script: the experiment's text; args: its
-- command line; want: text the error line must contain; exit: the expected status (default 1).

local cases = {}
local function case(name, t) t.name = name; cases[#cases + 1] = t end

-- safetensors, through tensor.load, tensor.metadata, net:load and nn.load
local function load_case(name, bytes, want, call)
  case("safetensors: " .. name, {files = {["w.safetensors"] = bytes}, script = (call or "tensor.load") .. "('w.safetensors')\n",
                                 want = want})
end
load_case("an empty file", "", "w.safetensors: truncated file: 0 bytes")
load_case("3 bytes", "abc", "truncated file: 3 bytes")
load_case("a header longer than the file", st("{}", "", 1000), "header of 1000 bytes announced")
load_case("a header that is not JSON", st("{\"a\": ", ""), "header is not a JSON object")
load_case("a JSON array header", st("[1,2]", ""), "header is not a JSON object")
load_case("an unknown dtype", st('{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', "x"), "unknown dtype 'F8'")
load_case("a fractional shape", st('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', f32s(1)), "shape entry 0")
load_case("a negative shape", st('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', f32s(1)), "shape entry 0")
load_case("offsets past the data", st('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32s(2)), "run past the end")
load_case("overlapping tensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32s(3)),
          "overlap")
load_case("a gap", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32s(2)), "gap of 4 bytes")
load_case("trailing bytes", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32s(2)), "4 trailing bytes")
load_case("two __metadata__ maps", st('{"__metadata__":{"a":"1"},"__metadata__":{"b":"2"}}', ""), "two __metadata__ entries")
load_case("a tensor named twice", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32s(2)),
          "tensor 'a' appears twice")
load_case("a metadata value that is a number", st('{"__metadata__":{"k":1}}', ""), "value of 'k' is not a string", "tensor.metadata")
case("safetensors: a folder instead of a file", {files = {["w.safetensors/"] = true}, script = "tensor.load('w.safetensors')\n",
                                                 want = "w.safetensors: not a regular file"})
case("safetensors: a missing file", {script = "tensor.load('nope.safetensors')\n", want = "nope.safetensors: cannot open"})
load_case("nn.load without an architecture", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32s(1)),
          "no architecture recorded", "nn.load")
load_case("an architecture record that is not JSON", mlp_file("{arch"), "architecture record is not a known network", "nn.load")
load_case("an unknown architecture", mlp_file('{"arch":"lenet"}'), "architecture record is not a known network", "nn.load")
load_case("an MLP of width 0", mlp_file('{"arch":"mlp","widths":[4,0,2]}'), "width 2 is not an integer in [1,", "nn.load")
load_case("an MLP of 10^8 units", mlp_file('{"arch":"mlp","widths":[4,100000000,2]}'), "expected 100000000x4", "nn.load")
load_case("a ResNet of depth 17", mlp_file('{"arch":"resnet","depth":17}'), "depth 17", "nn.load")
load_case("a rewrite of a missing layer", mlp_file('{"arch":"mlp","widths":[4,3,2],"rewrites":[{"layer":"fc9","op":"svd","rank":1}]}'),
          "has no layer fc9", "nn.load")
load_case("a rewrite without rank", mlp_file('{"arch":"mlp","widths":[4,3,2],"rewrites":[{"layer":"fc1","op":"svd"}]}'),
          "has no rank", "nn.load")
load_case("weights of another shape", mlp_file(MLP_ARCH), "tensor fc1.weight has shape 3x4, expected 5x4",
          "nn.mlp{4, 5, 2}:load")
load_case("a tensor the network lacks", mlp_file(MLP_ARCH, ',"extra":{"dtype":"F32","shape":[0],"data_offsets":[92,92]}'),
          "tensor extra does not belong to this network", "nn.load")
load_case("a missing tensor", st('{"fc1.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}}', f32s(12)),
          "missing tensor fc1.bias", "nn.mlp{4, 3, 2}:load")

-- IDX files, through data.fashion_mnist{path = "fm"}
local function fm_case(name, files, want)
  local f = {["fm/"] = true}
  for k, v in pairs(files) do f["fm/" .. k] = v end
  case("idx: " .. name, {files = f, script = "data.fashion_mnist{path = 'fm', split = 'test'}\n", want = want})
end
local good_images = idx({2, 28, 28}, string.rep("\7", 2 * 28 * 28))
local good_labels = idx({2}, "\1\2", 8)
fm_case("a missing images file", {["t10k-labels-idx1-ubyte.gz"] = good_labels}, "t10k-images-idx3-ubyte.gz: cannot open")
fm_case("an empty file", {["t10k-images-idx3-ubyte.gz"] = "", ["t10k-labels-idx1-ubyte.gz"] = good_labels}, "no IDX header")
fm_case("a bad magic", {["t10k-images-idx3-ubyte.gz"] = idx({2, 28, 28}, "", 9), ["t10k-labels-idx1-ubyte.gz"] = good_labels},
        "bad IDX magic")
fm_case("a truncated payload", {["t10k-images-idx3-ubyte.gz"] = idx({2, 28, 28}, "\0\0\0"), ["t10k-labels-idx1-ubyte.gz"] = good_labels},
        "3 bytes of data where the header announces 1568")
fm_case("a header announcing 4 GB", {["t10k-images-idx3-ubyte.gz"] = idx({4000, 1000, 1000}, "\0"), ["t10k-labels-idx1-ubyte.gz"] = good_labels},
        "1 bytes of data where the header announces 4000000000")
fm_case("a bad gzip checksum", {["t10k-images-idx3-ubyte.gz"] = good_images,
                                ["t10k-labels-idx1-ubyte.gz"] = labels_gz:sub(1, -9) .. "\0\0\0\0" .. labels_gz:sub(-4)},
        "corrupt gzip data (incorrect data check)")
fm_case("more labels than images", {["t10k-images-idx3-ubyte.gz"] = good_images, ["t10k-labels-idx1-ubyte.gz"] = idx({3}, "\1\2\3")},
        "3 labels for the 2 images")
fm_case("trailing bytes", {["t10k-images-idx3-ubyte.gz"] = good_images .. "x", ["t10k-labels-idx1-ubyte.gz"] = good_labels},
        "trailing bytes")

-- image folders, through data.folder
local function folder_case(name, files, script, want)
  local f = {["imgs/"] = true}
  for k, v in pairs(files) do f["imgs/" .. k] = v end
  case("images: " .. name, {files = f, script = script or "data.folder{path = 'imgs', size = 8}\n", want = want})
end
case("images: a missing folder", {script = "data.folder{path = 'none', size = 8}\n", want = "none: cannot open folder"})
folder_case("no class subfolders", {["a.png"] = png}, nil, "no class subfolders")
folder_case("an empty class folder", {["cat/"] = true}, nil, "class folder has no .png, .jpg or .jpeg file")
folder_case("a corrupt PNG", {["cat/"] = true, ["cat/a.png"] = png:sub(1, 60)}, "data.folder{path = 'imgs', size = 8}:batch(1, 1)\n",
            "imgs/cat/a.png")
folder_case("a truncated JPEG", {["cat/"] = true, ["cat/a.jpg"] = jpeg:sub(1, 40)}, "data.folder{path = 'imgs', size = 8}:batch(1, 1)\n",
            "imgs/cat/a.jpg")
folder_case("text named .png", {["cat/"] = true, ["cat/a.png"] = "hello"}, "data.folder{path = 'imgs', size = 8}:batch(1, 1)\n",
            "imgs/cat/a.png")
folder_case("a size of 0", {["cat/"] = true, ["cat/a.png"] = png}, "data.folder{path = 'imgs', size = 0}\n", "size")
folder_case("an unknown key", {["cat/"] = true, ["cat/a.png"] = png}, "data.folder{path = 'imgs', sise = 8}\n", "unknown key 'sise'")

-- option tables and arguments of the modules
local function script_case(name, script, want) case(name, {script = script, want = want}) end
script_case("tensor: a ragged table", "tensor.from_table{{1, 2}, {3}}\n", "ragged")
script_case("tensor: a negative dimension", "tensor.zeros{2, -1}\n", "tensor.zeros")
script_case("tensor: a reshape to another size", "tensor.zeros{2, 2}:reshape{3}\n", "cannot reshape 2x2 to 3")
script_case("tensor: saving into a missing folder", "tensor.save('no/such/x.safetensors', {a = tensor.zeros{1}})\n",
            "no/such/x.safetensors: cannot create")
script_case("nn: a VGG of depth 12", "nn.vgg{depth = 12}\n", "depth 12")
script_case("nn: an unknown key", "nn.resnet{depht = 18}\n", "unknown key 'depht'")
script_case("nn: a fractional MLP width", "nn.mlp{4, 2.5, 2}\n", "width 2 is not an integer")
script_case("nn: an input of the wrong channels", "nn.mlp{4, 3, 2}:forward(tensor.zeros{1, 5})\n", "features")
script_case("data: an unknown split", "data.fashion_mnist{split = 'val'}\n", "split must be \"train\" or \"test\"")
script_case("data: a sample larger than the split", "data.fashion_mnist{}:sample(20000, 1)\n", "20000")
script_case("objective: one sample (no standard error)",
            "objective.fnorm{reference = nn.mlp{784, 8, 10}, data = data.fashion_mnist{}, samples = 1}\n",
            "samples = 1 gives no standard error")
script_case("objective: a NaN gamma", "local net = nn.mlp{784, 8, 10}\nobjective.scalarize{families = "
            .. "compress.svd{net = net, layers = 'fc1'}, estimator = objective.fnorm{reference = net, "
            .. "data = data.fashion_mnist{}}, gamma = 0/0}\n", "'gamma' must be a positive finite number, got NaN")
script_case("objective: an unknown ratio", "local net = nn.mlp{784, 8, 10}\nobjective.scalarize{families = "
            .. "compress.svd{net = net, layers = 'fc1'}, estimator = objective.fnorm{reference = net, "
            .. "data = data.fashion_mnist{}}, ratio = 'size'}\n", "ratio \"size\" is not one of params")
script_case("publish: an unknown key", "nn.publish{net = 1, nme = 2}\n", "nn.publish: unknown key 'nme'")

-- BO journals, through bo.minimize
local JOURNAL_HEAD = '{"journal":"boengine bo journal","version":1,"dim":1,"lower":[0],"upper":[1],"integer":[false],'
local function journal_case(name, text, want)
  case("journal: " .. name, {files = {["j.jsonl"] = text}, want = want, script =
    "bo.minimize{f = function(x) return x[1] end, bounds = {{0, 1}}, init = 2, iterations = 0, seed = 7, journal = 'j.jsonl'}\n"})
end
journal_case("a negative seed", JOURNAL_HEAD .. '"seed":-7,"strategy":"bo"}\n', "a seed that is not a non-negative integer")
journal_case("another seed", JOURNAL_HEAD .. '"seed":8,"strategy":"bo"}\n', "written with seed 8, this run has seed 7")
journal_case("another dimension", '{"journal":"boengine bo journal","version":1,"dim":2,"lower":[0,0],"upper":[1,1]}\n',
             "j.jsonl")
journal_case("a line that is not JSON", JOURNAL_HEAD .. '"seed":7,"strategy":"bo"}\nnot json\n{"i":1}\n', "j.jsonl")
journal_case("an evaluation out of order", JOURNAL_HEAD .. '"seed":7,"strategy":"bo"}\n{"i":2,"x":[0.5],"y":1}\n', "j.jsonl")
journal_case("a fractional evaluation number", JOURNAL_HEAD .. '"seed":7,"strategy":"bo"}\n{"i":1.5,"x":[0.5],"y":1}\n',
             "j.jsonl")
journal_case("text after the JSON", JOURNAL_HEAD .. '"seed":7,"strategy":"bo"}\n{"i":1,"x":[0.5],"y":1} x\n{"i":2,"x":[0.1],"y":1}\n',
             "j.jsonl")
case("journal: a folder", {files = {["j.jsonl/"] = true}, want = "j.jsonl", script =
  "bo.minimize{f = function(x) return x[1] end, bounds = {{0, 1}}, init = 2, iterations = 0, journal = 'j.jsonl'}\n"})
script_case("bo: a NaN kappa", "bo.minimize{f = function(x) return x[1] end, bounds = {{0, 1}}, kappa = 0/0}\n",
            "'kappa' must be a finite number")
script_case("bo: init beyond int", "bo.minimize{f = function(x) return x[1] end, bounds = {{0, 1}}, init = 2^32 + 2}\n",
            "init")
script_case("bo: f returns NaN", "bo.minimize{f = function(x) return 0/0 end, bounds = {{0, 1}}, init = 2, iterations = 0}\n",
            "NaN")
script_case("bo: f spreads beyond a double's variance", "bo.minimize{f = function(x, i) return i % 2 == 0 and 1e300 "
            .. "or -1e300 end, bounds = {{0, 1}}, init = 3, iterations = 2}\n", "from -1e+300 to 1e+300, spread too far")
script_case("bo: bounds the wrong way round", "bo.minimize{f = function(x) return x[1] end, bounds = {{1, 0}}}\n", "bounds")

-- experiment declarations and their overrides
local DECL = "experiment{compress = {{family = 'vh', layers = 'features.*'}}, budget = 0.25, evaluations = 2}\n"
local function decl_case(name, script, args, want)
  case("declaration: " .. name, {script = script or DECL, args = args, want = want, experiment = true})
end
decl_case("an unknown key", "experiment{compress = {{family = 'vh'}}, budget = 0.25, evals = 3}\n", nil, "unknown key 'evals'")
decl_case("a number given as text", "experiment{compress = {{family = 'vh'}}, budget = 'small'}\n", nil, "'budget' must be number")
decl_case("gamma and budget", "experiment{compress = {{family = 'vh'}}, budget = 0.2, gamma = 1}\n", nil, "either 'gamma' or 'budget'")
decl_case("no compression", "experiment{budget = 0.2}\n", nil, "'compress' is required")
decl_case("a budget of 0", nil, "budget=0", "'budget' must be in (0, 1)")
decl_case("an override of an unknown key", nil, "budgte=0.3", "unknown key 'budgte'")
decl_case("an override that is not KEY=VALUE", nil, "0.3", "is not KEY=VALUE")
decl_case("an unreadable override", nil, "compress={{family=vh", "compress: cannot read")
decl_case("an override of the wrong kind", nil, "samples=many", "'samples' must be integer")
decl_case("an unknown family", nil, "compress.1.family=vhh", "unknown family \"vhh\"")
decl_case("an unknown model", nil, "model=lenet7", "model: \"lenet7\" is neither")
decl_case("a missing weights file", nil, "model=vgg11 weights=none.safetensors", "weights: none.safetensors: no such file")

-- the command line
case("runner: a seed that is not a number", {cmd = "--seed x s.lua", files = {["s.lua"] = ""}, want = "--seed needs an integer", exit = 2})
case("runner: no threads", {cmd = "--threads 0 s.lua", files = {["s.lua"] = ""}, want = "--threads needs an integer", exit = 2})
case("runner: an unknown option", {cmd = "--fast s.lua", files = {["s.lua"] = ""}, want = "unknown option '--fast'", exit = 2})
case("runner: a missing script", {cmd = "nothere.lua", want = "nothere.lua", exit = 1})

-- ---- running them --------------------------------------------------------------------------------

local function listing(dir)
  local p = io.popen("cd " .. sh_quote(dir) .. " && find . -mindepth 1 | sort")
  local s = p:read("a"); p:close(); return s
end

local base = os.tmpname(); os.remove(base); os.execute("mkdir -p " .. base)
for k, c in ipairs(cases) do
  local dir = base .. "/" .. k
  os.execute("mkdir -p " .. dir .. (c.experiment and "/experiments" or ""))
  local names = {}
  for name in pairs(c.files or {}) do names[#names + 1] = name end
  table.sort(names) -- folders before their files
  for _, name in ipairs(names) do
    if name:sub(-1) == "/" then
      os.execute("mkdir -p " .. sh_quote(dir .. "/" .. name))
    else
      local f = assert(io.open(dir .. "/" .. name, "wb")); f:write(c.files[name]); f:close()
    end
  end
  local script = c.experiment and "experiments/exp.lua" or "script.lua"
  if c.script then
    local f = assert(io.open(dir .. "/" .. script, "w")); f:write(c.script); f:close()
  end
  local before = listing(dir)
  local cmd = c.cmd or ("--quiet " .. script .. " " .. (c.args or ""))
  local ok, how, code = os.execute("cd " .. sh_quote(dir) .. " && " .. bin .. " " .. cmd .. " >out.txt 2>err.txt")
  local err = read_file(dir .. "/err.txt")
  os.remove(dir .. "/out.txt"); os.remove(dir .. "/err.txt")
  local _, lines = err:gsub("\n", "")
  local left = listing(dir)
  if os.getenv("SHOW") then print("# " .. c.name .. " -> " .. err:gsub("\n", "")) end
  local good = not ok and how == "exit" and code == (c.exit or 1) and lines == 1 and err:find(c.want, 1, true) ~= nil
               and left == before
  tap.ok(good, c.name)
  if not good then
    tap.diag(string.format("%s %s; stderr: %s", how, tostring(code), err))
    if left ~= before then tap.diag("files before:\n" .. before .. "after:\n" .. left) end
  end
end
tap.ok(#cases >= 60, #cases .. " malformed inputs")
os.execute("rm -rf " .. base)
tap.done()
