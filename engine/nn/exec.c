#include "nn/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/timer.h"
#include "nn/dnnl_util.h"
#include "nn/exec_cache.h"
#include "nn/plan.h"

#define MAX_PLANS 4

/* A compiled inference plan: the steps and values of one input shape (nn/plan.h), and the
 * cached weights its steps read (held until the plan is freed). */
typedef struct exec_plan {
    int64_t key[5]; /* n, c, h, w, target node */
    plan plan;
    int nheld;
    exec_cache_entry **held;
    int input, output; /* values: the caller's input and the plain output */
    int out_ndim;
    int64_t out_shape[4];
} exec_plan;

static const plan_buffers pooled = {exec_cache_take_buffer, exec_cache_give_buffer};

struct nn_exec {
    int nplans;
    exec_plan *plans[MAX_PLANS]; /* most recently used first */
};

static void exec_plan_free(exec_plan *p)
{
    if (!p)
        return;
    plan_clear(&p->plan);
    exec_cache_release(p->held, p->nheld);
    free(p->held);
    free(p);
}

void nn_exec_free(nn_exec *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nplans; i++)
        exec_plan_free(e->plans[i]);
    free(e);
}

/* ---- building a plan ---------------------------------------------------------------------- */

/* e (just found or made, or NULL) held by p until p is freed; its memory, or NULL. */
static dnnl_memory_t hold(exec_plan *p, exec_cache_entry *e)
{
    if (!e)
        return NULL;
    if (dn_grow((void **)&p->held, p->nheld, sizeof *p->held)) {
        exec_cache_release(&e, 1);
        return NULL;
    }
    p->held[p->nheld++] = e;
    return exec_cache_memory(e);
}

/* The cached memory for key in layout want, now held by p; NULL when there is none. */
static dnnl_memory_t cached(exec_plan *p, const uint64_t *key, const dnnl_memory_desc_t *want)
{
    return hold(p, exec_cache_find(key, want));
}

/* Caches m (made by dn_reordered_memory, NULL on failure) under key, held by p. */
static dnnl_memory_t cache(exec_plan *p, const uint64_t *key, dnnl_memory_t m)
{
    return hold(p, exec_cache_keep(key, m));
}

/* A value does not change once its step has written it (a sum in place takes its buffer over
 * only after its last reader), so a reordered copy serves every later reader. */
static int in_layout(exec_plan *p, int v, const dnnl_memory_desc_t *want)
{
    return plan_as_layout(&p->plan, v, want, 1);
}

static uint64_t id_of(const tensor *t) { return t ? t->id : 0; }

/* A chain of nodes computed by one primitive: a convolution or inner product with a folded batch
 * norm, a residual sum and a ReLU as post-ops (or a batch norm / add with its ReLU). */
typedef struct fusion {
    int nodes[4], count; /* the chain, first node first; the last one names the step's output */
    int bn;              /* batch norm node folded into the weights, or -1 */
    int relu;            /* ReLU applied as a post-op */
    int has_sum, sum;    /* residual: the node (or NN_INPUT) whose output is added */
} fusion;

typedef struct compiler {
    const nn_net *net;
    exec_plan *p;
    const nn_dims *dims;
    int target;
    int *uses;      /* consumers of each node within the plan (+1 for the target) */
    int *consumer;  /* the last consumer of each node */
    int *val;       /* value holding each node's output */
} compiler;

static int sole_consumer(const compiler *c, int node, nn_op op)
{
    if (node >= c->target || c->uses[node] != 1)
        return -1;
    int k = c->consumer[node];
    return c->net->nodes[k].op == op ? k : -1;
}

