#include "lua/l_tensor.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/safetensors.h"
#include "lua/lb.h"

#define TENSOR_MT "boengine.tensor"

void lt_push(lua_State *L, tensor *t)
{
    tensor **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = t;
    luaL_setmetatable(L, TENSOR_MT);
    /* the collector sees only the box, not the data: account for the data so that loops that
     * make many large tensors collect the old ones in time */
    lua_gc(L, LUA_GCSTEP, (int)((t->numel * (int64_t)sizeof(float)) >> 10));
}

tensor *lt_test(lua_State *L, int idx)
{
    tensor **box = luaL_testudata(L, idx, TENSOR_MT);
    return box ? *box : NULL;
}

tensor *lt_check(lua_State *L, int idx)
{
    tensor **box = luaL_checkudata(L, idx, TENSOR_MT);
    if (!*box)
        luaL_argerror(L, idx, "tensor has been freed");
    return *box;
}

static int t_gc(lua_State *L)
{
    tensor **box = luaL_checkudata(L, 1, TENSOR_MT);
    tensor_free(*box);
    *box = NULL;
    return 0;
}

/* Reads a shape given as a list of integers, e.g. {2, 3, 28, 28}. */
static int read_shape(lua_State *L, int idx, int64_t *shape)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    int ndim = (int)luaL_len(L, idx);
    if (ndim > TENSOR_MAX_DIM)
        lb_error(L, "at most %d dimensions, got %d", TENSOR_MAX_DIM, ndim);
    for (int i = 0; i < ndim; i++) {
        lua_geti(L, idx, i + 1);
        int ok;
        shape[i] = lua_tointegerx(L, -1, &ok);
        if (!ok || shape[i] < 0)
            lb_error(L, "dimension %d of the shape is not a non-negative integer", i + 1);
        lua_pop(L, 1);
    }
    return ndim;
}

static int t_zeros(lua_State *L)
{
    int64_t shape[TENSOR_MAX_DIM];
    int ndim = read_shape(L, 1, shape);
    tensor *t = tensor_new(ndim, shape);
    if (!t)
        return lb_lib_error(L);
    lt_push(L, t);
    return 1;
}

/* Shape of a nested table: the lengths along its first elements. */
static int nested_shape(lua_State *L, int idx, int64_t *shape)
{
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (ndim == TENSOR_MAX_DIM)
            lb_error(L, "tensor.from_table: more than %d levels of nesting", TENSOR_MAX_DIM);
        shape[ndim++] = (int64_t)luaL_len(L, -1);
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return ndim;
}

static void fill_nested(lua_State *L, const tensor *t, int dim, int64_t *pos)
{
    if ((int64_t)luaL_len(L, -1) != t->shape[dim])
        lb_error(L, "tensor.from_table: ragged table (a row of length %d where %d was expected)",
                 (int)luaL_len(L, -1), (int)t->shape[dim]);
    for (int64_t i = 1; i <= t->shape[dim]; i++) {
        lua_geti(L, -1, i);
        if (dim + 1 < t->ndim) {
            if (!lua_istable(L, -1))
                lb_error(L, "tensor.from_table: ragged table (a number where a row was expected)");
            fill_nested(L, t, dim + 1, pos);
        } else {
            int ok;
            t->data[(*pos)++] = (float)lua_tonumberx(L, -1, &ok);
            if (!ok)
                lb_error(L, "tensor.from_table: element %lld is not a number", (long long)*pos);
        }
        lua_pop(L, 1);
    }
}

static int t_from_table(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[TENSOR_MAX_DIM];
    int ndim = nested_shape(L, 1, shape);
    tensor *t = tensor_new(ndim, shape);
    if (!t)
        return lb_lib_error(L);
    lt_push(L, t);
    lua_pushvalue(L, 1);
    int64_t pos = 0;
    fill_nested(L, t, 0, &pos);
    lua_pop(L, 1);
    return 1;
}

static void push_nested(lua_State *L, const tensor *t, int dim, const float **p)
{
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 1; i <= t->shape[dim]; i++) {
        if (dim + 1 < t->ndim)
            push_nested(L, t, dim + 1, p);
        else
            lua_pushnumber(L, *(*p)++);
        lua_seti(L, -2, i);
    }
}

static int t_to_table(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    const float *p = t->data;
    if (t->ndim == 0)
        lua_pushnumber(L, t->data[0]);
    else
        push_nested(L, t, 0, &p);
    return 1;
}

static int t_shape(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int t_numel(lua_State *L)
{
    lua_pushinteger(L, lt_check(L, 1)->numel);
    return 1;
}

/* Flat offset of the 1-based index arguments starting at stack slot first. */
static int64_t offset_of(lua_State *L, const tensor *t, int first, int count)
{
    if (count != t->ndim)
        lb_error(L, "%d indices given for a tensor of rank %d", count, t->ndim);
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        lua_Integer k = luaL_checkinteger(L, first + i);
        if (k < 1 || k > t->shape[i])
            lb_error(L, "index %lld out of range 1..%lld in dimension %d", (long long)k,
                     (long long)t->shape[i], i + 1);
        off = off * t->shape[i] + (k - 1);
    }
    return off;
}

static int t_get(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    lua_pushnumber(L, t->data[offset_of(L, t, 2, lua_gettop(L) - 1)]);
    return 1;
}

