/* quantize: symmetric uniform k-bit weights, simulated in float32 (the grid's values are stored). */
#include <math.h>
#include <stdio.h>

#include "compress/compress.h"
#include "core/err.h"
#include "nn/edit.h"

int cp_quantize(nn_node *n, int bits)
{
    if (bits >= 32)
        return 0;
    const tensor *w = n->weight;
    float top = 0;
    for (int64_t i = 0; i < w->numel; i++)
        top = fmaxf(top, fabsf(w->data[i]));
    tensor *t = tensor_new(w->ndim, w->shape);
    if (!t)
        return -1;
    double levels = (double)((1LL << (bits - 1)) - 1), scale = top / levels;
    for (int64_t i = 0; i < w->numel && scale > 0; i++) {
        double q = nearbyint(w->data[i] / scale);
        q = q > levels ? levels : q < -levels ? -levels : q;
        t->data[i] = (float)(q * scale);
    }
    return cp_set_param(n, 0, t);
}

static const char *quantize_ineligible(const nn_net *net, int i)
{
    nn_op op = net->nodes[i].op;
    return op == NN_CONV || op == NN_LINEAR ? NULL : "not a convolution or linear layer";
}

static void quantize_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    l->max_rank = 32;
}

/* θ is the number of bits. */
static void quantize_range(const cp_family *f, cp_layer *l)
{
    (void)f;
    l->min = l->lo = 2;
    l->max = 32;
    l->hi = 8;
    l->integer = 1;
}

static int quantize_setting(const cp_family *f, cp_layer *l, double theta, cp_choice *c)
{
    (void)f, (void)l;
    int64_t b = llround(theta);
    c->bits = (int)(b < 2 ? 2 : b > 32 ? 32 : b);
    return 0;
}

/* Every node the layer became (each factor of a split layer quantized on its own). */
static int quantize_apply(const cp_family *f, const cp_layer *l, const cp_choice *c, cp_work *w)
{
    (void)f;
    int nodes[3], k = cp_layer_nodes(w->cand, l->name, nodes);
    for (int j = 0; j < k; j++) {
        if (cp_quantize(&w->cand->nodes[nodes[j]], c->bits) != 0)
            return -1;
        w->bits[nodes[j]] = c->bits;
        w->touched[nodes[j]] = 1;
    }
    return 0;
}

static int quantize_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    (void)f;
    char extra[32];
    snprintf(extra, sizeof extra, "{\"bits\":%d}", c->bits);
    return nn_arch_add_rewrite(cand, l->name, "quantize", 0, 0, extra);
}

static void quantize_report(const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "bits", .count = 1, .integer = 1, .value = {c->bits}};
}

const cp_family_ops cp_quantize_ops = {
    .name = "quantize", .role = CP_VALUES, .ineligible = quantize_ineligible, .describe = quantize_describe,
    .range = quantize_range, .setting = quantize_setting, .apply = quantize_apply, .record = quantize_record,
    .report = quantize_report,
};
