#include "lua/l_compress.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "lua/l_nn.h"
#include "lua/lb.h"
#include "nn/exec.h"

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

/* layers = "pattern" or {"pattern", ...} → a list of C strings (valid while the table lives). */
static int read_layers(lua_State *L, const char *what, const char **out, int max)
{
    int t = lua_getfield(L, 1, "layers");
    int n = 0;
    if (t == LUA_TSTRING) {
        out[n++] = lua_tostring(L, -1);
    } else if (t == LUA_TTABLE) {
        int len = (int)luaL_len(L, -1);
        if (len > max)
            lb_error(L, "%s: at most %d layer patterns", what, max);
        for (int i = 1; i <= len; i++) {
            if (lua_geti(L, -1, i) != LUA_TSTRING)
                lb_error(L, "%s: layers[%d] must be a string (a layer name or pattern)", what, i);
            out[n++] = lua_tostring(L, -1);
            lua_pop(L, 1); /* the table keeps the string alive */
        }
    } else {
        lb_error(L, "%s: 'layers' must be a layer name or pattern, or a list of them (e.g. \"features.*\")", what);
    }
    lua_pop(L, 1);
    if (n == 0)
        lb_error(L, "%s: 'layers' is empty", what);
    return n;
}

static int is_pair(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || luaL_len(L, idx) != 2)
        return 0;
    int ok = lua_geti(L, idx, 1) == LUA_TNUMBER && lua_geti(L, idx, 2) == LUA_TNUMBER;
    lua_pop(L, 2);
    return ok;
}

static void pair(lua_State *L, int idx, double *lo, double *hi)
{
    lua_geti(L, idx, 1);
    lua_geti(L, idx, 2);
    *lo = lua_tonumber(L, -2);
    *hi = lua_tonumber(L, -1);
    lua_pop(L, 2);
}

/* bounds = {lo, hi} for every layer, or {{lo, hi}, ...} one pair per layer in order. */
static void read_bounds(lua_State *L, const char *what, cp_family *f)
{
    int t = lua_getfield(L, 1, "bounds");
    int top = lua_gettop(L);
    double lo, hi;
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (is_pair(L, top)) {
        pair(L, top, &lo, &hi);
        if (cp_family_set_bounds(f, -1, lo, hi) != 0)
            lb_lib_error(L);
    } else if (t == LUA_TTABLE && luaL_len(L, top) == f->count) {
        for (int i = 1; i <= f->count; i++) {
            lua_geti(L, top, i);
            if (!is_pair(L, -1))
                lb_error(L, "%s: bounds[%d] must be a pair {lo, hi}", what, i);
            pair(L, -1, &lo, &hi);
            lua_pop(L, 1);
            if (cp_family_set_bounds(f, i - 1, lo, hi) != 0)
                lb_lib_error(L);
        }
    } else {
        lb_error(L, "%s: 'bounds' must be {lo, hi} or a list of %d such pairs (one per layer)", what, f->count);
    }
    lua_pop(L, 1);
}