static fusion find_fusion(const compiler *c, int i, int allow_bn, int allow_sum)
{
    fusion f = {.nodes = {i}, .count = 1, .bn = -1};
    int k, end = i;
    if (allow_bn && (k = sole_consumer(c, end, NN_BATCHNORM)) >= 0)
        f.nodes[f.count++] = f.bn = end = k;
    if (allow_sum && (k = sole_consumer(c, end, NN_ADD)) >= 0) {
        const nn_node *add = &c->net->nodes[k];
        int other = add->in[0] == end ? add->in[1] : add->in[0];
        if (other < i) { /* computed before this convolution runs */
            f.has_sum = 1;
            f.sum = other;
            f.nodes[f.count++] = end = k;
        }
    }
    if ((k = sole_consumer(c, end, NN_RELU)) >= 0) {
        f.relu = 1;
        f.nodes[f.count++] = k;
    }
    return f;
}

/* True when the residual operand can be overwritten by the sum: no node after the convolution i
 * reads it except the add itself, and it is neither the caller's input nor an alias. */
static int sum_in_place(const compiler *c, int i, const fusion *f)
{
    if (f->sum == NN_INPUT || c->p->plan.values[c->val[f->sum]].aliased)
        return 0;
    int add = f->nodes[f->bn >= 0 ? 2 : 1];
    for (int j = i + 1; j <= c->target; j++) {
        const nn_node *n = &c->net->nodes[j];
        if (j != add && (n->in[0] == f->sum || (n->op == NN_ADD && n->in[1] == f->sum)))
            return 0;
    }
    return 1;
}

static nn_dims in_dims(const compiler *c, int node)
{
    int src = c->net->nodes[node].in[0];
    return src == NN_INPUT ? (nn_dims){(int)c->p->key[1], (int)c->p->key[2], (int)c->p->key[3]}
                           : c->dims[src];
}

static int src_value(const compiler *c, int node, int which)
{
    int src = c->net->nodes[node].in[which];
    return src == NN_INPUT ? c->p->input : c->val[src];
}

/* Convolution weights (OIHW) and bias with a batch norm folded in, in freshly allocated arrays
 * (*w_owned, *b); without a batch norm *w is the layer's own weights, read in place: copying
 * VGG16's first classifier layer (411 MB) cost its first plan 1.9 s of page faults. */
static int folded_params(const nn_node *n, const nn_node *bn, const float **w, float **w_owned, float **b)
{
    int64_t per_out = n->weight->numel / n->out;
    *w_owned = NULL;
    if (!(*b = calloc((size_t)n->out, sizeof **b)))
        return err_set("out of memory");
    if (!bn) { /* nothing to fold: the weights as they are, the bias or zeros */
        *w = n->weight->data;
        if (n->bias)
            memcpy(*b, n->bias->data, (size_t)n->out * sizeof **b);
        return 0;
    }
    if (!(*w_owned = malloc((size_t)n->weight->numel * sizeof **w_owned)))
        return err_set("out of memory");
    for (int o = 0; o < n->out; o++) {
        double scale = bn->weight->data[o] / sqrt((double)bn->var->data[o] + bn->eps);
        double shift = ((n->bias ? n->bias->data[o] : 0) - bn->mean->data[o]) * scale + bn->bias->data[o];
        for (int64_t j = 0; j < per_out; j++)
            (*w_owned)[o * per_out + j] = (float)(n->weight->data[o * per_out + j] * scale);
        (*b)[o] = (float)shift;
    }
    *w = *w_owned;
    return 0;
}

/* A linear layer reading an image-shaped value (N×C×H×W, after the last pool) reads it as the
 * N × C·H·W matrix it is in plain layout: a 2-D view sharing the plain copy's buffer. oneDNN's
 * inner product then takes blocked weights and its brgemm kernel; on the 4-D source it took plain
 * 4-D weights and a gemm that ran VGG16's first classifier layer (25088 → 4096) at a fraction of
 * the rate (docs/benchmarks.md). The caller's own input keeps the 4-D path (it has no buffer of
 * the plan's to share). The value index, or -1. */
