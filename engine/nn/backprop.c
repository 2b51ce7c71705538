#include "nn/backprop.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "nn/dnnl_util.h"

#define MAX_ARGS 12
#define BN_MOMENTUM 0.1

/* A tensor of the plan (activation, gradient, workspace...): its layout and, once allocated,
 * its memory. Buffers are assigned after the plan is built, by lifetime. */
typedef struct value {
    dnnl_memory_desc_t md;
    int external; /* the caller's input or output gradient: the handle is set at each call */
    int pinned;   /* outputs and the input gradient: a buffer of its own, read after the run */
    int def, last, buffer;
    dnnl_memory_t mem;
} value;

/* A parameter or a gradient in its plain layout, wrapped as a oneDNN memory whose handle is set
 * from the tensor at each call (the tensor is the net's or the plan's). */
typedef struct fixed {
    int node, slot; /* slot 0/1: weight/bias of the net; 2/3: their gradients */
    dnnl_memory_t mem;
} fixed;

typedef struct arg {
    int id;
    int value;  /* a value, or -1 */
    int fixed;  /* a fixed memory when value is -1 */
} arg;

typedef enum step_kind {
    ST_PRIM,           /* a oneDNN primitive */
    ST_RUNNING_STATS,  /* batch-norm running statistics from the batch's mean and variance */
    ST_DROPOUT,        /* mask drawn, then dst = src · mask */
    ST_DROPOUT_BACK,   /* diff_src = diff_dst · mask */
    ST_ADAPTIVE,       /* adaptive average pool over uneven bins (plain layout) */
    ST_ADAPTIVE_BACK,
} step_kind;

typedef struct step {
    step_kind kind;
    dnnl_primitive_t prim;
    int node;
    int nargs;
    arg args[MAX_ARGS];
    dnnl_exec_arg_t exec[MAX_ARGS];
} step;

struct nn_backprop {
    nn_net *net;
    int64_t batch, outputs;
    int c, h, w, flags;
    int nvalues, nsteps, nfixed, nbuffers, nforward; /* steps [0, nforward) are the forward pass */
    value *values;
    step *steps;
    fixed *fixed;
    void **buffers;
    int64_t bytes;
    int input, output, dy, dinput; /* values */
    tensor **grad;                 /* 2 per node: weight, bias gradients */
    uint64_t seed;                 /* of the current forward pass (dropout masks) */
    nn_dims *dims;
    int *skipped;                  /* nodes whose gradient is zero (no path to the outputs) */
    int nskipped;
};

/* ---- plan-building bookkeeping -------------------------------------------------------------- */

static int grow(void **array, int count, size_t elem)
{
    if (count != 0 && (count < 8 || (count & (count - 1)) != 0))
        return 0;
    void *a = realloc(*array, (size_t)(count ? 2 * count : 8) * elem);
    if (!a)
        return err_set("out of memory");
    *array = a;
    return 0;
}

static int new_value(nn_backprop *p, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t copy = *md; /* md may point into the array that grows */
    if (grow((void **)&p->values, p->nvalues, sizeof *p->values))
        return -1;
    value *v = &p->values[p->nvalues];
    memset(v, 0, sizeof *v);
    v->md = copy;
    v->def = v->last = v->buffer = -1;
    return p->nvalues++;
}

/* The fixed memory of (node, slot), created on first use. */
static int get_fixed(nn_backprop *p, int node, int slot, int ndims, const int64_t *dims)
{
    for (int i = 0; i < p->nfixed; i++)
        if (p->fixed[i].node == node && p->fixed[i].slot == slot)
            return i;
    if (grow((void **)&p->fixed, p->nfixed, sizeof *p->fixed))
        return -1;
    dnnl_memory_desc_t md;
    dn_md_plain(&md, ndims, dims);
    fixed *f = &p->fixed[p->nfixed];
    f->node = node;
    f->slot = slot;
    if (dn_check(dnnl_memory_create(&f->mem, &md, dn_engine, DNNL_MEMORY_NONE), "parameter memory"))
        return -1;
    return p->nfixed++;
}

static step *new_step(nn_backprop *p, step_kind kind, dnnl_primitive_desc_t pd)
{
    if (grow((void **)&p->steps, p->nsteps, sizeof *p->steps))
        return NULL;
    step *s = &p->steps[p->nsteps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = -1;
    if (pd && dn_check(dnnl_primitive_create(&s->prim, pd), "creating a primitive"))
        return NULL;
    p->nsteps++;
    return s;
}

static void add_arg(step *s, int id, int value) { s->args[s->nargs++] = (arg){id, value, -1}; }
static void add_fixed(step *s, int id, int f) { s->args[s->nargs++] = (arg){id, -1, f}; }

static const dnnl_memory_desc_t *md_of(const nn_backprop *p, int v) { return &p->values[v].md; }

/* A reorder from value (or fixed memory) src into value dst, adding to dst's content when acc. */
static int emit_reorder(nn_backprop *p, int src, int src_fixed, int dst, int acc)
{
    const dnnl_memory_desc_t *smd;
    if (src >= 0)
        smd = md_of(p, src);
    else if (dnnl_memory_get_memory_desc(p->fixed[src_fixed].mem, &smd) != dnnl_success)
        return err_set("oneDNN: parameter memory has no descriptor");
    dnnl_primitive_attr_t attr = dn_post_ops_attr(acc, 0);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_reorder_primitive_desc_create(&pd, smd, dn_engine, md_of(p, dst), dn_engine, attr),
                      "reorder");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return -1;
    step *s = new_step(p, ST_PRIM, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    if (src >= 0)
        add_arg(s, DNNL_ARG_FROM, src);
    else
        add_fixed(s, DNNL_ARG_FROM, src_fixed);
    add_arg(s, DNNL_ARG_TO, dst);
    return 0;
}

/* A reorder from value src into fixed memory f (a gradient in plain layout). */
static int emit_reorder_to_fixed(nn_backprop *p, int src, int f)
{
    const dnnl_memory_desc_t *dmd;
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_get_memory_desc(p->fixed[f].mem, &dmd) != dnnl_success ||
        dn_check(dnnl_reorder_primitive_desc_create(&pd, md_of(p, src), dn_engine, dmd, dn_engine, NULL),
                 "gradient reorder"))
        return -1;
    step *s = new_step(p, ST_PRIM, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_FROM, src);
    add_fixed(s, DNNL_ARG_TO, f);
    return 0;
}

/* ---- the builder ---------------------------------------------------------------------------- */

/* What the forward pass of a chain of nodes left for its backward pass. */
typedef struct unit {
    int head, last;   /* first and last node of the chain (last names the output) */
    int relu;         /* a ReLU fused after the head: post-op, or the batch norm's flag */
    int src, src1;    /* values the primitive read (after any reorder) */
    int dst;          /* output value */
    int ws;           /* workspace (max pool, BN+ReLU) or dropout mask, or -1 */
    int mean, var;    /* batch norm */
    int wvalue;       /* conv/linear weights in the forward layout (or -1: the plain fixed memory) */
    int alias;        /* identity (dropout 0, adaptive pool to the same size): dst is src */
    int wnd;          /* weight dims */
    int64_t wdims[5];
    dnnl_primitive_desc_t pd; /* forward primitive descriptor: the backward's hint */
} unit;