static int declare(lua_State *L, cp_kind kind, const char *const *keys)
{
    char what[64];
    snprintf(what, sizeof what, "compress.%s", cp_kind_name(kind));
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, what, keys, 0);
    if (lua_getfield(L, 1, "net") == LUA_TNIL)
        lb_error(L, "%s: 'net' is required (the reference network)", what);
    int net_idx = lua_gettop(L);
    if (!luaL_testudata(L, net_idx, "boengine.net"))
        lb_error(L, "%s: 'net' must be a network, got %s", what, luaL_typename(L, net_idx));
    nn_net *net = ln_check(L, net_idx);
    const char *patterns[64];
    int np = read_layers(L, what, patterns, 64);
    cp_options o = {0};
    const char *mode = lb_opt_string(L, 1, what, "rank", "fraction");
    if (strcmp(mode, "fraction") == 0)
        o.mode = CP_FRACTION;
    else if (strcmp(mode, "absolute") == 0)
        o.mode = CP_ABSOLUTE;
    else if (strcmp(mode, "energy") == 0 && kind == CP_SVD)
        o.mode = CP_ENERGY;
    else
        lb_error(L, "%s: 'rank' must be \"fraction\" or \"absolute\"%s, got \"%s\"", what,
                 kind == CP_SVD ? " or \"energy\"" : "", mode);
    o.dense = lb_opt_boolean(L, 1, what, "dense", 0);
    lua_Integer hooi = lb_opt_integer(L, 1, what, "hooi", 0);
    if (hooi < 0 || hooi > 100)
        lb_error(L, "%s: 'hooi' must be between 0 and 100 iterations, got %lld", what, (long long)hooi);
    o.hooi = (int)hooi;
    lua_Integer multiple = lb_opt_integer(L, 1, what, "multiple", 1);
    if (multiple < 1 || multiple > 4096)
        lb_error(L, "%s: 'multiple' must be between 1 and 4096, got %lld", what, (long long)multiple);
    o.multiple = (int)multiple;
    family_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->f = NULL;
    luaL_setmetatable(L, FAMILY_MT);
    lua_pushvalue(L, net_idx);
    lua_setiuservalue(L, -2, 1);
    if (!(b->f = cp_family_new(kind, net, np, patterns, &o)))
        return lb_lib_error(L);
    read_bounds(L, what, b->f);
    return 1;
}

static const char *const rank_keys[] = {"net", "layers", "bounds", "rank", "multiple", NULL};
static int l_vh(lua_State *L) { return declare(L, CP_VH, rank_keys); }
static int l_svd(lua_State *L)
{
    static const char *const keys[] = {"net", "layers", "bounds", "rank", "dense", "multiple", NULL};
    return declare(L, CP_SVD, keys);
}
static int l_tucker2(lua_State *L)
{
    static const char *const keys[] = {"net", "layers", "bounds", "rank", "hooi", "multiple", NULL};
    return declare(L, CP_TUCKER2, keys);
}
static const char *const plain_keys[] = {"net", "layers", "bounds", NULL};
static int l_prune_channels(lua_State *L) { return declare(L, CP_PRUNE_CHANNELS, plain_keys); }
static int l_prune_weights(lua_State *L) { return declare(L, CP_PRUNE_WEIGHTS, plain_keys); }
static int l_quantize(lua_State *L) { return declare(L, CP_QUANTIZE, plain_keys); }

