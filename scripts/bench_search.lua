-- The ImageNet-scale search, timed (run by scripts/bench-search): experiments/vgg16_imagenet.lua
-- (VGG16 at 224×224, VH on its 13 convolutions, θ in [0.2, 0.7], n = 50 images per evaluation,
-- 100 evaluations) run through the declaration runner itself, its search's time split by the
-- engine's time accounts (boengine.timing) into reference outputs, candidate build, forward, GP
-- fit and acquisition, beside the physical floor: the candidates' multiply-adds at the machine's
-- FMA peak, measured by build/bench/fma_peak before and after the search in the same run.
--
--   boengine --threads 2 scripts/bench_search.lua fma=build/bench/fma_peak work=DIR data=FOLDER \
--            [out=results/bench_search.md] [declaration=experiments/vgg16_imagenet.lua] [KEY=VALUE ...]
--
-- Other KEY=VALUE arguments are overrides of the declaration (evaluations=10, seed=2, budget=0.3,
-- weights=vgg16.safetensors, ...). The search alone is timed: the run's re-scoring, accuracy,
-- uniform baseline and saved model are switched off (rescore=0 test=false uniform=false
-- save=false), its tables go to DIR.

local opt = {out = "results/bench_search.md", declaration = "experiments/vgg16_imagenet.lua"}
local overrides = {}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_.]+)=(.*)$")
  if not k then boengine.fail("bench_search.lua: argument " .. a .. " is not KEY=VALUE") end
  if k == "fma" or k == "work" or k == "out" or k == "declaration" then
    opt[k] = v
  else
    overrides[#overrides + 1] = a
    if k == "data" then opt.data = v end
  end
end
for _, k in ipairs({"fma", "work"}) do
  if not opt[k] then boengine.fail("bench_search.lua: " .. k .. "=... is required (scripts/bench-search gives it)") end
end
if not opt.data then boengine.fail("bench_search.lua: data=FOLDER is required (scripts/bench-search makes one)") end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function loadavg()
  local s = read_file("/proc/loadavg") or ""
  return s:match("^(%S+ %S+ %S+)") or "?"
end

-- fma_peak's summary line: wall GMAC/s (best, median) at T threads, and GMAC per CPU second.
local function fma_peak()
  local p = io.popen(string.format("'%s' %d 0.3 5", opt.fma:gsub("'", "'\\''"), boengine.threads))
  local out = p:read("a")
  p:close()
  local best, median, threads, isa, cpu = out:match("peak_gmacs (%S+) (%S+) threads (%d+) isa (%S+) cpu_gmacs (%S+)")
  if not best then boengine.fail("bench_search.lua: " .. opt.fma .. " printed no peak_gmacs line") end
  return {best = tonumber(best), median = tonumber(median), threads = tonumber(threads), isa = isa, cpu = tonumber(cpu)}
end

-- ---- the run ------------------------------------------------------------------------------------

local load_before = loadavg()
local peak1 = fma_peak()
io.stderr:write(string.format("bench-search: FMA peak %.1f GMAC/s (%d threads, %s), load average %s\n", peak1.best,
                              peak1.threads, peak1.isa, load_before))

local args = {"name=bench_search", "rescore=0", "test=false", "uniform=false", "save=false",
              "results=" .. opt.work, "figures=" .. opt.work}
for _, a in ipairs(overrides) do args[#args + 1] = a end
args[#args + 1] = "--fresh"
local command = "boengine " .. opt.declaration .. " " .. table.concat(overrides, " ")

-- the declaration file runs as if started with these arguments; experiment{...} is captured so that
-- its result (history, time split) comes back here
arg = {[0] = boengine.script}
for i, a in ipairs(args) do arg[i] = a end
local runner, result = experiment, nil
experiment = function(decl)
  result = runner(decl)
  return result
end
local cpu0, wall0 = os.clock(), boengine.clock()
dofile(opt.declaration)
local cpu, wall = os.clock() - cpu0, boengine.clock() - wall0
experiment = runner
if not result then boengine.fail("bench_search.lua: " .. opt.declaration .. " did not call experiment{...}") end

local load_after = loadavg()
local peak2 = fma_peak()
local peak = math.max(peak1.best, peak2.best)
local peak_cpu = math.max(peak1.cpu, peak2.cpu)

-- ---- the numbers --------------------------------------------------------------------------------

local t, s = result.timing, result.settings
local n, macs = s.samples, result.macs
local cand_macs = 0
for _, rec in ipairs(result.history) do cand_macs = cand_macs + rec.info.flops * macs * n end
local ref_macs = t.reference_images * macs
local part = {}
for _, p in ipairs(t.parts) do part[p.key] = p end
local floor = cand_macs / (peak * 1e9)
local forward = part["objective.forward"].seconds
local reference = part["objective.reference"].seconds

local function gmacs(m, sec) return sec > 0 and m / sec / 1e9 or 0 end
local function pct(x) return string.format("%.0f%%", 100 * x) end
local function sec(x) return x >= 100 and string.format("%.0f", x) or x >= 10 and string.format("%.1f", x)
                              or string.format("%.2f", x) end

-- paths inside the project are shown relative to it (the report is committed)
local function shown(path)
  local here = (os.getenv("PWD") or "") .. "/"
  if here == "/" then return path end
  return (path:gsub(here:gsub("%p", "%%%0"), ""))
end
local b = s.compress[1] and s.compress[1].bounds
local bounds = type(b) == "table" and type(b[1]) == "number" and string.format("[%g, %g]", b[1], b[2])
               or "the declared bounds"
local lines = {}
local function add(fmt, ...) lines[#lines + 1] = select("#", ...) > 0 and string.format(fmt, ...) or fmt end
local cpuinfo = read_file("/proc/cpuinfo") or ""
local model = cpuinfo:match("model name%s*:%s*([^\n]+)") or "?"
local _, cores = cpuinfo:gsub("\nprocessor", "")

add("# The ImageNet-scale search, timed")
add("")
add("Written by `scripts/bench-search` (scripts/bench_search.lua). Engine %s, commit %s, seed %d, %s.",
    boengine.version, boengine.commit, s.seed, os.date("!%Y-%m-%d %H:%M UTC"))
add("Machine: %s, %d cores, %d threads used. Load average (1, 5, 15 min) %s before the run, %s after it: "
    .. "the machine is shared, so every rate below is a ratio against the FMA peak measured in the same run.",
    model, cores + 1, boengine.threads, load_before, load_after)
add("")
add("The search: `%s` (%s): VGG16 at 224×224 (%s), VH on all 13 convolutions, θ in %s of each layer's "
    .. "break-even rank, n = %d images per evaluation from %s (%d images), %d evaluations, budget %s, "
    .. "acquisition %s. Run through the declaration runner itself (experiment{...}); its re-scoring, "
    .. "accuracy, uniform baseline and saved model are switched off, so the time below is the search.",
    shown(command), opt.declaration, s.weights and ("weights " .. s.weights) or "random weights", bounds,
    n, shown(opt.data), t.pool or 0, #result.history, tostring(s.budget or s.gamma), s.acquisition)
add("")
add("## Where the time went")
add("")
add("| part | seconds | share | calls | GMAC/s | share of peak |")
add("|---|---:|---:|---:|---:|---:|")
for _, p in ipairs(t.parts) do
  local rate, share = "", ""
  if p.key == "objective.forward" then
    rate, share = string.format("%.1f", gmacs(cand_macs, p.seconds)), pct(gmacs(cand_macs, p.seconds) / peak)
  elseif p.key == "objective.reference" then
    rate, share = string.format("%.1f", gmacs(ref_macs, p.seconds)), pct(gmacs(ref_macs, p.seconds) / peak)
  end
  add("| %s | %s | %s | %d | %s | %s |", p.label, sec(p.seconds), pct(t.wall > 0 and p.seconds / t.wall or 0), p.calls,
      rate, share)
end
add("| **search** | **%s** | 100%% | %d evaluations | %.1f | %s |", sec(t.wall), t.evaluations,
    gmacs(cand_macs + ref_macs, t.wall), pct(gmacs(cand_macs + ref_macs, t.wall) / peak))
add("| (plan compiles, inside the forward passes) | %s | %s | %d | | |", sec(t.compile),
    pct(t.wall > 0 and t.compile / t.wall or 0), t.compiles)
add("| (set-up before the search: model, data, families) | %s | | | | |", sec(math.max(0, wall - t.wall)))
add("")
add("Reference outputs: %d pool images (each computed once per run, %.2f TMAC). Candidates: %.2f TMAC "
    .. "(%.2f GMAC per image on average, %.3f of the original's %.2f). GMAC/s: multiply-adds over the part's "
    .. "wall time; share of peak: against the FMA peak below.", t.reference_images, ref_macs / 1e12,
    cand_macs / 1e12, cand_macs / n / math.max(1, #result.history) / 1e9,
    cand_macs / (n * math.max(1, #result.history) * macs), macs / 1e9)
add("")
add("## The physical floor")
add("")
add("| | value |")
add("|---|---:|")
add("| FMA peak before / after the search (best of 5 runs, %d threads, %s) | %.1f / %.1f GMAC/s |", peak1.threads,
    peak1.isa, peak1.best, peak2.best)
add("| FMA peak per CPU second (one core while it runs) | %.1f GMAC/s |", peak_cpu)
add("| candidates' multiply-adds | %.2f TMAC |", cand_macs / 1e12)
add("| floor: those at the peak (%.1f GMAC/s) | %s s |", peak, sec(floor))
add("| the search | %s s |", sec(t.wall))
add("| search / floor | %.2f× |", t.wall / floor)
add("| floor with the reference outputs too | %s s (search %.2f× that) |", sec((cand_macs + ref_macs) / (peak * 1e9)),
    t.wall / ((cand_macs + ref_macs) / (peak * 1e9)))
add("| process CPU time during the run / wall time | %.2f |", cpu / wall)
add("| multiply-adds per CPU second of the run, share of the per-CPU peak | %.1f GMAC, %s |",
    gmacs(cand_macs + ref_macs, cpu), pct(gmacs(cand_macs + ref_macs, cpu) / peak_cpu))
add("")
add("Goals (issue 12): at most 2 minutes on this 2-core machine: %s (%s s); within 1.5× of the floor: %s (%.2f×).%s",
    t.wall <= 120 and "met" or "not met", sec(t.wall), t.wall <= 1.5 * floor and "met" or "not met", t.wall / floor,
    floor > 120 and string.format(" The floor itself is %s s at this run's measured peak: 2 minutes is out of "
                                  .. "reach for these candidates on this machine.", sec(floor)) or "")
add("")

local text = table.concat(lines, "\n")
boengine.write_file(opt.out, text)
print(text)
