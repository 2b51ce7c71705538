/* lb: helpers shared by the Lua bindings: input errors that print as one clear line,
 * option tables that reject unknown keys, and typed field readers with defaults. */
#ifndef BOENGINE_LB_H
#define BOENGINE_LB_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

/* Opens every engine module as a global table (tensor, nn, data, ...) and runs the prelude. */
int lb_open_engine(lua_State *L);

/* Raises an error caused by bad input (a file, a table, an argument): prefixed with the calling
 * script's file:line and the name of the engine function that raised it ("nn.load: ", unless the
 * message starts with it already), reported by boengine as one line without a traceback. */
int lb_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Raises lb_error with err_msg(), the message recorded by the library. */
int lb_lib_error(lua_State *L) __attribute__((noreturn));

/* Records the qualified names of the functions in the table at idx (prefix "nn" and separator "."
 * give "nn.load"), which lb_error puts before its messages. */
void lb_name_functions(lua_State *L, int idx, const char *prefix, const char *sep);

/* Creates the metatable tname (luaL_checkudata's name) the same way for every userdata type: the
 * metamethods of meta (which should hold __gc and __close), __index a table of the methods, and
 * the methods named "display:method" for errors. Leaves the metatable on the stack. */
void lb_new_class(lua_State *L, const char *tname, const char *display, const luaL_Reg *meta,
                  const luaL_Reg *methods);

/* count elements of elem bytes of scratch memory, freed by the collector: a userdata pushed on the
 * stack, so fix the argument slots (lua_settop) before asking for it. */
void *lb_scratch(lua_State *L, size_t count, size_t elem);

/* True when the error value on top of the stack was raised by lb_error. */
int lb_is_input_error(lua_State *L, int idx);

/* Checks that the table at idx has only string keys listed in allowed (NULL-terminated), and
 * raises "what: unknown key 'k' (known: ...)" otherwise. Integer keys are allowed when
 * allow_array is set. */
void lb_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed, int allow_array);

/* Field readers for option tables; the default is returned when the field is nil. */
lua_Integer lb_opt_integer(lua_State *L, int idx, const char *what, const char *key, lua_Integer def);
lua_Number lb_opt_number(lua_State *L, int idx, const char *what, const char *key, lua_Number def);
int lb_opt_boolean(lua_State *L, int idx, const char *what, const char *key, int def);
const char *lb_opt_string(lua_State *L, int idx, const char *what, const char *key, const char *def);

/* The seed given by --seed (default 1), for modules whose tables omit one. */
uint64_t lb_default_seed(lua_State *L);

#endif
