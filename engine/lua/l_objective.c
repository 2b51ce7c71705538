#include "lua/l_objective.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "lua/l_data.h"
#include "lua/l_nn.h"
#include "lua/lb.h"

#define ESTIMATOR_MT "boengine.estimator"

/* An estimator; its user values are the reference network (1) and the dataset (2). */
typedef struct est_box {
    ob_estimator *e;
} est_box;

ob_estimator *lo_check(lua_State *L, int idx)
{
    est_box *b = luaL_checkudata(L, idx, ESTIMATOR_MT);
    if (!b->e)
        luaL_argerror(L, idx, "estimator has been freed");
    /* the dataset and network it reads must still be open */
    lua_getiuservalue(L, idx, 2);
    ld_check(L, -1);
    lua_pop(L, 1);
    if (lua_getiuservalue(L, idx, 1) != LUA_TNIL)
        ln_check(L, -1);
    lua_pop(L, 1);
    return b->e;
}

static int est_gc(lua_State *L)
{
    est_box *b = luaL_checkudata(L, 1, ESTIMATOR_MT);
    ob_free(b->e);
    b->e = NULL;
    return 0;
}

static int make(lua_State *L, ob_kind kind)
{
    static const char *const fnorm_keys[] = {"reference", "data", "samples", "seed", "pool", "fixed",
                                             "squared", "batch", "cache_mb", NULL};
    static const char *const risk_keys[] = {"data", "samples", "seed", "pool", "fixed", "batch", "se_floor",
                                            "cache_mb", NULL};
    const char *what = kind == OB_FNORM ? "objective.fnorm" : "objective.risk";
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, what, kind == OB_FNORM ? fnorm_keys : risk_keys, 0);
    nn_net *ref = NULL;
    int ref_idx = 0;
    if (kind == OB_FNORM) {
        if (lua_getfield(L, 1, "reference") == LUA_TNIL)
            lb_error(L, "%s: 'reference' is required (the uncompressed network)", what);
        ref_idx = lua_gettop(L);
        if (!luaL_testudata(L, ref_idx, "boengine.net"))
            lb_error(L, "%s: 'reference' must be a network, got %s", what, luaL_typename(L, ref_idx));
        ref = ln_check(L, ref_idx);
    }
    if (lua_getfield(L, 1, "data") == LUA_TNIL)
        lb_error(L, "%s: 'data' is required (a dataset, e.g. data.fashion_mnist{})", what);
    int data_idx = lua_gettop(L);
    if (!ld_test(L, data_idx))
        lb_error(L, "%s: 'data' must be a dataset (data.fashion_mnist{...}, data.folder{...}), got %s", what,
                 luaL_typename(L, data_idx));
    dataset *d = ld_check(L, data_idx);
    ob_options o;
    ob_defaults(&o);
    o.samples = lb_opt_integer(L, 1, what, "samples", o.samples);
    o.seed = (uint64_t)lb_opt_integer(L, 1, what, "seed", (lua_Integer)lb_default_seed(L));
    o.pool = lb_opt_integer(L, 1, what, "pool", 0);
    o.fixed = lb_opt_boolean(L, 1, what, "fixed", 0);
    o.squared = lb_opt_boolean(L, 1, what, "squared", 1);
    o.batch = lb_opt_integer(L, 1, what, "batch", 0);
    o.se_floor = lb_opt_number(L, 1, what, "se_floor", -1);
    lua_Integer mb = lb_opt_integer(L, 1, what, "cache_mb", o.cache_bytes >> 20);
    if (mb < 0)
        lb_error(L, "%s: 'cache_mb' must not be negative", what);
    o.cache_bytes = (int64_t)mb << 20;
    if (o.pool < 0)
        lb_error(L, "%s: 'pool' must be positive", what);
    est_box *b = lua_newuserdatauv(L, sizeof *b, 2);
    b->e = NULL;
    luaL_setmetatable(L, ESTIMATOR_MT);
    if (ref_idx)
        lua_pushvalue(L, ref_idx);
    else
        lua_pushnil(L);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, data_idx);
    lua_setiuservalue(L, -2, 2);
    if (!(b->e = ob_new(kind, ref, d, &o)))
        return lb_error(L, "%s: %s", what, err_msg());
    return 1;
}

