#include "lua/lb_json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lb.h"

enum { MAX_DEPTH = 16 };

/* The text being written: a userdata in a fixed stack slot, replaced by a larger one as it grows, so
 * that an error raised halfway leaves nothing to free. */
typedef struct jbuf {
    lua_State *L;
    int slot;
    char *p;
    size_t n, cap;
    const char *what;
} jbuf;

static void reserve(jbuf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return;
    size_t cap = b->cap * 2;
    while (cap < b->n + more)
        cap *= 2;
    char *p = lua_newuserdatauv(b->L, cap, 0);
    memcpy(p, b->p, b->n);
    lua_replace(b->L, b->slot);
    b->p = p;
    b->cap = cap;
}

static void put(jbuf *b, const char *s, size_t len)
{
    reserve(b, len);
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void put_string(jbuf *b, const char *s, size_t len)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

/* Integers as integers; other numbers by the shortest of %.15g..%.17g that reads back exactly. */
static void put_number(jbuf *b, int idx)
{
    char buf[40];
    if (lua_isinteger(b->L, idx)) {
        snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(b->L, idx));
    } else {
        double v = lua_tonumber(b->L, idx);
        if (!isfinite(v))
            lb_error(b->L, "%s: %s cannot be stored in the journal", b->what,
                     isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf");
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    put(b, buf, strlen(buf));
}

static void put_value(jbuf *b, int idx, int depth);

/* A key of the table being written: its text, and where its value is (an index of the keys table). */
typedef struct jkey {
    const char *s;
    size_t len;
    int k;
} jkey;

static int by_text(const void *pa, const void *pb)
{
    const jkey *a = pa, *c = pb;
    int r = memcmp(a->s, c->s, a->len < c->len ? a->len : c->len);
    return r ? r : (a->len > c->len) - (a->len < c->len);
}

/* The table at idx as an object: its keys collected (as given and as text), sorted, then written. */
static void put_object(jbuf *b, int idx, lua_Integer count, int depth)
{
    lua_State *L = b->L;
    lua_createtable(L, (int)count, 0); /* the keys as given */
    int keys = lua_gettop(L);
    lua_createtable(L, (int)count, 0); /* and as text, which keeps the strings alive */
    int texts = keys + 1;
    jkey *order = lb_scratch(L, (size_t)count, sizeof *order);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, n + 1);
        if (lua_type(L, -1) == LUA_TSTRING)
            lua_pushvalue(L, -1);
        else
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
        order[n].s = lua_tolstring(L, -1, &order[n].len);
        order[n].k = n + 1;
        lua_rawseti(L, texts, n + 1);
        n++;
    }
    qsort(order, (size_t)n, sizeof *order, by_text);
    put(b, "{", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            put(b, ",", 1);
        put_string(b, order[i].s, order[i].len);
        put(b, ":", 1);
        lua_rawgeti(L, keys, order[i].k);
        lua_rawget(L, idx);
        put_value(b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    put(b, "}", 1);
    lua_pop(L, 3);
}

static void put_table(jbuf *b, int idx, int depth)
{
    lua_State *L = b->L;
    if (depth >= MAX_DEPTH)
        lb_error(L, "%s: tables nested more than %d deep", b->what, MAX_DEPTH);
    luaL_checkstack(L, 8, "info nested too deeply");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING && !lua_isinteger(L, -1))
            lb_error(L, "%s: table keys must be strings or integers, got a %s", b->what, luaL_typename(L, -1));
        array = array && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n;
        count++;
    }
    if (!(array && count == n && n > 0)) {
        put_object(b, idx, count, depth);
        return;
    }
    put(b, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            put(b, ",", 1);
        lua_rawgeti(L, idx, i);
        put_value(b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    put(b, "]", 1);
}

static void put_value(jbuf *b, int idx, int depth)
{
    lua_State *L = b->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: put(b, "null", 4); return;
    case LUA_TBOOLEAN: lua_toboolean(L, idx) ? put(b, "true", 4) : put(b, "false", 5); return;
    case LUA_TNUMBER: put_number(b, idx); return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_string(b, s, len);
        return;
    }
    case LUA_TTABLE: put_table(b, idx, depth); return;
    default: lb_error(L, "%s: a %s cannot be stored in the journal", b->what, luaL_typename(L, idx));
    }
}

const char *lb_json_encode(lua_State *L, int idx, const char *what)
{
    idx = lua_absindex(L, idx);
    jbuf b = {L, 0, NULL, 0, 64, what};
    b.p = lua_newuserdatauv(L, b.cap, 0);
    b.slot = lua_gettop(L);
    put_value(&b, idx, 0);
    lua_pushlstring(L, b.p, b.n);
    lua_replace(L, b.slot);
    return lua_tostring(L, -1);
}

static void push_value(lua_State *L, const cJSON *j)
{
    luaL_checkstack(L, 3, "JSON nested too deeply");
    if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        lua_Integer i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_value(L, e);
            lua_rawseti(L, -2, ++i);
        }
    } else if (cJSON_IsObject(j)) {
        lua_newtable(L);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_value(L, e);
            lua_setfield(L, -2, e->string);
        }
    } else {
        lua_pushnil(L);
    }
}

void lb_json_push(lua_State *L, const char *text, const char *what)
{
    cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
    if (!j)
        lb_error(L, "%s: not valid JSON", what);
    push_value(L, j); /* (a memory error of Lua here would leave the parsed tree behind) */
    cJSON_Delete(j);
}
