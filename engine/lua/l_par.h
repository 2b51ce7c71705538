/* l_par: the messages between the ranks of an MPI run, for engine/lua/parallel.lua
 * (require "boengine.par"). */
#ifndef BOENGINE_L_PAR_H
#define BOENGINE_L_PAR_H

#include <lua.h>

int luaopen_par(lua_State *L);

#endif
