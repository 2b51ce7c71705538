/* Pruning families: prune_channels (the output channels of smallest L1 norm removed, and their
 * readers' inputs) and prune_weights (the smallest weights by magnitude set to zero). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "nn/edit.h"

/* Layers that act on each channel separately, through which pruned channels simply vanish. */
static int channelwise(nn_op op)
{
    return op == NN_BATCHNORM || op == NN_RELU || op == NN_DROPOUT || op == NN_MAXPOOL || op == NN_AVGPOOL ||
           op == NN_ADAPTIVE_AVGPOOL;
}

static int reader(const nn_node *n) { return (n->op == NN_CONV && n->groups == 1) || n->op == NN_LINEAR; }

int cp_channels_prunable(const nn_net *net, int i)
{
    int *stack = malloc((size_t)net->count * sizeof *stack), top = 0, ok = 1;
    int *cons = malloc((size_t)net->count * sizeof *cons);
    if (!stack || !cons) {
        free(stack);
        free(cons);
        return 0;
    }
    stack[top++] = i;
    while (top > 0 && ok) {
        int j = stack[--top];
        int k = nn_consumers(net, j, cons, net->count);
        if (j == net->count - 1 || k == 0)
            ok = 0; /* the channels are the network's output */
        for (int c = 0; c < k && ok; c++) {
            const nn_node *n = &net->nodes[cons[c]];
            if (channelwise(n->op))
                stack[top++] = cons[c];
            else if (!reader(n))
                ok = 0;
        }
    }
    free(stack);
    free(cons);
    return ok;
}

typedef struct norm_order {
    int n;
    int order[]; /* channels by decreasing L1 norm (ties by index) */
} norm_order;

/* qsort_r's comparison: families prepare their layers side by side, so no global state */
static int by_norm(const void *a, const void *b, void *norms)
{
    const float *n = norms;
    int i = *(const int *)a, j = *(const int *)b;
    if (n[i] != n[j])
        return n[i] > n[j] ? -1 : 1;
    return i - j;
}

static int channels_prepare(const cp_family *f, cp_layer *l)
{
    const tensor *w = f->net->nodes[l->node].weight;
    int N = (int)w->shape[0];
    int64_t per = w->numel / N;
    norm_order *o = malloc(sizeof *o + (size_t)N * sizeof(int));
    float *norms = malloc((size_t)N * sizeof *norms);
    if (!o || !norms) {
        free(o);
        free(norms);
        return err_set("out of memory");
    }
    for (int c = 0; c < N; c++) {
        double s = 0;
        for (int64_t j = 0; j < per; j++)
            s += fabs(w->data[c * per + j]);
        norms[c] = (float)s;
        o->order[c] = c;
    }
    o->n = N;
    qsort_r(o->order, (size_t)N, sizeof *o->order, by_norm, norms);
    free(norms);
    l->cache = o;
    return 0;
}

static int ascending(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* A copy of t keeping, along dimension dim, the blocks kept[0..k-1] of size block (the layout
 * around dim is outer × (n·block) × inner). */
static tensor *slice(const tensor *t, int dim, int n, const int *kept, int k, int64_t block)
{
    int64_t shape[TENSOR_MAX_DIM];
    memcpy(shape, t->shape, sizeof shape);
    shape[dim] = shape[dim] / n * k;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++)
        outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++)
        inner *= t->shape[d];
    tensor *s = tensor_new(t->ndim, shape);
    if (!s)
        return NULL;
    int64_t run = block * inner;
    for (int64_t o = 0; o < outer; o++)
        for (int c = 0; c < k; c++)
            memcpy(s->data + (o * k + c) * run, t->data + (o * n + kept[c]) * run, (size_t)run * sizeof(float));
    return s;
}

