/* l_bo: the `bo` Lua module: Gaussian processes (bo.gp), the ask/tell optimizer (bo.optimizer), the
 * one-call loop (bo.minimize) with its resumable journal, and test functions (bo.functions). */
#ifndef BOENGINE_L_BO_H
#define BOENGINE_L_BO_H

#include <lua.h>

int luaopen_bo(lua_State *L);

#endif
