/* l_data: the `data` Lua module: datasets (Fashion-MNIST, image folders) as userdata, with
 * samples, sequential batches and top-1 accuracy of any object that has a forward method. */
#ifndef BOENGINE_L_DATA_H
#define BOENGINE_L_DATA_H

#include <lua.h>

#include "io/dataset.h"

int luaopen_data(lua_State *L);

/* The dataset at idx, or an argument error; other bindings (objective) draw batches from it
 * with ds_batch. The dataset stays owned by the Lua value. */
dataset *ld_check(lua_State *L, int idx);
/* The dataset at idx, or NULL when it is not one. */
dataset *ld_test(lua_State *L, int idx);

#endif