static int flat_view(compiler *c, int src, int64_t batch, nn_dims in)
{
    exec_plan *p = c->p;
    int64_t dims4[4] = {batch, in.c, in.h, in.w}, dims2[2] = {batch, (int64_t)in.c * in.h * in.w};
    dnnl_memory_desc_t plain4, plain2;
    dn_md_plain(&plain4, 4, dims4);
    dn_md_plain(&plain2, 2, dims2);
    int v = in_layout(p, src, &plain4);
    int flat = v >= 0 ? plan_value_new(&p->plan, &plain2) : -1;
    if (flat >= 0)
        p->plan.values[flat].inherit = v; /* the same buffer; nothing writes the view */
    return flat;
}

/* Convolution or inner product with its fused chain; the output value of the chain's last node. */
static int emit_weighted(compiler *c, int i, const fusion *f)
{
    const nn_node *n = &c->net->nodes[i];
    exec_plan *p = c->p;
    nn_dims in = in_dims(c, i), out = c->dims[i];
    int64_t batch = p->key[0];
    int src = src_value(c, i, 0);
    int conv = n->op == NN_CONV;
    int src_nd = conv ? 4 : p->plan.values[src].md.ndims;
    if (!conv && src_nd == 4 && !p->plan.values[src].external && (src = flat_view(c, src, batch, in)) < 0)
        return err_prefix("layer %s", n->name);
    if (!conv)
        src_nd = p->plan.values[src].md.ndims;
    int64_t sdims[4] = {batch, in.c, in.h, in.w}, ddims[4] = {batch, out.c, out.h, out.w};
    int64_t wdims[5], bdims[1] = {n->out};
    int wnd = dn_weight_dims(n, in, src_nd, wdims, sdims);
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dn_md_any(&smd, src_nd, sdims);
    dn_md_any(&wmd, wnd, wdims);
    dn_md_plain(&bmd, 1, bdims);
    /* the residual operand is summed in place when nothing later reads it, otherwise copied */
    int other = !f->has_sum ? -1 : f->sum == NN_INPUT ? p->input : c->val[f->sum];
    int in_place = f->has_sum && sum_in_place(c, i, f);
    if (in_place)
        dmd = p->plan.values[other].md;
    else
        dn_md_any(&dmd, conv ? 4 : 2, ddims);
    dn_weighted_desc d;
    if (dn_weighted_forward_desc(&d, dnnl_forward_inference, n, &smd, &wmd, &bmd, &dmd))
        return err_prefix("layer %s", n->name);
    dnnl_primitive_attr_t attr = dn_post_ops_attr(f->has_sum, f->relu);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_primitive_desc_create(&pd, &d, attr, dn_engine, NULL), "primitive descriptor");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return err_prefix("layer %s", n->name);
    /* copies: the descriptors belong to pd, which is gone before the output value is made */
    dnnl_memory_desc_t want_src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t want_w = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t want_dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const float *w = NULL;
    float *w_owned = NULL, *b = NULL;
    const nn_node *bn = f->bn >= 0 ? &c->net->nodes[f->bn] : NULL;
    uint64_t wkey[EXEC_CACHE_KEY] = {0, id_of(n->weight), id_of(n->bias), bn ? id_of(bn->weight) : 0,
                                     bn ? id_of(bn->bias) : 0, bn ? id_of(bn->mean) : 0, bn ? id_of(bn->var) : 0};
    uint64_t bkey[EXEC_CACHE_KEY];
    memcpy(bkey, wkey, sizeof bkey);
    bkey[0] = 1;
    int s_in = in_layout(p, src, &want_src);
    dnnl_memory_t wmem = cached(p, wkey, &want_w);
    dnnl_memory_t bmem = cached(p, bkey, &bmd);
    if (s_in >= 0 && (!wmem || !bmem) && folded_params(n, bn, &w, &w_owned, &b) == 0) {
        if (!wmem)
            wmem = cache(p, wkey, dn_reordered_memory(w, wnd, wdims, &want_w));
        if (!bmem)
            bmem = cache(p, bkey, dn_reordered_memory(b, 1, bdims, &bmd));
    }
    if (s_in < 0)
        wmem = bmem = NULL;
    free(w_owned);
    free(b);
    int dst = -1, sum_src = in_place ? other : -1;
    if (bmem && f->has_sum && !in_place) /* the output starts as a copy of the residual operand */
        sum_src = plan_copy(&p->plan, other, &want_dst);
    plan_step *s = bmem && (!f->has_sum || sum_src >= 0) ? plan_step_new(&p->plan, PLAN_PRIMITIVE, pd) : NULL;
    dnnl_primitive_desc_destroy(pd);
    if (s && (dst = plan_value_new(&p->plan, &want_dst)) >= 0) {
        p->plan.values[dst].inherit = sum_src;
        plan_arg_value(s, DNNL_ARG_SRC, s_in);
        plan_arg_memory(s, DNNL_ARG_WEIGHTS, wmem);
        plan_arg_memory(s, DNNL_ARG_BIAS, bmem);
        plan_arg_value(s, DNNL_ARG_DST, dst);
    }
    return dst < 0 ? err_prefix("layer %s", n->name) : dst;
}