/* fam:layers() → {{name, lo, hi, integer, max_rank, break_even}, ...} */
static int family_layers(lua_State *L)
{
    cp_family *f = lc_check(L, 1);
    lua_createtable(L, f->count, 0);
    for (int i = 0; i < f->count; i++) {
        const cp_layer *l = &f->layers[i];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, l->name);
        lua_setfield(L, -2, "name");
        lua_pushnumber(L, l->lo);
        lua_setfield(L, -2, "lo");
        lua_pushnumber(L, l->hi);
        lua_setfield(L, -2, "hi");
        lua_pushboolean(L, l->integer);
        lua_setfield(L, -2, "integer");
        lua_pushinteger(L, l->max_rank);
        lua_setfield(L, -2, "max_rank");
        if (f->kind == CP_VH || f->kind == CP_SVD) {
            lua_pushinteger(L, l->break_even);
            lua_setfield(L, -2, "break_even");
        }
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* fam:prepare() computes the factors now (otherwise the first compress.apply does); returns fam. */
static int family_prepare(lua_State *L)
{
    if (cp_family_prepare(lc_check(L, 1)) != 0)
        return lb_lib_error(L);
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
    lua_pushstring(L, cp_kind_name(lc_check(L, 1)->kind));
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
    lua_pushfstring(L, "compress.%s(%d layers: %s%s)", cp_kind_name(f->kind), f->count, f->layers[0].name,
                    f->count > 1 ? ", ..." : "");
    return 1;
}

/* families argument: one family or a list of them. */
static int read_families(lua_State *L, int idx, cp_family **out, int max)
{
    cp_family *one = lc_test(L, idx);
    if (one) {
        out[0] = one;
        return 1;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        lb_error(L, "compress.apply: expected a family or a list of families, got %s", luaL_typename(L, idx));
    int n = (int)luaL_len(L, idx);
    if (n > max)
        lb_error(L, "compress.apply: at most %d families", max);
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (!(out[i - 1] = lc_test(L, -1)))
            lb_error(L, "compress.apply: families[%d] is %s, not a family (compress.vh{...}, ...)", i,
                     luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return n;
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

static double ratio(double a, double b) { return b > 0 ? a / b : 1; }

static void push_info(lua_State *L, const cp_stats *s, cp_family *const *fams)
{
    lua_createtable(L, 0, 10);
    set_num(L, "params", ratio((double)s->weights, (double)s->weights_ref));
    set_num(L, "params_net", ratio((double)s->params, (double)s->params_ref));
    set_num(L, "bits", ratio(s->bits, s->bits_ref));
    set_num(L, "bits_net", ratio(s->net_bits, s->net_bits_ref));
    set_num(L, "flops", ratio((double)s->macs, (double)s->macs_ref));
    set_num(L, "flops_layers", ratio((double)s->layer_macs, (double)s->layer_macs_ref));
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
    lua_createtable(L, 0, 2);
    set_num(L, "prepare", s->t_prepare);
    set_num(L, "truncate", s->t_truncate);
    set_num(L, "rebuild", s->t_rebuild);
    lua_setfield(L, -2, "time");
    lua_createtable(L, s->nchoices, 0);
    for (int i = 0; i < s->nchoices; i++) {
        const cp_choice *c = &s->choices[i];
        const cp_family *f = fams[c->family];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, f->layers[c->layer].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, cp_kind_name(f->kind));
        lua_setfield(L, -2, "family");
        set_num(L, "theta", c->theta);
        set_int(L, "weights", c->weights);
        set_int(L, "weights_ref", c->weights_ref);
        switch (f->kind) {
        case CP_VH:
        case CP_SVD:
            set_int(L, "rank", c->rank);
            break;
        case CP_TUCKER2:
            lua_createtable(L, 2, 0);
            lua_pushinteger(L, c->rank);
            lua_seti(L, -2, 1);
            lua_pushinteger(L, c->rank2);
            lua_seti(L, -2, 2);
            lua_setfield(L, -2, "ranks");
            break;
        case CP_PRUNE_CHANNELS:
            set_int(L, "keep", c->rank);
            break;
        case CP_PRUNE_WEIGHTS:
            set_num(L, "kept", c->kept);
            break;
        case CP_QUANTIZE:
            set_int(L, "bits", c->rank);
            break;
        default:
            break;
        }
        lua_seti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "layers");
}

/* compress.apply(net, families, theta) → candidate network, info. */
static int l_apply(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    cp_family *fams[64];
    int nf = read_families(L, 2, fams, 64);
    for (int i = 0; i < nf; i++)
        if (fams[i]->net != net)
            lb_error(L, "compress.apply: family #%d (%s) was declared on another network", i + 1,
                     cp_kind_name(fams[i]->kind));
    int dim = cp_dim(nf, fams);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (luaL_len(L, 3) != dim)
        lb_error(L, "compress.apply: theta has %d entries, the families have %d layers", (int)luaL_len(L, 3), dim);
    double *theta = malloc((size_t)(dim ? dim : 1) * sizeof *theta);
    if (!theta)
        return lb_error(L, "out of memory");
    for (int i = 1; i <= dim; i++) {
        int ok;
        lua_geti(L, 3, i);
        theta[i - 1] = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) {
            free(theta);
            return lb_error(L, "compress.apply: theta[%d] is not a number", i);
        }
    }
    cp_stats st;
    nn_net *cand = cp_apply(net, nf, fams, theta, &st);
    free(theta);
    if (!cand)
        return lb_error(L, "compress.apply: %s", err_msg());
    int64_t owned = 0; /* the collector sees only the box: tell it what the candidate holds */
    for (int i = 0; i < cand->count; i++)
        if (!cand->nodes[i].shared)
            owned += nn_node_param_count(&cand->nodes[i]);
    ln_push_sharing(L, cand, 1);
    lua_gc(L, LUA_GCSTEP, (int)((owned * (int64_t)sizeof(float)) >> 10));
    push_info(L, &st, fams);
    cp_stats_free(&st);
    return 2;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* compress.latency(net [, {batch = 1, runs = 10, warmup = 2, size = nominal}]) → median seconds
 * of one forward pass on a random batch. */
static int l_latency(lua_State *L)
{
    static const char *const keys[] = {"batch", "runs", "warmup", "size", NULL};
    nn_net *net = ln_check(L, 1);
    int opts = lua_istable(L, 2);
    if (opts)
        lb_check_keys(L, 2, "compress.latency", keys, 0);
    lua_Integer batch = opts ? lb_opt_integer(L, 2, "compress.latency", "batch", 1) : 1;
    lua_Integer runs = opts ? lb_opt_integer(L, 2, "compress.latency", "runs", 10) : 10;
    lua_Integer warmup = opts ? lb_opt_integer(L, 2, "compress.latency", "warmup", 2) : 2;
    lua_Integer size = opts ? lb_opt_integer(L, 2, "compress.latency", "size", net->size) : net->size;
    if (batch < 1 || runs < 1 || runs > 100000 || warmup < 0 || size < 1)
        lb_error(L, "compress.latency: batch, runs and size must be positive, warmup not negative");
    int64_t shape[4] = {batch, net->channels, size, size};
    tensor *x = tensor_new(4, shape);
    double *t = malloc((size_t)runs * sizeof *t);
    rng *r = rng_new(1);
    if (!x || !t || !r) {
        tensor_free(x);
        free(t);
        rng_free(r);
        return lb_error(L, "out of memory");
    }
    for (int64_t i = 0; i < x->numel; i++)
        x->data[i] = (float)rng_normal(r);
    rng_free(r);
    int ok = 1;
    for (lua_Integer i = 0; i < warmup + runs && ok; i++) {
        double start = now_seconds();
        tensor *y = nn_forward(net, x);
        ok = y != NULL;
        tensor_free(y);
        if (i >= warmup)
            t[i - warmup] = now_seconds() - start;
    }
    tensor_free(x);
    if (!ok) {
        free(t);
        return lb_error(L, "compress.latency: %s", err_msg());
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    lua_pushnumber(L, runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]));
    free(t);
    return 1;
}

/* compress.measure(net) → {params = , macs = } at the nominal input size. */
static int l_measure(lua_State *L)
{
    int64_t params, macs;
    if (cp_measure(ln_check(L, 1), &params, &macs) != 0)
        return lb_lib_error(L);
    lua_createtable(L, 0, 2);
    set_int(L, "params", params);
    set_int(L, "macs", macs);
    return 1;
}

static const luaL_Reg family_methods[] = {{"layers", family_layers}, {"dim", family_dim}, {"kind", family_kind},
                                          {"net", family_net},       {"prepare", family_prepare}, {NULL, NULL}};

static const luaL_Reg family_meta[] = {{"__gc", family_gc},
                                       {"__tostring", family_tostring},
                                       {"__len", family_dim},
                                       {"__index", NULL},
                                       {NULL, NULL}};

static const luaL_Reg compress_funcs[] = {
    {"vh", l_vh},           {"svd", l_svd},         {"tucker2", l_tucker2},   {"prune_channels", l_prune_channels},
    {"prune_weights", l_prune_weights}, {"quantize", l_quantize}, {"apply", l_apply}, {"latency", l_latency},
    {"measure", l_measure}, {NULL, NULL}};

int luaopen_compress(lua_State *L)
{
    luaL_newmetatable(L, FAMILY_MT);
    luaL_setfuncs(L, family_meta, 0);
    luaL_newlib(L, family_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, compress_funcs);
    return 1;
}
