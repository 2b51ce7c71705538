#include "nn/net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buildinfo.h"
#include "core/err.h"
#include "core/rng.h"
#include "io/safetensors.h"

static const char *const op_names[] = {
    [NN_CONV] = "conv", [NN_BATCHNORM] = "batchnorm", [NN_RELU] = "relu",
    [NN_MAXPOOL] = "maxpool", [NN_AVGPOOL] = "avgpool", [NN_ADAPTIVE_AVGPOOL] = "adaptive_avgpool",
    [NN_LINEAR] = "linear", [NN_ADD] = "add", [NN_DROPOUT] = "dropout", [NN_SOFTMAX] = "softmax",
};

const char *nn_op_name(nn_op op) { return op_names[op]; }

nn_net *nn_net_new(int channels, int size, int classes)
{
    nn_net *net = calloc(1, sizeof *net);
    if (!net) {
        err_set("out of memory");
        return NULL;
    }
    net->channels = channels;
    net->size = size;
    net->classes = classes;
    return net;
}

/* Drops the node's parameters (freeing them unless another network owns them). */
static void drop_params(nn_node *n)
{
    if (!n->shared) {
        tensor_free(n->weight);
        tensor_free(n->bias);
        tensor_free(n->mean);
        tensor_free(n->var);
    }
    n->weight = n->bias = n->mean = n->var = NULL;
    n->shared = 0;
}

void nn_node_clear(nn_node *n)
{
    free(n->name);
    n->name = NULL;
    drop_params(n);
}

int nn_node_own(nn_node *n)
{
    if (!n->shared)
        return 0;
    tensor **slots[4] = {&n->weight, &n->bias, &n->mean, &n->var}, *copies[4] = {0};
    for (int i = 0; i < 4; i++)
        if (*slots[i] && !(copies[i] = tensor_clone(*slots[i]))) {
            for (int j = 0; j < i; j++)
                tensor_free(copies[j]);
            return err_set("out of memory");
        }
    for (int i = 0; i < 4; i++)
        *slots[i] = copies[i];
    n->shared = 0;
    return 0;
}

void nn_net_free(nn_net *net)
{
    if (!net)
        return;
    nn_invalidate(net);
    for (int i = 0; i < net->count; i++)
        nn_node_clear(&net->nodes[i]);
    free(net->nodes);
    free(net->arch);
    free(net);
}

void nn_invalidate(nn_net *net)
{
    if (net->exec)
        net->exec_free(net->exec);
    net->exec = NULL;
    /* the parameters this network owns may have changed: new ids, so that weights reordered from
     * the old content are not reused; borrowed ones belong to a network that says so itself */
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        tensor *ts[4] = {n->weight, n->bias, n->mean, n->var};
        for (int k = 0; k < 4 && !n->shared; k++)
            if (ts[k])
                tensor_touch(ts[k]);
    }
}

int nn_add(nn_net *net, const nn_node *node)
{
    if (net->count == net->cap) {
        int cap = net->cap ? 2 * net->cap : 32;
        nn_node *nodes = realloc(net->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return err_set("out of memory");
        net->nodes = nodes;
        net->cap = cap;
    }
    nn_node *n = &net->nodes[net->count];
    *n = *node;
    n->name = strdup(node->name ? node->name : "");
    if (!n->name)
        return err_set("out of memory");
    nn_invalidate(net);
    return net->count++;
}

/* PyTorch's pooling output size: floor division (toward -inf) and, in ceil mode, the rule that
 * the last window must start inside the input or its left padding. */
static int pool_out(int size, int k, int s, int p, int ceil_mode)
{
    int num = size + 2 * p - k + (ceil_mode ? s - 1 : 0);
    int out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && out > 0 && (out - 1) * s >= size + p)
        out--;
    return out;
}

static int layer_error(const nn_node *n, int i, const char *fmt, int a, int b, int c)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, b, c);
    return err_set("layer %s (%s, #%d): %s", *n->name ? n->name : "-", nn_op_name(n->op), i + 1, msg);
}