static int emit_pool(compiler *c, int i)
{
    const nn_node *n = &c->net->nodes[i];
    exec_plan *p = c->p;
    nn_dims in = in_dims(c, i), out = c->dims[i];
    int src = src_value(c, i, 0);
    int kh = n->kh, kw = n->kw, sh = n->sh, sw = n->sw, ph = n->ph, pw = n->pw;
    dnnl_alg_kind_t alg = n->op == NN_MAXPOOL ? dnnl_pooling_max
                          : ph || pw      ? dnnl_pooling_avg_include_padding
                                          : dnnl_pooling_avg_exclude_padding;
    if (n->op == NN_ADAPTIVE_AVGPOOL) { /* even bins: an ordinary average pool */
        kh = sh = in.h / out.h;
        kw = sw = in.w / out.w;
        ph = pw = 0;
    }
    /* PyTorch's ceil mode becomes extra padding on the bottom/right */
    int64_t pr_h = (int64_t)(out.h - 1) * sh + kh - in.h - ph, pr_w = (int64_t)(out.w - 1) * sw + kw - in.w - pw;
    if (pr_h < ph)
        pr_h = ph;
    if (pr_w < pw)
        pr_w = pw;
    int64_t ddims[4] = {p->key[0], out.c, out.h, out.w};
    dnnl_memory_desc_t dmd;
    dn_md_any(&dmd, 4, ddims);
    dnnl_dims_t strides = {sh, sw}, kernel = {kh, kw}, pl = {ph, pw}, pr = {pr_h, pr_w};
    dnnl_pooling_desc_t d;
    dnnl_primitive_desc_t pd;
    if (dn_check(dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, alg, &p->plan.values[src].md, &dmd,
                                             strides, kernel, pl, pr),
              "pooling descriptor") ||
        dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "pooling primitive descriptor"))
        return err_prefix("layer %s", n->name);
    plan_step *s = plan_step_new(&p->plan, PLAN_PRIMITIVE, pd);
    int dst = s ? plan_value_new(&p->plan, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)) : -1;
    dnnl_primitive_desc_destroy(pd);
    if (dst < 0)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, src);
    plan_arg_value(s, DNNL_ARG_DST, dst);
    return dst;
}

static int emit_adaptive(compiler *c, int i)
{
    nn_dims in = in_dims(c, i), out = c->dims[i];
    int src = src_value(c, i, 0);
    if (in.h == out.h && in.w == out.w) {
        c->p->plan.values[src].aliased = 1;
        return src;
    }
    if (in.h % out.h == 0 && in.w % out.w == 0)
        return emit_pool(c, i);
    exec_plan *p = c->p;
    int64_t sdims[4] = {p->key[0], in.c, in.h, in.w}, ddims[4] = {p->key[0], out.c, out.h, out.w};
    dnnl_memory_desc_t smd, dmd;
    dn_md_plain(&smd, 4, sdims);
    dn_md_plain(&dmd, 4, ddims);
    int s_in = in_layout(p, src, &smd);
    plan_step *s = s_in >= 0 ? plan_step_new(&p->plan, PLAN_ADAPTIVE_POOL, NULL) : NULL;
    int dst = s ? plan_value_new(&p->plan, &dmd) : -1;
    if (dst < 0)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, s_in);
    plan_arg_value(s, DNNL_ARG_DST, dst);
    return dst;
}