typedef struct builder {
    nn_backprop *p;
    const nn_net *net;
    int *act;    /* value holding each node's output */
    int *grad;   /* value holding the gradient of each node's output, or -1 */
    int *uses;   /* consumers of each node */
    int *consumer;
    unit *units;
    int nunits;
} builder;

static int sole_consumer(const builder *b, int node, nn_op op)
{
    if (node == b->net->count - 1 || b->uses[node] != 1)
        return -1;
    int k = b->consumer[node];
    return b->net->nodes[k].op == op ? k : -1;
}

static nn_dims in_dims(const builder *b, int node)
{
    int src = b->net->nodes[node].in[0];
    return src == NN_INPUT ? (nn_dims){b->p->c, b->p->h, b->p->w} : b->p->dims[src];
}

static int src_value(const builder *b, int node, int which)
{
    int src = b->net->nodes[node].in[which];
    return src == NN_INPUT ? b->p->input : b->act[src];
}

/* Value v in layout want: v itself or a reordered copy (a forward step). */
static int in_layout(builder *b, int v, const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_desc_equal(md_of(b->p, v), want))
        return v;
    int r = new_value(b->p, want);
    if (r < 0 || emit_reorder(b->p, v, -1, r, 0))
        return -1;
    return r;
}

/* The weights of node i in layout want: the plain fixed memory itself (-1 in *value) or a value
 * reordered from it by a step emitted now. */
static int weights_in(builder *b, int i, const unit *u, const dnnl_memory_desc_t *want, int *value, int *fixed_out)
{
    int f = get_fixed(b->p, i, 0, u->wnd, u->wdims);
    if (f < 0)
        return -1;
    const dnnl_memory_desc_t *plain;
    dnnl_memory_get_memory_desc(b->p->fixed[f].mem, &plain);
    *fixed_out = f;
    *value = -1;
    if (dnnl_memory_desc_equal(plain, want))
        return 0;
    if ((*value = new_value(b->p, want)) < 0)
        return -1;
    return emit_reorder(b->p, -1, f, *value, 0);
}

static unit *new_unit(builder *b, int head)
{
    if (grow((void **)&b->units, b->nunits, sizeof *b->units))
        return NULL;
    unit *u = &b->units[b->nunits++];
    memset(u, 0, sizeof *u);
    u->head = u->last = head;
    u->src = u->src1 = u->dst = u->ws = u->mean = u->var = u->wvalue = -1;
    return u;
}

/* Creates pd from desc with an optional fused ReLU; without it when oneDNN refuses the post-op. */
static int create_pd(dnnl_primitive_desc_t *pd, const void *desc, int *relu, const char *what)
{
    if (*relu) {
        dnnl_primitive_attr_t attr = dn_post_ops_attr(0, 1);
        dnnl_status_t st = dnnl_primitive_desc_create(pd, desc, attr, dn_engine, NULL);
        if (attr)
            dnnl_primitive_attr_destroy(attr);
        if (st == dnnl_success)
            return 0;
        *relu = 0;
    }
    return dn_check(dnnl_primitive_desc_create(pd, desc, NULL, dn_engine, NULL), what);
}

static int fwd_weighted(builder *b, unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    nn_dims in = in_dims(b, i), out = p->dims[i];
    int conv = n->op == NN_CONV;
    int src = src_value(b, i, 0);
    int src_nd = conv ? 4 : md_of(p, src)->ndims;
    int64_t sdims[4] = {p->batch, in.c, in.h, in.w}, ddims[4] = {p->batch, out.c, out.h, out.w};
    if (conv && n->groups > 1) {
        int64_t g[5] = {n->groups, n->out / n->groups, in.c / n->groups, n->kh, n->kw};
        memcpy(u->wdims, g, sizeof g);
        u->wnd = 5;
    } else if (conv) {
        int64_t w4[4] = {n->out, in.c, n->kh, n->kw};
        memcpy(u->wdims, w4, sizeof w4);
        u->wnd = 4;
    } else if (src_nd == 4) {
        int64_t w4[4] = {n->out, in.c, in.h, in.w};
        memcpy(u->wdims, w4, sizeof w4);
        u->wnd = 4;
    } else {
        int64_t w2[2] = {n->out, (int64_t)in.c * in.h * in.w};
        memcpy(u->wdims, w2, sizeof w2);
        sdims[1] = w2[1];
        u->wnd = 2;
    }
    int64_t bdims[1] = {n->out};
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dn_md_any(&smd, src_nd, sdims);
    dn_md_any(&wmd, u->wnd, u->wdims);
    dn_md_plain(&bmd, 1, bdims);
    dn_md_any(&dmd, conv ? 4 : 2, ddims);
    union {
        dnnl_convolution_desc_t conv;
        dnnl_inner_product_desc_t ip;
    } d;
    dnnl_dims_t strides = {n->sh, n->sw}, pad = {n->ph, n->pw};
    const dnnl_memory_desc_t *bias = n->has_bias ? &bmd : NULL;
    if (conv ? dn_check(dnnl_convolution_forward_desc_init(&d.conv, dnnl_forward_training, dnnl_convolution_direct,
                                                           &smd, &wmd, bias, &dmd, strides, pad, pad),
                        "convolution descriptor")
             : dn_check(dnnl_inner_product_forward_desc_init(&d.ip, dnnl_forward_training, &smd, &wmd, bias, &dmd),
                        "inner product descriptor"))
        return -1;
    u->relu = relu;
    if (create_pd(&u->pd, &d, &u->relu, "primitive descriptor"))
        return -1;
    int wf;
    u->src = in_layout(b, src, dnnl_primitive_desc_query_md(u->pd, dnnl_query_src_md, 0));
    if (u->src < 0 || weights_in(b, i, u, dnnl_primitive_desc_query_md(u->pd, dnnl_query_weights_md, 0),
                                 &u->wvalue, &wf))
        return -1;
    int bf = n->has_bias ? get_fixed(p, i, 1, 1, bdims) : 0;
    u->dst = bf >= 0 ? new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0)) : -1;
    step *s = u->dst >= 0 ? new_step(p, ST_PRIM, u->pd) : NULL;
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC, u->src);
    if (u->wvalue >= 0)
        add_arg(s, DNNL_ARG_WEIGHTS, u->wvalue);
    else
        add_fixed(s, DNNL_ARG_WEIGHTS, wf);
    if (n->has_bias)
        add_fixed(s, DNNL_ARG_BIAS, bf);
    add_arg(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_batchnorm(builder *b, unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    u->src = src_value(b, i, 0);
    u->relu = relu;
    dnnl_batch_normalization_desc_t d;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    if (dn_check(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_training, md_of(p, u->src), n->eps,
                                                            flags),
                 "batch norm descriptor") ||
        dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "batch norm primitive descriptor"))
        return -1;
    int64_t cdims[1] = {p->dims[i].c};
    int sf = get_fixed(p, i, 0, 1, cdims), hf = get_fixed(p, i, 1, 1, cdims);
    if (sf < 0 || hf < 0)
        return -1;
    u->dst = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    u->mean = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 1));
    u->var = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 2));
    if (relu)
        u->ws = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_workspace_md, 0));
    step *s = u->dst >= 0 && u->mean >= 0 && u->var >= 0 && (!relu || u->ws >= 0) ? new_step(p, ST_PRIM, u->pd)
                                                                                   : NULL;
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_fixed(s, DNNL_ARG_SCALE, sf);
    add_fixed(s, DNNL_ARG_SHIFT, hf);
    add_arg(s, DNNL_ARG_DST, u->dst);
    add_arg(s, DNNL_ARG_MEAN, u->mean);
    add_arg(s, DNNL_ARG_VARIANCE, u->var);
    if (relu)
        add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    if (p->flags & NN_BACKPROP_KEEP_STATS)
        return 0;
    step *r = new_step(p, ST_RUNNING_STATS, NULL);
    if (!r)
        return -1;
    r->node = i;
    add_arg(r, DNNL_ARG_MEAN, u->mean);
    add_arg(r, DNNL_ARG_VARIANCE, u->var);
    return 0;
}