int nn_infer(const nn_net *net, int c, int h, int w, nn_dims *dims)
{
    for (int i = 0; i < net->count; i++) {
        const nn_node *n = &net->nodes[i];
        nn_dims in = n->in[0] == NN_INPUT ? (nn_dims){c, h, w} : dims[n->in[0]];
        nn_dims out = in;
        switch (n->op) {
        case NN_CONV:
            if (n->weight && n->weight->shape[1] * n->groups != in.c)
                return layer_error(n, i, "input has %d channels, the weights expect %d", in.c,
                                   (int)(n->weight->shape[1] * n->groups), 0);
            if (in.c % n->groups || n->out % n->groups)
                return layer_error(n, i, "%d and %d channels do not split into %d groups", in.c, n->out,
                                   n->groups);
            out.c = n->out;
            out.h = (in.h + 2 * n->ph - n->kh) / n->sh + 1;
            out.w = (in.w + 2 * n->pw - n->kw) / n->sw + 1;
            if (in.h + 2 * n->ph < n->kh || in.w + 2 * n->pw < n->kw)
                out.h = out.w = 0;
            break;
        case NN_MAXPOOL:
        case NN_AVGPOOL:
            out.h = pool_out(in.h, n->kh, n->sh, n->ph, n->ceil_mode);
            out.w = pool_out(in.w, n->kw, n->sw, n->pw, n->ceil_mode);
            break;
        case NN_ADAPTIVE_AVGPOOL:
            out.h = n->oh;
            out.w = n->ow;
            break;
        case NN_LINEAR:
            if (n->weight && n->weight->shape[1] != (int64_t)in.c * in.h * in.w)
                return layer_error(n, i, "input has %d features, the weights expect %d", in.c * in.h * in.w,
                                   (int)n->weight->shape[1], 0);
            out = (nn_dims){n->out, 1, 1};
            break;
        case NN_ADD: {
            nn_dims b = n->in[1] == NN_INPUT ? (nn_dims){c, h, w} : dims[n->in[1]];
            if (b.c != in.c || b.h != in.h || b.w != in.w)
                return layer_error(n, i, "operands differ in shape (%d channels vs %d, ...)", in.c, b.c, 0);
            break;
        }
        case NN_BATCHNORM:
            if (n->weight && n->weight->shape[0] != in.c)
                return layer_error(n, i, "input has %d channels, the statistics %d", in.c,
                                   (int)n->weight->shape[0], 0);
            break;
        default:
            break;
        }
        if (out.c <= 0 || out.h <= 0 || out.w <= 0)
            return layer_error(n, i, "input of %dx%d is too small (output would be %dx...)", in.h, in.w,
                               out.h);
        dims[i] = out;
    }
    return 0;
}

static void fill_normal(tensor *t, rng *r, double std)
{
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = (float)(std * rng_normal(r));
}

static void fill_uniform(tensor *t, rng *r, double bound)
{
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = (float)(bound * (2 * rng_uniform(r) - 1));
}

static void fill_const(tensor *t, float v)
{
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = v;
}

/* Parameter slots of a node, in the order PyTorch lists them. */
static int node_params(nn_node *n, const char **suffix, tensor ***slot)
{
    int k = 0;
    if (n->op == NN_CONV || n->op == NN_LINEAR || n->op == NN_BATCHNORM) {
        suffix[k] = "weight";
        slot[k++] = &n->weight;
        if (n->op == NN_BATCHNORM || n->has_bias) {
            suffix[k] = "bias";
            slot[k++] = &n->bias;
        }
        if (n->op == NN_BATCHNORM) {
            suffix[k] = "running_mean";
            slot[k++] = &n->mean;
            suffix[k] = "running_var";
            slot[k++] = &n->var;
        }
    }
    return k;
}

/* The shape of slot k (node_params' order) of node n whose input has dims in; returns ndim. */
static int slot_shape(const nn_node *n, nn_dims in, int k, int64_t *shape)
{
    if (n->op == NN_CONV && k == 0) {
        shape[0] = n->out, shape[1] = in.c / n->groups, shape[2] = n->kh, shape[3] = n->kw;
        return 4;
    }
    if (n->op == NN_LINEAR && k == 0) {
        shape[0] = n->out, shape[1] = (int64_t)in.c * in.h * in.w;
        return 2;
    }
    shape[0] = n->op == NN_BATCHNORM ? in.c : n->out; /* biases and batch-norm vectors */
    return 1;
}

static nn_dims input_dims(const nn_net *net, const nn_dims *dims, const nn_node *n)
{
    return n->in[0] == NN_INPUT ? (nn_dims){net->channels, net->size, net->size} : dims[n->in[0]];
}

/* Output dims of every node at the nominal input, computed with the parameters ignored (so that
 * a graph without them, or with some missing, has shapes too); NULL with a message. */
