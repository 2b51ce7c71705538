-- Tensors from Lua: construction, shapes, element access, safetensors round trip.
local tap = require "tap"

local x = tensor.from_table{{1, 2, 3}, {4, 5, 6}}
tap.is(table.concat(x:shape(), "x"), "2x3", "from_table infers the shape")
tap.is(x:get(2, 3), 6, "get is 1-based, row-major")
x:set(1, 2, -7.5)
tap.is(x:to_table()[1][2], -7.5, "set then to_table")
tap.is(x:sum(), 1 - 7.5 + 3 + 4 + 5 + 6, "sum")
tap.is(x:numel(), 6, "numel")
tap.is(tostring(x), "tensor(2x3)", "tostring shows the shape")
tap.dies("ragged table", "a ragged table is refused", tensor.from_table, {{1, 2}, {3}})
tap.dies("out of range", "an index out of range is refused", x.get, x, 3, 1)
local r = x:reshape{3, 2}
tap.is(r:get(3, 2), 6, "reshape keeps row-major order")
tap.dies("cannot reshape", "reshape to another size is refused", x.reshape, x, {4, 2})

local path = os.tmpname()
local z = tensor.zeros{2, 1, 4, 4}
z:set(2, 1, 4, 4, 3.25)
tensor.save(path, {x = x, z = z}, {arch = "test"})
local back = tensor.load(path)
tap.is(back.x:rel_error(x), 0, "save/load round trip of x")
tap.is(back.z:get(2, 1, 4, 4), 3.25, "save/load round trip of z")
tap.is(tensor.load(path, "z"):rel_error(z), 0, "load one tensor by name")
tap.is(tensor.metadata(path).arch, "test", "metadata round trip")
local _, mode = tap.run("stat -c %a " .. path)
tap.ok(mode:match("^6[046][046]"), "saved files are readable by others as with any file (mode " .. mode:gsub("\n", "") .. ")")
tap.dies("no tensor named 'w'", "loading a missing name is an error", tensor.load, path, "w")
os.remove(path)
tap.done()
