/* l_train: nn.train, the training loop, added to the `nn` module once that is open. */
#ifndef BOENGINE_L_TRAIN_H
#define BOENGINE_L_TRAIN_H

#include <lua.h>

/* Adds nn.train to the module table on top of the stack. */
void ln_open_train(lua_State *L);

#endif
