-- tap: Test Anything Protocol for the Lua tests run by boengine under prove.
local tap = {}
local count, failed = 0, 0

function tap.ok(cond, name)
  count = count + 1
  print(string.format("%sok %d - %s", cond and "" or "not ", count, name or ""))
  if not cond then failed = failed + 1 end
  return cond
end

function tap.diag(...)
  print("# " .. table.concat({...}, " "):gsub("\n", "\n# "))
end

function tap.is(got, want, name)
  local ok = tap.ok(got == want, name)
  if not ok then tap.diag("got " .. tostring(got) .. ", want " .. tostring(want)) end
  return ok
end

-- |got - want| <= tol * max(1, |want|)
function tap.near(got, want, tol, name)
  local ok = tap.ok(type(got) == "number" and math.abs(got - want) <= tol * math.max(1, math.abs(want)), name)
  if not ok then tap.diag(string.format("got %s, want %.10g (tolerance %g)", tostring(got), want, tol)) end
  return ok
end

-- Passes when f(...) raises an error whose message matches pattern (plain text when plain is set).
function tap.dies(pattern, name, f, ...)
  local ok, err = pcall(f, ...)
  local good = not ok and tostring(err):find(pattern, 1, true) ~= nil
  tap.ok(good, name)
  if not good then tap.diag(ok and "no error raised" or ("error was: " .. tostring(err))) end
  return good
end

-- Runs a shell command; returns its exit status (true/false), and its stdout and stderr.
function tap.run(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local ok = os.execute(cmd .. " >" .. out .. " 2>" .. err)
  local function slurp(p) local f = io.open(p); local s = f:read("a"); f:close(); os.remove(p); return s end
  return ok, slurp(out), slurp(err)
end

-- The boengine binary running this test, for tests that start a second one.
function tap.boengine()
  return arg[-1] and arg[-2] == nil and arg[-1] or (os.getenv("BOENGINE_BUILD") or "build") .. "/boengine"
end

function tap.done()
  print("1.." .. count)
  os.exit(failed == 0 and 0 or 1)
end

return tap
