/* nn.train: the training loop (train/train.h) from a Lua option table, with Lua callbacks for the
 * end of each epoch and, optionally, for the loss. */
#include "lua/l_train.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "lua/l_data.h"
#include "lua/l_nn.h"
#include "lua/l_tensor.h"
#include "lua/lb.h"
#include "train/train.h"

#define WHAT "nn.train"

/* Where the callbacks find their functions and park a raised error until the C loop has
 * cleaned up (a Lua error must not jump over the loop's allocations). */
typedef struct callbacks {
    lua_State *L;
    int on_epoch, loss;   /* stack indices of the functions, or 0 */
    int errored;          /* an error object waits in the registry */
    lua_Integer results;  /* stack index of the table of per-epoch statistics */
} callbacks;

static const char ERROR_KEY[] = "boengine.train_error";

static int park_error(callbacks *cb)
{
    lua_setfield(cb->L, LUA_REGISTRYINDEX, ERROR_KEY);
    cb->errored = 1;
    err_set("a Lua callback raised an error");
    return -1;
}

static void push_stats(lua_State *L, const nn_epoch_stats *s)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, s->epoch);
    lua_setfield(L, -2, "epoch");
    lua_pushnumber(L, s->loss);
    lua_setfield(L, -2, "loss");
    lua_pushnumber(L, s->accuracy);
    lua_setfield(L, -2, "accuracy");
    if (!isnan(s->test_accuracy)) {
        lua_pushnumber(L, s->test_accuracy);
        lua_setfield(L, -2, "test_accuracy");
    }
    lua_pushnumber(L, s->lr);
    lua_setfield(L, -2, "lr");
    lua_pushnumber(L, s->seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushnumber(L, s->images_per_second);
    lua_setfield(L, -2, "images_per_second");
    lua_pushinteger(L, s->steps);
    lua_setfield(L, -2, "steps");
}

/* Records the epoch's statistics, then calls callback(epoch, stats): false stops training. */
static int on_epoch(void *ctx, const nn_epoch_stats *s)
{
    callbacks *cb = ctx;
    lua_State *L = cb->L;
    push_stats(L, s);
    lua_pushvalue(L, -1);
    lua_seti(L, (int)cb->results, s->epoch);
    if (!cb->on_epoch) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, cb->on_epoch);
    lua_pushinteger(L, s->epoch);
    lua_rotate(L, -3, -1); /* function, epoch, stats */
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        return park_error(cb);
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* loss(y, labels, teacher_y) -> loss, grad: y and teacher_y n x k tensors, labels 0-based. */
static double lua_loss(void *ctx, const float *y, const int *labels, const float *teacher, int64_t n, int64_t k,
                       float *grad)
{
    callbacks *cb = ctx;
    lua_State *L = cb->L;
    int64_t shape[2] = {n, k};
    int base = lua_gettop(L);
    lua_pushvalue(L, cb->loss);
    const float *src[2] = {y, teacher};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && !teacher) {
            lua_pushnil(L);
            continue;
        }
        tensor *t = tensor_new(2, shape);
        if (!t) {
            lua_settop(L, base);
            return NAN;
        }
        memcpy(t->data, src[i], (size_t)(n * k) * sizeof *t->data);
        lt_push(L, t);
        if (i == 0) {
            lua_createtable(L, (int)n, 0);
            for (int64_t j = 0; j < n; j++) {
                lua_pushinteger(L, labels[j]);
                lua_seti(L, -2, j + 1);
            }
        }
    }
    if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
        park_error(cb);
        return NAN;
    }
    int ok;
    double loss = lua_tonumberx(L, -2, &ok);
    tensor *g = lt_test(L, -1);
    if (!ok || !g || g->numel != n * k) {
        lua_pop(L, 2);
        err_set("the loss function must return a number and a %lldx%lld gradient tensor", (long long)n,
                (long long)k);
        return NAN;
    }
    memcpy(grad, g->data, (size_t)(n * k) * sizeof *grad);
    lua_pop(L, 2);
    return loss;
}