static int l_fnorm(lua_State *L) { return make(L, OB_FNORM); }
static int l_risk(lua_State *L) { return make(L, OB_RISK); }

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* Pushes the 1-based dataset indices of evaluation index's sample. */
static void push_indices(lua_State *L, ob_estimator *e, int64_t index)
{
    int64_t n = ob_get_options(e)->samples;
    int64_t *idx = lb_scratch(L, (size_t)n, sizeof *idx);
    if (ob_sample_indices(e, index, idx) != 0)
        lb_lib_error(L);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, idx[i] + 1);
        lua_seti(L, -2, i + 1);
    }
    lua_remove(L, -2);
}

/* est:indices(k) → the dataset indices (1-based, as ds:get) of evaluation k's sample. */
static int est_indices(lua_State *L)
{
    ob_estimator *e = lo_check(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    if (k < 1)
        lb_error(L, "indices: evaluations are numbered from 1, got %lld", (long long)k);
    push_indices(L, e, k);
    return 1;
}

/* est:evaluate(net [, {sample = k}]) → value, standard error, info. */
static int est_evaluate(lua_State *L)
{
    static const char *const keys[] = {"sample", NULL};
    ob_estimator *e = lo_check(L, 1);
    nn_net *net = ln_check(L, 2);
    lua_Integer index = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lb_check_keys(L, 3, "evaluate", keys, 0);
        index = lb_opt_integer(L, 3, "evaluate", "sample", 0);
        int given = lua_getfield(L, 3, "sample") != LUA_TNIL;
        lua_pop(L, 1);
        if (given && index < 1)
            lb_error(L, "evaluate: 'sample' must be at least 1, got %lld", (long long)index);
    }
    ob_result r;
    if (ob_evaluate(e, net, index, &r) != 0)
        return lb_error(L, "%s: %s", ob_get_kind(e) == OB_FNORM ? "fnorm" : "risk", err_msg());
    lua_pushnumber(L, r.value);
    lua_pushnumber(L, r.se);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, r.n);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, r.index);
    lua_setfield(L, -2, "sample");
    lua_createtable(L, 0, 4);
    set_num(L, "data", r.t_data);
    set_num(L, "reference", r.t_reference);
    set_num(L, "forward", r.t_forward);
    set_num(L, "distance", r.t_distance);
    lua_setfield(L, -2, "time");
    push_indices(L, e, r.index);
    lua_setfield(L, -2, "indices");
    return 3;
}

/* est:prepare(): the reference outputs of the whole pool now; collective over the ranks of an MPI
 * run (each computes its share). */
static int est_prepare(lua_State *L)
{
    if (ob_prepare(lo_check(L, 1)) != 0)
        return lb_error(L, "prepare: %s", err_msg());
    lua_settop(L, 1);
    return 1;
}

static int est_count(lua_State *L)
{
    lua_pushinteger(L, ob_count(lo_check(L, 1)));
    return 1;
}

static int est_pool(lua_State *L)
{
    lua_pushinteger(L, ob_pool_size(lo_check(L, 1)));
    return 1;
}

/* d:known(): pool examples whose reference logits are computed (fnorm; 0 for risk). */
static int est_known(lua_State *L)
{
    lua_pushinteger(L, ob_known(lo_check(L, 1)));
    return 1;
}

static int est_samples(lua_State *L)
{
    lua_pushinteger(L, ob_get_options(lo_check(L, 1))->samples);
    return 1;
}