/* A step of primitive pd reading src0 (and src1 as its argument src1_arg when not -1); its output. */
static int finish_simple(compiler *c, int i, dnnl_primitive_desc_t pd, int src0, int src1, int src1_arg)
{
    plan_step *s = plan_step_new(&c->p->plan, PLAN_PRIMITIVE, pd);
    int dst = s ? plan_value_new(&c->p->plan, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)) : -1;
    dnnl_primitive_desc_destroy(pd);
    if (dst < 0)
        return err_prefix("layer %s", c->net->nodes[i].name);
    plan_arg_value(s, src1 >= 0 ? DNNL_ARG_SRC_0 : DNNL_ARG_SRC, src0);
    if (src1 >= 0)
        plan_arg_value(s, src1_arg, src1);
    plan_arg_value(s, DNNL_ARG_DST, dst);
    return dst;
}

static int emit_add(compiler *c, int i, int relu)
{
    exec_plan *p = c->p;
    int a = src_value(c, i, 0);
    dnnl_memory_desc_t dmd = p->plan.values[a].md;
    int b = in_layout(p, src_value(c, i, 1), &dmd);
    if (b < 0)
        return -1;
    dnnl_binary_desc_t d;
    dnnl_primitive_attr_t attr = dn_post_ops_attr(0, relu);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &p->plan.values[a].md, &p->plan.values[b].md, &dmd),
                   "add descriptor") ||
             dn_check(dnnl_primitive_desc_create(&pd, &d, attr, dn_engine, NULL), "add primitive descriptor");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc ? err_prefix("layer %s", c->net->nodes[i].name) : finish_simple(c, i, pd, a, b, DNNL_ARG_SRC_1);
}

static int emit_unary(compiler *c, int i)
{
    const nn_node *n = &c->net->nodes[i];
    exec_plan *p = c->p;
    int src = src_value(c, i, 0);
    const dnnl_memory_desc_t *md = &p->plan.values[src].md;
    dnnl_primitive_desc_t pd;
    int rc;
    if (n->op == NN_RELU) {
        dnnl_eltwise_desc_t d;
        rc = dn_check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, dnnl_eltwise_relu, md, 0, 0),
                   "relu descriptor") ||
             dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "relu primitive descriptor");
    } else {
        dnnl_softmax_desc_t d;
        rc = dn_check(dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, md, 1), "softmax descriptor") ||
             dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "softmax primitive descriptor");
    }
    return rc ? err_prefix("layer %s", n->name) : finish_simple(c, i, pd, src, -1, 0);
}

/* A batch norm that follows something other than a convolution: oneDNN's inference primitive. */
static int emit_batchnorm(compiler *c, int i, int relu)
{
    const nn_node *n = &c->net->nodes[i];
    exec_plan *p = c->p;
    int src = src_value(c, i, 0);
    dnnl_batch_normalization_desc_t d;
    dnnl_primitive_desc_t pd;
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    if (dn_check(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_inference, &p->plan.values[src].md,
                                                         n->eps, flags),
              "batch norm descriptor") ||
        dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "batch norm primitive descriptor"))
        return err_prefix("layer %s", n->name);
    int64_t cdims[1] = {n->weight->numel};
    dnnl_memory_desc_t cmd;
    dn_md_plain(&cmd, 1, cdims);
    const tensor *ts[4] = {n->mean, n->var, n->weight, n->bias};
    static const int ids[4] = {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT};
    dnnl_memory_t mems[4];
    for (int k = 0; k < 4; k++) {
        uint64_t key[EXEC_CACHE_KEY] = {2 + (uint64_t)k, ts[k]->id};
        if (!(mems[k] = cached(p, key, &cmd)) &&
            !(mems[k] = cache(p, key, dn_reordered_memory(ts[k]->data, 1, cdims, &cmd)))) {
            dnnl_primitive_desc_destroy(pd);
            return -1;
        }
    }
    int dst = finish_simple(c, i, pd, src, -1, 0);
    if (dst >= 0)
        for (int k = 0; k < 4; k++)
            plan_arg_memory(&p->plan.steps[p->plan.nsteps - 1], ids[k], mems[k]);
    return dst;
}

