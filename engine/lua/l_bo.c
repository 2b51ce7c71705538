#include "lua/l_bo.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bo/acq.h"
#include "bo/bo_functions.h"
#include "bo/bo_journal.h"
#include "bo/bo_loop.h"
#include "bo/gp.h"
#include "bo/gp_fit.h"
#include "core/blas_serial.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "lua/lb.h"

#define GP_MT "boengine.bo.gp"
#define OPT_MT "boengine.bo.optimizer"

/* ---------------------------------------------------------------- helpers */

/* Scratch memory owned by Lua (a userdata pushed on the stack), so that an error frees it. */
static double *scratch(lua_State *L, size_t n) { return lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0); }

static double finite_number(lua_State *L, int idx, const char *what, int k, int j)
{
    int ok;
    double v = lua_tonumberx(L, idx, &ok);
    if (!ok || !isfinite(v)) {
        if (j > 0)
            lb_error(L, "%s: point %d, coordinate %d is not a finite number", what, k, j);
        lb_error(L, "%s: element %d is not a finite number", what, k);
    }
    return v;
}

/* A list of points (each a list of d numbers, or a number when d is 1), pushed as scratch. *d is the
 * expected dimension, or 0 to take it from the first point. */
static double *read_points(lua_State *L, int idx, const char *what, int *n, int *d)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        lb_error(L, "%s must be a list of points, got %s", what, luaL_typename(L, idx));
    int m = (int)luaL_len(L, idx), dd = *d;
    if (m > 0 && dd <= 0) {
        lua_geti(L, idx, 1);
        dd = lua_type(L, -1) == LUA_TNUMBER ? 1 : lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
        lua_pop(L, 1);
        if (dd <= 0)
            lb_error(L, "%s: point 1 is not a list of numbers", what);
    }
    double *X = scratch(L, (size_t)m * (dd > 0 ? dd : 1));
    for (int i = 0; i < m; i++) {
        int t = lua_geti(L, idx, i + 1);
        if (t == LUA_TNUMBER && dd == 1) {
            X[i] = finite_number(L, -1, what, i + 1, 1);
        } else if (t == LUA_TTABLE) {
            int len = (int)luaL_len(L, -1);
            if (len != dd)
                lb_error(L, "%s: point %d has %d coordinates, expected %d", what, i + 1, len, dd);
            for (int j = 0; j < dd; j++) {
                lua_geti(L, -1, j + 1);
                X[(size_t)i * dd + j] = finite_number(L, -1, what, i + 1, j + 1);
                lua_pop(L, 1);
            }
        } else {
            lb_error(L, "%s: point %d is not a list of %d numbers", what, i + 1, dd);
        }
        lua_pop(L, 1);
    }
    *n = m;
    *d = dd;
    return X;
}

/* One point: a list of d numbers (or a number when d is 1), pushed as scratch. */
static double *read_point(lua_State *L, int idx, const char *what, int d)
{
    idx = lua_absindex(L, idx);
    double *x = scratch(L, (size_t)d);
    if (lua_type(L, idx) == LUA_TNUMBER && d == 1) {
        x[0] = finite_number(L, idx, what, 1, 0);
        return x;
    }
    if (!lua_istable(L, idx) || luaL_len(L, idx) != d)
        lb_error(L, "%s: expected a list of %d numbers", what, d);
    for (int j = 0; j < d; j++) {
        lua_geti(L, idx, j + 1);
        x[j] = finite_number(L, -1, what, j + 1, 0);
        lua_pop(L, 1);
    }
    return x;
}

/* A list of n numbers (n < 0: any length, returned in *len), pushed as scratch. */
static double *read_numbers(lua_State *L, int idx, const char *what, int n, int *len)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        lb_error(L, "%s must be a list of numbers, got %s", what, luaL_typename(L, idx));
    int m = (int)luaL_len(L, idx);
    if (n >= 0 && m != n)
        lb_error(L, "%s has %d numbers, expected %d", what, m, n);
    double *v = scratch(L, (size_t)m);
    for (int i = 0; i < m; i++) {
        lua_geti(L, idx, i + 1);
        v[i] = finite_number(L, -1, what, i + 1, 0);
        lua_pop(L, 1);
    }
    if (len)
        *len = m;
    return v;
}

static void push_numbers(lua_State *L, const double *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void set_number(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

/* ---- Lua values <-> JSON, for the `info` attached to evaluations in the journal */

static void check_json(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TSTRING: return;
    case LUA_TNUMBER:
        if (!isfinite(lua_tonumber(L, idx)))
            lb_error(L, "info: %g cannot be stored in the journal", lua_tonumber(L, idx));
        return;
    case LUA_TTABLE:
        if (depth > 16)
            lb_error(L, "info: tables nested more than 16 deep");
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING && !lua_isinteger(L, -2))
                lb_error(L, "info: table keys must be strings or integers");
            check_json(L, -1, depth + 1);
            lua_pop(L, 1);
        }
        return;
    default: lb_error(L, "info: a %s cannot be stored in the journal", luaL_typename(L, idx));
    }
}

