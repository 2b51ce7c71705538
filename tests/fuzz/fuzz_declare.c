/* libFuzzer harness: experiment declarations: the literal syntax of overrides, command-line
 * arguments (one per input line) applied to a declaration, and the declaration's checks. Bad
 * input must end in the declaration module's own errors; any other Lua error (indexing nil, a
 * comparison of a string with a number...) is a bug, reported as a crash.
 *
 * The parser is Lua code, which the compiler's coverage instrumentation does not see (the Lua VM
 * is Debian's library): a line hook feeds libFuzzer the edges between executed lines of the
 * declaration module as extra counters, so that the search is guided by the Lua code it runs. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lb.h"

#define EDGES (1 << 14)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[EDGES];

static void line_hook(lua_State *L, lua_Debug *ar)
{
    static unsigned previous;
    if (!lua_getinfo(L, "S", ar) || strcmp(ar->source, "=declare") != 0)
        return;
    unsigned line = (unsigned)ar->currentline * 2654435761u;
    lua_edges[(line ^ previous) % EDGES]++;
    previous = line >> 1;
}

static const char driver[] =
    "local declare = require 'boengine.declare'\n"
    "local function expected(ok, e)\n"
    "  if not ok and not (type(e) == 'table' and (e.override or e.declaration)) then\n"
    "    error('not a declaration error: ' .. tostring(e), 0)\n"
    "  end\n"
    "  return ok\n"
    "end\n"
    "return function(text)\n"
    "  expected(pcall(declare.parse_literal, text))\n"
    "  local args = {}\n"
    "  for line in text:gmatch('[^\\n]+') do args[#args + 1] = line end\n"
    "  local ok, overrides = pcall(declare.parse_args, args)\n"
    "  if not expected(ok, overrides) then return end\n"
    "  local decl = {compress = {{family = 'vh', layers = 'features.*', bounds = {0.1, 0.9}}}, budget = 0.25}\n"
    "  local ok2, applied = pcall(declare.apply_overrides, decl, overrides)\n"
    "  if not expected(ok2, applied) then return end\n"
    "  local ok3, checked = pcall(declare.check, applied)\n"
    "  if not expected(ok3, checked) then return end\n"
    "  local s = declare.resolve(checked, {dim = 8})\n"
    "  declare.format(s, {})\n"
    "end\n";

static lua_State *state(void)
{
    static lua_State *L;
    if (L)
        return L;
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, lb_open_engine);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK || luaL_loadstring(L, driver) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_declare: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_setglobal(L, "fuzz_one");
    lua_sethook(L, line_hook, LUA_MASKLINE, 0);
    return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = state();
    lua_getglobal(L, "fuzz_one");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_declare: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    /* free what this input made now: libFuzzer scans for leaks after any input whose mallocs and
       frees differ, which the collector's deferred frees would otherwise cause every time */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