static int eltwise_relu_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md)
{
    dnnl_eltwise_desc_t d;
    return dn_check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, md,
                                                   0, 0),
                    "relu descriptor") ||
           dn_check(dnnl_primitive_desc_create(pd, &d, NULL, dn_engine, NULL), "relu primitive descriptor");
}

static int fwd_simple(builder *b, unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    u->src = src_value(b, i, 0);
    const dnnl_memory_desc_t *md = md_of(p, u->src);
    if (n->op == NN_RELU) {
        if (eltwise_relu_pd(&u->pd, md))
            return -1;
    } else {
        dnnl_softmax_desc_t d;
        if (dn_check(dnnl_softmax_forward_desc_init(&d, dnnl_forward_training, md, 1), "softmax descriptor") ||
            dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "softmax primitive descriptor"))
            return -1;
    }
    u->dst = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    step *s = u->dst >= 0 ? new_step(p, ST_PRIM, u->pd) : NULL;
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_arg(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_add(builder *b, unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    u->src = src_value(b, i, 0);
    dnnl_memory_desc_t dmd = *md_of(p, u->src);
    u->src1 = in_layout(b, src_value(b, i, 1), &dmd);
    if (u->src1 < 0)
        return -1;
    dnnl_binary_desc_t d;
    u->relu = relu;
    if (dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &dmd, md_of(p, u->src1), &dmd), "add descriptor") ||
        create_pd(&u->pd, &d, &u->relu, "add primitive descriptor"))
        return -1;
    u->dst = new_value(p, &dmd);
    step *s = u->dst >= 0 ? new_step(p, ST_PRIM, u->pd) : NULL;
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC_0, u->src);
    add_arg(s, DNNL_ARG_SRC_1, u->src1);
    add_arg(s, DNNL_ARG_DST, u->dst);
    return 0;
}

/* Pooling geometry of node i (adaptive pools over even bins become ordinary average pools). */
static void pool_geometry(const builder *b, int i, dnnl_alg_kind_t *alg, dnnl_dims_t strides, dnnl_dims_t kernel,
                          dnnl_dims_t pl, dnnl_dims_t pr)
{
    const nn_node *n = &b->net->nodes[i];
    nn_dims in = in_dims(b, i), out = b->p->dims[i];
    int kh = n->kh, kw = n->kw, sh = n->sh, sw = n->sw, ph = n->ph, pw = n->pw;
    *alg = n->op == NN_MAXPOOL ? dnnl_pooling_max
           : ph || pw          ? dnnl_pooling_avg_include_padding
                               : dnnl_pooling_avg_exclude_padding;
    if (n->op == NN_ADAPTIVE_AVGPOOL) {
        kh = sh = in.h / out.h;
        kw = sw = in.w / out.w;
        ph = pw = 0;
    }
    /* PyTorch's ceil mode becomes extra padding on the bottom/right */
    int64_t pr_h = (int64_t)(out.h - 1) * sh + kh - in.h - ph, pr_w = (int64_t)(out.w - 1) * sw + kw - in.w - pw;
    strides[0] = sh;
    strides[1] = sw;
    kernel[0] = kh;
    kernel[1] = kw;
    pl[0] = ph;
    pl[1] = pw;
    pr[0] = pr_h < ph ? ph : pr_h;
    pr[1] = pr_w < pw ? pw : pr_w;
}

static int fwd_pool(builder *b, unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    nn_dims out = p->dims[i];
    u->src = src_value(b, i, 0);
    int64_t ddims[4] = {p->batch, out.c, out.h, out.w};
    dnnl_memory_desc_t dmd;
    dn_md_any(&dmd, 4, ddims);
    dnnl_alg_kind_t alg;
    dnnl_dims_t strides, kernel, pl, pr;
    pool_geometry(b, i, &alg, strides, kernel, pl, pr);
    dnnl_pooling_desc_t d;
    if (dn_check(dnnl_pooling_forward_desc_init(&d, dnnl_forward_training, alg, md_of(p, u->src), &dmd, strides,
                                                kernel, pl, pr),
                 "pooling descriptor") ||
        dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "pooling primitive descriptor"))
        return -1;
    u->dst = new_value(p, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(u->pd, dnnl_query_workspace_md, 0);
    if (wmd && wmd->ndims > 0)
        u->ws = new_value(p, wmd);
    step *s = u->dst >= 0 ? new_step(p, ST_PRIM, u->pd) : NULL;
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_arg(s, DNNL_ARG_DST, u->dst);
    if (u->ws >= 0)
        add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    return 0;
}

