#include "lua/lb.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static const char INPUT_ERROR_KEY[] = "boengine.input_error";
static const char FUNCTION_NAMES_KEY[] = "boengine.function_names";

/* Pushes the qualified name of the C function running at level 0 ("nn.load"), or nothing and
 * returns 0 when it is not one of the engine's. */
static int push_function_name(lua_State *L)
{
    lua_Debug ar;
    if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar))
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, FUNCTION_NAMES_KEY);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_rotate(L, -2, 1);
    if (lua_rawget(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);
    return 1;
}

int lb_error(lua_State *L, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* the location is the experiment's line, not a helper of the prelude that called us */
    lua_Debug ar;
    int level = 1, found = 0;
    while (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar)) {
        if (ar.currentline > 0 && ar.source[0] != '=') { /* "=prelude" etc.: the engine's own Lua */
            found = 1;
            break;
        }
        if (level == 1 && ar.currentline <= 0)
            break; /* called from C: no location, as luaL_where */
        level++;
    }
    int parts = 1;
    if (found)
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    else
        lua_pushliteral(L, "");
    if (push_function_name(L)) {
        size_t len;
        const char *name = lua_tolstring(L, -1, &len);
        if (strncmp(msg, name, len) == 0 && msg[len] == ':') {
            lua_pop(L, 1); /* the message names its function already */
        } else {
            lua_pushliteral(L, ": ");
            parts += 2;
        }
    }
    lua_pushstring(L, msg);
    lua_concat(L, parts + 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, INPUT_ERROR_KEY);
    lua_error(L);
    __builtin_unreachable();
}

int lb_lib_error(lua_State *L) { lb_error(L, "%s", err_msg()); }

void lb_name_functions(lua_State *L, int idx, const char *prefix, const char *sep)
{
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, LUA_REGISTRYINDEX, FUNCTION_NAMES_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, FUNCTION_NAMES_KEY);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
            lua_pushfstring(L, "%s%s%s", prefix, sep, lua_tostring(L, -2));
            lua_rawset(L, -4); /* names[function] = "prefix.key" */
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

void lb_new_class(lua_State *L, const char *tname, const char *display, const luaL_Reg *meta,
                  const luaL_Reg *methods)
{
    luaL_newmetatable(L, tname);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lb_name_functions(L, -1, display, ":");
    lua_setfield(L, -2, "__index");
}

void *lb_scratch(lua_State *L, size_t count, size_t elem)
{
    if (elem && count > (SIZE_MAX - 64) / elem)
        lb_error(L, "scratch memory of %zu x %zu bytes is too large", count, elem);
    size_t bytes = count * elem;
    return lua_newuserdatauv(L, bytes > 0 ? bytes : 1, 0);
}

int lb_is_input_error(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, INPUT_ERROR_KEY);
    int same = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return same;
}

void lb_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed, int allow_array)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TNUMBER && allow_array)
            continue;
        const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int known = 0;
        for (int i = 0; key && allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = 1;
        if (!known) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; allowed[i]; i++) {
                if (i)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, allowed[i]);
            }
            luaL_pushresult(&b);
            lb_error(L, "%s: unknown key '%s' (known: %s)", what,
                     key ? key : luaL_tolstring(L, -2, NULL), lua_tostring(L, -1));
        }
    }
}

static int field(lua_State *L, int idx, const char *key)
{
    return lua_getfield(L, idx, key);
}

lua_Integer lb_opt_integer(lua_State *L, int idx, const char *what, const char *key, lua_Integer def)
{
    lua_Integer v = def;
    int t = field(L, idx, key);
    if (t != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            lb_error(L, "%s: '%s' must be an integer, got %s", what, key, luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return v;
}

lua_Number lb_opt_number(lua_State *L, int idx, const char *what, const char *key, lua_Number def)
{
    lua_Number v = def;
    int t = field(L, idx, key);
    if (t != LUA_TNIL) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok)
            lb_error(L, "%s: '%s' must be a number, got %s", what, key, luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return v;
}

int lb_opt_boolean(lua_State *L, int idx, const char *what, const char *key, int def)
{
    int v = def;
    int t = field(L, idx, key);
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        lb_error(L, "%s: '%s' must be true or false, got %s", what, key, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    return v;
}

const char *lb_opt_string(lua_State *L, int idx, const char *what, const char *key, const char *def)
{
    const char *v = def;
    int t = field(L, idx, key);
    if (t == LUA_TSTRING)
        v = lua_tostring(L, -1); /* the table keeps the string alive */
    else if (t != LUA_TNIL)
        lb_error(L, "%s: '%s' must be a string, got %s", what, key, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    return v;
}

uint64_t lb_default_seed(lua_State *L)
{
    lua_getglobal(L, "boengine");
    lua_getfield(L, -1, "seed");
    uint64_t seed = (uint64_t)luaL_optinteger(L, -1, 1);
    lua_pop(L, 2);
    return seed;
}
