/* l_compress: the `compress` Lua module: compression families declared on a network's layers
 * (compress.vh{...}, svd, tucker2, prune_channels, prune_weights, quantize), compress.apply
 * (θ → candidate network and its ratios), latency and size measurements. */
#ifndef BOENGINE_L_COMPRESS_H
#define BOENGINE_L_COMPRESS_H

#include <lua.h>

#include "compress/compress.h"

int luaopen_compress(lua_State *L);

/* The family at idx, or an argument error. */
cp_family *lc_check(lua_State *L, int idx);

#endif
