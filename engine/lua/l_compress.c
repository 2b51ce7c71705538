#include "lua/l_compress.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "lua/l_nn.h"
#include "lua/lb.h"

#define FAMILY_MT "boengine.family"

/* A family and, as its user value, the Lua network it was declared on (kept alive). */
typedef struct family_box {
    cp_family *f;
} family_box;

cp_family *lc_check(lua_State *L, int idx)
{
    family_box *b = luaL_checkudata(L, idx, FAMILY_MT);
    if (!b->f)
        luaL_argerror(L, idx, "family has been freed");
    return b->f;
}

static cp_family *lc_test(lua_State *L, int idx)
{
    family_box *b = luaL_testudata(L, idx, FAMILY_MT);
    return b ? b->f : NULL;
}

static int family_gc(lua_State *L)
{
    family_box *b = luaL_checkudata(L, 1, FAMILY_MT);
    cp_family_free(b->f);
    b->f = NULL;
    return 0;
}

static int clamp_int(lua_Integer v) { return v < INT_MIN ? INT_MIN : v > INT_MAX ? INT_MAX : (int)v; }

/* Raises the library's message about a family declared by compress.NAME without its leading "NAME: ",
 * which the function's name says already. */
static void family_error(lua_State *L, const cp_family_ops *ops) __attribute__((noreturn));
static void family_error(lua_State *L, const cp_family_ops *ops)
{
    const char *m = err_msg();
    size_t n = strlen(ops->name);
    if (strncmp(m, ops->name, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        m += n + 2;
    lb_error(L, "%s", m);
}

/* layers = "pattern" or {"pattern", ...} → C strings (valid while the declaration table lives) in
 * scratch memory left on the stack. */
static const char **read_layers(lua_State *L, int *n)
{
    int t = lua_getfield(L, 1, "layers");
    int at = lua_gettop(L);
    if (t == LUA_TSTRING) {
        const char **out = lb_scratch(L, 1, sizeof *out);
        out[0] = lua_tostring(L, at);
        *n = 1;
        return out;
    }
    if (t != LUA_TTABLE)
        lb_error(L, "'layers' must be a layer name or pattern, or a list of them (e.g. \"features.*\")");
    lua_Integer len = luaL_len(L, at);
    if (len > INT_MAX)
        lb_error(L, "'layers' has %lld entries", (long long)len);
    *n = len > 0 ? (int)len : 0;
    const char **out = lb_scratch(L, (size_t)*n, sizeof *out);
    for (int i = 1; i <= *n; i++) {
        if (lua_geti(L, at, i) != LUA_TSTRING)
            lb_error(L, "layers[%d] must be a string (a layer name or pattern)", i);
        out[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table keeps the string alive */
    }
    return out;
}

/* Whether the value at idx is a pair {lo, hi} of numbers; their values into lo, hi. */
static int read_pair(lua_State *L, int idx, double *lo, double *hi)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE || luaL_len(L, idx) != 2)
        return 0;
    int a = lua_geti(L, idx, 1) == LUA_TNUMBER, b = lua_geti(L, idx, 2) == LUA_TNUMBER;
    *lo = lua_tonumber(L, -2);
    *hi = lua_tonumber(L, -1);
    lua_pop(L, 2);
    return a && b;
}

/* bounds = {lo, hi} for every layer, or {{lo, hi}, ...} one pair per layer in order; the family
 * checks them. */
static void read_bounds(lua_State *L, const cp_family_ops *ops, cp_family *f)
{
    double lo, hi;
    int t = lua_getfield(L, 1, "bounds"), at = lua_gettop(L);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (read_pair(L, at, &lo, &hi)) {
        if (cp_family_set_bounds(f, -1, lo, hi) != 0)
            family_error(L, ops);
    } else if (t == LUA_TTABLE) {
        /* pairs up to the family's count: the family refuses a list of another length */
        lua_Integer len = luaL_len(L, at);
        int n = len < 0 ? 0 : len > INT_MAX ? INT_MAX : (int)len, take = n < f->count ? n : f->count;
        double *los = lb_scratch(L, (size_t)take, sizeof *los), *his = lb_scratch(L, (size_t)take, sizeof *his);
        for (int i = 1; i <= take; i++) {
            lua_geti(L, at, i);
            if (!read_pair(L, -1, &los[i - 1], &his[i - 1]))
                lb_error(L, "bounds[%d] must be a pair {lo, hi}", i);
            lua_pop(L, 1);
        }
        if (cp_family_set_bounds_list(f, n, los, his) != 0)
            family_error(L, ops);
    } else {
        lb_error(L, "'bounds' must be {lo, hi} or a list of %d such pairs (one per layer)", f->count);
    }
    lua_settop(L, at - 1);
}

/* compress.NAME{net =, layers =, bounds =, options...}: the family of the registry entry in the
 * upvalue. */
static int declare(lua_State *L)
{
    const cp_family_ops *ops = lua_touserdata(L, lua_upvalueindex(1));
    char what[64];
    snprintf(what, sizeof what, "compress.%s", ops->name);
    const char *keys[16] = {"net", "layers", "bounds"};
    int nk = 3;
    for (int i = 0; ops->options && ops->options[i] && nk < 15; i++)
        keys[nk++] = ops->options[i];
    keys[nk] = NULL;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lb_check_keys(L, 1, what, keys, 0);
    if (lua_getfield(L, 1, "net") == LUA_TNIL)
        lb_error(L, "'net' is required (the reference network)");
    if (!ln_test(L, 2))
        lb_error(L, "'net' must be a network, got %s", luaL_typename(L, 2));
    nn_net *net = ln_check(L, 2);
    int np;
    const char **patterns = read_layers(L, &np);
    cp_options o = {0};
    if (cp_mode_parse(ops, lb_opt_string(L, 1, what, "rank", "fraction"), &o.mode) != 0)
        family_error(L, ops);
    o.dense = lb_opt_boolean(L, 1, what, "dense", 0);
    o.hooi = clamp_int(lb_opt_integer(L, 1, what, "hooi", 0));
    o.multiple = clamp_int(lb_opt_integer(L, 1, what, "multiple", 1));
    family_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->f = NULL;
    luaL_setmetatable(L, FAMILY_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    if (!(b->f = cp_family_new(ops->name, net, np, patterns, &o)))
        family_error(L, ops);
    read_bounds(L, ops, b->f);
    return 1;
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, int64_t v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_shape(lua_State *L, const cp_layer *l)
{
    lua_createtable(L, l->ndim, 0);
    for (int d = 0; d < l->ndim; d++) {
        lua_pushinteger(L, l->shape[d]);
        lua_seti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
}

/* fam:layers() → {{name, lo, hi, min, max, integer, max_rank, break_even, shape}, ...} */
static int family_layers(lua_State *L)
{
    cp_family *f = lc_check(L, 1);
    lua_createtable(L, f->count, 0);
    for (int i = 0; i < f->count; i++) {
        const cp_layer *l = &f->layers[i];
        lua_createtable(L, 0, 9);
        lua_pushstring(L, l->name);
        lua_setfield(L, -2, "name");
        set_num(L, "lo", l->lo);
        set_num(L, "hi", l->hi);
        set_num(L, "min", l->min);
        set_num(L, "max", l->max);
        lua_pushboolean(L, l->integer);
        lua_setfield(L, -2, "integer");
        set_int(L, "max_rank", l->max_rank);
        if (l->break_even >= 0)
            set_int(L, "break_even", l->break_even);
        set_shape(L, l);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* fam:prepare() computes the factors now (otherwise the first compress.apply does); returns fam. */
static int family_prepare(lua_State *L)
{
    if (cp_family_prepare(lc_check(L, 1)) != 0)
        lb_lib_error(L);
    lua_settop(L, 1);
    return 1;
}

static int family_dim(lua_State *L)
{
    lua_pushinteger(L, lc_check(L, 1)->count);
    return 1;
}

static int family_kind(lua_State *L)
{
    lua_pushstring(L, cp_family_name(lc_check(L, 1)));
    return 1;
}

static int family_net(lua_State *L)
{
    lc_check(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int family_tostring(lua_State *L)
{
    cp_family *f = lc_check(L, 1);
    lua_pushfstring(L, "compress.%s(%d layers: %s%s)", cp_family_name(f), f->count, f->layers[0].name,
                    f->count > 1 ? ", ..." : "");
    return 1;
}

/* families argument: one family or a list of them, into scratch memory left on the stack. */
static cp_family **read_families(lua_State *L, int idx, int *n)
{
    cp_family *one = lc_test(L, idx);
    if (one) {
        cp_family **out = lb_scratch(L, 1, sizeof *out);
        out[0] = one;
        *n = 1;
        return out;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        lb_error(L, "expected a family or a list of families, got %s", luaL_typename(L, idx));
    lua_Integer len = luaL_len(L, idx);
    if (len > INT_MAX)
        lb_error(L, "a list of %lld families", (long long)len);
    *n = len > 0 ? (int)len : 0;
    cp_family **out = lb_scratch(L, (size_t)*n, sizeof *out);
    for (int i = 1; i <= *n; i++) {
        lua_geti(L, idx, i);
        if (!(out[i - 1] = lc_test(L, -1)))
            lb_error(L, "families[%d] is %s, not a family (compress.vh{...}, ...)", i, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return out;
}

static void push_choice(lua_State *L, const cp_family *f, const cp_choice *c)
{
    const cp_layer *l = &f->layers[c->layer];
    char setting[64];
    cp_choice_format(f, c, setting, sizeof setting);
    lua_createtable(L, 0, 14);
    lua_pushstring(L, l->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, cp_family_name(f));
    lua_setfield(L, -2, "family");
    set_num(L, "theta", c->theta);
    lua_pushstring(L, setting);
    lua_setfield(L, -2, "setting");
    set_shape(L, l);
    set_int(L, "weights", c->weights);
    set_int(L, "weights_ref", c->weights_ref);
    set_int(L, "params", c->params);
    set_int(L, "params_ref", c->params_ref);
    set_int(L, "macs", c->macs);
    set_int(L, "macs_ref", c->macs_ref);
    /* the setting under the name of what it is: rank, ranks, keep, kept or bits */
    cp_setting v;
    cp_choice_setting(f, c, &v);
    if (v.count == 1 && v.integer) {
        lua_pushinteger(L, (lua_Integer)v.value[0]);
    } else if (v.count == 1) {
        lua_pushnumber(L, v.value[0]);
    } else {
        lua_createtable(L, v.count, 0);
        for (int k = 0; k < v.count; k++) {
            if (v.integer)
                lua_pushinteger(L, (lua_Integer)v.value[k]);
            else
                lua_pushnumber(L, v.value[k]);
            lua_seti(L, -2, k + 1);
        }
    }
    lua_setfield(L, -2, v.key);
}

static void push_info(lua_State *L, const cp_stats *s, cp_family *const *fams)
{
    const double ratios[] = {s->ratio.params, s->ratio.params_net, s->ratio.bits,
                             s->ratio.bits_net, s->ratio.flops, s->ratio.flops_layers};
    lua_createtable(L, 0, 10);
    for (int i = 0; cp_ratio_names[i]; i++)
        set_num(L, cp_ratio_names[i], ratios[i]);
    lua_createtable(L, 0, 8);
    set_int(L, "weights", s->weights);
    set_int(L, "weights_ref", s->weights_ref);
    set_int(L, "params", s->params);
    set_int(L, "params_ref", s->params_ref);
    set_int(L, "macs", s->macs);
    set_int(L, "macs_ref", s->macs_ref);
    set_int(L, "layer_macs", s->layer_macs);
    set_int(L, "layer_macs_ref", s->layer_macs_ref);
    lua_setfield(L, -2, "counts");
    lua_createtable(L, 0, 3);
    set_num(L, "prepare", s->t_prepare);
    set_num(L, "truncate", s->t_truncate);
    set_num(L, "rebuild", s->t_rebuild);
    lua_setfield(L, -2, "time");
    lua_createtable(L, s->nchoices, 0);
    for (int i = 0; i < s->nchoices; i++) {
        push_choice(L, fams[s->choices[i].family], &s->choices[i]);
        lua_seti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "layers");
}

/* theta (a list of numbers) into scratch memory: at most max entries are read (the library
 * refuses any other length than the families' dimension; *n is the list's length). */
static double *read_theta(lua_State *L, int idx, int max, int *n)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer len = luaL_len(L, idx);
    *n = len < 0 ? 0 : len > INT_MAX ? INT_MAX : (int)len;
    int take = *n < max ? *n : max;
    double *theta = lb_scratch(L, (size_t)take, sizeof *theta);
    for (int i = 1; i <= take; i++) {
        int ok;
        lua_geti(L, idx, i);
        theta[i - 1] = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok)
            lb_error(L, "theta[%d] is not a number", i);
    }
    return theta;
}

/* compress.apply(net, families, theta) → candidate network, info. */
static int l_apply(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    lua_settop(L, 3);
    int nf, n;
    cp_family **fams = read_families(L, 2, &nf);
    double *theta = read_theta(L, 3, cp_dim(nf, fams), &n);
    cp_stats st;
    nn_net *cand = cp_apply(net, nf, fams, n, theta, &st);
    if (!cand)
        lb_lib_error(L);
    /* the choices into collected memory before anything below can raise a Lua error */
    cp_stats s = st;
    s.choices = lb_scratch(L, (size_t)st.nchoices, sizeof *s.choices);
    memcpy(s.choices, st.choices, (size_t)st.nchoices * sizeof *s.choices);
    cp_stats_free(&st);
    int64_t owned = 0; /* the collector sees only the box: tell it what the candidate holds */
    for (int i = 0; i < cand->count; i++)
        if (!cand->nodes[i].shared)
            owned += nn_node_param_count(&cand->nodes[i]);
    ln_push_sharing(L, cand, 1);
    lua_gc(L, LUA_GCSTEP, (int)((owned * (int64_t)sizeof(float)) >> 10));
    push_info(L, &s, fams);
    return 2;
}

/* compress.dim(families) → the number of θ entries. */
static int l_dim(lua_State *L)
{
    lua_settop(L, 1);
    int nf;
    cp_family **fams = read_families(L, 1, &nf);
    lua_pushinteger(L, cp_dim(nf, fams));
    return 1;
}

/* compress.bounds(families) → {{lo, hi}, ...}: the search box, in the order compress.apply reads θ;
 * compress.integer(families) → {false, true, ...}: which θ entries are integers (ranks, bits). */
static int box(lua_State *L, int integers)
{
    lua_settop(L, 1);
    int nf;
    cp_family **fams = read_families(L, 1, &nf);
    int dim = cp_dim(nf, fams);
    double *lo = lb_scratch(L, (size_t)dim, sizeof *lo), *hi = lb_scratch(L, (size_t)dim, sizeof *hi);
    int *integer = lb_scratch(L, (size_t)dim, sizeof *integer);
    cp_box(nf, fams, lo, hi, integer);
    lua_createtable(L, dim, 0);
    for (int i = 0; i < dim; i++) {
        if (integers) {
            lua_pushboolean(L, integer[i]);
        } else {
            lua_createtable(L, 2, 0);
            lua_pushnumber(L, lo[i]);
            lua_seti(L, -2, 1);
            lua_pushnumber(L, hi[i]);
            lua_seti(L, -2, 2);
        }
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int l_bounds(lua_State *L) { return box(L, 0); }
static int l_integer(lua_State *L) { return box(L, 1); }

/* compress.names(families) → {"vh:features.0", ...}: one label per θ entry. */
static int l_names(lua_State *L)
{
    lua_settop(L, 1);
    int nf;
    cp_family **fams = read_families(L, 1, &nf);
    int dim = cp_dim(nf, fams);
    lua_createtable(L, dim, 0);
    for (int i = 0; i < dim; i++) {
        char name[320];
        cp_theta_name(nf, fams, i, name, sizeof name);
        lua_pushstring(L, name);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* compress.latency(net [, {batch = 1, runs = 10, warmup = 2, size = nominal}]) → median seconds
 * of one forward pass on a random batch. */
static int l_latency(lua_State *L)
{
    static const char *const keys[] = {"batch", "runs", "warmup", "size", NULL};
    const char *what = "compress.latency";
    nn_net *net = ln_check(L, 1);
    int opts = lua_istable(L, 2);
    if (opts)
        lb_check_keys(L, 2, what, keys, 0);
    int batch = opts ? clamp_int(lb_opt_integer(L, 2, what, "batch", 1)) : 1;
    int runs = opts ? clamp_int(lb_opt_integer(L, 2, what, "runs", 10)) : 10;
    int warmup = opts ? clamp_int(lb_opt_integer(L, 2, what, "warmup", 2)) : 2;
    int size = opts ? clamp_int(lb_opt_integer(L, 2, what, "size", net->size)) : net->size;
    double seconds;
    if (cp_latency(net, batch, runs, warmup, size, &seconds) != 0)
        lb_lib_error(L);
    lua_pushnumber(L, seconds);
    return 1;
}

/* compress.measure(net) → {params = , macs = } at the nominal input size. */
static int l_measure(lua_State *L)
{
    int64_t params, macs;
    if (cp_measure(ln_check(L, 1), &params, &macs) != 0)
        lb_lib_error(L);
    lua_createtable(L, 0, 2);
    set_int(L, "params", params);
    set_int(L, "macs", macs);
    return 1;
}

static const luaL_Reg family_methods[] = {{"layers", family_layers}, {"dim", family_dim}, {"kind", family_kind},
                                          {"net", family_net},       {"prepare", family_prepare}, {NULL, NULL}};

static const luaL_Reg family_meta[] = {{"__gc", family_gc},
                                       {"__close", family_gc},
                                       {"__tostring", family_tostring},
                                       {"__len", family_dim},
                                       {NULL, NULL}};

static const luaL_Reg compress_funcs[] = {{"apply", l_apply},     {"latency", l_latency}, {"measure", l_measure},
                                          {"bounds", l_bounds},   {"names", l_names},     {"integer", l_integer},
                                          {"dim", l_dim},         {NULL, NULL}};

int luaopen_compress(lua_State *L)
{
    lb_new_class(L, FAMILY_MT, "family", family_meta, family_methods);
    lua_pop(L, 1);
    luaL_newlib(L, compress_funcs);
    lua_newtable(L); /* compress.families: the names, in the registry's order */
    for (int i = 0; cp_families[i]; i++) { /* compress.vh{...}, ...: one per registered family */
        lua_pushlightuserdata(L, (void *)cp_families[i]);
        lua_pushcclosure(L, declare, 1);
        lua_setfield(L, -3, cp_families[i]->name);
        lua_pushstring(L, cp_families[i]->name);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "families");
    return 1;
}
