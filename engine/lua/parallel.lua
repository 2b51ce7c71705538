-- boengine.parallel: the evaluations of a search spread over the ranks of an MPI run, in
-- synchronous batches or asynchronously, with the same journal whatever the number of ranks and
-- the order in which results arrive (docs/method.md §8, docs/cluster.md).
--
-- Rank 0 owns the optimizer (its GP, acquisition and journal) and proposes; the other ranks serve
-- tasks (M.serve) until rank 0 ends the run. Proposal k sees the evaluations 1 .. told(k) and
-- treats told(k) + 1 .. k - 1 as pending (optimizer:propose, the Kriging believer), where told(k)
-- depends on k alone:
--   design (k <= init)  the first evaluation of the segment - 1 (design points need no results)
--   sync   the start of k's batch - 1: batches of q proposals from the segment's first (or init + 1)
--   async  max(k - lag, first - 1, init), lag = 2 q by default: a rank that finishes gets proposal
--          k as soon as evaluations 1 .. k - lag are told, whatever else has arrived
-- Results are told in proposal order (a result that arrives early waits), so that the journal is
-- the same as a one-rank run of the same q and mode, and a killed run resumes from its journal.

local par = require "boengine.par"

local M = {rank = par.rank, ranks = par.ranks, mpi = par.mpi, MODES = {"sync", "async"}}

local function fail(fmt, ...) boengine.fail(string.format(fmt, ...)) end

-- The default q: every rank evaluates in sync mode; in async mode rank 0 proposes and the others
-- evaluate.
function M.default_batch(mode)
  if mode == "async" then return math.max(M.ranks - 1, 1) end
  return M.ranks
end

-- told(k) for the options o = {first, init, batch, mode, lag}.
function M.told(k, o)
  local first = o.first or 1
  if k <= o.init then return first - 1 end
  if o.mode == "async" then return math.max(k - (o.lag or 2 * o.batch), first - 1, o.init) end
  local base = math.max(first, o.init + 1)
  return base + (k - base) // o.batch * o.batch - 1
end

-- A worker: runs the tasks rank 0 sends ({task = name, ...} -> handlers[name](task)) until rank 0
-- ends the run, answering each task that wants a reply with its result or its error. Collective
-- tasks (no reply) run the same code as rank 0 at the same time.
function M.serve(handlers)
  while true do
    local t, _, tag = par.recv(0)
    if tag == par.STOP then return end
    local h = handlers[t.task]
    local ok, res
    if h then ok, res = pcall(h, t) else ok, res = false, "unknown task " .. tostring(t.task) end
    if t.reply ~= false then
      if ok then par.send(0, par.RESULT, {i = t.i, result = res}) else par.send(0, par.ERROR, tostring(res)) end
    elseif not ok then
      error(res, 0)
    end
  end
end

-- Rank 0: sends a collective task to every worker (each runs handlers[name] of M.serve).
function M.collective(name, args)
  if M.ranks == 1 then return end
  local t = {task = name, reply = false}
  for k, v in pairs(args or {}) do t[k] = v end
  for r = 1, M.ranks - 1 do par.send(r, par.TASK, t) end
end

-- Rank 0: evaluations first .. upto (those not in the journal yet) of the optimizer opt.
--   o.evaluate(x, i) -> result (a table: JSON-able; workers run their own copy, task "evaluate")
--   o.tell(x, i, result): records it (called in proposal order)
--   o.batch (q), o.mode ("sync" or "async"), o.lag, o.init, o.first, o.upto
-- Returns the ranks' busy seconds and the wall time, for utilization.
function M.search(o)
  local opt = o.optimizer
  local q = o.batch
  local x_of, results = {}, {}
  for j, rec in ipairs(opt:history()) do x_of[j] = rec.x end
  local count = opt:count()
  local function propose(k)
    if x_of[k] then return x_of[k] end
    local t = M.told(k, o)
    local pending = {}
    for j = t + 1, k - 1 do pending[#pending + 1] = propose(j) end
    x_of[k] = opt:propose(k, t, pending)
    return x_of[k]
  end
  local t0 = boengine.clock()
  local busy = 0
  local function local_eval(k)
    local t1 = boengine.clock()
    local res = o.evaluate(x_of[k], k)
    busy = busy + (boengine.clock() - t1)
    results[k] = res
  end
  local function receive()
    local v, src, tag = par.recv()
    if tag == par.ERROR then fail("rank %d: %s", src, tostring(v)) end
    if tag ~= par.RESULT then fail("rank %d sent an unexpected message (tag %d)", src, tag) end
    results[v.i] = v.result
    if v.result and v.result.seconds then busy = busy + v.result.seconds end
    return src
  end
  local function tell_ready()
    while results[count + 1] ~= nil and count < o.upto do
      local k = count + 1
      o.tell(x_of[k], k, results[k])
      results[k], count = nil, k
    end
  end
  local function send(r, k) par.send(r, par.TASK, {task = "evaluate", x = x_of[k], i = k}) end

  if o.mode ~= "async" then
    while count < o.upto do
      local first, last = count + 1, count + 1
      while last + 1 <= o.upto and M.told(last + 1, o) <= count do last = last + 1 end
      -- each point goes out as soon as it is proposed; rank 0 takes the last of every N, evaluated
      -- once it has proposed the batch
      local mine = {}
      for k = first, last do
        propose(k)
        local r = (k - first + 1) % M.ranks
        if r == 0 then mine[#mine + 1] = k else send(r, k) end
      end
      for _, k in ipairs(mine) do local_eval(k) end
      local waiting = (last - first + 1) - #mine
      for _ = 1, waiting do receive() end
      tell_ready()
    end
  else
    local workers, idle = M.ranks > 1, {}
    if workers then for r = M.ranks - 1, 1, -1 do idle[#idle + 1] = r end else idle[1] = 0 end
    local nextk, outstanding = count + 1, 0
    while count < o.upto do
      while #idle > 0 and nextk <= o.upto and outstanding < q and M.told(nextk, o) <= count do
        local r = table.remove(idle)
        propose(nextk)
        if r == 0 then
          local_eval(nextk)
          idle[#idle + 1] = 0
        else
          send(r, nextk)
          outstanding = outstanding + 1
        end
        nextk = nextk + 1
      end
      local before = count
      tell_ready()
      if count == before and count < o.upto then
        if outstanding == 0 then fail("parallel search: nothing to wait for at evaluation %d", count + 1) end
        idle[#idle + 1] = receive()
        outstanding = outstanding - 1
      end
    end
  end
  return {busy = busy, wall = boengine.clock() - t0}
end

return M
