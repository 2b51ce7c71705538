-- nn.publish refuses to replace a published model by one of another architecture or a worse one
-- (the README's training example once overwrote the shipped reference model), unless forced.
local tap = require "tap"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

-- The test split is a stand-in whose accuracy the script chooses.
local script = dir .. "/publish.lua"
local f = assert(io.open(script, "w"))
f:write([[
local dir, which, force = ...
local net = which == "other" and nn.mlp{784, 8, 10} or nn.mlp{784, 16, 10}
local run = {seed = 1, batch = 1, seconds = 0}
print(nn.publish{net = net, name = "m", test = {accuracy = function(_, n)
  return which == "worse" and 0.1 or 0.5 end}, run = run, dir = dir, force = force == "force" or nil})
]])
f:close()
local function publish(which, force)
  return tap.run(bin .. " --quiet " .. script .. " " .. dir .. " " .. which .. " " .. (force or ""))
end

local ok, out, err = publish("mlp")
tap.ok(ok and out:find("0.5\n$"), "a first model is published")
if not ok then tap.diag(err) end
ok, out, err = publish("mlp")
tap.ok(ok, "the same architecture with the same accuracy replaces it")
ok, out, err = publish("other")
local _, lines = err:gsub("\n", "")
tap.ok(not ok and lines == 1 and err:find("holds a model of another architecture (mlp 784-16-10)", 1, true),
       "another architecture is refused, naming the published one")
if ok or lines ~= 1 then tap.diag(err) end
ok, out, err = publish("worse")
tap.ok(not ok and err:find("holds a better model (test accuracy 0.5000 against 0.1000)", 1, true),
       "a worse model is refused")
ok = publish("other", "force")
tap.ok(ok and tensor.metadata(dir .. "/m.safetensors")["boengine.arch"]:find("784,8,10", 1, true),
       "force = true replaces it")
local bad = dir .. "/bad.lua"
f = assert(io.open(bad, "w")); f:write("nn.publish{net = 1, nme = 2}\n"); f:close()
ok, out, err = tap.run(bin .. " --quiet " .. bad)
tap.ok(not ok and err:find("nn.publish: unknown key 'nme'", 1, true), "an unknown key is named on one line")
os.execute("rm -rf " .. dir)
tap.done()
