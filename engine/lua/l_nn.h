/* l_nn: the `nn` Lua module: network builders, weights files, inference. */
#ifndef BOENGINE_L_NN_H
#define BOENGINE_L_NN_H

#include <lua.h>

#include "nn/net.h"

int luaopen_nn(lua_State *L);

/* Pushes net as a Lua network that owns it. */
void ln_push(lua_State *L, nn_net *net);
/* The same for a network that shares parameters with the one at index owner (a compressed
 * candidate): the Lua value keeps owner alive. */
void ln_push_sharing(lua_State *L, nn_net *net, int owner);
/* The network at idx, or an argument error. */
nn_net *ln_check(lua_State *L, int idx);
/* The network at idx, or NULL when it is not one. */
nn_net *ln_test(lua_State *L, int idx);

#endif
