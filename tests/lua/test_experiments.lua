-- The example compression experiment runs end to end on the shipped model, in a scratch folder:
-- it writes its journal and the chosen network, and a second run resumes from the journal
-- without evaluating again.
local tap = require "tap"
local root = os.getenv("PWD")
local bin = tap.boengine()
if bin:sub(1, 1) ~= "/" then bin = root .. "/" .. bin end
local dir = os.tmpname(); os.remove(dir)
os.execute("mkdir -p " .. dir .. "/results && ln -s " .. root .. "/results/models " .. dir .. "/results/models")
local cmd = "cd " .. dir .. " && " .. bin .. " --threads 2 " .. root .. "/experiments/fmnist_vgg_vh.lua 0.01 20"

local ok, out, err = tap.run(cmd)
tap.ok(ok, "experiments/fmnist_vgg_vh.lua runs 20 evaluations")
if not ok then tap.diag(err) end
local ratio, acc = out:match("parameter ratio ([%d.]+) of the convolutions"), out:match("test accuracy ([%d.]+)")
tap.ok(out:find("best of 20 evaluations", 1, true) and tonumber(ratio) and tonumber(ratio) < 1 and tonumber(acc),
       "it reports the chosen network's ratio and accuracy (" .. tostring(ratio) .. ", " .. tostring(acc) .. ")")
local saved = dir .. "/results/fmnist_vgg_vh_gamma0.01.safetensors"
local net = io.open(saved) and nn.load(saved)
tap.ok(net and net:param_count() < nn.load("results/models/fmnist_vgg11_bn.safetensors"):param_count(),
       "the chosen network is saved, smaller, and loads")
local function journal_lines()
  local n = 0
  for _ in io.lines(dir .. "/results/fmnist_vgg_vh_gamma0.01.jsonl") do n = n + 1 end
  return n
end
local lines = journal_lines()
tap.ok(lines >= 20, "every evaluation is in the journal")

local ok2, out2 = tap.run(cmd)
tap.ok(ok2 and out2 == out and journal_lines() == lines,
       "a second run resumes from the journal, evaluates nothing again and chooses the same network")
os.execute("rm -rf " .. dir)
tap.done()
