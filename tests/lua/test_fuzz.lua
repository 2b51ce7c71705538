-- The libFuzzer harnesses of tests/fuzz, as a regression check: each runs its committed corpus and
-- fuzzes for two seconds (scripts/fuzz --regress); any crash, leak, sanitizer report or input that
-- makes a parser allocate beyond 1 GB fails. Long runs are scripts/fuzz's job.
local tap = require "tap"
local ok, out, err = tap.run("scripts/fuzz --regress 2")
local names = {}
for src in io.popen("ls tests/fuzz/fuzz_*.c"):lines() do names[#names + 1] = src:match("fuzz_(%w+)%.c$") end
tap.ok(#names >= 5, "harnesses: " .. table.concat(names, ", "))
for _, n in ipairs(names) do
  local runs = out:match("fuzz " .. n .. ": (%d+) executions")
  tap.ok(runs and tonumber(runs) > 0 and out:find("fuzz " .. n .. ": %d+ executions in %d+s %([%d?]+/s%), no finding"),
         n .. ": its corpus and " .. tostring(runs) .. " fuzzed inputs, no finding")
end
tap.ok(ok, "scripts/fuzz --regress exits 0")
if not ok then tap.diag(err) end
tap.done()
