#include "lua/l_nn.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/safetensors.h"
#include "lua/l_tensor.h"
#include "lua/lb.h"
#include "nn/build.h"
#include "nn/edit.h"
#include "nn/exec.h"

#define NET_MT "boengine.net"

void ln_push(lua_State *L, nn_net *net)
{
    nn_net **box = lua_newuserdatauv(L, sizeof *box, 1);
    *box = net;
    luaL_setmetatable(L, NET_MT);
}

void ln_push_sharing(lua_State *L, nn_net *net, int owner)
{
    owner = lua_absindex(L, owner);
    ln_push(L, net);
    lua_pushvalue(L, owner);
    lua_setiuservalue(L, -2, 1);
}

nn_net *ln_check(lua_State *L, int idx)
{
    nn_net **box = luaL_checkudata(L, idx, NET_MT);
    if (!*box)
        luaL_argerror(L, idx, "network has been freed");
    return *box;
}

nn_net *ln_test(lua_State *L, int idx)
{
    nn_net **box = luaL_testudata(L, idx, NET_MT);
    return box ? *box : NULL;
}

static int net_gc(lua_State *L)
{
    nn_net **box = luaL_checkudata(L, 1, NET_MT);
    nn_net_free(*box);
    *box = NULL;
    return 0;
}

static int push_built(lua_State *L, const nn_spec *s, const char *what)
{
    nn_net *net = nn_build(s);
    if (!net)
        return lb_error(L, "%s: %s", what, err_msg());
    ln_push(L, net);
    return 1;
}

/* "torchvision" or "small" for stem and head. */
static int small_option(lua_State *L, const char *what, const char *key)
{
    const char *v = lb_opt_string(L, 1, what, key, "torchvision");
    if (strcmp(v, "small") != 0 && strcmp(v, "torchvision") != 0)
        lb_error(L, "%s: '%s' must be \"torchvision\" or \"small\", got \"%s\"", what, key, v);
    return strcmp(v, "small") == 0;
}

static void read_common(lua_State *L, const char *what, nn_spec *s)
{
    s->depth = (int)lb_opt_integer(L, 1, what, "depth", s->depth);
    s->channels = (int)lb_opt_integer(L, 1, what, "channels", s->channels);
    s->classes = (int)lb_opt_integer(L, 1, what, "classes", s->classes);
    s->size = (int)lb_opt_integer(L, 1, what, "size", s->size);
    s->width = lb_opt_number(L, 1, what, "width", s->width);
    s->small_stem = small_option(L, what, "stem");
    s->seed = (uint64_t)lb_opt_integer(L, 1, what, "seed", (lua_Integer)lb_default_seed(L));
}

static int l_vgg(lua_State *L)
{
    static const char *const keys[] = {"depth", "batchnorm", "channels", "classes", "size", "width",
                                       "stem", "head", "dropout", "seed", NULL};
    nn_spec s;
    nn_spec_defaults(&s, "vgg");
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "nn.vgg", keys, 0);
    read_common(L, "nn.vgg", &s);
    s.batchnorm = lb_opt_boolean(L, 1, "nn.vgg", "batchnorm", 0);
    s.small_head = small_option(L, "nn.vgg", "head");
    s.dropout = (float)lb_opt_number(L, 1, "nn.vgg", "dropout", s.dropout);
    return push_built(L, &s, "nn.vgg");
}

static int l_resnet(lua_State *L)
{
    static const char *const keys[] = {"depth", "channels", "classes", "size", "width", "stem", "seed", NULL};
    nn_spec s;
    nn_spec_defaults(&s, "resnet");
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "nn.resnet", keys, 0);
    read_common(L, "nn.resnet", &s);
    return push_built(L, &s, "nn.resnet");
}

static int l_mlp(lua_State *L)
{
    static const char *const keys[] = {"seed", NULL};
    nn_spec s;
    nn_spec_defaults(&s, "mlp");
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "nn.mlp", keys, 1);
    int n = (int)luaL_len(L, 1);
    if (n > (int)(sizeof s.widths / sizeof *s.widths))
        return lb_error(L, "at most %d widths", (int)(sizeof s.widths / sizeof *s.widths));
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        int ok;
        s.widths[i - 1] = (int)lua_tointegerx(L, -1, &ok);
        if (!ok)
            return lb_error(L, "width %d is not an integer", i);
        lua_pop(L, 1);
    }
    s.nwidths = n;
    s.seed = (uint64_t)lb_opt_integer(L, 1, "nn.mlp", "seed", (lua_Integer)lb_default_seed(L));
    return push_built(L, &s, "nn.mlp");
}

/* nn.load(path): a network rebuilt from the architecture recorded in a file boengine saved. */
static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    st_file *f = st_read(path);
    if (!f)
        return lb_lib_error(L);
    const char *arch = st_meta_get(f, "boengine.arch");
    /* the structure first, parameters only from the file once its shapes fit the structure */
    nn_net *net = arch ? nn_arch_graph(arch)
                       : (err_set("no architecture recorded (boengine.arch metadata); build the network with "
                                  "nn.vgg/nn.resnet/nn.mlp and call net:load"),
                          NULL);
    if (!net) {
        st_file_free(f);
        return lb_error(L, "%s: %s", path, err_msg());
    }
    ln_push(L, net);
    int rc = nn_load_file(net, f, path);
    st_file_free(f);
    if (rc != 0)
        return lb_lib_error(L);
    return 1;
}

