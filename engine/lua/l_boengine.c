/* l_boengine: the functions of the global `boengine` table that experiment code written in Lua
 * needs from the engine: reporting bad input as one line (fail), progress on stderr (progress),
 * where the engine's own repository is (root, for its shipped reference models), the process's time
 * accounts (timing: where a run's time went, for benchmarks); and print,
 * which ends an open progress bar's line first. */
#include "lua/l_boengine.h"

#include <lauxlib.h>
#include <stdio.h>

#include "core/atomic.h"
#include "core/log.h"
#include "core/timer.h"
#include "lua/lb.h"

#define PROGRESS_MT "boengine.progress"

/* boengine.fail(message): stops the script with an input error: one line naming the experiment's
 * line, no traceback (as the engine's own functions report bad input). */
static int l_fail(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);
    lb_error(L, "%s", msg);
}

/* boengine.progress(label, total) → p; p:update(done [, extra]); p:done([extra]). */
static int l_progress(lua_State *L)
{
    const char *label = luaL_checkstring(L, 1);
    lua_Integer total = luaL_checkinteger(L, 2);
    progress *p = lua_newuserdatauv(L, sizeof *p, 0);
    luaL_setmetatable(L, PROGRESS_MT);
    progress_start(p, label, total);
    return 1;
}

static int p_update(lua_State *L)
{
    progress *p = luaL_checkudata(L, 1, PROGRESS_MT);
    progress_update(p, luaL_checkinteger(L, 2), luaL_optstring(L, 3, NULL));
    return 0;
}

static int p_done(lua_State *L)
{
    progress *p = luaL_checkudata(L, 1, PROGRESS_MT);
    progress_end(p, luaL_optstring(L, 2, NULL));
    return 0;
}

static int p_noop(lua_State *L)
{
    (void)L;
    return 0;
}

/* boengine.timing() → {["bo.fit"] = {seconds =, calls =}, ...}: the time accounts of core/timer.h
 * summed since the process started (a benchmark takes the difference of two calls). */
static int l_timing(lua_State *L)
{
    int n = timer_account_count();
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushnumber(L, timer_account_seconds(i));
        lua_setfield(L, -2, "seconds");
        lua_pushinteger(L, (lua_Integer)timer_account_calls(i));
        lua_setfield(L, -2, "calls");
        lua_setfield(L, -2, timer_account_name(i));
    }
    return 1;
}

/* boengine.write_file(path, text): the whole file at once, atomically (core/atomic.h: a temporary
 * beside it, fsync, rename), so that a killed run leaves the old file or the new one, never a part. */
static int l_write_file(lua_State *L)
{
    size_t n;
    const char *path = luaL_checkstring(L, 1), *text = luaL_checklstring(L, 2, &n);
    if (atomic_write_file(path, text, n) != 0)
        lb_lib_error(L);
    return 0;
}

/* print, after ending a progress bar's line: the bar is on stderr, print's text on stdout, and on
 * a terminal both land on the same line otherwise. */
static int l_print(lua_State *L)
{
    log_end_line();
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

static const luaL_Reg progress_meta[] = {{"__gc", p_noop}, {"__close", p_noop}, {NULL, NULL}};
static const luaL_Reg progress_methods[] = {{"update", p_update}, {"done", p_done}, {NULL, NULL}};

void lb_open_boengine(lua_State *L)
{
    lb_new_class(L, PROGRESS_MT, "progress", progress_meta, progress_methods);
    lua_pop(L, 1);
    if (lua_getglobal(L, "boengine") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setglobal(L, "boengine");
    }
    lua_pushcfunction(L, l_fail);
    lua_setfield(L, -2, "fail");
    lua_pushcfunction(L, l_progress);
    lua_setfield(L, -2, "progress");
    lua_pushcfunction(L, l_timing);
    lua_setfield(L, -2, "timing");
    lua_pushcfunction(L, l_write_file);
    lua_setfield(L, -2, "write_file");
    lua_pushstring(L, BOENGINE_SOURCE_DIR);
    lua_setfield(L, -2, "root");
    lua_pop(L, 1); /* unnamed: boengine.fail raises on behalf of the Lua code that calls it */
    lua_getglobal(L, "print");
    lua_pushcclosure(L, l_print, 1);
    lua_setglobal(L, "print");
}