static nn_dims *nominal_dims(const nn_net *net)
{
    nn_net bare = *net;
    bare.nodes = calloc((size_t)(net->count ? net->count : 1), sizeof *bare.nodes);
    nn_dims *dims = malloc((size_t)(net->count ? net->count : 1) * sizeof *dims);
    if (!bare.nodes || !dims) {
        free(bare.nodes);
        free(dims);
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < net->count; i++) {
        bare.nodes[i] = net->nodes[i];
        bare.nodes[i].weight = bare.nodes[i].bias = bare.nodes[i].mean = bare.nodes[i].var = NULL;
    }
    int rc = nn_infer(&bare, net->channels, net->size, net->size, dims);
    free(bare.nodes);
    if (rc != 0) {
        free(dims);
        return NULL;
    }
    return dims;
}

int nn_init_params(nn_net *net, uint64_t seed)
{
    nn_dims *dims = nominal_dims(net);
    rng *r = rng_new(seed);
    int rc = -1;
    if (!dims || !r) {
        if (dims)
            err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        drop_params(n);
        const char *suffix[4];
        tensor **slot[4];
        int64_t shape[4];
        int k = node_params(n, suffix, slot);
        for (int j = 0; j < k; j++)
            if (!(*slot[j] = tensor_new(slot_shape(n, input_dims(net, dims, n), j, shape), shape)))
                goto done;
        if (n->op == NN_CONV) { /* Kaiming normal, fan-out, for ReLU; zero bias */
            fill_normal(n->weight, r, sqrt(2.0 / ((double)n->out * n->kh * n->kw)));
        } else if (n->op == NN_LINEAR) { /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            double bound = 1 / sqrt((double)n->weight->shape[1]);
            fill_uniform(n->weight, r, bound);
            if (n->bias)
                fill_uniform(n->bias, r, bound);
        } else if (n->op == NN_BATCHNORM) {
            fill_const(n->weight, 1);
            fill_const(n->var, 1);
        }
    }
    nn_invalidate(net);
    rc = 0;
done:
    free(dims);
    rng_free(r);
    return rc;
}

void nn_readers(const nn_net *net, int last, int *uses, int *consumer)
{
    memset(uses, 0, (size_t)net->count * sizeof *uses);
    memset(consumer, 0, (size_t)net->count * sizeof *consumer);
    for (int i = 0; i <= last; i++)
        for (int k = 0; k < 2; k++) {
            int src = net->nodes[i].in[k];
            if (src >= 0 && (k == 0 || net->nodes[i].op == NN_ADD)) {
                uses[src]++;
                consumer[src] = i;
            }
        }
}

int nn_param_list(const nn_net *net, char **names, tensor **tensors)
{
    int count = 0;
    for (int i = 0; i < net->count; i++) {
        const char *suffix[4];
        tensor **slot[4];
        int k = node_params(&net->nodes[i], suffix, slot);
        for (int j = 0; j < k; j++, count++) {
            if (names) {
                size_t len = strlen(net->nodes[i].name) + strlen(suffix[j]) + 2;
                names[count] = malloc(len);
                if (!names[count])
                    return err_set("out of memory");
                snprintf(names[count], len, "%s.%s", net->nodes[i].name, suffix[j]);
            }
            if (tensors)
                tensors[count] = *slot[j];
        }
    }
    return count;
}

int64_t nn_node_param_count(const nn_node *n)
{
    int64_t c = 0;
    const tensor *ts[] = {n->weight, n->bias, n->mean, n->var};
    for (int i = 0; i < 4; i++)
        if (ts[i] && (n->op != NN_BATCHNORM || i < 2)) /* running statistics are buffers */
            c += ts[i]->numel;
    return c;
}

int64_t nn_param_count(const nn_net *net)
{
    int64_t c = 0;
    for (int i = 0; i < net->count; i++)
        c += nn_node_param_count(&net->nodes[i]);
    return c;
}

int64_t nn_node_macs(const nn_node *n, const nn_dims *in, const nn_dims *out)
{
    switch (n->op) {
    case NN_CONV:
        return (int64_t)out->c * out->h * out->w * (in->c / n->groups) * n->kh * n->kw;
    case NN_LINEAR:
        return (int64_t)n->out * in->c * in->h * in->w;
    default:
        return 0;
    }
}