static int t_set(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    int top = lua_gettop(L);
    float v = (float)luaL_checknumber(L, top);
    t->data[offset_of(L, t, 2, top - 2)] = v;
    return 0;
}

static int t_clone(lua_State *L)
{
    tensor *c = tensor_clone(lt_check(L, 1));
    if (!c)
        return lb_lib_error(L);
    lt_push(L, c);
    return 1;
}

static int t_reshape(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    int64_t shape[TENSOR_MAX_DIM];
    int ndim = read_shape(L, 2, shape);
    tensor *c = tensor_clone(t);
    if (!c)
        return lb_lib_error(L);
    if (tensor_reshape(c, ndim, shape) != 0) {
        tensor_free(c);
        return lb_lib_error(L);
    }
    lt_push(L, c);
    return 1;
}

static int t_sum(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    double s = 0;
    for (int64_t i = 0; i < t->numel; i++)
        s += t->data[i];
    lua_pushnumber(L, s);
    return 1;
}

/* max |a - b| / max(max |b|, tiny): the relative error the tests compare against fixtures. */
static int t_rel_error(lua_State *L)
{
    tensor *a = lt_check(L, 1), *b = lt_check(L, 2);
    if (!tensor_same_shape(a, b)) {
        char sa[160], sb[160];
        return lb_error(L, "shapes %s and %s differ",
                        tensor_shape_str(a->ndim, a->shape, sa, sizeof sa),
                        tensor_shape_str(b->ndim, b->shape, sb, sizeof sb));
    }
    double diff = 0, scale = 1e-30;
    for (int64_t i = 0; i < a->numel; i++) {
        diff = fmax(diff, fabs((double)a->data[i] - b->data[i]));
        scale = fmax(scale, fabs((double)b->data[i]));
    }
    lua_pushnumber(L, diff / scale);
    return 1;
}

static int t_tostring(lua_State *L)
{
    tensor *t = lt_check(L, 1);
    char buf[160];
    lua_pushfstring(L, "tensor(%s)", tensor_shape_str(t->ndim, t->shape, buf, sizeof buf));
    return 1;
}

static int t_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    st_file *f = st_read(path);
    if (!f)
        return lb_lib_error(L);
    if (name) {
        int found = -1;
        for (int i = 0; i < f->count; i++)
            if (strcmp(f->names[i], name) == 0)
                found = i;
        if (found < 0) {
            st_file_free(f);
            return lb_error(L, "%s: no tensor named '%s'", path, name);
        }
        lt_push(L, f->tensors[found]);
        f->tensors[found] = NULL;
    } else {
        lua_createtable(L, 0, f->count);
        for (int i = 0; i < f->count; i++) {
            lt_push(L, f->tensors[i]);
            f->tensors[i] = NULL;
            lua_setfield(L, -2, f->names[i]);
        }
    }
    st_file_free(f);
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* tensor.save(path, {name = t, ...} [, {key = "value", ...}]): names sorted for stable files. */
static int t_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = 0, m = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING || !lt_test(L, -1))
            return lb_error(L, "tensor.save: %s: the table must map names to tensors", path);
        n++;
        lua_pop(L, 1);
    }
    const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
    const tensor **ts = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *ts, 0);
    lua_pushnil(L);
    for (int i = 0; lua_next(L, 2); i++) {
        names[i] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, 2, names[i]);
        ts[i] = lt_check(L, -1);
        lua_pop(L, 1);
    }
    st_meta *meta = NULL;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return lb_error(L, "tensor.save: %s: metadata must map strings to strings", path);
            m++;
            lua_pop(L, 1);
        }
        meta = lua_newuserdatauv(L, (size_t)(m ? m : 1) * sizeof *meta, 0);
        lua_pushnil(L);
        for (int i = 0; lua_next(L, 3); i++) {
            meta[i].key = lua_tostring(L, -2);
            meta[i].value = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    }
    if (st_write(path, n, names, ts, m, meta) != 0)
        return lb_lib_error(L);
    return 0;
}

/* tensor.metadata(path): the "__metadata__" map of a safetensors file. */
static int t_metadata(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    st_file *f = st_read(path);
    if (!f)
        return lb_lib_error(L);
    lua_createtable(L, 0, f->meta_count);
    for (int i = 0; i < f->meta_count; i++) {
        lua_pushstring(L, f->meta_values[i]);
        lua_setfield(L, -2, f->meta_keys[i]);
    }
    st_file_free(f);
    return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", t_shape}, {"numel", t_numel}, {"to_table", t_to_table}, {"get", t_get},
    {"set", t_set}, {"clone", t_clone}, {"reshape", t_reshape}, {"sum", t_sum},
    {"rel_error", t_rel_error}, {NULL, NULL}};

static const luaL_Reg tensor_meta[] = {
    {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", t_tostring}, {NULL, NULL}};

static const luaL_Reg tensor_funcs[] = {
    {"zeros", t_zeros}, {"from_table", t_from_table}, {"load", t_load}, {"save", t_save},
    {"metadata", t_metadata}, {"rel_error", t_rel_error}, {NULL, NULL}};

int luaopen_tensor(lua_State *L)
{
    lb_new_class(L, TENSOR_MT, "tensor", tensor_meta, tensor_methods);
    lua_pop(L, 1);
    luaL_newlib(L, tensor_funcs);
    return 1;
}
