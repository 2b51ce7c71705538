-- The command line: options, the arg table, and how errors are reported.
local tap = require "tap"
local bin = tap.boengine()
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)

local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w")); f:write(text); f:close()
  return path
end

local ok, out = tap.run(bin .. " --version")
tap.ok(ok and out:match("^boengine %d+%.%d+%.%d+"), "--version prints the version")
ok, out = tap.run(bin .. " --help")
tap.ok(ok and out:find("--threads", 1, true) and out:find("--seed", 1, true), "--help lists the options")
ok, out, err = tap.run(bin .. " --frobnicate x.lua")
tap.ok(not ok and err:find("unknown option '--frobnicate'", 1, true), "an unknown option is refused")
ok, out, err = tap.run(bin)
tap.ok(not ok and err:find("no experiment file", 1, true), "no file is a usage error")

local args = write("args.lua", [[
print(arg[0], #arg, arg[1], arg[2], select('#', ...), boengine.seed, boengine.threads)
]])
ok, out = tap.run(bin .. " --seed 42 --threads 1 " .. args .. " a 'b c'")
tap.is(out, args .. "\t2\ta\tb c\t2\t42\t1\n", "arguments reach arg and ..., --seed and --threads reach boengine")
ok, out = tap.run(bin .. " --seed=43 --threads=1 " .. args .. " a 'b c'")
tap.is(out, args .. "\t2\ta\tb c\t2\t43\t1\n", "--seed=N and --threads=N are read too")
ok, out, err = tap.run(bin .. " --seed 99999999999999999999 " .. args)
tap.ok(not ok and err:find("--seed needs an integer from 0 to 9223372036854775807", 1, true),
       "a seed beyond int64 is refused, not clamped")

local libs = write("libs.lua", [[print(type(string.format), type(io.open), type(os.time), type(math.sin), type(tensor))]])
ok, out = tap.run(bin .. " " .. libs)
tap.is(out, "function\tfunction\tfunction\tfunction\ttable\n", "standard libraries and engine modules are loaded")

local hash = write("hash.lua", "print(boengine.script_sha256)\n")
ok, out = tap.run(bin .. " " .. hash)
local pipe = io.popen("sha256sum " .. hash)
local want = pipe:read("a"):match("^(%x+)")
pipe:close()
tap.is(out, want .. "\n", "boengine.script_sha256 is the SHA-256 of the experiment file (as sha256sum)")

local rt = write("runtime.lua", "local function f() local x = nil; return x.y end\nf()\n")
ok, out, err = tap.run(bin .. " " .. rt)
tap.ok(not ok, "a runtime error exits non-zero")
tap.ok(err:find(rt .. ":1: attempt to index", 1, true), "a runtime error names file:line")
tap.ok(err:find("stack traceback:", 1, true), "a runtime error prints a traceback")

local syn = write("syntax.lua", "local x = = 1\n")
ok, out, err = tap.run(bin .. " " .. syn)
tap.ok(not ok and err:find(syn .. ":1:", 1, true), "a syntax error exits non-zero naming file:line")

local bad = write("input.lua", "\n\ntensor.load('" .. dir .. "/missing.safetensors')\n")
ok, out, err = tap.run(bin .. " " .. bad)
tap.ok(not ok, "bad input exits non-zero")
tap.ok(err:find(bad .. ":3: tensor.load: " .. dir .. "/missing.safetensors: cannot open", 1, true),
       "bad input names script line, function and file")
local _, lines = err:gsub("\n", "")
tap.is(lines, 1, "bad input is reported on one line")

local trunc = dir .. "/trunc.safetensors"
tensor.save(trunc, {w = tensor.zeros{4, 4}})
local f = io.open(trunc, "rb"); local bytes = f:read("a"); f:close()
f = io.open(trunc, "wb"); f:write(bytes:sub(1, #bytes - 10)); f:close()
local tr = write("trunc.lua", "tensor.load('" .. trunc .. "')\n")
ok, out, err = tap.run(bin .. " " .. tr)
_, lines = err:gsub("\n", "")
tap.ok(not ok and lines == 1 and err:find(trunc .. ": tensor w: data_offsets", 1, true), "a truncated safetensors file: one line naming it")

local save = write("save.lua", "tensor.save('" .. dir .. "/no/such/dir/out.safetensors', {w = tensor.zeros{2}})\n")
ok, out, err = tap.run(bin .. " " .. save)
tap.ok(not ok and err:find("cannot create", 1, true), "an unwritable output is reported")

ok, out, err = tap.run(bin .. " " .. dir .. "/nope.lua")
tap.ok(not ok and err:find("cannot open", 1, true), "a missing script is reported")

os.execute("rm -rf " .. dir)
tap.done()