static int slice_param(nn_node *node, int slot, int dim, int n, const int *kept, int k, int64_t block)
{
    tensor *ts[4] = {node->weight, node->bias, node->mean, node->var};
    if (!ts[slot])
        return 0;
    tensor *s = slice(ts[slot], dim, n, kept, k, block);
    return s ? cp_set_param(node, slot, s) : -1;
}

/* Removes the pruned channels of the layer in cand and the matching inputs of its readers; sets
 * touched[j] for every node j of cand whose weights changed. */
static int prune_channels(const cp_layer *l, const cp_choice *ch, nn_net *cand, char *touched)
{
    const norm_order *o = l->cache;
    int at = nn_find(cand, l->name), N = o->n, K = ch->keep;
    if (at < 0)
        return err_set("layer %s is gone", l->name);
    int *kept = malloc((size_t)K * sizeof *kept), *stack = malloc((size_t)cand->count * sizeof *stack);
    int *cons = malloc((size_t)cand->count * sizeof *cons), top = 0, rc = -1;
    if (!kept || !stack || !cons) {
        err_set("out of memory");
        goto done;
    }
    memcpy(kept, o->order, (size_t)K * sizeof *kept);
    qsort(kept, (size_t)K, sizeof *kept, ascending);
    if (slice_param(&cand->nodes[at], 0, 0, N, kept, K, 1) || slice_param(&cand->nodes[at], 1, 0, N, kept, K, 1))
        goto done;
    cand->nodes[at].out = K;
    touched[at] = 1;
    stack[top++] = at;
    while (top > 0) {
        int j = stack[--top], k = nn_consumers(cand, j, cons, cand->count);
        for (int c = 0; c < k; c++) {
            nn_node *n = &cand->nodes[cons[c]];
            if (n->op == NN_BATCHNORM) {
                for (int slot = 0; slot < 4; slot++)
                    if (slice_param(n, slot, 0, N, kept, K, 1))
                        goto done;
            } else if (n->op == NN_CONV) {
                if (slice_param(n, 0, 1, N, kept, K, 1))
                    goto done;
                touched[cons[c]] = 1;
                continue;
            } else if (n->op == NN_LINEAR) { /* flattened channel-major: blocks of h·w features */
                if (slice_param(n, 0, 1, N, kept, K, n->weight->shape[1] / N))
                    goto done;
                touched[cons[c]] = 1;
                continue;
            } else if (!channelwise(n->op)) {
                err_set("layer %s: its channels reach %s (%s), which cannot lose them", l->name, n->name,
                        nn_op_name(n->op));
                goto done;
            }
            stack[top++] = cons[c];
        }
    }
    nn_invalidate(cand);
    rc = 0;
done:
    free(kept);
    free(stack);
    free(cons);
    return rc;
}

/* The value of rank k (0-based) in decreasing order of a[0..n-1]; a is reordered. */
static float select_desc(float *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

int cp_prune_weights(nn_node *n, double kept, int64_t *nonzeros)
{
    const tensor *w = n->weight;
    int64_t numel = w->numel, keep = llround(kept * (double)numel);
    if (keep > numel)
        keep = numel;
    tensor *t = tensor_new(w->ndim, w->shape);
    float *mag = malloc((size_t)(numel > 0 ? numel : 1) * sizeof *mag);
    if (!t || !mag) {
        tensor_free(t);
        free(mag);
        return err_set("out of memory");
    }
    float thr = INFINITY;
    int64_t above = 0, count = 0;
    if (keep > 0) {
        for (int64_t i = 0; i < numel; i++)
            mag[i] = fabsf(w->data[i]);
        thr = select_desc(mag, numel, keep - 1);
        for (int64_t i = 0; i < numel; i++)
            above += fabsf(w->data[i]) > thr;
    }
    int64_t ties = keep - above; /* weights equal to the threshold kept, first ones first */
    for (int64_t i = 0; i < numel; i++) {
        float a = fabsf(w->data[i]);
        if (a > thr || (a == thr && ties-- > 0))
            t->data[i] = w->data[i];
        count += t->data[i] != 0;
    }
    free(mag);
    *nonzeros = count;
    return cp_set_param(n, 0, t);
}

/* ---- the operations ----------------------------------------------------------------------------- */

static const char *channels_ineligible(const nn_net *net, int i)
{
    if (net->nodes[i].op != NN_CONV)
        return "not a convolution";
    return cp_channels_prunable(net, i) ? NULL : "a convolution whose channels reach a residual add or the output";
}

static const char *weights_ineligible(const nn_net *net, int i)
{
    nn_op op = net->nodes[i].op;
    return op == NN_CONV || op == NN_LINEAR ? NULL : "not a convolution or linear layer";
}

static void channels_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    l->max_rank = (int)l->shape[0];
}