/* Adaptive average pool over uneven bins: plain layout, C loops. */
static int fwd_adaptive_uneven(builder *b, unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    nn_dims in = in_dims(b, i), out = p->dims[i];
    int64_t sdims[4] = {p->batch, in.c, in.h, in.w}, ddims[4] = {p->batch, out.c, out.h, out.w};
    dnnl_memory_desc_t smd, dmd;
    dn_md_plain(&smd, 4, sdims);
    dn_md_plain(&dmd, 4, ddims);
    u->src = in_layout(b, src_value(b, i, 0), &smd);
    u->dst = u->src >= 0 ? new_value(p, &dmd) : -1;
    step *s = u->dst >= 0 ? new_step(p, ST_ADAPTIVE, NULL) : NULL;
    if (!s)
        return -1;
    s->node = i;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_arg(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_dropout(builder *b, unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    u->src = src_value(b, i, 0);
    u->ws = new_value(p, md_of(p, u->src));
    u->dst = u->ws >= 0 ? new_value(p, md_of(p, u->src)) : -1;
    step *s = u->dst >= 0 ? new_step(p, ST_DROPOUT, NULL) : NULL;
    if (!s)
        return -1;
    s->node = i;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    add_arg(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int forward(builder *b)
{
    const nn_net *net = b->net;
    nn_backprop *p = b->p;
    int *done = calloc((size_t)net->count, sizeof *done);
    if (!done)
        return err_set("out of memory");
    int rc = 0;
    for (int i = 0; i < net->count && rc == 0; i++) {
        if (done[i])
            continue;
        const nn_node *n = &net->nodes[i];
        unit *u = new_unit(b, i);
        if (!u) {
            rc = -1;
            break;
        }
        int relu_node = -1, r;
        switch (n->op) {
        case NN_CONV:
        case NN_LINEAR:
        case NN_BATCHNORM:
        case NN_ADD:
            relu_node = sole_consumer(b, i, NN_RELU);
            r = n->op == NN_BATCHNORM ? fwd_batchnorm(b, u, relu_node >= 0)
                : n->op == NN_ADD     ? fwd_add(b, u, relu_node >= 0)
                                      : fwd_weighted(b, u, relu_node >= 0);
            if (!u->relu)
                relu_node = -1;
            break;
        case NN_MAXPOOL:
        case NN_AVGPOOL:
            r = fwd_pool(b, u);
            break;
        case NN_ADAPTIVE_AVGPOOL: {
            nn_dims in = in_dims(b, i), out = p->dims[i];
            if (in.h == out.h && in.w == out.w) {
                u->alias = 1;
                u->src = u->dst = src_value(b, i, 0);
                r = 0;
            } else {
                r = in.h % out.h == 0 && in.w % out.w == 0 ? fwd_pool(b, u) : fwd_adaptive_uneven(b, u);
            }
            break;
        }
        case NN_DROPOUT:
            if (n->dropout > 0) {
                r = fwd_dropout(b, u);
            } else {
                u->alias = 1;
                u->src = u->dst = src_value(b, i, 0);
                r = 0;
            }
            break;
        case NN_RELU:
        case NN_SOFTMAX:
            r = fwd_simple(b, u);
            break;
        default:
            r = err_set("cannot train layers of kind %s", nn_op_name(n->op));
        }
        u = &b->units[b->nunits - 1];
        if (r != 0) {
            rc = err_prefix("layer %s", *n->name ? n->name : nn_op_name(n->op));
            break;
        }
        if (relu_node >= 0) {
            u->last = relu_node;
            done[relu_node] = 1;
            b->act[relu_node] = u->dst;
        }
        done[i] = 1;
        b->act[i] = u->dst;
    }
    free(done);
    return rc;
}

/* ---- backward ------------------------------------------------------------------------------- */

/* Value v in layout want, reordered by a step emitted now when it is not already. */
static int as_layout(nn_backprop *p, int v, const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_desc_equal(md_of(p, v), want))
        return v;
    int r = new_value(p, want);
    return r < 0 || emit_reorder(p, v, -1, r, 0) ? -1 : r;
}

/* Gradients are never written again once computed, so one value may serve as the gradient of
 * several nodes (an add hands its gradient to both operands) without copies. */

/* A new value holding a + b (both in layout md of a; b reordered first when it is not). */
static int emit_sum(nn_backprop *p, int a, int v)
{
    dnnl_memory_desc_t md = *md_of(p, a);
    int bv = as_layout(p, v, &md);
    dnnl_binary_desc_t d;
    dnnl_primitive_desc_t pd;
    if (bv < 0 || dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &md, &md, &md), "gradient sum descriptor") ||
        dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "gradient sum"))
        return -1;
    step *s = new_step(p, ST_PRIM, pd);
    dnnl_primitive_desc_destroy(pd);
    int r = s ? new_value(p, &md) : -1;
    if (r < 0)
        return -1;
    add_arg(s, DNNL_ARG_SRC_0, a);
    add_arg(s, DNNL_ARG_SRC_1, bv);
    add_arg(s, DNNL_ARG_DST, r);
    return r;
}

/* Hands the gradient v of node j's output (or of the input) to j: the first becomes j's gradient
 * (reordered into j's layout if need be), later ones are added to it. */
static int deliver(builder *b, int j, int v)
{
    nn_backprop *p = b->p;
    if (j == NN_INPUT && p->dinput < 0)
        return 0;
    if (j == NN_INPUT) { /* the caller's buffer: copied into, then added to in place */
        int first = p->values[p->dinput].def < 0;
        p->values[p->dinput].def = 0; /* marks it as written while building */
        return emit_reorder(p, v, -1, p->dinput, !first);
    }
    if (b->grad[j] >= 0)
        return (b->grad[j] = emit_sum(p, b->grad[j], v)) < 0 ? -1 : 0;
    return (b->grad[j] = as_layout(p, v, md_of(p, b->act[j]))) < 0 ? -1 : 0;
}

static int prim_step(nn_backprop *p, const void *desc, const dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                     step **s, const char *what)
{
    if (dn_check(dnnl_primitive_desc_create(pd, desc, NULL, dn_engine, hint), what))
        return -1;
    *s = new_step(p, ST_PRIM, *pd);
    return *s ? 0 : -1;
}

