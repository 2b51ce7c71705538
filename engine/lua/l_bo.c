#include "lua/l_bo.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "bo/acq.h"
#include "bo/bo_functions.h"
#include "bo/bo_session.h"
#include "bo/gp.h"
#include "bo/gp_fit.h"
#include "core/err.h"
#include "core/rng.h"
#include "lua/lb.h"
#include "lua/lb_json.h"

#define GP_MT "boengine.bo.gp"
#define OPT_MT "boengine.bo.optimizer"
#define GUARD_MT "boengine.bo.journal_guard"

/* ---------------------------------------------------------------- conversions */

static double number_at(lua_State *L, int idx, const char *what, int k, int j)
{
    int ok;
    double v = lua_tonumberx(L, idx, &ok);
    if (!ok) {
        if (j > 0)
            lb_error(L, "%s: point %d, coordinate %d is not a number", what, k, j);
        lb_error(L, "%s: element %d is not a number", what, k);
    }
    return v;
}

/* A list of points (each a list of d numbers, or a number when d is 1), as scratch. *d is the
 * expected dimension, or 0 to take it from the first point. */
static double *read_points(lua_State *L, int idx, const char *what, int *n, int *d)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        lb_error(L, "%s must be a list of points, got %s", what, luaL_typename(L, idx));
    lua_Integer m = luaL_len(L, idx);
    int dd = *d;
    if (m > INT_MAX)
        lb_error(L, "%s has too many points", what);
    if (m > 0 && dd <= 0) {
        lua_geti(L, idx, 1);
        lua_Integer len = lua_type(L, -1) == LUA_TNUMBER ? 1 : lua_istable(L, -1) ? luaL_len(L, -1) : 0;
        lua_pop(L, 1);
        if (len <= 0 || len > INT_MAX)
            lb_error(L, "%s: point 1 is not a list of numbers", what);
        dd = (int)len;
    }
    double *X = lb_scratch(L, (size_t)m * (size_t)(dd > 0 ? dd : 1), sizeof *X);
    for (int i = 0; i < (int)m; i++) {
        int t = lua_geti(L, idx, i + 1);
        if (t == LUA_TNUMBER && dd == 1) {
            X[i] = number_at(L, -1, what, i + 1, 1);
        } else if (t == LUA_TTABLE) {
            lua_Integer len = luaL_len(L, -1);
            if (len != dd)
                lb_error(L, "%s: point %d has %lld coordinates, expected %d", what, i + 1, (long long)len, dd);
            for (int j = 0; j < dd; j++) {
                lua_geti(L, -1, j + 1);
                X[(size_t)i * dd + j] = number_at(L, -1, what, i + 1, j + 1);
                lua_pop(L, 1);
            }
        } else {
            lb_error(L, "%s: point %d is not a list of %d numbers", what, i + 1, dd);
        }
        lua_pop(L, 1);
    }
    *n = (int)m;
    *d = dd;
    return X;
}

/* One point: a list of d numbers (or a number when d is 1), as scratch. */
static double *read_point(lua_State *L, int idx, const char *what, int d)
{
    idx = lua_absindex(L, idx);
    double *x = lb_scratch(L, (size_t)d, sizeof *x);
    if (lua_type(L, idx) == LUA_TNUMBER && d == 1) {
        x[0] = number_at(L, idx, what, 1, 0);
        return x;
    }
    if (!lua_istable(L, idx) || luaL_len(L, idx) != d)
        lb_error(L, "%s: expected a list of %d numbers", what, d);
    for (int j = 0; j < d; j++) {
        lua_geti(L, idx, j + 1);
        x[j] = number_at(L, -1, what, j + 1, 0);
        lua_pop(L, 1);
    }
    return x;
}

/* A list of exactly n numbers, as scratch. */
static double *read_numbers(lua_State *L, int idx, const char *what, int n)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        lb_error(L, "%s must be a list of numbers, got %s", what, luaL_typename(L, idx));
    lua_Integer m = luaL_len(L, idx);
    if (m != n)
        lb_error(L, "%s has %lld numbers, expected %d", what, (long long)m, n);
    double *v = lb_scratch(L, (size_t)n, sizeof *v);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        v[i] = number_at(L, -1, what, i + 1, 0);
        lua_pop(L, 1);
    }
    return v;
}

/* An integer option that must fit a C int (its meaning is checked in C). */
static int opt_int(lua_State *L, int idx, const char *what, const char *key, int def)
{
    lua_Integer v = lb_opt_integer(L, idx, what, key, def);
    if (v < INT_MIN || v > INT_MAX)
        lb_error(L, "%s: '%s' is out of range: %lld", what, key, (long long)v);
    return (int)v;
}