static exec_plan *compile(const nn_net *net, int64_t n, int64_t ch, int64_t h, int64_t w, int target)
{
    exec_plan *p = calloc(1, sizeof *p);
    compiler c = {.net = net, .p = p, .target = target};
    nn_dims *dims = malloc((size_t)net->count * sizeof *dims);
    c.uses = calloc((size_t)net->count, sizeof *c.uses);
    c.consumer = calloc((size_t)net->count, sizeof *c.consumer);
    c.val = malloc((size_t)net->count * sizeof *c.val);
    int *done = calloc((size_t)net->count, sizeof *done);
    int ok = 0;
    if (!p || !dims || !c.uses || !c.consumer || !c.val || !done) {
        err_set("out of memory");
        goto fail;
    }
    c.dims = dims;
    int64_t key[5] = {n, ch, h, w, target};
    memcpy(p->key, key, sizeof key);
    if (nn_infer(net, (int)ch, (int)h, (int)w, dims) != 0)
        goto fail;
    nn_readers(net, target, c.uses, c.consumer);
    c.uses[target]++;
    /* features (h = w = 1) that only linear layers read stay N×F: an inner product on a 4-D
     * source picks 4-D weights, a second reordered copy beside the 2-D one of flattened inputs */
    int features = h == 1 && w == 1;
    for (int i = 0; features && i <= target; i++)
        if ((net->nodes[i].in[0] == NN_INPUT || net->nodes[i].in[1] == NN_INPUT) && net->nodes[i].op != NN_LINEAR)
            features = 0;
    int64_t idims[4] = {n, ch, h, w};
    dnnl_memory_desc_t imd;
    dn_md_plain(&imd, features ? 2 : 4, idims);
    if ((p->input = plan_value_new(&p->plan, &imd)) < 0)
        goto fail;
    p->plan.values[p->input].external = 1;
    for (int i = 0; i <= target; i++) {
        if (done[i])
            continue;
        const nn_node *nd = &net->nodes[i];
        fusion f = {.nodes = {i}, .count = 1, .bn = -1};
        int v;
        switch (nd->op) {
        case NN_CONV:
        case NN_LINEAR:
            f = find_fusion(&c, i, nd->op == NN_CONV, nd->op == NN_CONV);
            v = emit_weighted(&c, i, &f);
            break;
        case NN_BATCHNORM:
            f = find_fusion(&c, i, 0, 0);
            v = emit_batchnorm(&c, i, f.relu);
            break;
        case NN_ADD:
            f = find_fusion(&c, i, 0, 0);
            v = emit_add(&c, i, f.relu);
            break;
        case NN_MAXPOOL:
        case NN_AVGPOOL:
            v = emit_pool(&c, i);
            break;
        case NN_ADAPTIVE_AVGPOOL:
            v = emit_adaptive(&c, i);
            break;
        case NN_DROPOUT: /* identity at inference */
            v = src_value(&c, i, 0);
            p->plan.values[v].aliased = 1;
            break;
        default:
            v = emit_unary(&c, i);
            break;
        }
        if (v < 0)
            goto fail;
        for (int k = 0; k < f.count; k++) { /* every node of the chain names its output */
            done[f.nodes[k]] = 1;
            c.val[f.nodes[k]] = v;
        }
    }
    /* the result in plain layout, into the caller's tensor */
    int last = c.val[target];
    const dnnl_memory_desc_t *lmd = &p->plan.values[last].md;
    p->out_ndim = lmd->ndims;
    memcpy(p->out_shape, lmd->dims, (size_t)lmd->ndims * sizeof *p->out_shape);
    dnnl_memory_desc_t omd;
    dn_md_plain(&omd, p->out_ndim, p->out_shape);
    if ((p->output = plan_value_new(&p->plan, &omd)) < 0)
        goto fail;
    p->plan.values[p->output].external = 1;
    if (plan_reorder(&p->plan, last, NULL, p->output, NULL, 0) || plan_allocate(&p->plan, &pooled))
        goto fail;
    ok = 1;
fail:
    free(dims);
    free(c.uses);
    free(c.consumer);
    free(c.val);
    free(done);
    if (!ok) {
        exec_plan_free(p);
        return NULL;
    }
    return p;
}