/* schedule = "cosine" | "constant" | {step = E, gamma = g} | {milestones = {e1, e2, ...}, gamma = g} */
static void read_schedule(lua_State *L, nn_schedule *s)
{
    static const char *const keys[] = {"step", "milestones", "gamma", NULL};
    int t = lua_getfield(L, 1, "schedule");
    if (t == LUA_TSTRING) {
        const char *name = lua_tostring(L, -1);
        if (strcmp(name, "cosine") == 0)
            s->kind = NN_LR_COSINE;
        else if (strcmp(name, "constant") == 0)
            s->kind = NN_LR_CONSTANT;
        else
            lb_error(L, WHAT ": schedule must be \"cosine\", \"constant\", {step = , gamma = } or "
                        "{milestones = {...}, gamma = }, got \"%s\"", name);
    } else if (t == LUA_TTABLE) {
        int idx = lua_gettop(L);
        lb_check_keys(L, idx, WHAT ": schedule", keys, 0);
        s->gamma = lb_opt_number(L, idx, WHAT ": schedule", "gamma", 0.1);
        s->step = (int)lb_opt_integer(L, idx, WHAT ": schedule", "step", 0);
        s->kind = NN_LR_STEP;
        if (lua_getfield(L, idx, "milestones") == LUA_TTABLE) {
            s->kind = NN_LR_MILESTONES;
            s->nmilestones = (int)luaL_len(L, -1);
            if (s->nmilestones < 1 || s->nmilestones > NN_MAX_MILESTONES)
                lb_error(L, WHAT ": schedule: 1 to %d milestones, got %d", NN_MAX_MILESTONES, s->nmilestones);
            for (int i = 0; i < s->nmilestones; i++) {
                lua_geti(L, -1, i + 1);
                int ok;
                s->milestones[i] = (int)lua_tointegerx(L, -1, &ok);
                if (!ok || s->milestones[i] < 1 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
                    lb_error(L, WHAT ": schedule: milestones must be increasing epoch numbers");
                lua_pop(L, 1);
            }
        } else if (!lua_isnil(L, -1)) {
            lb_error(L, WHAT ": schedule: milestones must be a list of epochs");
        } else if (s->step < 1) {
            lb_error(L, WHAT ": schedule: a table needs step (epochs between decays) or milestones");
        }
        lua_pop(L, 1);
    } else if (t != LUA_TNIL) {
        lb_error(L, WHAT ": schedule must be a string or a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* augment = {crop = padding, flip = true} or false */
static void read_augment(lua_State *L, nn_train_opts *o)
{
    static const char *const keys[] = {"crop", "flip", NULL};
    int t = lua_getfield(L, 1, "augment");
    if (t == LUA_TTABLE) {
        int idx = lua_gettop(L);
        lb_check_keys(L, idx, WHAT ": augment", keys, 0);
        o->crop = (int)lb_opt_integer(L, idx, WHAT ": augment", "crop", 0);
        o->flip = lb_opt_boolean(L, idx, WHAT ": augment", "flip", 0);
        if (o->crop < 0)
            lb_error(L, WHAT ": augment: crop (the padding) must be non-negative, got %d", o->crop);
    } else if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        lb_error(L, WHAT ": augment must be a table {crop = , flip = } or false, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* A dataset or network field (required or not); returns its stack index or 0. */
static int field_object(lua_State *L, const char *key, int required, int is_net)
{
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        if (required)
            lb_error(L, WHAT ": '%s' is required", key);
        return 0;
    }
    if (is_net ? !ln_test(L, -1) : !ld_test(L, -1))
        lb_error(L, WHAT ": '%s' must be a %s, got %s", key, is_net ? "network" : "dataset", luaL_typename(L, -1));
    return lua_gettop(L);
}

static int l_train(lua_State *L)
{
    static const char *const keys[] = {"net", "data", "epochs", "batch", "lr", "lr_min", "momentum",
                                       "weight_decay", "nesterov", "schedule", "warmup", "augment", "seed",
                                       "subset", "test", "test_every", "loss", "teacher", "callback", "checkpoint",
                                       NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lb_check_keys(L, 1, WHAT, keys, 0);
    nn_train_opts o;
    nn_train_defaults(&o);
    nn_net *net = ln_check(L, field_object(L, "net", 1, 1));
    dataset *train = ld_check(L, field_object(L, "data", 1, 0));
    int test = field_object(L, "test", 0, 0), teacher = field_object(L, "teacher", 0, 1);
    o.test = test ? ld_check(L, test) : NULL;
    o.teacher = teacher ? ln_check(L, teacher) : NULL;
    o.epochs = (int)lb_opt_integer(L, 1, WHAT, "epochs", o.epochs);
    o.batch = (int)lb_opt_integer(L, 1, WHAT, "batch", o.batch);
    o.schedule.lr = lb_opt_number(L, 1, WHAT, "lr", o.schedule.lr);
    o.schedule.lr_min = lb_opt_number(L, 1, WHAT, "lr_min", 0);
    o.schedule.warmup = lb_opt_number(L, 1, WHAT, "warmup", 0);
    o.momentum = lb_opt_number(L, 1, WHAT, "momentum", o.momentum);
    o.weight_decay = lb_opt_number(L, 1, WHAT, "weight_decay", o.weight_decay);
    o.nesterov = lb_opt_boolean(L, 1, WHAT, "nesterov", 0);
    o.seed = (uint64_t)lb_opt_integer(L, 1, WHAT, "seed", (lua_Integer)lb_default_seed(L));
    o.subset = lb_opt_integer(L, 1, WHAT, "subset", 0);
    o.test_every = (int)lb_opt_integer(L, 1, WHAT, "test_every", 1);
    o.checkpoint = lb_opt_string(L, 1, WHAT, "checkpoint", NULL);
    read_schedule(L, &o.schedule);
    read_augment(L, &o);
    callbacks cb = {.L = L};
    int t = lua_getfield(L, 1, "loss");
    if (t == LUA_TFUNCTION) {
        cb.loss = lua_gettop(L);
        o.loss_fn = lua_loss;
        o.loss_ctx = &cb;
    } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "cross_entropy") == 0) {
        o.loss = NN_LOSS_CROSS_ENTROPY;
    } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "distill") == 0) {
        o.loss = NN_LOSS_DISTILL;
    } else if (t != LUA_TNIL) {
        return lb_error(L, WHAT ": loss must be \"cross_entropy\", \"distill\" or a function(y, labels, teacher_y) "
                           "returning loss, gradient; got %s",
                        t == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
    t = lua_getfield(L, 1, "callback");
    if (t == LUA_TFUNCTION)
        cb.on_epoch = lua_gettop(L);
    else if (t != LUA_TNIL)
        return lb_error(L, WHAT ": callback must be a function(epoch, stats), got %s", luaL_typename(L, -1));
    lua_createtable(L, o.epochs, 4);
    cb.results = lua_gettop(L);
    o.on_epoch = on_epoch;
    o.ctx = &cb;
    if (nn_train(net, train, &o) != 0) {
        if (cb.errored) { /* the callback's own error, raised again now that the loop is gone */
            lua_getfield(L, LUA_REGISTRYINDEX, ERROR_KEY);
            lua_pushnil(L);
            lua_setfield(L, LUA_REGISTRYINDEX, ERROR_KEY);
            return lua_error(L);
        }
        return lb_lib_error(L);
    }
    double seconds = 0;
    lua_Integer epochs = (lua_Integer)luaL_len(L, (int)cb.results);
    for (lua_Integer e = 1; e <= epochs; e++) {
        lua_geti(L, (int)cb.results, e);
        lua_getfield(L, -1, "seconds");
        seconds += lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    lua_pushnumber(L, seconds);
    lua_setfield(L, (int)cb.results, "seconds");
    lua_pushinteger(L, (lua_Integer)o.seed);
    lua_setfield(L, (int)cb.results, "seed");
    lua_pushinteger(L, o.batch);
    lua_setfield(L, (int)cb.results, "batch");
    lua_pushvalue(L, (int)cb.results);
    return 1;
}

void ln_open_train(lua_State *L)
{
    lua_pushcfunction(L, l_train);
    lua_setfield(L, -2, "train");
}
