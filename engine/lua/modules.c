/* The engine's Lua modules, opened as globals in this order, then the prelude written in Lua. */
#include <lauxlib.h>

#include "lua/lb.h"
#include "lua/l_bo.h"
#include "lua/l_compress.h"
#include "lua/l_data.h"
#include "lua/l_nn.h"
#include "lua/l_objective.h"
#include "lua/l_tensor.h"
#include "prelude_lua.h"

static const luaL_Reg engine_modules[] = {
    {"tensor", luaopen_tensor},
    {"nn", luaopen_nn},
    {"data", luaopen_data},
    {"bo", luaopen_bo},
    {"compress", luaopen_compress},
    {"objective", luaopen_objective},
    {NULL, NULL},
};

int lb_open_engine(lua_State *L)
{
    for (const luaL_Reg *m = engine_modules; m->name; m++) {
        luaL_requiref(L, m->name, m->func, 1);
        lb_name_functions(L, -1, m->name, ".");
        lua_pop(L, 1);
    }
    if (luaL_loadbuffer(L, prelude_lua, sizeof prelude_lua, "=prelude") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}