static int est_reference(lua_State *L)
{
    lo_check(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int est_tostring(lua_State *L)
{
    ob_estimator *e = lo_check(L, 1);
    const ob_options *o = ob_get_options(e);
    lua_pushfstring(L, "objective.%s(samples %I, pool %I, seed %I%s)", ob_get_kind(e) == OB_FNORM ? "fnorm" : "risk",
                    (lua_Integer)o->samples, (lua_Integer)ob_pool_size(e), (lua_Integer)o->seed,
                    o->fixed ? ", fixed" : "");
    return 1;
}

static const luaL_Reg est_methods[] = {{"evaluate", est_evaluate}, {"prepare", est_prepare}, {"indices", est_indices},
                                       {"count", est_count},       {"pool", est_pool},
                                       {"samples", est_samples},   {"reference", est_reference},
                                       {"known", est_known},       {NULL, NULL}};

static const luaL_Reg est_meta[] = {
    {"__gc", est_gc}, {"__close", est_gc}, {"__tostring", est_tostring}, {NULL, NULL}};

/* objective.scalarize{families =, estimator =, gamma = 1, ratio = "params"} → f, state: options
 * checked here, the function and its state built by the prelude's objective._scalarize. */
static int l_scalarize(lua_State *L)
{
    static const char *const keys[] = {"families", "estimator", "gamma", "ratio", NULL};
    const char *what = "objective.scalarize";
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, what, keys, 0);
    int t = lua_getfield(L, 1, "families");
    if (t == LUA_TTABLE && luaL_len(L, -1) > 0) {
        for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
            lua_geti(L, -1, i);
            if (!luaL_testudata(L, -1, "boengine.family"))
                lb_error(L, "%s: families[%lld] is not a family (compress.vh{...}, ...)", what, (long long)i);
            lua_pop(L, 1);
        }
    } else if (!luaL_testudata(L, -1, "boengine.family")) {
        lb_error(L, "%s: 'families' is required: a family or a non-empty list of them", what);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "estimator") == LUA_TNIL)
        lb_error(L, "%s: 'estimator' is required (objective.fnorm{...} or objective.risk{...})", what);
    if (!luaL_testudata(L, -1, ESTIMATOR_MT))
        lb_error(L, "%s: 'estimator' must be objective.fnorm{...} or objective.risk{...}, got %s", what,
                 luaL_typename(L, -1));
    lo_check(L, lua_gettop(L));
    lua_pop(L, 1);
    double gamma = lb_opt_number(L, 1, what, "gamma", 1);
    if (isnan(gamma))
        lb_error(L, "'gamma' must be a positive finite number, got NaN");
    if (!(gamma > 0) || !isfinite(gamma))
        lb_error(L, "'gamma' must be a positive finite number, got %g", gamma);
    const char *ratio = lb_opt_string(L, 1, what, "ratio", "params");
    int known = 0;
    luaL_Buffer names;
    luaL_buffinit(L, &names);
    for (int i = 0; cp_ratio_names[i]; i++) {
        known |= strcmp(ratio, cp_ratio_names[i]) == 0;
        luaL_addstring(&names, i ? ", " : "");
        luaL_addstring(&names, cp_ratio_names[i]);
    }
    luaL_pushresult(&names);
    if (!known)
        lb_error(L, "ratio \"%s\" is not one of %s", ratio, lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getglobal(L, "objective");
    if (lua_getfield(L, -1, "_scalarize") != LUA_TFUNCTION)
        return luaL_error(L, "%s: the prelude's objective._scalarize is missing", what);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    return 2;
}

static const luaL_Reg objective_funcs[] = {{"fnorm", l_fnorm}, {"risk", l_risk}, {"scalarize", l_scalarize}, {NULL, NULL}};

int luaopen_objective(lua_State *L)
{
    lb_new_class(L, ESTIMATOR_MT, "estimator", est_meta, est_methods);
    lua_pop(L, 1);
    luaL_newlib(L, objective_funcs);
    return 1;
}
