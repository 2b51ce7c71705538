/* l_boengine: fail, progress and root in the global `boengine` table (created if missing). */
#ifndef BOENGINE_L_BOENGINE_H
#define BOENGINE_L_BOENGINE_H

#include <lua.h>

void lb_open_boengine(lua_State *L);

#endif