static void weights_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    int64_t n = 1;
    for (int d = 0; d < l->ndim; d++)
        n *= l->shape[d];
    l->max_rank = (int)(n > INT32_MAX ? INT32_MAX : n);
}

/* θ is the fraction kept. */
static void channels_range(const cp_family *f, cp_layer *l)
{
    (void)f;
    l->min = 0;
    l->max = 1;
    l->lo = 0.05;
    l->hi = 1;
}

static void weights_range(const cp_family *f, cp_layer *l)
{
    channels_range(f, l);
    l->lo = 0.01;
}

static int channels_setting(const cp_family *f, cp_layer *l, double theta, cp_choice *c)
{
    (void)f;
    int N = (int)l->shape[0];
    int64_t k = llround(theta * N);
    c->keep = (int)(k < 1 ? 1 : k > N ? N : k);
    return 0;
}

static int weights_setting(const cp_family *f, cp_layer *l, double theta, cp_choice *c)
{
    (void)f, (void)l;
    c->kept = theta < 0 ? 0 : theta > 1 ? 1 : theta;
    return 0;
}

static int channels_apply(const cp_family *f, const cp_layer *l, const cp_choice *c, cp_work *w)
{
    (void)f;
    return prune_channels(l, c, w->cand, w->touched);
}

/* Every node the layer became (each factor of a split layer pruned on its own). */
static int weights_apply(const cp_family *f, const cp_layer *l, const cp_choice *c, cp_work *w)
{
    (void)f;
    int nodes[3], k = cp_layer_nodes(w->cand, l->name, nodes);
    for (int j = 0; j < k; j++) {
        int64_t nz;
        if (cp_prune_weights(&w->cand->nodes[nodes[j]], c->kept, &nz) != 0)
            return -1;
        w->weights[nodes[j]] = nz;
        w->touched[nodes[j]] = 1;
    }
    return 0;
}

static int channels_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    (void)f;
    return nn_arch_add_rewrite(cand, l->name, "prune_channels", c->keep, 0, NULL);
}

static int weights_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    (void)f;
    char extra[64];
    snprintf(extra, sizeof extra, "{\"kept\":%.17g}", c->kept);
    return nn_arch_add_rewrite(cand, l->name, "prune_weights", 0, 0, extra);
}

static void channels_report(const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "keep", .count = 1, .integer = 1, .value = {c->keep}};
}

static void weights_report(const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "kept", .count = 1, .integer = 0, .value = {c->kept}};
}

const cp_family_ops cp_prune_channels_ops = {
    .name = "prune_channels", .role = CP_STRUCTURE, .ineligible = channels_ineligible,
    .describe = channels_describe, .range = channels_range, .setting = channels_setting,
    .prepare = channels_prepare, .apply = channels_apply, .record = channels_record, .report = channels_report,
};

const cp_family_ops cp_prune_weights_ops = {
    .name = "prune_weights", .role = CP_SPARSITY, .ineligible = weights_ineligible, .describe = weights_describe,
    .range = weights_range, .setting = weights_setting, .apply = weights_apply, .record = weights_record,
    .report = weights_report,
};
