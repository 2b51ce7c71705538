/* l_objective: the `objective` Lua module: U-statistic estimators of a compressed network's
 * function distance (objective.fnorm{...}) and empirical risk (objective.risk{...}), each with
 * est:evaluate(net) → value, standard error, info. */
#ifndef BOENGINE_L_OBJECTIVE_H
#define BOENGINE_L_OBJECTIVE_H

#include <lua.h>

#include "objective/objective.h"

int luaopen_objective(lua_State *L);

/* The estimator at idx, or an argument error (also when its dataset or network was closed). */
ob_estimator *lo_check(lua_State *L, int idx);

#endif