/* The gradient before a ReLU from the one after it and the ReLU's output: a new value. */
static int bwd_relu(builder *b, int dst, int g, dnnl_primitive_desc_t hint)
{
    nn_backprop *p = b->p;
    dnnl_primitive_desc_t own = NULL, pd = NULL;
    if (!hint && eltwise_relu_pd(&own, md_of(p, dst)))
        return -1;
    dnnl_eltwise_desc_t d;
    step *s = NULL;
    int rc = dn_check(dnnl_eltwise_backward_desc_init(&d, dnnl_eltwise_relu_use_dst_for_bwd, md_of(p, g),
                                                      md_of(p, dst), 0, 0),
                      "relu backward descriptor") ||
             prim_step(p, &d, hint ? hint : own, &pd, &s, "relu backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (own)
        dnnl_primitive_desc_destroy(own);
    int r = rc ? -1 : new_value(p, md_of(p, g));
    if (r < 0)
        return -1;
    add_arg(s, DNNL_ARG_DST, dst);
    add_arg(s, DNNL_ARG_DIFF_DST, g);
    add_arg(s, DNNL_ARG_DIFF_SRC, r);
    return r;
}

/* True when oneDNN fell back to its reference implementation (orders of magnitude slower). */
static int is_reference(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
           strncmp(impl, "ref", 3) == 0;
}

/* Descriptor of a convolution's or inner product's backward data (data = 1) or weights pass,
 * in the forward pass's layouts (fixed) or in layouts oneDNN may choose. */
static int bwd_desc(void *d, const nn_node *n, const unit *u, const nn_backprop *p, int g, int data, int fixed)
{
    dnnl_dims_t strides = {n->sh, n->sw}, pad = {n->ph, n->pw};
    int64_t bdims[1] = {n->out};
    dnnl_memory_desc_t wmd, bmd, smd = *md_of(p, u->src), gmd = *md_of(p, g);
    dn_md_any(&wmd, u->wnd, u->wdims);
    dn_md_plain(&bmd, 1, bdims);
    if (!fixed) {
        dn_md_any(&smd, smd.ndims, smd.dims);
        dn_md_any(&gmd, gmd.ndims, gmd.dims);
    }
    const dnnl_memory_desc_t *bias = n->has_bias ? &bmd : NULL;
    if (n->op == NN_CONV)
        return data ? dn_check(dnnl_convolution_backward_data_desc_init(d, dnnl_convolution_direct, &smd, &wmd, &gmd,
                                                                        strides, pad, pad),
                               "convolution backward data descriptor")
                    : dn_check(dnnl_convolution_backward_weights_desc_init(d, dnnl_convolution_direct, &smd, &wmd,
                                                                           bias, &gmd, strides, pad, pad),
                               "convolution backward weights descriptor");
    return data ? dn_check(dnnl_inner_product_backward_data_desc_init(d, &smd, &wmd, &gmd),
                           "inner product backward data descriptor")
                : dn_check(dnnl_inner_product_backward_weights_desc_init(d, &smd, &wmd, bias, &gmd),
                           "inner product backward weights descriptor");
}

/* A backward primitive descriptor in the forward pass's layouts, or, when that leaves oneDNN only
 * its reference implementation (a first layer reads a plain input, say), in layouts it chooses. */
static int bwd_pd(dnnl_primitive_desc_t *pd, const nn_node *n, const unit *u, const nn_backprop *p, int g, int data)
{
    union {
        dnnl_convolution_desc_t conv;
        dnnl_inner_product_desc_t ip;
    } d;
    if (bwd_desc(&d, n, u, p, g, data, 1) == 0 &&
        dnnl_primitive_desc_create(pd, &d, NULL, dn_engine, u->pd) == dnnl_success) {
        if (!is_reference(*pd))
            return 0;
        dnnl_primitive_desc_destroy(*pd);
    }
    *pd = NULL;
    return bwd_desc(&d, n, u, p, g, data, 0) ||
           dn_check(dnnl_primitive_desc_create(pd, &d, NULL, dn_engine, u->pd), data ? "backward data" : "backward weights");
}

static int bwd_weighted(builder *b, unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    int in = n->in[0];
    int64_t bdims[1] = {n->out};
    dnnl_primitive_desc_t pd = NULL;
    step *s;
    /* data first: it reads the weights before nothing else changes them, and frees g's consumers */
    if (in != NN_INPUT || p->dinput >= 0) {
        if (bwd_pd(&pd, n, u, p, g, 1))
            return -1;
        int wv = -1, wf = -1;
        int gd = as_layout(p, g, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
        int ds = gd < 0 ? -1 : new_value(p, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0));
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (u->wvalue >= 0 && dnnl_memory_desc_equal(md_of(p, u->wvalue), want))
            wv = u->wvalue; /* the forward pass's copy in this layout */
        int rc = ds < 0 || (wv < 0 && weights_in(b, i, u, want, &wv, &wf)) || !(s = new_step(p, ST_PRIM, pd));
        dnnl_primitive_desc_destroy(pd);
        if (rc)
            return -1;
        add_arg(s, DNNL_ARG_DIFF_DST, gd);
        if (wv >= 0)
            add_arg(s, DNNL_ARG_WEIGHTS, wv);
        else
            add_fixed(s, DNNL_ARG_WEIGHTS, wf);
        add_arg(s, DNNL_ARG_DIFF_SRC, ds);
        if (deliver(b, in, ds))
            return -1;
    }
    if (bwd_pd(&pd, n, u, p, g, 0))
        return -1;
    int gw = as_layout(p, g, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
    int src = gw < 0 ? -1 : as_layout(p, u->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    int gwf = get_fixed(p, i, 2, u->wnd, u->wdims), gbf = n->has_bias ? get_fixed(p, i, 3, 1, bdims) : 0;
    const dnnl_memory_desc_t *dwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    const dnnl_memory_desc_t *plain;
    int dw = -1;
    if (src >= 0 && gwf >= 0 && gbf >= 0) {
        dnnl_memory_get_memory_desc(p->fixed[gwf].mem, &plain);
        if (!dnnl_memory_desc_equal(plain, dwmd))
            dw = new_value(p, dwmd);
    }
    s = src >= 0 && gwf >= 0 && gbf >= 0 ? new_step(p, ST_PRIM, pd) : NULL;
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    add_arg(s, DNNL_ARG_SRC, src);
    add_arg(s, DNNL_ARG_DIFF_DST, gw);
    if (dw >= 0)
        add_arg(s, DNNL_ARG_DIFF_WEIGHTS, dw);
    else
        add_fixed(s, DNNL_ARG_DIFF_WEIGHTS, gwf);
    if (n->has_bias)
        add_fixed(s, DNNL_ARG_DIFF_BIAS, gbf);
    return dw >= 0 ? emit_reorder_to_fixed(p, dw, gwf) : 0;
}

static int bwd_batchnorm(builder *b, unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (u->relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    step *s = NULL;
    int64_t cdims[1] = {p->dims[i].c};
    int rc = dn_check(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, md_of(p, g), md_of(p, u->src),
                                                                  n->eps, flags),
                      "batch norm backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "batch norm backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    int sf = get_fixed(p, i, 0, 1, cdims), hf = get_fixed(p, i, 1, 1, cdims);
    int gsf = get_fixed(p, i, 2, 1, cdims), ghf = get_fixed(p, i, 3, 1, cdims);
    if (rc || sf < 0 || hf < 0 || gsf < 0 || ghf < 0)
        return -1;
    add_arg(s, DNNL_ARG_SRC, u->src);
    add_arg(s, DNNL_ARG_MEAN, u->mean);
    add_arg(s, DNNL_ARG_VARIANCE, u->var);
    add_fixed(s, DNNL_ARG_SCALE, sf);
    add_fixed(s, DNNL_ARG_SHIFT, hf);
    if (u->relu)
        add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    int ds = new_value(p, md_of(p, g));
    if (ds < 0)
        return -1;
    add_arg(s, DNNL_ARG_DIFF_DST, g);
    add_arg(s, DNNL_ARG_DIFF_SRC, ds);
    add_fixed(s, DNNL_ARG_DIFF_SCALE, gsf);
    add_fixed(s, DNNL_ARG_DIFF_SHIFT, ghf);
    return deliver(b, n->in[0], ds);
}

static int bwd_pool(builder *b, unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    dnnl_alg_kind_t alg;
    dnnl_dims_t strides, kernel, pl, pr;
    pool_geometry(b, i, &alg, strides, kernel, pl, pr);
    dnnl_pooling_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    step *s = NULL;
    int ds = new_value(p, md_of(p, u->src));
    int rc = ds < 0 ||
             dn_check(dnnl_pooling_backward_desc_init(&d, alg, md_of(p, ds), md_of(p, g), strides, kernel, pl, pr),
                      "pooling backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "pooling backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        return -1;
    add_arg(s, DNNL_ARG_DIFF_DST, g);
    add_arg(s, DNNL_ARG_DIFF_SRC, ds);
    if (u->ws >= 0)
        add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    return deliver(b, b->net->nodes[i].in[0], ds);
}

static int bwd_softmax(builder *b, unit *u, int g)
{
    nn_backprop *p = b->p;
    dnnl_softmax_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    step *s = NULL;
    int ds = new_value(p, md_of(p, g));
    int rc = ds < 0 ||
             dn_check(dnnl_softmax_backward_desc_init(&d, md_of(p, g), md_of(p, u->dst), 1),
                      "softmax backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "softmax backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        return -1;
    add_arg(s, DNNL_ARG_DST, u->dst);
    add_arg(s, DNNL_ARG_DIFF_DST, g);
    add_arg(s, DNNL_ARG_DIFF_SRC, ds);
    return deliver(b, b->net->nodes[u->head].in[0], ds);
}

static int bwd_c_step(builder *b, unit *u, int g, step_kind kind)
{
    nn_backprop *p = b->p;
    const nn_node *n = &b->net->nodes[u->head];
    int ds = new_value(p, kind == ST_ADAPTIVE_BACK ? md_of(p, u->src) : md_of(p, g));
    if (ds < 0)
        return -1;
    step *s = new_step(p, kind, NULL);
    if (!s)
        return -1;
    s->node = u->head;
    add_arg(s, DNNL_ARG_DIFF_DST, g);
    if (u->ws >= 0)
        add_arg(s, DNNL_ARG_WORKSPACE, u->ws);
    add_arg(s, DNNL_ARG_DIFF_SRC, ds);
    return deliver(b, n->in[0], ds);
}

static int backward_unit(builder *b, unit *u)
{
    const nn_node *n = &b->net->nodes[u->head];
    int g = b->grad[u->last];
    if (g < 0) { /* nothing downstream depends on this output */
        if (n->weight) {
            int *sk = realloc(b->p->skipped, (size_t)(b->p->nskipped + 1) * sizeof *sk);
            if (!sk)
                return err_set("out of memory");
            b->p->skipped = sk;
            sk[b->p->nskipped++] = u->head;
        }
        return 0;
    }
    if (u->relu && n->op != NN_BATCHNORM && (g = bwd_relu(b, u->dst, g, NULL)) < 0)
        return -1;
    switch (n->op) {
    case NN_CONV:
    case NN_LINEAR:
        return bwd_weighted(b, u, g);
    case NN_BATCHNORM:
        return bwd_batchnorm(b, u, g);
    case NN_ADD:
        return deliver(b, n->in[0], g) || deliver(b, n->in[1], g);
    case NN_RELU:
        return (g = bwd_relu(b, u->dst, g, u->pd)) < 0 ? -1 : deliver(b, n->in[0], g);
    case NN_SOFTMAX:
        return bwd_softmax(b, u, g);
    case NN_DROPOUT:
        return u->alias ? deliver(b, n->in[0], g) : bwd_c_step(b, u, g, ST_DROPOUT_BACK);
    case NN_ADAPTIVE_AVGPOOL:
        if (u->alias)
            return deliver(b, n->in[0], g);
        if (u->pd)
            return bwd_pool(b, u, g);
        return bwd_c_step(b, u, g, ST_ADAPTIVE_BACK);
    default:
        return bwd_pool(b, u, g);
    }
}

/* ---- buffers -------------------------------------------------------------------------------- */

static int cmp_def(const void *a, const void *b, void *ctx)
{
    const value *v = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    return v[x].def != v[y].def ? (v[x].def < v[y].def ? -1 : 1) : (x < y ? -1 : x > y);
}

/* Lifetimes from the steps, then buffers shared by values whose lifetimes do not overlap. */
static int allocate(nn_backprop *p)
{
    for (int i = 0; i < p->nvalues; i++)
        p->values[i].def = p->values[i].last = -1;
    for (int s = 0; s < p->nsteps; s++)
        for (int a = 0; a < p->steps[s].nargs; a++) {
            int v = p->steps[s].args[a].value;
            if (v < 0)
                continue;
            if (p->values[v].def < 0)
                p->values[v].def = s;
            p->values[v].last = s;
        }
    int *order = malloc((size_t)p->nvalues * sizeof *order);
    size_t *size = calloc((size_t)p->nvalues + 1, sizeof *size);
    int *holder_last = calloc((size_t)p->nvalues + 1, sizeof *holder_last);
    int rc = -1;
    if (!order || !size || !holder_last) {
        err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < p->nvalues; i++)
        order[i] = i;
    qsort_r(order, (size_t)p->nvalues, sizeof *order, cmp_def, p->values);
    for (int k = 0; k < p->nvalues; k++) {
        value *v = &p->values[order[k]];
        if (v->external || (v->def < 0 && !v->pinned))
            continue;
        size_t need = dnnl_memory_desc_get_size(&v->md);
        int best = -1;
        if (!v->pinned)
            for (int b = 0; b < p->nbuffers; b++) {
                if (holder_last[b] >= v->def)
                    continue;
                if (best < 0 || (size[b] >= need && (size[best] < need || size[b] < size[best])) ||
                    (size[best] < need && size[b] > size[best]))
                    best = b;
            }
        if (best < 0) {
            best = p->nbuffers++;
            size[best] = 0;
        }
        if (size[best] < need)
            size[best] = need;
        holder_last[best] = v->pinned ? p->nsteps : v->last;
        v->buffer = best;
    }
    if (!(p->buffers = calloc((size_t)p->nbuffers + 1, sizeof *p->buffers))) {
        err_set("out of memory");
        goto done;
    }
    for (int b = 0; b < p->nbuffers; b++) {
        if (!(p->buffers[b] = tensor_alloc_floats((int64_t)((size[b] + 3) / 4 + 1)))) {
            err_set("out of memory allocating %zu bytes for training", size[b]);
            goto done;
        }
        p->bytes += (int64_t)size[b];
    }
    for (int i = 0; i < p->nvalues; i++) {
        value *v = &p->values[i];
        void *handle = v->external || v->buffer < 0 ? DNNL_MEMORY_NONE : p->buffers[v->buffer];
        if (dn_check(dnnl_memory_create(&v->mem, &v->md, dn_engine, handle), "training memory"))
            goto done;
    }
    for (int s = 0; s < p->nsteps; s++) {
        step *st = &p->steps[s];
        for (int a = 0; a < st->nargs; a++) {
            const arg *ar = &st->args[a];
            st->exec[a] = (dnnl_exec_arg_t){ar->id, ar->value >= 0 ? p->values[ar->value].mem : p->fixed[ar->fixed].mem};
        }
    }
    rc = 0;
done:
    free(order);
    free(size);
    free(holder_last);
    return rc;
}

/* ---- building ------------------------------------------------------------------------------- */

void nn_backprop_free(nn_backprop *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].prim)
            dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->nvalues; i++)
        if (p->values[i].mem)
            dnnl_memory_destroy(p->values[i].mem);
    for (int i = 0; i < p->nfixed; i++)
        dnnl_memory_destroy(p->fixed[i].mem);
    for (int i = 0; i < p->nbuffers; i++)
        free(p->buffers[i]);
    if (p->grad)
        for (int i = 0; i < 2 * p->net->count; i++)
            tensor_free(p->grad[i]);
    free(p->grad);
    free(p->steps);
    free(p->values);
    free(p->fixed);
    free(p->buffers);
    free(p->dims);
    free(p->skipped);
    free(p);
}

static int build(nn_backprop *p)
{
    const nn_net *net = p->net;
    builder b = {.p = p, .net = net};
    int count = net->count, rc = -1;
    b.act = malloc((size_t)count * sizeof *b.act);
    b.grad = malloc((size_t)count * sizeof *b.grad);
    b.uses = calloc((size_t)count, sizeof *b.uses);
    b.consumer = calloc((size_t)count, sizeof *b.consumer);
    if (!b.act || !b.grad || !b.uses || !b.consumer) {
        err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        b.grad[i] = -1;
        for (int k = 0; k < 2; k++) {
            int src = net->nodes[i].in[k];
            if (src >= 0 && (k == 0 || net->nodes[i].op == NN_ADD)) {
                b.uses[src]++;
                b.consumer[src] = i;
            }
        }
    }
    int64_t idims[4] = {p->batch, p->c, p->h, p->w};
    dnnl_memory_desc_t imd;
    dn_md_plain(&imd, 4, idims);
    if ((p->input = new_value(p, &imd)) < 0)
        goto done;
    p->values[p->input].external = 1;
    p->dinput = -1;
    if (p->flags & NN_BACKPROP_INPUT_GRAD) {
        if ((p->dinput = new_value(p, &imd)) < 0)
            goto done;
        p->values[p->dinput].pinned = 1;
    }
    if (forward(&b) != 0)
        goto done;
    /* the outputs in plain layout for the caller */
    int last = b.act[count - 1];
    dnnl_memory_desc_t last_md = *md_of(p, last), *lmd = &last_md;
    int64_t odims[2] = {p->batch, 1};
    for (int k = 1; k < lmd->ndims; k++)
        odims[1] *= lmd->dims[k];
    p->outputs = odims[1];
    dnnl_memory_desc_t omd;
    int64_t ldims[DNNL_MAX_NDIMS];
    memcpy(ldims, lmd->dims, (size_t)lmd->ndims * sizeof *ldims);
    dn_md_plain(&omd, lmd->ndims, ldims);
    if ((p->output = new_value(p, &omd)) < 0)
        goto done;
    p->values[p->output].pinned = 1;
    if (emit_reorder(p, last, -1, p->output, 0))
        goto done;
    p->nforward = p->nsteps;
    /* backward: the caller's gradient in the outputs' layout, then the units in reverse */
    if ((p->dy = new_value(p, &omd)) < 0)
        goto done;
    p->values[p->dy].external = 1;
    if ((b.grad[count - 1] = new_value(p, lmd)) < 0 || emit_reorder(p, p->dy, -1, b.grad[count - 1], 0))
        goto done;
    for (int k = b.nunits - 1; k >= 0; k--)
        if (backward_unit(&b, &b.units[k]) != 0) {
            const nn_node *n = &net->nodes[b.units[k].head];
            err_prefix("layer %s (backward)", *n->name ? n->name : nn_op_name(n->op));
            goto done;
        }
    if (p->dinput >= 0)
        p->values[p->dinput].def = -1;
    rc = allocate(p);
done:
    for (int k = 0; k < b.nunits; k++)
        if (b.units[k].pd)
            dnnl_primitive_desc_destroy(b.units[k].pd);
    free(b.units);
    free(b.act);
    free(b.grad);
    free(b.uses);
    free(b.consumer);
    return rc;
}

nn_backprop *nn_backprop_new(nn_net *net, int64_t batch, int c, int h, int w, int flags)
{
    if (dn_init() != 0)
        return NULL;
    if (net->count == 0) {
        err_set("network has no layers");
        return NULL;
    }
    if (batch < 1 || c < 1 || h < 1 || w < 1) {
        err_set("training input of %lldx%dx%dx%d is empty", (long long)batch, c, h, w);
        return NULL;
    }
    nn_backprop *p = calloc(1, sizeof *p);
    if (!p) {
        err_set("out of memory");
        return NULL;
    }
    p->net = net;
    p->batch = batch;
    p->c = c;
    p->h = h;
    p->w = w;
    p->flags = flags;
    p->dims = malloc((size_t)net->count * sizeof *p->dims);
    p->grad = calloc((size_t)(2 * net->count), sizeof *p->grad);
    if (!p->dims || !p->grad) {
        err_set("out of memory");
        goto fail;
    }
    if (nn_infer(net, c, h, w, p->dims) != 0)
        goto fail;
    for (int i = 0; i < net->count; i++) {
        const nn_node *n = &net->nodes[i];
        const tensor *src[2] = {n->weight, n->bias};
        for (int k = 0; k < 2; k++)
            if (src[k] && !(p->grad[2 * i + k] = tensor_new(src[k]->ndim, src[k]->shape)))
                goto fail;
        if ((n->op == NN_CONV || n->op == NN_LINEAR || n->op == NN_BATCHNORM) && !n->weight) {
            err_set("layer %s has no parameters", n->name);
            goto fail;
        }
    }
    if (build(p) != 0)
        goto fail;
    return p;
fail:
    nn_backprop_free(p);
    return NULL;
}

/* ---- running -------------------------------------------------------------------------------- */

int64_t nn_backprop_outputs(const nn_backprop *p) { return p->outputs; }
int64_t nn_backprop_bytes(const nn_backprop *p) { return p->bytes; }

tensor *nn_backprop_grad(const nn_backprop *p, int node, int slot)
{
    if (node < 0 || node >= p->net->count || slot < 0 || slot > 1)
        return NULL;
    return p->grad[2 * node + slot];
}

const float *nn_backprop_input_grad(const nn_backprop *p)
{
    if (p->dinput < 0)
        return NULL;
    void *h;
    dnnl_memory_get_data_handle(p->values[p->dinput].mem, &h);
    return h;
}

static float *handle_of(dnnl_memory_t m)
{
    void *h = NULL;
    dnnl_memory_get_data_handle(m, &h);
    return h;
}

static float *arg_data(const step *s, int id)
{
    for (int a = 0; a < s->nargs; a++)
        if (s->args[a].id == id)
            return handle_of(s->exec[a].memory);
    return NULL;
}

static int64_t arg_floats(const step *s, int id)
{
    for (int a = 0; a < s->nargs; a++)
        if (s->args[a].id == id) {
            const dnnl_memory_desc_t *md;
            dnnl_memory_get_memory_desc(s->exec[a].memory, &md);
            return (int64_t)(dnnl_memory_desc_get_size(md) / sizeof(float));
        }
    return 0;
}

static void running_stats(nn_backprop *p, const step *s)
{
    nn_node *n = &p->net->nodes[s->node];
    const float *mean = arg_data(s, DNNL_ARG_MEAN), *var = arg_data(s, DNNL_ARG_VARIANCE);
    double m = (double)p->batch * p->dims[s->node].h * p->dims[s->node].w;
    double unbias = m > 1 ? m / (m - 1) : 1;
    for (int64_t c = 0; c < n->mean->numel; c++) {
        n->mean->data[c] = (float)((1 - BN_MOMENTUM) * n->mean->data[c] + BN_MOMENTUM * mean[c]);
        n->var->data[c] = (float)((1 - BN_MOMENTUM) * n->var->data[c] + BN_MOMENTUM * var[c] * unbias);
    }
}

/* Dropout in whatever layout the activation has: one mask entry per stored float. */
static int dropout(nn_backprop *p, const step *s)
{
    const nn_node *n = &p->net->nodes[s->node];
    int64_t count = arg_floats(s, DNNL_ARG_SRC);
    float *x = arg_data(s, DNNL_ARG_SRC), *mask = arg_data(s, DNNL_ARG_WORKSPACE), *y = arg_data(s, DNNL_ARG_DST);
    rng *r = rng_new(rng_derive_seed(p->seed, (uint64_t)s->node));
    if (!r)
        return -1;
    float keep = 1.0f / (1.0f - n->dropout);
    for (int64_t i = 0; i < count; i++)
        mask[i] = rng_uniform(r) < n->dropout ? 0.0f : keep;
    rng_free(r);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++)
        y[i] = x[i] * mask[i];
    return 0;
}

static void dropout_back(const step *s)
{
    int64_t count = arg_floats(s, DNNL_ARG_DIFF_DST);
    const float *mask = arg_data(s, DNNL_ARG_WORKSPACE);
    float *g = arg_data(s, DNNL_ARG_DIFF_DST), *d = arg_data(s, DNNL_ARG_DIFF_SRC);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++)
        d[i] = g[i] * mask[i];
}

/* Bin [lo, hi) of output index i out of o over n inputs, as PyTorch's adaptive pools. */
static void bin(int i, int o, int n, int *lo, int *hi)
{
    *lo = i * n / o;
    *hi = ((i + 1) * n + o - 1) / o;
}

static void adaptive(const nn_backprop *p, const step *s, int back)
{
    nn_dims in = s->node >= 0 && p->net->nodes[s->node].in[0] >= 0 ? p->dims[p->net->nodes[s->node].in[0]]
                                                                   : (nn_dims){p->c, p->h, p->w};
    nn_dims out = p->dims[s->node];
    float *x = arg_data(s, back ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC);
    float *y = arg_data(s, back ? DNNL_ARG_DIFF_DST : DNNL_ARG_DST);
    int64_t planes = p->batch * in.c;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < planes; nc++) {
        float *xp = x + nc * in.h * in.w, *yp = y + nc * out.h * out.w;
        if (back)
            memset(xp, 0, (size_t)in.h * in.w * sizeof *xp);
        for (int i = 0; i < out.h; i++) {
            int h0, h1;
            bin(i, out.h, in.h, &h0, &h1);
            for (int j = 0; j < out.w; j++) {
                int w0, w1;
                bin(j, out.w, in.w, &w0, &w1);
                double area = (double)(h1 - h0) * (w1 - w0), acc = 0;
                for (int u = h0; u < h1; u++)
                    for (int v = w0; v < w1; v++) {
                        if (back)
                            xp[u * in.w + v] += (float)(yp[i * out.w + j] / area);
                        else
                            acc += xp[u * in.w + v];
                    }
                if (!back)
                    yp[i * out.w + j] = (float)(acc / area);
            }
        }
    }
}