static cJSON *to_json(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TNUMBER: return bo_json_number(lua_tonumber(L, idx));
    case LUA_TTABLE: {
        lua_Integer n = luaL_len(L, idx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            count++;
            lua_pop(L, 1);
        }
        int array = n > 0 && count == n;
        cJSON *o = array ? cJSON_CreateArray() : cJSON_CreateObject();
        if (array) {
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, idx, i);
                cJSON_AddItemToArray(o, to_json(L, -1));
                lua_pop(L, 1);
            }
        } else {
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pushvalue(L, -2);
                const char *k = lua_tostring(L, -1); /* integer keys become strings in JSON */
                cJSON_AddItemToObject(o, k, to_json(L, -2));
                lua_pop(L, 2);
            }
        }
        return o;
    }
    default: return cJSON_CreateNull();
    }
}

static void push_json(lua_State *L, const cJSON *j)
{
    if (cJSON_IsBool(j))
        lua_pushboolean(L, cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
    } else if (cJSON_IsString(j))
        lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_json(L, e);
            lua_rawseti(L, -2, ++i);
        }
    } else if (cJSON_IsObject(j)) {
        lua_newtable(L);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_json(L, e);
            lua_setfield(L, -2, e->string);
        }
    } else
        lua_pushnil(L);
}

/* ---- option readers shared by bo.gp and bo.optimizer */

static void read_gamma(lua_State *L, int idx, const char *what, double *shape, double *rate)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNIL)
        return;
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)) {
        *shape = *rate = 0;
        return;
    }
    double *v = read_numbers(L, idx, what, 2, NULL);
    if (!(v[0] > 0 && v[1] > 0))
        lb_error(L, "%s: a Gamma prior needs shape > 0 and rate > 0, got {%g, %g}", what, v[0], v[1]);
    *shape = v[0];
    *rate = v[1];
    lua_pop(L, 1);
}

/* priors = false (none) or {lengthscale = {shape, rate} | false, outputscale = ..., noise = ...} */
static gp_prior read_priors(lua_State *L, int tidx, const char *what)
{
    gp_prior p = gp_prior_default();
    int t = lua_getfield(L, tidx, "priors");
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
        p = gp_prior_none();
    else if (t == LUA_TTABLE) {
        static const char *const keys[] = {"lengthscale", "outputscale", "noise", NULL};
        char w[96];
        snprintf(w, sizeof w, "%s: priors", what);
        lb_check_keys(L, -1, w, keys, 0);
        lua_getfield(L, -1, "lengthscale");
        read_gamma(L, -1, "priors.lengthscale", &p.ls_shape, &p.ls_rate);
        lua_pop(L, 1);
        lua_getfield(L, -1, "outputscale");
        read_gamma(L, -1, "priors.outputscale", &p.os_shape, &p.os_rate);
        lua_pop(L, 1);
        lua_getfield(L, -1, "noise");
        read_gamma(L, -1, "priors.noise", &p.noise_shape, &p.noise_rate);
        lua_pop(L, 1);
    } else if (t != LUA_TNIL)
        lb_error(L, "%s: 'priors' must be false or a table, got %s", what, luaL_typename(L, -1));
    lua_pop(L, 1);
    return p;
}

