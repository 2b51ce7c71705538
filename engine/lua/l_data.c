#include "lua/l_data.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/par.h"
#include "core/timer.h"
#include "lua/l_tensor.h"
#include "lua/lb.h"
#include "train/loss.h"

#define DATASET_MT "boengine.dataset"

dataset *ld_test(lua_State *L, int idx)
{
    dataset **box = luaL_testudata(L, idx, DATASET_MT);
    return box ? *box : NULL;
}

dataset *ld_check(lua_State *L, int idx)
{
    dataset **box = luaL_checkudata(L, idx, DATASET_MT);
    if (!*box)
        luaL_argerror(L, idx, "dataset has been closed");
    return *box;
}

static void push_dataset(lua_State *L, dataset *d)
{
    dataset **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = d;
    luaL_setmetatable(L, DATASET_MT);
}

static int d_gc(lua_State *L)
{
    dataset **box = luaL_checkudata(L, 1, DATASET_MT);
    ds_free(*box);
    *box = NULL;
    return 0;
}

/* A list of exactly 3 numbers (mean or std per channel) at field key of the table at idx. */
static void opt_triple(lua_State *L, int idx, const char *what, const char *key, float *v)
{
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL) {
        if (t != LUA_TTABLE || luaL_len(L, -1) != 3)
            lb_error(L, "%s: '%s' must be a list of 3 numbers (one per channel)", what, key);
        for (int c = 0; c < 3; c++) {
            lua_geti(L, -1, c + 1);
            int ok;
            v[c] = (float)lua_tonumberx(L, -1, &ok);
            if (!ok)
                lb_error(L, "%s: '%s' must be a list of 3 numbers (one per channel)", what, key);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* data.fashion_mnist{split =, path =, normalize =, channels =, size =, fit =, mean =, std =} */
static int l_fashion_mnist(lua_State *L)
{
    static const char *const keys[] = {"split", "path", "normalize", "channels", "size", "fit", "mean", "std", NULL};
    const char *what = "data.fashion_mnist";
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    lb_check_keys(L, 1, what, keys, 0);
    ds_fashion_opts o;
    ds_fashion_defaults(&o);
    const char *split = lb_opt_string(L, 1, what, "split", "test");
    if (strcmp(split, "train") && strcmp(split, "test"))
        return lb_error(L, "%s: split must be \"train\" or \"test\", got \"%s\"", what, split);
    o.train = !strcmp(split, "train");
    o.path = lb_opt_string(L, 1, what, "path", o.path);
    o.normalize = lb_opt_boolean(L, 1, what, "normalize", o.normalize);
    o.channels = (int)lb_opt_integer(L, 1, what, "channels", o.channels);
    if (o.channels != 1 && o.channels != 3)
        return lb_error(L, "%s: channels must be 1 or 3, got %d", what, o.channels);
    lua_Integer size = lb_opt_integer(L, 1, what, "size", o.size);
    if (size < 1 || size > 4096)
        return lb_error(L, "%s: size must be in 1..4096, got %lld", what, (long long)size);
    o.size = (int)size;
    const char *fit = lb_opt_string(L, 1, what, "fit", "pad");
    if (strcmp(fit, "pad") && strcmp(fit, "resize"))
        return lb_error(L, "%s: fit must be \"pad\" or \"resize\", got \"%s\"", what, fit);
    o.resize = !strcmp(fit, "resize");
    if (!o.resize && o.size < 28)
        return lb_error(L, "%s: size %d is smaller than 28: use fit = \"resize\" to shrink", what, o.size);
    o.mean = (float)lb_opt_number(L, 1, what, "mean", o.mean);
    o.std = (float)lb_opt_number(L, 1, what, "std", o.std);
    if (!(o.std > 0))
        return lb_error(L, "%s: std must be positive", what);
    dataset *d = ds_fashion_mnist(&o);
    if (!d)
        return lb_lib_error(L);
    push_dataset(L, d);
    return 1;
}

/* data.folder{path =, size = 224, resize = round(size * 256 / 224), mean = {...}, std = {...}} */
static int l_folder(lua_State *L)
{
    static const char *const keys[] = {"path", "size", "resize", "mean", "std", NULL};
    const char *what = "data.folder";
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, what, keys, 0);
    const char *path = lb_opt_string(L, 1, what, "path", NULL);
    if (!path)
        return lb_error(L, "%s: 'path' (the folder of class subfolders) is required", what);
    lua_Integer size = lb_opt_integer(L, 1, what, "size", 224);
    if (size < 1 || size > 4096)
        return lb_error(L, "%s: size must be in 1..4096, got %lld", what, (long long)size);
    img_eval t;
    img_eval_default(&t, (int)size);
    lua_Integer resize = lb_opt_integer(L, 1, what, "resize", t.resize);
    if (resize < size || resize > 65535)
        return lb_error(L, "%s: resize must be in %lld..65535 (at least size), got %lld", what, (long long)size,
                        (long long)resize);
    t.resize = (int)resize;
    opt_triple(L, 1, what, "mean", t.mean);
    opt_triple(L, 1, what, "std", t.std);
    for (int c = 0; c < 3; c++)
        if (!(t.std[c] > 0))
            return lb_error(L, "%s: std must be positive", what);
    dataset *d = ds_folder(path, &t);
    if (!d)
        return lb_lib_error(L);
    int64_t skipped = ds_skipped_files(d);
    if (skipped == 1)
        log_info("%s: %s: skipped %s: not a .png/.jpg/.jpeg file nor a class folder", what, path, ds_first_skipped(d));
    else if (skipped > 1)
        log_info("%s: %s: skipped %lld entries that are not .png/.jpg/.jpeg files nor class folders (the first: %s)",
                 what, path, (long long)skipped, ds_first_skipped(d));
    push_dataset(L, d);
    return 1;
}

static int d_size(lua_State *L)
{
    lua_pushinteger(L, ds_size(ld_check(L, 1)));
    return 1;
}

static int d_classes(lua_State *L)
{
    dataset *d = ld_check(L, 1);
    int k = ds_num_classes(d);
    lua_createtable(L, k, 0);
    for (int i = 0; i < k; i++) {
        lua_pushstring(L, ds_class_name(d, i));
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* {C, H, W} of one example. */
static int d_shape(lua_State *L)
{
    int64_t chw[3];
    ds_example_shape(ld_check(L, 1), chw);
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, chw[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int d_tostring(lua_State *L)
{
    dataset *d = ld_check(L, 1);
    int64_t chw[3];
    ds_example_shape(d, chw);
    lua_pushfstring(L, "dataset(%s: %I examples of %Ix%Ix%I, %d classes)", ds_name(d), (lua_Integer)ds_size(d),
                    (lua_Integer)chw[0], (lua_Integer)chw[1], (lua_Integer)chw[2], ds_num_classes(d));
    return 1;
}

/* Pushes the batch of the n indices idx: x (tensor), labels (0-based list), indices (1-based list). */
static int push_batch(lua_State *L, dataset *d, int64_t n, const int64_t *idx)
{
    int *labels = lb_scratch(L, (size_t)n, sizeof *labels);
    tensor *x = ds_batch(d, n, idx, labels);
    if (!x)
        return lb_lib_error(L);
    lt_push(L, x);
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, (int)n, 0);
    for (int64_t j = 0; j < n; j++) {
        lua_pushinteger(L, labels[j]);
        lua_seti(L, -3, j + 1);
        lua_pushinteger(L, idx[j] + 1);
        lua_seti(L, -2, j + 1);
    }
    return 3;
}

/* ds:sample(n [, seed]) -> x, labels, indices: n distinct examples drawn with that seed. */
static int d_sample(lua_State *L)
{
    dataset *d = ld_check(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    uint64_t seed = lua_isnoneornil(L, 3) ? lb_default_seed(L) : (uint64_t)luaL_checkinteger(L, 3);
    if (n < 1 || n > ds_size(d))
        return lb_error(L, "%s: cannot sample %lld distinct examples out of %lld", ds_name(d), (long long)n,
                        (long long)ds_size(d));
    int64_t *idx = lb_scratch(L, (size_t)n, sizeof *idx);
    rng *r = rng_new(seed);
    if (!r)
        return lb_lib_error(L);
    int rc = ds_sample(d, r, n, idx);
    rng_free(r);
    if (rc != 0)
        return lb_lib_error(L);
    return push_batch(L, d, n, idx);
}

/* ds:batch(first, count) -> x, labels, indices: examples first .. first+count-1 (1-based). */
static int d_batch(lua_State *L)
{
    dataset *d = ld_check(L, 1);
    lua_Integer first = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
    if (first < 1 || count < 1 || first > ds_size(d) || count > ds_size(d) - first + 1)
        return lb_error(L, "%s: batch of %lld from %lld runs outside examples 1..%lld", ds_name(d), (long long)count,
                        (long long)first, (long long)ds_size(d));
    int64_t *idx = lb_scratch(L, (size_t)count, sizeof *idx);
    if (ds_range(d, first - 1, count, idx) != 0)
        return lb_lib_error(L);
    return push_batch(L, d, count, idx);
}

/* ds:get{i, j, ...} -> x, labels, indices: the listed examples (1-based). */
static int d_get(lua_State *L)
{
    dataset *d = ld_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n < 1)
        return lb_error(L, "%s: get needs a non-empty list of indices", ds_name(d));
    int64_t *idx = lb_scratch(L, (size_t)n, sizeof *idx);
    for (lua_Integer j = 0; j < n; j++) {
        lua_geti(L, 2, j + 1);
        int ok;
        lua_Integer i = lua_tointegerx(L, -1, &ok);
        if (!ok || i < 1 || i > ds_size(d))
            return lb_error(L, "%s: index %s (entry %lld) is not in 1..%lld", ds_name(d),
                            luaL_tolstring(L, -1, NULL), (long long)j + 1, (long long)ds_size(d));
        idx[j] = i - 1;
        lua_pop(L, 1);
    }
    return push_batch(L, d, n, idx);
}

/* Top-1 accuracy of net over the dataset (or its first `count` examples), calling net:forward(x)
 * batch by batch. In an MPI run of several ranks (ranks = true, the default there) it is collective:
 * rank r measures the r-th of `ranks` contiguous shares of the examples and the counts of correct
 * answers are summed over the ranks (with a count of failed ranks: a rank whose measurement failed
 * before its sum takes part with par.sum{0, 1}, and the others fail too), so that every rank returns
 * what one rank alone would. */
static double run_accuracy(lua_State *L, int64_t *count)
{
    static const char *const keys[] = {"batch", "count", "ranks", NULL};
    dataset *d = ld_check(L, 1);
    lua_settop(L, 3);
    if (lua_getfield(L, 2, "forward") != LUA_TFUNCTION) /* raises for values that cannot be indexed */
        lb_error(L, "%s: accuracy needs a net with a forward method, got %s", ds_name(d), luaL_typename(L, 2));
    int forward = lua_gettop(L);
    lua_Integer batch = 250, limit = ds_size(d);
    int split = par_ranks() > 1;
    if (!lua_isnoneornil(L, 3)) {
        lb_check_keys(L, 3, "accuracy", keys, 0);
        batch = lb_opt_integer(L, 3, "accuracy", "batch", batch);
        if (batch < 1)
            lb_error(L, "accuracy: batch must be at least 1, got %lld", (long long)batch);
        limit = lb_opt_integer(L, 3, "accuracy", "count", limit);
        if (limit < 1 || limit > ds_size(d))
            lb_error(L, "accuracy: count must be in 1..%lld, got %lld", (long long)ds_size(d), (long long)limit);
        split = split && lb_opt_boolean(L, 3, "accuracy", "ranks", 1);
    }
    int64_t n = limit, lo = 0, hi = n;
    if (split)
        par_share(n, &lo, &hi);
    if (batch > hi - lo)
        batch = hi - lo > 0 ? hi - lo : 1;
    int64_t *idx = lb_scratch(L, (size_t)batch, sizeof *idx);
    int *labels = lb_scratch(L, (size_t)batch, sizeof *labels);
    int64_t correct = 0;
    progress p;
    progress_start(&p, "accuracy", hi - lo);
    for (int64_t first = lo; first < hi; first += batch) {
        int64_t m = hi - first < batch ? hi - first : batch;
        ds_range(d, first, m, idx);
        tensor *x = ds_batch(d, m, idx, labels);
        if (!x)
            lb_lib_error(L);
        lua_pushvalue(L, forward);
        lua_pushvalue(L, 2);
        lt_push(L, x);
        lua_call(L, 2, 1);
        tensor *y = lt_test(L, -1);
        if (!y || y->ndim != 2 || y->shape[0] != m || y->shape[1] < ds_num_classes(d)) {
            char buf[160];
            lb_error(L, "%s: net:forward returned %s for a batch of %lld, expected %lldxK logits with K >= %d",
                     ds_name(d), y ? tensor_shape_str(y->ndim, y->shape, buf, sizeof buf) : luaL_typename(L, -1),
                     (long long)m, (long long)m, ds_num_classes(d));
        }
        correct += nn_count_correct(y->data, labels, m, y->shape[1]);
        lua_pop(L, 1);
        char extra[64];
        snprintf(extra, sizeof extra, "accuracy %.4f", (double)correct / (double)(first - lo + m));
        if (timer_now() - p.start > 2.0) /* short runs stay silent */
            progress_update(&p, first - lo + m, extra);
    }
    if (split) { /* counts below 2^53 add exactly as doubles; a rank that failed before sends {0, 1} */
        double c[2] = {(double)correct, 0};
        if (par_sum(c, 2) != 0)
            lb_lib_error(L);
        if (c[1] > 0)
            lb_error(L, "%s: accuracy: the measurement failed on another rank", ds_name(d));
        correct = (int64_t)c[0];
    }
    if (timer_now() - p.start > 5.0) {
        char extra[64];
        snprintf(extra, sizeof extra, "accuracy %.4f", (double)correct / (double)n);
        progress_end(&p, extra);
    }
    *count = n;
    return (double)correct / (double)n;
}

/* ds:accuracy(net [, {batch = 250, count = size}]) -> top-1 accuracy in [0, 1] over the first count
 * examples. */
static int d_accuracy(lua_State *L)
{
    int64_t n;
    lua_pushnumber(L, run_accuracy(L, &n));
    return 1;
}

/* ds:evaluate(net [, {batch = 250}]) -> accuracy, number of examples. */
static int d_evaluate(lua_State *L)
{
    int64_t n;
    lua_pushnumber(L, run_accuracy(L, &n));
    lua_pushinteger(L, n);
    return 2;
}

static const luaL_Reg dataset_methods[] = {
    {"size", d_size}, {"classes", d_classes}, {"shape", d_shape}, {"sample", d_sample}, {"batch", d_batch},
    {"get", d_get}, {"accuracy", d_accuracy}, {"evaluate", d_evaluate}, {NULL, NULL}};

static const luaL_Reg dataset_meta[] = {
    {"__gc", d_gc}, {"__close", d_gc}, {"__len", d_size}, {"__tostring", d_tostring},
    {NULL, NULL}};

static const luaL_Reg data_funcs[] = {{"fashion_mnist", l_fashion_mnist}, {"folder", l_folder}, {NULL, NULL}};

int luaopen_data(lua_State *L)
{
    lb_new_class(L, DATASET_MT, "dataset", dataset_meta, dataset_methods);
    lua_pop(L, 1);
    luaL_newlib(L, data_funcs);
    return 1;
}