static int net_load(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    if (nn_load(net, luaL_checkstring(L, 2)) != 0)
        return lb_lib_error(L);
    lua_settop(L, 1);
    return 1;
}

/* net:save(path [, {key = value, ...}]): values are written as strings in the file's metadata. */
static int net_save(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int count = 0;
    const char **keys = NULL, **values = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_settop(L, 3);
        for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1))
            count++;
        keys = lb_scratch(L, (size_t)count + 1, sizeof *keys);
        values = lb_scratch(L, (size_t)count + 1, sizeof *values);
        lua_newtable(L); /* keeps the converted strings alive */
        int held = lua_gettop(L), i = 0;
        for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return lb_error(L, "save: metadata keys must be strings");
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER && lua_type(L, -1) != LUA_TBOOLEAN)
                return lb_error(L, "save: metadata %s must be a string, number or boolean, got %s",
                                lua_tostring(L, -2), luaL_typename(L, -1));
            keys[i] = lua_tostring(L, -2);
            values[i] = luaL_tolstring(L, -1, NULL);
            lua_rawseti(L, held, i + 1);
            i++;
        }
    }
    if (nn_save_meta(net, path, count, keys, values) != 0)
        return lb_lib_error(L);
    return 0;
}

static int net_forward(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    tensor *x = lt_check(L, 2);
    tensor *y = nn_forward(net, x);
    if (!y)
        return lb_lib_error(L);
    lt_push(L, y);
    return 1;
}

static void set_dims(lua_State *L, const char *key, int n, const int64_t *d)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, d[i]);
        lua_seti(L, -2, i + 1);
    }
    lua_setfield(L, -2, key);
}

/* net:layers(): {name, kind, shape (weights, else output C×H×W), params, output, macs} per layer. */
static int net_layers(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    nn_dims *dims = malloc((size_t)(net->count ? net->count : 1) * sizeof *dims);
    if (!dims || nn_infer(net, net->channels, net->size, net->size, dims) != 0) {
        free(dims);
        return lb_lib_error(L);
    }
    lua_createtable(L, net->count, 0);
    for (int i = 0; i < net->count; i++) {
        const nn_node *n = &net->nodes[i];
        nn_dims in = n->in[0] == NN_INPUT ? (nn_dims){net->channels, net->size, net->size} : dims[n->in[0]];
        int64_t out[3] = {dims[i].c, dims[i].h, dims[i].w};
        lua_createtable(L, 0, 6);
        lua_pushstring(L, n->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, nn_op_name(n->op));
        lua_setfield(L, -2, "kind");
        if (n->weight)
            set_dims(L, "shape", n->weight->ndim, n->weight->shape);
        else
            set_dims(L, "shape", 3, out);
        set_dims(L, "output", 3, out);
        lua_pushinteger(L, nn_node_param_count(n));
        lua_setfield(L, -2, "params");
        lua_pushinteger(L, nn_node_macs(n, &in, &dims[i]));
        lua_setfield(L, -2, "macs");
        lua_seti(L, -2, i + 1);
    }
    free(dims);
    return 1;
}

/* net:params(): name → a copy of each parameter tensor (running statistics included). */
static int net_params(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    int count = nn_param_list(net, NULL, NULL);
    char **names = calloc((size_t)count + 1, sizeof *names);
    tensor **ts = calloc((size_t)count + 1, sizeof *ts);
    if (!names || !ts || nn_param_list(net, names, ts) < 0) {
        free(names);
        free(ts);
        return lb_error(L, "out of memory");
    }
    lua_createtable(L, 0, count);
    for (int i = 0; i < count; i++) {
        tensor *c = tensor_clone(ts[i]);
        if (c) {
            lt_push(L, c);
            lua_setfield(L, -2, names[i]);
        }
        free(names[i]);
    }
    free(names);
    free(ts);
    return 1;
}

static int net_param_count(lua_State *L)
{
    lua_pushinteger(L, nn_param_count(ln_check(L, 1)));
    return 1;
}

static int net_arch(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    lua_pushstring(L, net->arch ? net->arch : "{}");
    return 1;
}

static int net_tostring(lua_State *L)
{
    nn_net *net = ln_check(L, 1);
    lua_pushfstring(L, "net(%s, %I parameters)", net->arch ? net->arch : "?", (lua_Integer)nn_param_count(net));
    return 1;
}

static const luaL_Reg net_methods[] = {
    {"load", net_load},     {"save", net_save},         {"forward", net_forward},
    {"layers", net_layers}, {"params", net_params},     {"param_count", net_param_count},
    {"arch", net_arch},     {NULL, NULL}};

static const luaL_Reg net_meta[] = {
    {"__gc", net_gc}, {"__close", net_gc}, {"__tostring", net_tostring}, {NULL, NULL}};

static const luaL_Reg nn_funcs[] = {
    {"vgg", l_vgg}, {"resnet", l_resnet}, {"mlp", l_mlp}, {"load", l_load}, {NULL, NULL}};

int luaopen_nn(lua_State *L)
{
    lb_new_class(L, NET_MT, "net", net_meta, net_methods);
    lua_pop(L, 1);
    luaL_newlib(L, nn_funcs);
    return 1;
}