static gp_kernel_kind read_kernel(lua_State *L, int tidx, const char *what)
{
    gp_kernel_kind k;
    if (gp_kernel_parse(lb_opt_string(L, tidx, what, "kernel", "matern52"), &k) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    return k;
}

/* ---------------------------------------------------------------- bo.gp */

typedef struct lgp {
    gp *g;
    gp_prior prior;
} lgp;

static lgp *check_gp(lua_State *L, int idx) { return luaL_checkudata(L, idx, GP_MT); }

static int gp_gc(lua_State *L)
{
    lgp *p = check_gp(L, 1);
    gp_free(p->g);
    p->g = NULL;
    return 0;
}

static void gp_refresh(lua_State *L, gp *g)
{
    int threads = blas_serial_begin();
    int rc = gp_update(g);
    blas_serial_end(threads);
    if (rc != 0)
        lb_error(L, "bo.gp: %s", err_msg());
}

static int l_gp_new(lua_State *L)
{
    static const char *const keys[] = {"X", "y", "noise", "kernel", "lengthscale", "outputscale", "mean",
                                       "learn_noise", "noise_level", "priors", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.gp", keys, 0);
    int n = 0, d = 0;
    lua_getfield(L, 1, "X");
    if (lua_isnil(L, -1))
        lb_error(L, "bo.gp: 'X' (the list of input points) is required");
    double *X = read_points(L, -1, "bo.gp: X", &n, &d);
    if (n < 1)
        lb_error(L, "bo.gp: X has no points");
    lua_getfield(L, 1, "y");
    if (lua_isnil(L, -1))
        lb_error(L, "bo.gp: 'y' (the list of observations) is required");
    double *y = read_numbers(L, -1, "bo.gp: y", n, NULL);
    double *noise = NULL;
    int t = lua_getfield(L, 1, "noise");
    if (t == LUA_TNUMBER) {
        double v = lua_tonumber(L, -1);
        noise = scratch(L, (size_t)n);
        for (int i = 0; i < n; i++)
            noise[i] = v;
    } else if (t != LUA_TNIL)
        noise = read_numbers(L, -1, "bo.gp: noise", n, NULL);
    for (int i = 0; noise && i < n; i++)
        if (noise[i] < 0)
            lb_error(L, "bo.gp: noise variance %d is negative (%g)", i + 1, noise[i]);
    gp_kernel_kind kind = read_kernel(L, 1, "bo.gp");
    lgp *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->g = NULL;
    luaL_setmetatable(L, GP_MT);
    p->prior = read_priors(L, 1, "bo.gp");
    if (!(p->g = gp_new(n, d, X, y, noise, kind)))
        lb_error(L, "bo.gp: %s", err_msg());
    gp *g = p->g;
    t = lua_getfield(L, 1, "lengthscale");
    if (t == LUA_TNUMBER) {
        for (int j = 0; j < d; j++)
            g->lengthscale[j] = lua_tonumber(L, -1);
    } else if (t != LUA_TNIL) {
        double *l = read_numbers(L, -1, "bo.gp: lengthscale", d, NULL);
        memcpy(g->lengthscale, l, (size_t)d * sizeof *l);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    g->outputscale = lb_opt_number(L, 1, "bo.gp", "outputscale", 1.0);
    g->mean = lb_opt_number(L, 1, "bo.gp", "mean", 0.0);
    g->learn_noise = lb_opt_boolean(L, 1, "bo.gp", "learn_noise", 0);
    g->noise_level = lb_opt_number(L, 1, "bo.gp", "noise_level", 0.0);
    gp_refresh(L, g);
    return 1;
}

static int l_gp_fit(lua_State *L)
{
    lua_settop(L, 2); /* fix the argument slots before scratch memory is pushed */
    static const char *const keys[] = {"restarts", "seed", "maxeval", NULL};
    lgp *p = check_gp(L, 1);
    gp_fit_options o;
    gp_fit_defaults(&o);
    o.prior = p->prior;
    uint64_t seed = lb_default_seed(L);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lb_check_keys(L, 2, "gp:fit", keys, 0);
        o.restarts = (int)lb_opt_integer(L, 2, "gp:fit", "restarts", o.restarts);
        o.maxeval = (int)lb_opt_integer(L, 2, "gp:fit", "maxeval", o.maxeval);
        seed = (uint64_t)lb_opt_integer(L, 2, "gp:fit", "seed", (lua_Integer)seed);
        if (o.restarts < 0 || o.maxeval < 1)
            lb_error(L, "gp:fit: restarts must be >= 0 and maxeval >= 1");
    }
    rng *r = rng_new(seed);
    if (!r)
        return lb_lib_error(L);
    int rc = gp_fit(p->g, &o, r, 0, NULL);
    rng_free(r);
    if (rc != 0)
        return lb_error(L, "gp:fit: %s", err_msg());
    lua_settop(L, 1);
    return 1;
}

static int l_gp_predict(lua_State *L)
{
    lua_settop(L, 3); /* fix the argument slots before scratch memory is pushed */
    gp *g = check_gp(L, 1)->g;
    int m = 0, d = g->d, want_cov = 0;
    double *Xs = read_points(L, 2, "gp:predict", &m, &d);
    if (!lua_isnoneornil(L, 3)) {
        static const char *const keys[] = {"cov", NULL};
        luaL_checktype(L, 3, LUA_TTABLE);
        lb_check_keys(L, 3, "gp:predict", keys, 0);
        want_cov = lb_opt_boolean(L, 3, "gp:predict", "cov", 0);
    }
    double *mu = scratch(L, (size_t)m), *var = scratch(L, (size_t)m);
    double *cov = want_cov ? scratch(L, (size_t)m * m) : NULL;
    int threads = blas_serial_begin();
    int rc = gp_predict(g, m, Xs, mu, var, cov);
    blas_serial_end(threads);
    if (rc != 0)
        return lb_lib_error(L);
    push_numbers(L, mu, m);
    push_numbers(L, var, m);
    if (!want_cov)
        return 2;
    lua_createtable(L, m, 0);
    for (int i = 0; i < m; i++) {
        push_numbers(L, cov + (size_t)i * m, m); /* symmetric: column i is row i */
        lua_rawseti(L, -2, i + 1);
    }
    return 3;
}

static int l_gp_lml(lua_State *L)
{
    gp *g = check_gp(L, 1)->g;
    int np = gp_nparams(g);
    double *grad = scratch(L, (size_t)np);
    if (gp_lml_grad(g, grad) != 0)
        return lb_lib_error(L);
    lua_pushnumber(L, g->lml);
    push_numbers(L, grad, np);
    return 2;
}

static int l_gp_params(lua_State *L)
{
    gp *g = check_gp(L, 1)->g;
    lua_createtable(L, 0, 8);
    set_number(L, "mean", g->mean);
    push_numbers(L, g->lengthscale, g->d);
    lua_setfield(L, -2, "lengthscale");
    set_number(L, "outputscale", g->outputscale);
    set_number(L, "noise_level", g->learn_noise ? g->noise_level : 0);
    set_number(L, "jitter", g->jitter);
    set_number(L, "lml", g->lml);
    lua_pushstring(L, gp_kernel_name(g->kernel));
    lua_setfield(L, -2, "kernel");
    return 1;
}

static int l_gp_acquisition(lua_State *L)
{
    lua_settop(L, 3); /* fix the argument slots before scratch memory is pushed */
    static const char *const keys[] = {"kind", "kappa", "samples", "seed", NULL};
    gp *g = check_gp(L, 1)->g;
    int m = 0, d = g->d;
    double *Xs = read_points(L, 2, "gp:acquisition", &m, &d);
    acq_options o;
    acq_defaults(&o);
    acq_kind kind = ACQ_EI_C;
    uint64_t seed = lb_default_seed(L);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lb_check_keys(L, 3, "gp:acquisition", keys, 0);
        if (acq_parse(lb_opt_string(L, 3, "gp:acquisition", "kind", "ei_c"), &kind) != 0)
            return lb_error(L, "gp:acquisition: %s", err_msg());
        o.kappa = lb_opt_number(L, 3, "gp:acquisition", "kappa", o.kappa);
        o.nei_samples = (int)lb_opt_integer(L, 3, "gp:acquisition", "samples", o.nei_samples);
        seed = (uint64_t)lb_opt_integer(L, 3, "gp:acquisition", "seed", (lua_Integer)seed);
    }
    int threads = blas_serial_begin();
    acq *a = acq_new(g, kind, &o, seed);
    blas_serial_end(threads);
    if (!a)
        return lb_lib_error(L);
    lua_createtable(L, m, 0);
    for (int i = 0; i < m; i++) {
        double v = acq_eval(a, Xs + (size_t)i * d, NULL);
        lua_pushnumber(L, kind == ACQ_LCB ? -v : exp(v));
        lua_rawseti(L, -2, i + 1);
    }
    acq_free(a);
    return 1;
}

/* ---------------------------------------------------------------- bo.optimizer */

typedef struct lopt {
    bo *b;
    bo_journal *j;
    int d;
} lopt;

static lopt *check_opt(lua_State *L, int idx) { return luaL_checkudata(L, idx, OPT_MT); }

static int opt_gc(lua_State *L)
{
    lopt *o = check_opt(L, 1);
    bo_journal_close(o->j);
    o->j = NULL;
    bo_free(o->b);
    o->b = NULL;
    return 0;
}

static const char *const OPT_KEYS[] = {"bounds", "integer", "init", "acquisition", "seed", "journal", "kernel",
                                       "kappa", "samples", "raw_samples", "restarts", "fit_restarts", "optimizer",
                                       "priors", "learn_noise", "min_distance", NULL};
static const char *const MINIMIZE_KEYS[] = {"f", "iterations", "callback", "bounds", "integer", "init",
                                            "acquisition", "seed", "journal", "kernel", "kappa", "samples",
                                            "raw_samples", "restarts", "fit_restarts", "optimizer", "priors",
                                            "learn_noise", "min_distance", NULL};

/* Pushes a history record {i, x, y, se, seconds, time, info}. info_idx: a Lua value (0: none),
 * or info_json when given. */
static void push_record(lua_State *L, int i, const double *x, int d, double y, double se, double seconds,
                        double when, int info_idx, const cJSON *info_json)
{
    if (info_idx)
        info_idx = lua_absindex(L, info_idx);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, i);
    lua_setfield(L, -2, "i");
    push_numbers(L, x, d);
    lua_setfield(L, -2, "x");
    set_number(L, "y", y);
    if (isfinite(se))
        set_number(L, "se", se);
    if (isfinite(seconds))
        set_number(L, "seconds", seconds);
    if (isfinite(when))
        set_number(L, "time", when);
    if (info_idx) {
        lua_pushvalue(L, info_idx);
        lua_setfield(L, -2, "info");
    } else if (info_json) {
        push_json(L, info_json);
        lua_setfield(L, -2, "info");
    }
}

