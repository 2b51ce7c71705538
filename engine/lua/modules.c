/* The engine's Lua modules, opened as globals in this order, then the prelude written in Lua. */
#include <lauxlib.h>
#include <string.h>

#include "lua/lb.h"
#include "lua/l_bo.h"
#include "lua/l_compress.h"
#include "lua/l_data.h"
#include "lua/l_nn.h"
#include "lua/l_objective.h"
#include "lua/l_par.h"
#include "lua/l_report.h"
#include "lua/l_tensor.h"
#include "lua/l_train.h"
#include "baselines_lua.h"
#include "declare_lua.h"
#include "experiment_lua.h"
#include "parallel_lua.h"
#include "lua/l_boengine.h"
#include "prelude_lua.h"

static const luaL_Reg engine_modules[] = {
    {"tensor", luaopen_tensor},
    {"nn", luaopen_nn},
    {"data", luaopen_data},
    {"bo", luaopen_bo},
    {"compress", luaopen_compress},
    {"objective", luaopen_objective},
    {"report", luaopen_report},
    {NULL, NULL},
};

/* Functions that a later layer adds to a module opened above: nn.train lives in train/, above nn/. */
static const struct {
    const char *module;
    void (*extend)(lua_State *L);
} engine_extensions[] = {{"nn", ln_open_train}};

/* Runs an embedded chunk; with a module name, registers it in package.preload instead. */
static void load_chunk(lua_State *L, const char *code, size_t size, const char *chunkname, const char *module)
{
    if (luaL_loadbuffer(L, code, size, chunkname) != LUA_OK)
        lua_error(L);
    if (!module) {
        lua_call(L, 0, 0);
        return;
    }
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_insert(L, -2);
    lua_setfield(L, -2, module);
    lua_pop(L, 1);
}

int lb_open_engine(lua_State *L)
{
    for (const luaL_Reg *m = engine_modules; m->name; m++) {
        luaL_requiref(L, m->name, m->func, 1);
        for (size_t e = 0; e < sizeof engine_extensions / sizeof *engine_extensions; e++)
            if (strcmp(engine_extensions[e].module, m->name) == 0)
                engine_extensions[e].extend(L);
        lb_name_functions(L, -1, m->name, ".");
        lua_pop(L, 1);
    }
    lb_open_boengine(L);
    load_chunk(L, prelude_lua, sizeof prelude_lua, "=prelude", NULL);
    load_chunk(L, declare_lua, sizeof declare_lua, "=declare", "boengine.declare");
    load_chunk(L, baselines_lua, sizeof baselines_lua, "=baselines", "boengine.baselines");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* the ranks' messages, for parallel.lua */
    lua_pushcfunction(L, luaopen_par);
    lua_setfield(L, -2, "boengine.par");
    lua_pop(L, 1);
    load_chunk(L, parallel_lua, sizeof parallel_lua, "=parallel", "boengine.parallel");
    load_chunk(L, experiment_lua, sizeof experiment_lua, "=experiment", NULL);
    return 0;
}
