/* l_par: require "boengine.par" gives the ranks' messages (core/par.h) to Lua. Values travel as
 * JSON text (lb_json: numbers read back exactly), so that a point, an evaluation's result or a task
 * arrives as the table that was sent.
 *
 *   par.rank, par.ranks, par.mpi          this rank, the number of ranks, MPI initialized
 *   par.compiled                          built with MPI
 *   par.send(dest, tag, value)            tag: par.TASK, par.RESULT, par.ERROR
 *   par.recv([source [, tag]]) -> value, source, tag    blocks; nil source or tag: any
 *   par.sum(list) -> list                 summed over all ranks (collective)
 *   par.barrier()                         (collective)
 *   par.broadcast(value) -> value         rank 0's value on every rank (collective)
 *   par.finish()                          a worker's end: concludes the run with rank 0, exits */
#include "lua/l_par.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/par.h"
#include "lua/lb.h"
#include "lua/lb_json.h"

static int l_send(lua_State *L)
{
    lua_Integer dest = luaL_checkinteger(L, 1), tag = luaL_checkinteger(L, 2);
    size_t len = 0;
    const char *text = "";
    if (tag == PAR_TAG_ERROR) /* an error travels as its text */
        text = luaL_tolstring(L, 3, NULL);
    else if (!lua_isnoneornil(L, 3))
        text = lb_json_encode(L, 3, "par.send");
    else
        lua_pushliteral(L, "");
    len = lua_rawlen(L, -1);
    if (par_send((int)dest, (int)tag, text, len) != 0)
        lb_lib_error(L);
    return 0;
}

static int l_recv(lua_State *L)
{
    int source = lua_isnoneornil(L, 1) ? -1 : (int)luaL_checkinteger(L, 1);
    int tag = lua_isnoneornil(L, 2) ? -1 : (int)luaL_checkinteger(L, 2);
    char *buf;
    size_t len;
    int from, t;
    if (par_recv(source, tag, &buf, &len, &from, &t) != 0)
        lb_lib_error(L);
    lua_pushstring(L, buf); /* copied first: a decoding error must not leak buf */
    free(buf);
    if (len == 0)
        lua_pushnil(L);
    else if (t == PAR_TAG_ERROR)
        lua_pushvalue(L, -1); /* an error travels as its text */
    else
        lb_json_push(L, lua_tostring(L, -1), "par.recv");
    lua_pushinteger(L, from);
    lua_pushinteger(L, t);
    return 3;
}

static int l_sum(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n < 0 || n > 1 << 24)
        lb_error(L, "par.sum: too many numbers (%lld)", (long long)n);
    double *v = lb_scratch(L, (size_t)(n > 0 ? n : 1), sizeof *v);
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok)
            lb_error(L, "par.sum: element %lld is not a number", (long long)(i + 1));
        lua_pop(L, 1);
    }
    if (par_sum(v, (int)n) != 0)
        lb_lib_error(L);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_barrier(lua_State *L)
{
    if (par_barrier() != 0)
        lb_lib_error(L);
    return 0;
}

static int l_broadcast(lua_State *L)
{
    lua_settop(L, 1);
    char *buf = NULL;
    size_t len = 0;
    if (par_rank() == 0) {
        buf = (char *)lb_json_encode(L, 1, "par.broadcast");
        len = lua_rawlen(L, -1);
    }
    if (par_broadcast(&buf, &len, 0) != 0)
        lb_lib_error(L);
    if (par_rank() == 0) {
        lua_pushvalue(L, 1);
        return 1;
    }
    lua_pushstring(L, buf);
    free(buf);
    lb_json_push(L, lua_tostring(L, -1), "par.broadcast");
    return 1;
}

static int l_finish(lua_State *L)
{
    (void)L;
    fflush(NULL);
    exit(par_conclude(1, "boengine", NULL) ? EXIT_FAILURE : EXIT_SUCCESS);
}

static const luaL_Reg par_funcs[] = {{"send", l_send},           {"recv", l_recv},     {"sum", l_sum},
                                     {"barrier", l_barrier},     {"broadcast", l_broadcast},
                                     {"finish", l_finish},       {NULL, NULL}};

int luaopen_par(lua_State *L)
{
    luaL_newlib(L, par_funcs);
    lua_pushinteger(L, par_rank());
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, par_ranks());
    lua_setfield(L, -2, "ranks");
    lua_pushboolean(L, par_active());
    lua_setfield(L, -2, "mpi");
    lua_pushboolean(L, par_compiled());
    lua_setfield(L, -2, "compiled");
    const struct {
        const char *name;
        int tag;
    } tags[] = {{"TASK", PAR_TAG_TASK}, {"RESULT", PAR_TAG_RESULT}, {"ERROR", PAR_TAG_ERROR}, {"STOP", PAR_TAG_STOP}};
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        lua_pushinteger(L, tags[i].tag);
        lua_setfield(L, -2, tags[i].name);
    }
    lb_name_functions(L, -1, "par", ".");
    return 1;
}