/* Appends the record on top of the stack to the optimizer's history (its user value), popping it. */
static void history_append(lua_State *L, int opt_idx)
{
    lua_getiuservalue(L, opt_idx, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 1);
}

/* Reads the optimizer options of the table at tidx and pushes a new optimizer (resumed from its
 * journal when there is one). */
static lopt *new_optimizer(lua_State *L, int tidx, const char *what)
{
    tidx = lua_absindex(L, tidx);
    int d = 0;
    lua_getfield(L, tidx, "bounds");
    if (!lua_istable(L, -1))
        lb_error(L, "%s: 'bounds' is required: a list of {lower, upper} pairs", what);
    char w[64];
    snprintf(w, sizeof w, "%s: bounds", what);
    int nb = 0;
    double *bnd = read_points(L, -1, w, &nb, &(int){2});
    d = nb;
    if (d < 1)
        lb_error(L, "%s: 'bounds' has no dimensions", what);
    double *lower = scratch(L, (size_t)d), *upper = scratch(L, (size_t)d);
    for (int j = 0; j < d; j++) {
        lower[j] = bnd[2 * j];
        upper[j] = bnd[2 * j + 1];
        if (!(lower[j] < upper[j]))
            lb_error(L, "%s: bounds %d: lower %g is not below upper %g", what, j + 1, lower[j], upper[j]);
    }
    int *integer = NULL;
    if (lua_getfield(L, tidx, "integer") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            lb_error(L, "%s: 'integer' must be a list of dimension numbers or of booleans", what);
        integer = lua_newuserdatauv(L, (size_t)d * sizeof *integer, 0);
        memset(integer, 0, (size_t)d * sizeof *integer);
        int len = (int)luaL_len(L, -2);
        for (int k = 1; k <= len; k++) {
            int t = lua_geti(L, -2, k);
            if (t == LUA_TBOOLEAN) {
                if (len != d)
                    lb_error(L, "%s: 'integer' as booleans needs one per dimension (%d), got %d", what, d, len);
                integer[k - 1] = lua_toboolean(L, -1);
            } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= d) {
                integer[lua_tointeger(L, -1) - 1] = 1;
            } else {
                lb_error(L, "%s: 'integer' element %d must be a dimension number from 1 to %d or a boolean", what, k, d);
            }
            lua_pop(L, 1);
        }
    }
    bo_options o;
    bo_defaults(&o, d, lower, upper);
    o.integer = integer;
    o.init = (int)lb_opt_integer(L, tidx, what, "init", 0);
    if (o.init < 0)
        lb_error(L, "%s: 'init' must be >= 1", what);
    const char *acq = lb_opt_string(L, tidx, what, "acquisition", "ei_c");
    if (acq_parse(acq, &o.acquisition) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    o.seed = (uint64_t)lb_opt_integer(L, tidx, what, "seed", (lua_Integer)lb_default_seed(L));
    o.kernel = read_kernel(L, tidx, what);
    o.acq.kappa = lb_opt_number(L, tidx, what, "kappa", o.acq.kappa);
    o.acq.nei_samples = (int)lb_opt_integer(L, tidx, what, "samples", o.acq.nei_samples);
    o.opt.raw_samples = (int)lb_opt_integer(L, tidx, what, "raw_samples", o.opt.raw_samples);
    o.opt.restarts = (int)lb_opt_integer(L, tidx, what, "restarts", o.opt.restarts);
    o.opt.min_distance = lb_opt_number(L, tidx, what, "min_distance", o.opt.min_distance);
    o.fit.restarts = (int)lb_opt_integer(L, tidx, what, "fit_restarts", o.fit.restarts);
    if (o.acq.nei_samples < 1 || o.opt.raw_samples < 1 || o.opt.restarts < 0 || o.fit.restarts < 0 ||
        !(o.opt.min_distance >= 0))
        lb_error(L, "%s: samples and raw_samples must be >= 1; restarts, fit_restarts, min_distance >= 0", what);
    if (acqopt_parse_method(lb_opt_string(L, tidx, what, "optimizer", "lbfgs"), &o.opt.method) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    o.fit.prior = read_priors(L, tidx, what);
    if (lua_getfield(L, tidx, "learn_noise") != LUA_TNIL)
        o.learn_noise = lb_opt_boolean(L, tidx, what, "learn_noise", 0);
    lua_pop(L, 1);
    const char *journal = lb_opt_string(L, tidx, what, "journal", NULL);

    lopt *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, OPT_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    int opt_idx = lua_gettop(L);
    p->d = d;
    if (!(p->b = bo_new(&o)))
        lb_error(L, "%s: %s", what, err_msg());
    if (journal) {
        bo_journal_header h = {d, lower, upper, integer, o.seed, acq};
        const char **made_by[4] = {&h.engine, &h.commit, &h.script, &h.script_sha256};
        const char *keys[4] = {"version", "commit", "script", "script_sha256"};
        int top = lua_gettop(L); /* the strings stay on the stack until the header is written */
        if (lua_getglobal(L, "boengine") == LUA_TTABLE)
            for (int k = 0; k < 4; k++) {
                lua_getfield(L, top + 1, keys[k]);
                *made_by[k] = lua_tostring(L, -1);
            }
        bo_record *recs;
        int count;
        if (!(p->j = bo_journal_open(journal, &h, &recs, &count)))
            lb_error(L, "%s: journal %s", what, err_msg());
        lua_settop(L, top);
        for (int i = 0; i < count; i++) {
            if (bo_tell(p->b, recs[i].x, recs[i].y, recs[i].se) != 0) {
                bo_records_free(recs, count);
                lb_error(L, "%s: %s: evaluation %d: %s", what, journal, i + 1, err_msg());
            }
            push_record(L, i + 1, bo_x(p->b, i), d, recs[i].y, recs[i].se, recs[i].seconds, recs[i].time, 0,
                        recs[i].info);
            history_append(L, opt_idx);
        }
        bo_records_free(recs, count);
        if (count > 0)
            log_info("bo: %s: resuming after %d evaluations", journal, count);
    }
    return p;
}

static int l_opt_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.optimizer", OPT_KEYS, 0);
    new_optimizer(L, 1, "bo.optimizer");
    return 1;
}