static void free_names(char **names, int count)
{
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static int ignorable(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && strcmp(dot + 1, "num_batches_tracked") == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One parameter slot of the network: its name and the shape the file must give it. */
typedef struct expected {
    nn_node *node;
    tensor **slot;
    int ndim;
    int64_t shape[4];
} expected;

int nn_load_file(nn_net *net, const st_file *f, const char *path)
{
    int count = nn_param_list(net, NULL, NULL), rc = -1;
    char **names = calloc((size_t)count + 1, sizeof *names), **sorted = calloc((size_t)count + 1, sizeof *sorted);
    expected *want = calloc((size_t)count + 1, sizeof *want);
    nn_dims *dims = NULL;
    if (!names || !sorted || !want || nn_param_list(net, names, NULL) < 0) {
        err_set("out of memory");
        goto done;
    }
    /* the shapes come from the graph, so that a graph built without parameters (nn_arch_graph)
     * is checked against the file before anything of the file's announced sizes is allocated */
    for (int i = 0, p = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        const char *suffix[4];
        tensor **slot[4];
        int k = node_params(n, suffix, slot);
        for (int j = 0; j < k; j++, p++) {
            want[p] = (expected){.node = n, .slot = slot[j]};
            if (*slot[j]) { /* an allocated parameter keeps its own shape */
                want[p].ndim = (*slot[j])->ndim;
                memcpy(want[p].shape, (*slot[j])->shape, sizeof want[p].shape);
            } else {
                if (!dims && !(dims = nominal_dims(net)))
                    goto done;
                want[p].ndim = slot_shape(n, input_dims(net, dims, n), j, want[p].shape);
            }
        }
    }
    memcpy(sorted, names, (size_t)count * sizeof *sorted);
    qsort(sorted, (size_t)count, sizeof *sorted, cmp_str);
    for (int j = 0; j < f->count; j++)
        if (!ignorable(f->names[j]) && !bsearch(&f->names[j], sorted, (size_t)count, sizeof *sorted, cmp_str)) {
            err_set("%s: tensor %s does not belong to this network", path, f->names[j]);
            goto done;
        }
    for (int i = 0; i < count; i++) {
        tensor *t = st_find(f, names[i]);
        char a[160], b[160];
        tensor_shape_str(want[i].ndim, want[i].shape, b, sizeof b);
        if (!t) {
            err_set("%s: missing tensor %s (expected shape %s)", path, names[i], b);
            goto done;
        }
        if (t->ndim != want[i].ndim || memcmp(t->shape, want[i].shape, (size_t)t->ndim * sizeof *t->shape)) {
            err_set("%s: tensor %s has shape %s, expected %s", path, names[i],
                    tensor_shape_str(t->ndim, t->shape, a, sizeof a), b);
            goto done;
        }
    }
    for (int i = 0; i < net->count; i++) /* shared tensors are copied before being overwritten */
        if (nn_node_own(&net->nodes[i]) != 0)
            goto done;
    for (int i = 0; i < count; i++) {
        const tensor *t = st_find(f, names[i]);
        if (*want[i].slot)
            memcpy((*want[i].slot)->data, t->data, (size_t)t->numel * sizeof(float));
        else if (!(*want[i].slot = tensor_clone(t)))
            goto done;
    }
    nn_invalidate(net);
    rc = 0;
done:
    free(dims);
    free_names(names, count);
    free(sorted);
    free(want);
    return rc;
}

int nn_load(nn_net *net, const char *path)
{
    st_file *f = st_read(path);
    int rc = f ? nn_load_file(net, f, path) : -1;
    st_file_free(f);
    return rc;
}

int nn_save_meta(const nn_net *net, const char *path, int extra, const char *const *keys, const char *const *values)
{
    int count = nn_param_list(net, NULL, NULL), rc = -1;
    char **names = calloc((size_t)count + 1, sizeof *names);
    tensor **ts = calloc((size_t)count + 1, sizeof *ts);
    st_meta *meta = calloc((size_t)extra + 4, sizeof *meta);
    if (names && ts && meta && nn_param_list(net, names, ts) >= 0) {
        st_meta own[] = {{"format", "pt"},
                         {"boengine.arch", net->arch ? net->arch : "{}"},
                         {"boengine.version", engine_version()},
                         {"boengine.commit", engine_commit()}};
        memcpy(meta, own, sizeof own);
        int m = 4;
        for (int i = 0; i < extra; i++) {
            int reserved = 0;
            for (int j = 0; j < 4; j++)
                reserved |= strcmp(keys[i], own[j].key) == 0;
            if (reserved) {
                err_set("%s: metadata key %s is written by the engine", path, keys[i]);
                goto done;
            }
            meta[m++] = (st_meta){keys[i], values[i]};
        }
        rc = st_write(path, count, (const char *const *)names, (const tensor *const *)ts, m, meta);
    } else {
        err_set("out of memory");
    }
done:
    free_names(names, count);
    free(ts);
    free(meta);
    return rc;
}

int nn_save(const nn_net *net, const char *path) { return nn_save_meta(net, path, 0, NULL, NULL); }