static int run(nn_backprop *p, int from, int to)
{
    for (int i = from; i < to; i++) {
        step *s = &p->steps[i];
        if (s->kind == ST_PRIM) {
            if (dn_check(dnnl_primitive_execute(s->prim, dn_stream, s->nargs, s->exec), "execute"))
                return -1;
            continue;
        }
        if (dn_check(dnnl_stream_wait(dn_stream), "execute"))
            return -1;
        switch (s->kind) {
        case ST_RUNNING_STATS:
            running_stats(p, s);
            break;
        case ST_DROPOUT:
            if (dropout(p, s))
                return -1;
            break;
        case ST_DROPOUT_BACK:
            dropout_back(s);
            break;
        case ST_ADAPTIVE:
        case ST_ADAPTIVE_BACK:
            adaptive(p, s, s->kind == ST_ADAPTIVE_BACK);
            break;
        default:
            break;
        }
    }
    return dn_check(dnnl_stream_wait(dn_stream), "execute");
}

/* Points the fixed memories at the current parameter and gradient tensors. */
static int bind_fixed(nn_backprop *p)
{
    for (int i = 0; i < p->nfixed; i++) {
        fixed *f = &p->fixed[i];
        const nn_node *n = &p->net->nodes[f->node];
        tensor *t = f->slot == 0 ? n->weight : f->slot == 1 ? n->bias : p->grad[2 * f->node + f->slot - 2];
        if (!t)
            return err_set("layer %s lost its parameters: build a new training plan", n->name);
        if (dn_check(dnnl_memory_set_data_handle(f->mem, t->data), "parameter handle"))
            return -1;
    }
    return 0;
}

const float *nn_backprop_forward(nn_backprop *p, const float *x, uint64_t seed)
{
    p->seed = seed;
    if (bind_fixed(p) ||
        dn_check(dnnl_memory_set_data_handle(p->values[p->input].mem, (void *)x), "input handle") ||
        run(p, 0, p->nforward))
        return NULL;
    return handle_of(p->values[p->output].mem);
}

int nn_backprop_backward(nn_backprop *p, const float *dy)
{
    if (bind_fixed(p) || dn_check(dnnl_memory_set_data_handle(p->values[p->dy].mem, (void *)dy), "gradient handle"))
        return -1;
    for (int k = 0; k < p->nskipped; k++)
        for (int slot = 0; slot < 2; slot++) {
            tensor *t = p->grad[2 * p->skipped[k] + slot];
            if (t)
                memset(t->data, 0, (size_t)t->numel * sizeof *t->data);
        }
    if (p->dinput >= 0 && p->values[p->dinput].def < 0) /* no path from the input to the outputs */
        memset(handle_of(p->values[p->dinput].mem), 0, (size_t)(p->batch * p->c * p->h * p->w) * sizeof(float));
    return run(p, p->nforward, p->nsteps);
}