static lopt *live_opt(lua_State *L, int idx)
{
    lopt *o = check_opt(L, idx);
    if (!o->b)
        luaL_argerror(L, idx, "optimizer has been freed");
    return o;
}

static int l_opt_ask(lua_State *L)
{
    lopt *o = live_opt(L, 1);
    double *x = scratch(L, (size_t)o->d);
    if (bo_ask(o->b, x) != 0)
        return lb_error(L, "optimizer:ask: %s", err_msg());
    push_numbers(L, x, o->d);
    return 1;
}

/* Records an evaluation: tells the loop, appends to the journal, pushes the record onto the history
 * and leaves it on the stack. */
static void opt_record(lua_State *L, int opt_idx, const double *x, double y, double se, double seconds,
                       int info_idx, const char *what)
{
    lopt *o = check_opt(L, opt_idx);
    if (info_idx)
        info_idx = lua_absindex(L, info_idx);
    if (info_idx)
        check_json(L, info_idx, 0);
    if (bo_tell(o->b, x, y, se) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    int n = bo_count(o->b);
    double when = (double)time(NULL);
    if (o->j) {
        bo_record r = {n, (double *)bo_x(o->b, n - 1), y, se, seconds, when, info_idx ? to_json(L, info_idx) : NULL};
        int rc = bo_journal_append(o->j, &r);
        cJSON_Delete(r.info);
        if (rc != 0)
            lb_error(L, "%s: journal %s", what, err_msg());
    }
    push_record(L, n, bo_x(o->b, n - 1), o->d, y, se, seconds, when, info_idx, NULL);
    lua_pushvalue(L, -1);
    history_append(L, opt_idx);
}

static double read_se(lua_State *L, int idx, const char *what)
{
    if (lua_isnoneornil(L, idx))
        return NAN;
    int ok;
    double se = lua_tonumberx(L, idx, &ok);
    if (!ok || !(se >= 0) || !isfinite(se))
        lb_error(L, "%s: the standard error must be a finite number >= 0, got %s", what, luaL_tolstring(L, idx, NULL));
    return se;
}

static int l_opt_tell(lua_State *L)
{
    lua_settop(L, 5); /* fix the argument slots before scratch memory is pushed */
    lopt *o = live_opt(L, 1);
    double *x = read_point(L, 2, "optimizer:tell: x", o->d);
    int ok;
    double y = lua_tonumberx(L, 3, &ok);
    if (!ok || !isfinite(y))
        return lb_error(L, "optimizer:tell: y must be a finite number, got %s", luaL_tolstring(L, 3, NULL));
    double se = read_se(L, 4, "optimizer:tell");
    opt_record(L, 1, x, y, se, NAN, lua_isnoneornil(L, 5) ? 0 : 5, "optimizer:tell");
    return 1;
}

/* Pushes {i, x, y, se, mu, sd, info} of the best evaluated point by posterior mean. */
static void push_best(lua_State *L, int opt_idx, const char *what)
{
    lopt *o = check_opt(L, opt_idx);
    bo_best_point bp;
    if (bo_best(o->b, &bp) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    lua_getiuservalue(L, opt_idx, 1);
    lua_geti(L, -1, bp.index + 1);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, bp.index + 1);
    lua_setfield(L, -2, "i");
    push_numbers(L, bo_x(o->b, bp.index), o->d);
    lua_setfield(L, -2, "x");
    set_number(L, "y", bo_y(o->b, bp.index));
    if (isfinite(bo_se(o->b, bp.index)))
        set_number(L, "se", bo_se(o->b, bp.index));
    set_number(L, "mu", bp.mu);
    set_number(L, "sd", bp.sd);
    if (lua_getfield(L, -2, "info") != LUA_TNIL)
        lua_setfield(L, -2, "info");
    else
        lua_pop(L, 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

static int l_opt_best(lua_State *L)
{
    live_opt(L, 1);
    push_best(L, 1, "optimizer:best");
    return 1;
}

static int l_opt_history(lua_State *L)
{
    live_opt(L, 1);
    lua_getiuservalue(L, 1, 1);
    int n = (int)luaL_len(L, -1);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_geti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int l_opt_count(lua_State *L)
{
    lua_pushinteger(L, bo_count(live_opt(L, 1)->b));
    return 1;
}

static int l_opt_predict(lua_State *L)
{
    lua_settop(L, 2); /* fix the argument slots before scratch memory is pushed */
    lopt *o = live_opt(L, 1);
    int m = 0, d = o->d;
    double *X = read_points(L, 2, "optimizer:predict", &m, &d);
    double *mu = scratch(L, (size_t)m), *var = scratch(L, (size_t)m);
    if (bo_predict(o->b, m, X, mu, var) != 0)
        return lb_error(L, "optimizer:predict: %s", err_msg());
    push_numbers(L, mu, m);
    push_numbers(L, var, m);
    return 2;
}

static int l_opt_acquisition(lua_State *L)
{
    lua_settop(L, 2); /* fix the argument slots before scratch memory is pushed */
    lopt *o = live_opt(L, 1);
    int m = 0, d = o->d;
    double *X = read_points(L, 2, "optimizer:acquisition", &m, &d);
    double *v = scratch(L, (size_t)m);
    if (bo_acquisition(o->b, m, X, v) != 0)
        return lb_error(L, "optimizer:acquisition: %s", err_msg());
    push_numbers(L, v, m);
    return 1;
}

static int l_opt_model(lua_State *L)
{
    lopt *o = live_opt(L, 1);
    const gp *g = bo_model(o->b);
    if (!g)
        return lb_error(L, "optimizer:model: %s", err_msg());
    double ym, ys;
    bo_y_scale(o->b, &ym, &ys);
    lua_createtable(L, 0, 8);
    set_number(L, "mean", g->mean);
    push_numbers(L, g->lengthscale, g->d);
    lua_setfield(L, -2, "lengthscale");
    set_number(L, "outputscale", g->outputscale);
    set_number(L, "noise_level", g->learn_noise ? g->noise_level : 0);
    set_number(L, "jitter", g->jitter);
    set_number(L, "y_mean", ym);
    set_number(L, "y_sd", ys);
    lua_pushstring(L, gp_kernel_name(g->kernel));
    lua_setfield(L, -2, "kernel");
    return 1;
}

static int l_opt_close(lua_State *L)
{
    lopt *o = check_opt(L, 1);
    bo_journal_close(o->j);
    o->j = NULL;
    return 0;
}

/* ---------------------------------------------------------------- bo.minimize */

static int l_minimize(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.minimize", MINIMIZE_KEYS, 0);
    if (lua_getfield(L, 1, "f") != LUA_TFUNCTION)
        return lb_error(L, "bo.minimize: 'f' must be a function (x, i) returning y [, se [, info]]");
    lua_pop(L, 1);
    int cbt = lua_getfield(L, 1, "callback");
    lua_pop(L, 1);
    if (cbt != LUA_TNIL && cbt != LUA_TFUNCTION)
        return lb_error(L, "bo.minimize: 'callback' must be a function (i, record, optimizer)");
    lua_Integer iterations = lb_opt_integer(L, 1, "bo.minimize", "iterations", 20);
    if (iterations < 0)
        return lb_error(L, "bo.minimize: 'iterations' must be >= 0");
    lopt *o = new_optimizer(L, 1, "bo.minimize");
    int opt_idx = lua_gettop(L);
    int total = bo_init_count(o->b) + (int)iterations;
    double *x = scratch(L, (size_t)o->d);
    int base = lua_gettop(L);
    progress p;
    progress_start(&p, "bo", total);
    int stopped = 0;
    for (int n = bo_count(o->b); n < total && !stopped; n = bo_count(o->b)) {
        if (bo_ask(o->b, x) != 0)
            return lb_error(L, "bo.minimize: %s", err_msg());
        lua_getfield(L, 1, "f");
        push_numbers(L, x, o->d);
        lua_pushinteger(L, n + 1);
        double t0 = now_seconds();
        lua_call(L, 2, 3);
        double seconds = now_seconds() - t0;
        int ok;
        double y = lua_tonumberx(L, -3, &ok);
        if (!ok || !isfinite(y))
            return lb_error(L, "bo.minimize: f returned %s for evaluation %d, expected a finite number",
                            luaL_tolstring(L, -3, NULL), n + 1);
        double se = read_se(L, -2, "bo.minimize: f's second result");
        opt_record(L, opt_idx, x, y, se, seconds, lua_isnil(L, -1) ? 0 : -1, "bo.minimize");
        push_best(L, opt_idx, "bo.minimize");
        lua_setfield(L, -2, "best");
        lua_getfield(L, -1, "best");
        lua_getfield(L, -1, "mu");
        char extra[96];
        snprintf(extra, sizeof extra, "y %.6g, best mean %.6g", y, lua_tonumber(L, -1));
        lua_pop(L, 2);
        progress_update(&p, n + 1, extra);
        if (cbt == LUA_TFUNCTION) {
            lua_getfield(L, 1, "callback");
            lua_pushinteger(L, n + 1);
            lua_pushvalue(L, -3);
            lua_pushvalue(L, opt_idx);
            lua_call(L, 3, 1);
            stopped = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
        }
        lua_settop(L, base);
    }
    bo_journal_close(o->j);
    o->j = NULL;
    lua_createtable(L, 0, 4);
    if (bo_count(o->b) > 0) {
        push_best(L, opt_idx, "bo.minimize");
        lua_setfield(L, -2, "best");
        lua_getfield(L, -1, "best");
        lua_getfield(L, -1, "mu");
        char extra[64];
        snprintf(extra, sizeof extra, "best mean %.6g", lua_tonumber(L, -1));
        lua_pop(L, 2);
        progress_end(&p, extra);
    }
    lua_getiuservalue(L, opt_idx, 1);
    lua_setfield(L, -2, "history");
    lua_pushvalue(L, opt_idx);
    lua_setfield(L, -2, "optimizer");
    lua_pushboolean(L, stopped);
    lua_setfield(L, -2, "stopped");
    return 1;
}

/* ---------------------------------------------------------------- bo.functions */

static int l_function(lua_State *L)
{
    lua_settop(L, 3); /* fix the argument slots before scratch memory is pushed */
    const bo_function *f = lua_touserdata(L, lua_upvalueindex(1));
    int d = f->dim;
    if (d == 0) {
        if (lua_type(L, 1) == LUA_TNUMBER)
            d = 1;
        else if (lua_istable(L, 1))
            d = (int)luaL_len(L, 1);
        if (d < 1)
            return lb_error(L, "bo.functions.%s: x must be a non-empty list of numbers", f->name);
    }
    char what[64];
    snprintf(what, sizeof what, "bo.functions.%s: x", f->name);
    double *x = read_point(L, 1, what, d);
    double y = f->f(d, x);
    double sigma = luaL_optnumber(L, 2, 0);
    if (!(sigma >= 0) || !isfinite(sigma))
        return lb_error(L, "bo.functions.%s: the noise standard deviation must be >= 0, got %g", f->name, sigma);
    if (sigma > 0) {
        if (!lua_isinteger(L, 3))
            return lb_error(L, "bo.functions.%s: noise needs an integer seed as the third argument", f->name);
        rng *r = rng_new(rng_derive_seed((uint64_t)lua_tointeger(L, 3), 0x6e6f697365ULL));
        if (!r)
            return lb_lib_error(L);
        y += sigma * rng_normal(r);
        rng_free(r);
    }
    lua_pushnumber(L, y);
    return 1;
}

static int l_function_info(lua_State *L)
{
    const bo_function *f = bo_function_find(luaL_checkstring(L, 1));
    if (!f)
        return lb_error(L, "bo.functions.info: %s", err_msg());
    int d = f->dim ? f->dim : (int)luaL_optinteger(L, 2, 2);
    if (d < 1 || d > 1000)
        return lb_error(L, "bo.functions.info: dimension %d out of range", d);
    if (f->dim && !lua_isnoneornil(L, 2) && lua_tointeger(L, 2) != f->dim)
        return lb_error(L, "bo.functions.info: %s has dimension %d", f->name, f->dim);
    double *lo = scratch(L, (size_t)d), *hi = scratch(L, (size_t)d), *am = scratch(L, (size_t)d);
    f->bounds(d, lo, hi);
    f->argmin(d, am);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, d);
    lua_setfield(L, -2, "dim");
    set_number(L, "minimum", f->minimum);
    push_numbers(L, am, d);
    lua_setfield(L, -2, "argmin");
    lua_createtable(L, d, 0);
    for (int j = 0; j < d; j++) {
        lua_createtable(L, 2, 0);
        lua_pushnumber(L, lo[j]);
        lua_rawseti(L, -2, 1);
        lua_pushnumber(L, hi[j]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "bounds");
    return 1;
}

/* ---------------------------------------------------------------- module */

static const luaL_Reg gp_methods[] = {{"fit", l_gp_fit},       {"predict", l_gp_predict},
                                      {"lml", l_gp_lml},       {"params", l_gp_params},
                                      {"acquisition", l_gp_acquisition}, {NULL, NULL}};
static const luaL_Reg opt_methods[] = {{"ask", l_opt_ask},         {"tell", l_opt_tell},
                                       {"best", l_opt_best},       {"history", l_opt_history},
                                       {"count", l_opt_count},     {"predict", l_opt_predict},
                                       {"acquisition", l_opt_acquisition}, {"model", l_opt_model},
                                       {"close", l_opt_close},     {NULL, NULL}};
static const luaL_Reg bo_funcs[] = {{"gp", l_gp_new},         {"optimizer", l_opt_new}, {"minimize", l_minimize},
                                    {NULL, NULL}};

static int tostring_gp(lua_State *L)
{
    gp *g = check_gp(L, 1)->g;
    lua_pushfstring(L, "bo.gp(%d points, %d dimensions, %s)", g ? g->n : 0, g ? g->d : 0,
                    g ? gp_kernel_name(g->kernel) : "freed");
    return 1;
}

static int tostring_opt(lua_State *L)
{
    lopt *o = check_opt(L, 1);
    lua_pushfstring(L, "bo.optimizer(%d dimensions, %d evaluations)", o->d, o->b ? bo_count(o->b) : 0);
    return 1;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_bo(lua_State *L)
{
    new_class(L, GP_MT, gp_methods, gp_gc, tostring_gp);
    new_class(L, OPT_MT, opt_methods, opt_gc, tostring_opt);
    luaL_newlib(L, bo_funcs);
    lua_newtable(L);
    for (const bo_function *f = bo_function_list(); f->name; f++) {
        lua_pushlightuserdata(L, (void *)f);
        lua_pushcclosure(L, l_function, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pushcfunction(L, l_function_info);
    lua_setfield(L, -2, "info");
    lua_setfield(L, -2, "functions");
    return 1;
}
