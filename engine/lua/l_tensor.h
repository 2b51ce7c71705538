/* l_tensor: the `tensor` Lua module; float32 tensors as userdata owned by Lua. */
#ifndef BOENGINE_L_TENSOR_H
#define BOENGINE_L_TENSOR_H

#include <lua.h>

#include "core/tensor.h"

int luaopen_tensor(lua_State *L);

/* Pushes t as a Lua tensor that owns it (freed by __gc). */
void lt_push(lua_State *L, tensor *t);
/* The tensor at idx, or an argument error. */
tensor *lt_check(lua_State *L, int idx);
/* The tensor at idx, or NULL when it is not one. */
tensor *lt_test(lua_State *L, int idx);

#endif