/* ---- running a plan ----------------------------------------------------------------------- */

static int run(exec_plan *p, const tensor *x, tensor *y)
{
    if (dn_check(dnnl_memory_set_data_handle(p->plan.values[p->input].mem, x->data), "input handle") ||
        dn_check(dnnl_memory_set_data_handle(p->plan.values[p->output].mem, y->data), "output handle"))
        return -1;
    return plan_run(&p->plan, 0, p->plan.nsteps, NULL, NULL); /* its C steps are adaptive pools: no callback */
}

static exec_plan *find_plan(nn_net *net, const int64_t *key)
{
    nn_exec *e = net->exec;
    if (!e && !(e = net->exec = calloc(1, sizeof *e))) {
        err_set("out of memory");
        return NULL;
    }
    net->exec_free = nn_exec_free;
    for (int i = 0; i < e->nplans; i++)
        if (memcmp(e->plans[i]->key, key, 5 * sizeof *key) == 0) {
            exec_plan *p = e->plans[i];
            memmove(e->plans + 1, e->plans, (size_t)i * sizeof *e->plans);
            e->plans[0] = p;
            return p;
        }
    double t = timer_now();
    exec_plan *p = compile(net, key[0], key[1], key[2], key[3], (int)key[4]);
    timer_account("nn.compile", timer_now() - t);
    if (!p)
        return NULL;
    if (e->nplans == MAX_PLANS)
        exec_plan_free(e->plans[--e->nplans]);
    memmove(e->plans + 1, e->plans, (size_t)e->nplans * sizeof *e->plans);
    e->plans[0] = p;
    e->nplans++;
    return p;
}

tensor *nn_forward_to(nn_net *net, const tensor *x, int node)
{
    if (dn_init() != 0)
        return NULL;
    if (node < 0 || node >= net->count) {
        err_set("network has no layer #%d", node + 1);
        return NULL;
    }
    int64_t key[5] = {0, 0, 1, 1, node};
    if (x->ndim == 4) {
        memcpy(key, x->shape, 4 * sizeof *key);
    } else if (x->ndim == 2) {
        key[0] = x->shape[0];
        key[1] = x->shape[1];
    } else {
        char buf[160];
        err_set("input of shape %s: expected N×C×H×W (or N×F)",
                tensor_shape_str(x->ndim, x->shape, buf, sizeof buf));
        return NULL;
    }
    if (key[0] < 1) {
        err_set("input has an empty batch");
        return NULL;
    }
    exec_plan *p = find_plan(net, key);
    if (!p)
        return NULL;
    tensor *y = tensor_new(p->out_ndim, p->out_shape);
    if (y && run(p, x, y) != 0) {
        tensor_free(y);
        return NULL;
    }
    return y;
}

tensor *nn_forward(nn_net *net, const tensor *x)
{
    if (net->count == 0) {
        err_set("network has no layers");
        return NULL;
    }
    return nn_forward_to(net, x, net->count - 1);
}