/* An observation's y and standard error (nil: unknown) as numbers. */
static void read_outcome(lua_State *L, int yi, int sei, bo_outcome *o, const char *y_what, const char *se_what)
{
    int ok;
    o->y = lua_tonumberx(L, yi, &ok);
    if (!ok)
        lb_error(L, "%s, expected a finite number", y_what);
    o->has_se = !lua_isnoneornil(L, sei);
    o->se = o->has_se ? lua_tonumberx(L, sei, &ok) : NAN;
    if (o->has_se && !ok)
        lb_error(L, "%s: the standard error must be a finite number >= 0, got %s", se_what,
                 luaL_tolstring(L, sei, NULL));
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

/* ---- option readers shared by bo.gp and bo.optimizer */

/* {shape, rate}, or false for none; nil keeps the default. */
static void read_gamma(lua_State *L, int idx, const char *what, double *shape, double *rate)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNIL)
        return;
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)) {
        *shape = *rate = 0;
        return;
    }
    double *v = read_numbers(L, idx, what, 2);
    *shape = v[0];
    *rate = v[1];
    lua_pop(L, 1);
}

/* priors = false (none) or {lengthscale = {shape, rate} | false, outputscale = ..., noise = ...} */
static gp_prior read_priors(lua_State *L, int tidx, const char *what)
{
    gp_prior p = gp_prior_default();
    int t = lua_getfield(L, tidx, "priors");
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        p = gp_prior_none();
    } else if (t == LUA_TTABLE) {
        static const char *const keys[] = {"lengthscale", "outputscale", "noise", NULL};
        char w[96];
        snprintf(w, sizeof w, "%s: priors", what);
        lb_check_keys(L, -1, w, keys, 0);
        double *shape[3] = {&p.ls_shape, &p.os_shape, &p.noise_shape};
        double *rate[3] = {&p.ls_rate, &p.os_rate, &p.noise_rate};
        for (int k = 0; k < 3; k++) {
            lua_getfield(L, -1, keys[k]);
            snprintf(w, sizeof w, "priors.%s", keys[k]);
            read_gamma(L, -1, w, shape[k], rate[k]);
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        lb_error(L, "%s: 'priors' must be false or a table, got %s", what, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return p;
}

/* ---------------------------------------------------------------- bo.gp */

typedef struct lgp {
    gp *g;
    gp_prior prior;
} lgp;

static gp *live_gp(lua_State *L, int idx)
{
    lgp *p = luaL_checkudata(L, idx, GP_MT);
    if (!p->g)
        luaL_argerror(L, idx, "the GP has been freed");
    return p->g;
}

static int gp_release(lua_State *L)
{
    lgp *p = luaL_checkudata(L, 1, GP_MT);
    gp_free(p->g);
    p->g = NULL;
    return 0;
}

static int gp_tostring(lua_State *L)
{
    gp *g = ((lgp *)luaL_checkudata(L, 1, GP_MT))->g;
    if (!g)
        lua_pushliteral(L, "bo.gp(freed)");
    else
        lua_pushfstring(L, "bo.gp(%d points, %d dimensions, %s)", g->n, g->d, gp_kernel_name(g->kernel));
    return 1;
}

static int l_gp_new(lua_State *L)
{
    static const char *const keys[] = {"X", "y", "noise", "kernel", "lengthscale", "outputscale", "mean",
                                       "learn_noise", "noise_level", "priors", NULL};
    lua_settop(L, 1); /* fix the argument slots before scratch memory is pushed */
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.gp", keys, 0);
    int n = 0, d = 0;
    if (lua_getfield(L, 1, "X") == LUA_TNIL)
        lb_error(L, "'X' (the list of input points) is required");
    double *X = read_points(L, -1, "X", &n, &d);
    if (lua_getfield(L, 1, "y") == LUA_TNIL)
        lb_error(L, "'y' (the list of observations) is required");
    double *y = read_numbers(L, -1, "y", n), *noise = NULL;
    int t = lua_getfield(L, 1, "noise");
    if (t == LUA_TNUMBER) {
        noise = lb_scratch(L, (size_t)n, sizeof *noise);
        for (int i = 0; i < n; i++)
            noise[i] = lua_tonumber(L, -2);
    } else if (t != LUA_TNIL) {
        noise = read_numbers(L, -1, "noise", n);
    }
    gp_kernel_kind kind;
    if (gp_kernel_parse(lb_opt_string(L, 1, "bo.gp", "kernel", "matern52"), &kind) != 0)
        lb_lib_error(L);
    lgp *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->g = NULL;
    luaL_setmetatable(L, GP_MT);
    p->prior = read_priors(L, 1, "bo.gp");
    if (gp_prior_check(&p->prior) != 0 || !(p->g = gp_new(n, d, X, y, noise, kind)))
        lb_lib_error(L);
    gp *g = p->g;
    t = lua_getfield(L, 1, "lengthscale");
    if (t == LUA_TNUMBER) {
        for (int j = 0; j < d; j++)
            g->lengthscale[j] = lua_tonumber(L, -1);
    } else if (t != LUA_TNIL) {
        memcpy(g->lengthscale, read_numbers(L, -1, "lengthscale", d), (size_t)d * sizeof *g->lengthscale);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    g->outputscale = lb_opt_number(L, 1, "bo.gp", "outputscale", 1.0);
    g->mean = lb_opt_number(L, 1, "bo.gp", "mean", 0.0);
    g->learn_noise = lb_opt_boolean(L, 1, "bo.gp", "learn_noise", 0);
    g->noise_level = lb_opt_number(L, 1, "bo.gp", "noise_level", 0.0);
    if (gp_update(g) != 0) /* checks the hyperparameters */
        lb_lib_error(L);
    return 1;
}

static int l_gp_fit(lua_State *L)
{
    static const char *const keys[] = {"restarts", "seed", "maxeval", NULL};
    lua_settop(L, 2);
    lgp *p = luaL_checkudata(L, 1, GP_MT);
    gp *g = live_gp(L, 1);
    gp_fit_options o;
    gp_fit_defaults(&o);
    o.prior = p->prior;
    uint64_t seed = lb_default_seed(L);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lb_check_keys(L, 2, "gp:fit", keys, 0);
        o.restarts = opt_int(L, 2, "gp:fit", "restarts", o.restarts);
        o.maxeval = opt_int(L, 2, "gp:fit", "maxeval", o.maxeval);
        seed = (uint64_t)lb_opt_integer(L, 2, "gp:fit", "seed", (lua_Integer)seed);
    }
    rng *r = rng_new(seed);
    if (!r)
        lb_lib_error(L);
    int rc = gp_fit(g, &o, r, 0, NULL);
    rng_free(r);
    if (rc != 0)
        lb_lib_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_gp_predict(lua_State *L)
{
    lua_settop(L, 3);
    gp *g = live_gp(L, 1);
    int m = 0, d = g->d, want_cov = 0;
    double *Xs = read_points(L, 2, "gp:predict", &m, &d);
    if (!lua_isnoneornil(L, 3)) {
        static const char *const keys[] = {"cov", NULL};
        luaL_checktype(L, 3, LUA_TTABLE);
        lb_check_keys(L, 3, "gp:predict", keys, 0);
        want_cov = lb_opt_boolean(L, 3, "gp:predict", "cov", 0);
    }
    double *mu = lb_scratch(L, (size_t)m, sizeof *mu), *var = lb_scratch(L, (size_t)m, sizeof *var);
    double *cov = want_cov ? lb_scratch(L, (size_t)m * m, sizeof *cov) : NULL;
    if (gp_predict(g, m, Xs, mu, var, cov) != 0)
        lb_lib_error(L);
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
    gp *g = live_gp(L, 1);
    int np = gp_nparams(g);
    double *grad = lb_scratch(L, (size_t)np, sizeof *grad);
    if (gp_lml_grad(g, grad) != 0)
        lb_lib_error(L);
    lua_pushnumber(L, g->lml);
    push_numbers(L, grad, np);
    return 2;
}

/* The hyperparameters of g as a table; lml adds the log marginal likelihood. */
static void push_params(lua_State *L, const gp *g, int lml)
{
    lua_createtable(L, 0, 8);
    set_number(L, "mean", g->mean);
    push_numbers(L, g->lengthscale, g->d);
    lua_setfield(L, -2, "lengthscale");
    set_number(L, "outputscale", g->outputscale);
    set_number(L, "noise_level", g->learn_noise ? g->noise_level : 0);
    set_number(L, "jitter", g->jitter);
    if (lml)
        set_number(L, "lml", g->lml);
    lua_pushstring(L, gp_kernel_name(g->kernel));
    lua_setfield(L, -2, "kernel");
}

static int l_gp_params(lua_State *L)
{
    push_params(L, live_gp(L, 1), 1);
    return 1;
}

static int l_gp_acquisition(lua_State *L)
{
    static const char *const keys[] = {"kind", "kappa", "samples", "seed", NULL};
    lua_settop(L, 3);
    gp *g = live_gp(L, 1);
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
            lb_lib_error(L);
        o.kappa = lb_opt_number(L, 3, "gp:acquisition", "kappa", o.kappa);
        o.nei_samples = opt_int(L, 3, "gp:acquisition", "samples", o.nei_samples);
        seed = (uint64_t)lb_opt_integer(L, 3, "gp:acquisition", "seed", (lua_Integer)seed);
    }
    double *v = lb_scratch(L, (size_t)m, sizeof *v);
    acq *a = acq_new(g, kind, &o, seed);
    if (!a)
        lb_lib_error(L);
    int rc = acq_values(a, m, Xs, 0, 1, v);
    acq_free(a);
    if (rc != 0)
        lb_lib_error(L);
    push_numbers(L, v, m);
    return 1;
}

/* ---------------------------------------------------------------- bo.optimizer */

typedef struct lopt {
    bo_session *s;
} lopt;

static bo_session *live_opt(lua_State *L, int idx)
{
    lopt *o = luaL_checkudata(L, idx, OPT_MT);
    if (!o->s)
        luaL_argerror(L, idx, "optimizer has been freed");
    return o->s;
}

static int opt_release(lua_State *L)
{
    lopt *o = luaL_checkudata(L, 1, OPT_MT);
    bo_session_free(o->s);
    o->s = NULL;
    return 0;
}

#define SESSION_KEYS                                                                                             \
    "bounds", "integer", "init", "design", "strategy", "acquisition", "seed", "journal", "fresh", "resume", "kernel", \
        "kappa", "samples", "raw_samples", "restarts", "fit_restarts", "optimizer", "priors", "learn_noise",          \
        "min_distance"
static const char *const OPT_KEYS[] = {SESSION_KEYS, NULL};
static const char *const MINIMIZE_KEYS[] = {"f", "iterations", "callback", SESSION_KEYS, NULL};

/* The bounds {{lower, upper}, ...} as two scratch arrays; returns the dimension. */
static int read_bounds(lua_State *L, int tidx, double **lower, double **upper)
{
    if (lua_getfield(L, tidx, "bounds") != LUA_TTABLE)
        lb_error(L, "'bounds' is required: a list of {lower, upper} pairs");
    int d = 0, two = 2;
    double *b = read_points(L, -1, "bounds", &d, &two);
    if (d < 1)
        lb_error(L, "'bounds' has no dimensions");
    *lower = lb_scratch(L, (size_t)d, sizeof **lower);
    *upper = lb_scratch(L, (size_t)d, sizeof **upper);
    for (int j = 0; j < d; j++) {
        (*lower)[j] = b[2 * j];
        (*upper)[j] = b[2 * j + 1];
    }
    return d;
}

/* integer = {dimension numbers} or {one boolean per dimension}, as d flags in scratch (NULL: none). */
static int *read_integer(lua_State *L, int tidx, int d)
{
    if (lua_getfield(L, tidx, "integer") == LUA_TNIL)
        return NULL;
    if (!lua_istable(L, -1))
        lb_error(L, "'integer' must be a list of dimension numbers or of booleans");
    int list = lua_gettop(L);
    int *flags = lb_scratch(L, (size_t)d, sizeof *flags);
    memset(flags, 0, (size_t)d * sizeof *flags);
    lua_Integer len = luaL_len(L, list);
    for (lua_Integer k = 1; k <= len; k++) {
        int t = lua_geti(L, list, k);
        if (t == LUA_TBOOLEAN && len == d) {
            flags[k - 1] = lua_toboolean(L, -1);
        } else if (t == LUA_TBOOLEAN) {
            lb_error(L, "'integer' as booleans needs one per dimension (%d), got %lld", d, (long long)len);
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= d) {
            flags[lua_tointeger(L, -1) - 1] = 1;
        } else {
            lb_error(L, "'integer' element %lld must be a dimension number from 1 to %d or a boolean", (long long)k, d);
        }
        lua_pop(L, 1);
    }
    return flags;
}

/* The settings of a session from the option table at tidx; the strings and scratch it points to stay
 * on the stack. */
static void read_config(lua_State *L, int tidx, const char *what, bo_session_config *c)
{
    double *lower, *upper;
    int d = read_bounds(L, tidx, &lower, &upper);
    bo_session_config_defaults(c, d, lower, upper);
    c->integer = read_integer(L, tidx, d);
    c->strategy = lb_opt_string(L, tidx, what, "strategy", c->strategy);
    c->acquisition = lb_opt_string(L, tidx, what, "acquisition", c->acquisition);
    c->design = lb_opt_string(L, tidx, what, "design", c->design);
    c->kernel = lb_opt_string(L, tidx, what, "kernel", c->kernel);
    c->optimizer = lb_opt_string(L, tidx, what, "optimizer", c->optimizer);
    c->init = lb_opt_integer(L, tidx, what, "init", c->init);
    c->samples = lb_opt_integer(L, tidx, what, "samples", c->samples);
    c->raw_samples = lb_opt_integer(L, tidx, what, "raw_samples", c->raw_samples);
    c->restarts = lb_opt_integer(L, tidx, what, "restarts", c->restarts);
    c->fit_restarts = lb_opt_integer(L, tidx, what, "fit_restarts", c->fit_restarts);
    c->kappa = lb_opt_number(L, tidx, what, "kappa", c->kappa);
    c->min_distance = lb_opt_number(L, tidx, what, "min_distance", c->min_distance);
    c->priors = read_priors(L, tidx, what);
    if (lua_getfield(L, tidx, "learn_noise") != LUA_TNIL)
        c->learn_noise = lb_opt_boolean(L, tidx, what, "learn_noise", 0);
    lua_pop(L, 1);
    c->seed = lb_opt_integer(L, tidx, what, "seed", (lua_Integer)lb_default_seed(L));
    c->journal = lb_opt_string(L, tidx, what, "journal", NULL);
    c->resume = lb_opt_string(L, tidx, what, "resume", c->resume);
    lua_getglobal(L, "boengine"); /* left on the stack: it keeps the strings below alive */
    int engine = lua_gettop(L), fresh = 0;
    if (lua_istable(L, engine)) {
        const char **made_by[4] = {&c->engine, &c->commit, &c->script, &c->script_sha256};
        const char *keys[4] = {"version", "commit", "script", "script_sha256"};
        for (int k = 0; k < 4; k++) {
            lua_getfield(L, engine, keys[k]);
            *made_by[k] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        fresh = lb_opt_boolean(L, engine, "boengine", "fresh", 0); /* --fresh */
    }
    c->fresh = lb_opt_boolean(L, tidx, what, "fresh", fresh);
}

/* Pushes a new optimizer for the option table at tidx (resumed from its journal when there is one). */
static bo_session *push_optimizer(lua_State *L, int tidx, const char *what)
{
    lopt *o = lua_newuserdatauv(L, sizeof *o, 0); /* first, so that the collector owns the session */
    o->s = NULL;
    luaL_setmetatable(L, OPT_MT);
    int top = lua_gettop(L);
    bo_session_config c;
    read_config(L, tidx, what, &c);
    if (!(o->s = bo_session_open(&c)))
        lb_lib_error(L);
    lua_settop(L, top);
    return o->s;
}

/* Pushes record r {i, x, y, se, seconds, time, info}. */
static void push_record(lua_State *L, bo_session *s, const bo_record *r)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, r->index);
    lua_setfield(L, -2, "i");
    push_numbers(L, r->x, bo_session_dim(s));
    lua_setfield(L, -2, "x");
    set_number(L, "y", r->y);
    if (isfinite(r->se))
        set_number(L, "se", r->se);
    if (isfinite(r->seconds))
        set_number(L, "seconds", r->seconds);
    if (isfinite(r->time))
        set_number(L, "time", r->time);
    if (r->info) {
        lb_json_push(L, r->info, "info");
        lua_setfield(L, -2, "info");
    }
}

/* Pushes the recommended evaluation {i, x, y, se, mu, sd, info}. */
static void push_best(lua_State *L, bo_session *s)
{
    bo_best_point bp;
    if (bo_session_best(s, &bp) != 0)
        lb_lib_error(L);
    push_record(L, s, bo_session_record(s, bp.index));
    lua_pushnil(L);
    lua_setfield(L, -2, "seconds");
    lua_pushnil(L);
    lua_setfield(L, -2, "time");
    set_number(L, "mu", bp.mu);
    if (isfinite(bp.sd))
        set_number(L, "sd", bp.sd);
}

static void push_history(lua_State *L, bo_session *s)
{
    int n = bo_session_count(s);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        push_record(L, s, bo_session_record(s, i));
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_opt_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.optimizer", OPT_KEYS, 0);
    push_optimizer(L, 1, "bo.optimizer");
    return 1;
}

static int l_opt_ask(lua_State *L)
{
    bo_session *s = live_opt(L, 1);
    double *x = lb_scratch(L, (size_t)bo_session_dim(s), sizeof *x);
    if (bo_session_ask(s, x, NULL) != 0)
        lb_lib_error(L);
    push_numbers(L, x, bo_session_dim(s));
    return 1;
}

/* optimizer:propose(number, told, pending) -> x: proposal `number` seeing the first `told`
 * evaluations and the pending points (a list, evaluations told + 1 .. number - 1). */
static int l_opt_propose(lua_State *L)
{
    lua_settop(L, 4);
    bo_session *s = live_opt(L, 1);
    int d = bo_session_dim(s), m = 0;
    lua_Integer number = luaL_checkinteger(L, 2), told = luaL_checkinteger(L, 3);
    if (told < 0 || told > INT_MAX || number < 1)
        lb_error(L, "optimizer:propose: number must be >= 1 and told >= 0, got %lld and %lld", (long long)number,
                 (long long)told);
    double *P = lua_isnil(L, 4) ? NULL : read_points(L, 4, "optimizer:propose: pending", &m, &d);
    double *x = lb_scratch(L, (size_t)d, sizeof *x);
    if (bo_session_propose_pending(s, (int64_t)number, (int)told, m, P, x) != 0)
        lb_lib_error(L);
    push_numbers(L, x, d);
    return 1;
}

static int l_opt_tell(lua_State *L)
{
    lua_settop(L, 5);
    bo_session *s = live_opt(L, 1);
    double *x = read_point(L, 2, "x", bo_session_dim(s));
    bo_outcome o;
    if (lua_type(L, 3) != LUA_TNUMBER)
        lb_error(L, "y must be a finite number, got %s", luaL_tolstring(L, 3, NULL));
    read_outcome(L, 3, 4, &o, "y", "optimizer:tell");
    o.info = lua_isnil(L, 5) ? NULL : lb_json_encode(L, 5, "info");
    if (bo_session_tell(s, x, &o, NAN) != 0)
        lb_lib_error(L);
    push_record(L, s, bo_session_record(s, bo_session_count(s) - 1));
    return 1;
}

static int l_opt_best(lua_State *L)
{
    push_best(L, live_opt(L, 1));
    return 1;
}

static int l_opt_history(lua_State *L)
{
    push_history(L, live_opt(L, 1));
    return 1;
}

static int l_opt_count(lua_State *L)
{
    lua_pushinteger(L, bo_session_count(live_opt(L, 1)));
    return 1;
}

static int l_opt_predict(lua_State *L)
{
    lua_settop(L, 2);
    bo_session *s = live_opt(L, 1);
    int m = 0, d = bo_session_dim(s);
    double *X = read_points(L, 2, "optimizer:predict", &m, &d);
    double *mu = lb_scratch(L, (size_t)m, sizeof *mu), *var = lb_scratch(L, (size_t)m, sizeof *var);
    bo *b = bo_session_bo(s);
    if (!b || bo_predict(b, m, X, mu, var) != 0)
        lb_lib_error(L);
    push_numbers(L, mu, m);
    push_numbers(L, var, m);
    return 2;
}

static int l_opt_acquisition(lua_State *L)
{
    lua_settop(L, 2);
    bo_session *s = live_opt(L, 1);
    int m = 0, d = bo_session_dim(s);
    double *X = read_points(L, 2, "optimizer:acquisition", &m, &d);
    double *v = lb_scratch(L, (size_t)m, sizeof *v);
    bo *b = bo_session_bo(s);
    if (!b || bo_acquisition(b, m, X, v) != 0)
        lb_lib_error(L);
    push_numbers(L, v, m);
    return 1;
}

static int l_opt_model(lua_State *L)
{
    bo *b = bo_session_bo(live_opt(L, 1));
    const gp *g = b ? bo_model(b) : NULL;
    if (!g)
        lb_lib_error(L);
    double ym, ys;
    bo_y_scale(b, &ym, &ys);
    push_params(L, g, 0);
    set_number(L, "y_mean", ym);
    set_number(L, "y_sd", ys);
    return 1;
}

/* optimizer:rescore(function(record) return y [, se] end [, n]): the first n evaluations (default
 * all) re-scored and the model rebuilt from them, nothing evaluated again. */
static int rescore_one(void *ctx, const bo_record *r, bo_outcome *out)
{
    lua_State *L = ctx;
    lua_pushvalue(L, 2);
    push_record(L, lua_touserdata(L, 4), r);
    lua_call(L, 1, 2);
    char what[96];
    snprintf(what, sizeof what, "the re-scoring function returned %s for evaluation %d", luaL_typename(L, -2),
             r->index);
    read_outcome(L, -2, -1, out, what, "its second result");
    lua_pop(L, 2);
    return 0;
}

static int l_opt_rescore(lua_State *L)
{
    lua_settop(L, 3);
    bo_session *s = live_opt(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Integer n = luaL_optinteger(L, 3, bo_session_count(s));
    lua_pushlightuserdata(L, s); /* slot 4, for rescore_one */
    if (bo_session_rescore(s, n < 0 ? 0 : n > INT_MAX ? INT_MAX : (int)n, rescore_one, L) != 0)
        lb_lib_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_opt_close(lua_State *L)
{
    lopt *o = luaL_checkudata(L, 1, OPT_MT);
    if (o->s)
        bo_session_close_journal(o->s);
    return 0;
}

static int opt_tostring(lua_State *L)
{
    lopt *o = luaL_checkudata(L, 1, OPT_MT);
    if (!o->s)
        lua_pushliteral(L, "bo.optimizer(freed)");
    else
        lua_pushfstring(L, "bo.optimizer(%d dimensions, %d evaluations)", bo_session_dim(o->s),
                        bo_session_count(o->s));
    return 1;
}

/* ---------------------------------------------------------------- bo.minimize */

/* The stack of l_minimize: its option table at 1, the optimizer at OPT, the info of the evaluation
 * being told at INFO, and GUARD, a to-be-closed value that closes the journal however the run ends
 * (an error in f would otherwise keep its lock until the optimizer is collected). */
enum { OPT = 2, INFO = 3, GUARD = 4 };

static int guard_close(lua_State *L)
{
    bo_session **s = luaL_checkudata(L, 1, GUARD_MT);
    if (*s)
        bo_session_close_journal(*s);
    *s = NULL;
    return 0;
}

static int minimize_evaluate(void *ctx, int64_t number, const double *x, bo_outcome *out)
{
    lua_State *L = ctx;
    lua_getfield(L, 1, "f");
    push_numbers(L, x, bo_session_dim(live_opt(L, OPT)));
    lua_pushinteger(L, (lua_Integer)number);
    lua_call(L, 2, 3); /* an error in f leaves the session as it was */
    char what[80];
    snprintf(what, sizeof what, "f returned %s for evaluation %lld", luaL_typename(L, -3), (long long)number);
    read_outcome(L, -3, -2, out, what, "f's second result");
    if (!lua_isnil(L, -1))
        lb_json_encode(L, -1, "info");
    else
        lua_pushnil(L);
    lua_replace(L, INFO); /* kept there until the session has copied it */
    out->info = lua_tostring(L, INFO);
    lua_pop(L, 3);
    return 0;
}

static int minimize_after(void *ctx, bo_session *s, const bo_record *r)
{
    lua_State *L = ctx;
    if (lua_getfield(L, 1, "callback") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushinteger(L, r->index);
    push_record(L, s, r);
    push_best(L, s);
    lua_setfield(L, -2, "best");
    lua_pushvalue(L, OPT);
    lua_call(L, 3, 1);
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

static int l_minimize(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "bo.minimize", MINIMIZE_KEYS, 0);
    if (lua_getfield(L, 1, "f") != LUA_TFUNCTION)
        lb_error(L, "'f' must be a function (x, i) returning y [, se [, info]]");
    int cbt = lua_getfield(L, 1, "callback");
    if (cbt != LUA_TNIL && cbt != LUA_TFUNCTION)
        lb_error(L, "'callback' must be a function (i, record, optimizer)");
    lua_settop(L, 1);
    bo_run run = {.iterations = lb_opt_integer(L, 1, "bo.minimize", "iterations", 20),
                  .evaluate = minimize_evaluate,
                  .evaluate_ctx = L,
                  .after = minimize_after,
                  .after_ctx = L};
    bo_session *s = push_optimizer(L, 1, "bo.minimize"); /* at OPT */
    lua_pushnil(L);                                      /* INFO */
    bo_session **guard = lua_newuserdatauv(L, sizeof *guard, 0);
    *guard = s;
    luaL_setmetatable(L, GUARD_MT);
    lua_toclose(L, GUARD);
    int stopped;
    if (bo_session_run(s, &run, &stopped) != 0)
        lb_lib_error(L);
    bo_session_close_journal(s);
    lua_createtable(L, 0, 4);
    if (bo_session_count(s) > 0) {
        push_best(L, s);
        lua_setfield(L, -2, "best");
    }
    push_history(L, s);
    lua_setfield(L, -2, "history");
    lua_pushvalue(L, OPT);
    lua_setfield(L, -2, "optimizer");
    lua_pushboolean(L, stopped);
    lua_setfield(L, -2, "stopped");
    return 1;
}

/* ---------------------------------------------------------------- bo.functions */

static int l_function(lua_State *L)
{
    lua_settop(L, 3);
    const bo_function *f = lua_touserdata(L, lua_upvalueindex(1));
    int d = f->dim;
    if (d == 0) {
        if (lua_type(L, 1) == LUA_TNUMBER)
            d = 1;
        else if (lua_istable(L, 1) && luaL_len(L, 1) <= INT_MAX)
            d = (int)luaL_len(L, 1);
        if (d < 1)
            lb_error(L, "x must be a non-empty list of numbers");
    }
    double *x = read_point(L, 1, "x", d), y;
    double sigma = luaL_optnumber(L, 2, 0);
    if (sigma > 0 && !lua_isinteger(L, 3))
        lb_error(L, "noise needs an integer seed as the third argument");
    if (bo_function_eval(f, d, x, sigma, (uint64_t)luaL_optinteger(L, 3, 0), &y) != 0)
        lb_lib_error(L);
    lua_pushnumber(L, y);
    return 1;
}

static int l_function_info(lua_State *L)
{
    const bo_function *f = bo_function_find(luaL_checkstring(L, 1));
    if (!f)
        lb_lib_error(L);
    lua_Integer d = f->dim ? f->dim : luaL_optinteger(L, 2, 2);
    if (d < 1 || d > 1000)
        lb_error(L, "dimension %lld out of range", (long long)d);
    if (f->dim && !lua_isnoneornil(L, 2) && lua_tointeger(L, 2) != f->dim)
        lb_error(L, "%s has dimension %d", f->name, f->dim);
    double *lo = lb_scratch(L, (size_t)d, sizeof *lo), *hi = lb_scratch(L, (size_t)d, sizeof *hi);
    double *am = lb_scratch(L, (size_t)d, sizeof *am);
    f->bounds((int)d, lo, hi);
    f->argmin((int)d, am);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, d);
    lua_setfield(L, -2, "dim");
    set_number(L, "minimum", f->minimum);
    push_numbers(L, am, (int)d);
    lua_setfield(L, -2, "argmin");
    lua_createtable(L, (int)d, 0);
    for (int j = 0; j < d; j++) {
        double pair[2] = {lo[j], hi[j]};
        push_numbers(L, pair, 2);
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "bounds");
    return 1;
}

/* ---------------------------------------------------------------- module */

static const luaL_Reg gp_meta[] = {
    {"__gc", gp_release}, {"__close", gp_release}, {"__tostring", gp_tostring}, {NULL, NULL}};
static const luaL_Reg gp_methods[] = {{"fit", l_gp_fit},       {"predict", l_gp_predict},
                                      {"lml", l_gp_lml},       {"params", l_gp_params},
                                      {"acquisition", l_gp_acquisition}, {NULL, NULL}};
static const luaL_Reg opt_meta[] = {
    {"__gc", opt_release}, {"__close", opt_release}, {"__tostring", opt_tostring}, {NULL, NULL}};
static const luaL_Reg opt_methods[] = {{"ask", l_opt_ask},         {"tell", l_opt_tell},
                                       {"propose", l_opt_propose},
                                       {"best", l_opt_best},       {"history", l_opt_history},
                                       {"count", l_opt_count},     {"predict", l_opt_predict},
                                       {"acquisition", l_opt_acquisition}, {"model", l_opt_model},
                                       {"rescore", l_opt_rescore}, {"close", l_opt_close},
                                       {NULL, NULL}};
static const luaL_Reg bo_funcs[] = {{"gp", l_gp_new}, {"optimizer", l_opt_new}, {"minimize", l_minimize}, {NULL, NULL}};

int luaopen_bo(lua_State *L)
{
    lb_new_class(L, GP_MT, "gp", gp_meta, gp_methods);
    lua_pop(L, 1);
    lb_new_class(L, OPT_MT, "optimizer", opt_meta, opt_methods);
    lua_pop(L, 1);
    luaL_newmetatable(L, GUARD_MT);
    lua_pushcfunction(L, guard_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, bo_funcs);
    lua_newtable(L);
    for (const bo_function *f = bo_function_list(); f->name; f++) {
        lua_pushlightuserdata(L, (void *)f);
        lua_pushcclosure(L, l_function, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pushcfunction(L, l_function_info);
    lua_setfield(L, -2, "info");
    lb_name_functions(L, -1, "bo.functions", ".");
    lua_setfield(L, -2, "functions");
    return 1;
}
