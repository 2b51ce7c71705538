#include "nn/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "nn/adaptive_pool.h"
#include "nn/dnnl_util.h"

#define MAX_ARGS 8
#define MAX_PLANS 4

/* An activation: its layout and where it lives. Buffers are shared between values whose
 * lifetimes do not overlap; the input and output values use the caller's memory. */
typedef struct value {
    dnnl_memory_desc_t md;
    int external;     /* input or output: the handle is set at each call */
    int inherit;      /* value whose buffer this one takes over (in-place sum), or -1 */
    int reorder_of;   /* value this one is a reordered copy of, or -1 */
    int shared;       /* also named by an alias (dropout, identity pool): never overwritten in place */
    int def, last;    /* step that writes it, last step that reads it */
    int buffer;
    dnnl_memory_t mem;
} value;

typedef struct arg {
    int id;
    int value;          /* a value, or -1 for a fixed memory */
    dnnl_memory_t fixed;
} arg;

/* Adaptive average pooling over uneven bins, which oneDNN has no primitive for (plain NCHW). */
typedef struct adaptive_pool {
    int n, c, h, w, oh, ow;
} adaptive_pool;

typedef struct step {
    dnnl_primitive_t prim; /* NULL for the adaptive pool */
    adaptive_pool pool;
    int nargs;
    arg args[MAX_ARGS];
    dnnl_exec_arg_t exec[MAX_ARGS];
} step;

/* Weights, biases and statistics in the layout a primitive chose, kept across plans and networks.
 * An entry is keyed by its slot, the ids of the tensors it was made from and its layout: plans of
 * other batch sizes, and candidates that share a layer with their reference, reuse it. Plans hold
 * references; entries that no plan holds stay for later plans until they pass FIXED_IDLE_BYTES or
 * FIXED_IDLE_ENTRIES, the least recently used going first (the count bounds the lookups: a search
 * leaves behind the entries of every candidate it has freed, which never match again). */
#define FIXED_KEY 7 /* slot, weight, bias, and the batch norm's gamma, beta, mean and variance */
#define FIXED_IDLE_BYTES ((size_t)1 << 30)
#define FIXED_IDLE_ENTRIES 256

typedef struct fixed {
    uint64_t key[FIXED_KEY];
    dnnl_memory_t mem;
    size_t bytes;
    int refs;
    uint64_t used;
} fixed;

static fixed **fixed_cache;
static int nfixed;
static uint64_t fixed_clock;

typedef struct plan {
    int64_t key[5]; /* n, c, h, w, target node */
    int nsteps, nvalues, nbuffers, nheld;
    step *steps;
    value *values;
    fixed **held;
    void **buffers;
    size_t *buffer_bytes;
    int input, output;
    int out_ndim;
    int64_t out_shape[4];
} plan;

/* Activation buffers of freed plans, handed to the next plans: a candidate network evaluated
 * after another starts on memory already mapped instead of page-faulting it in again. */
#define POOL_SIZE 16

static struct {
    void *data;
    size_t bytes;
} pool[POOL_SIZE];

/* A buffer of at least bytes (its size in *got), from the pool or newly allocated. */
static void *pool_take(size_t bytes, size_t *got)
{
    int best = -1;
    for (int i = 0; i < POOL_SIZE; i++)
        if (pool[i].data && pool[i].bytes >= bytes && (best < 0 || pool[i].bytes < pool[best].bytes))
            best = i;
    if (best < 0 || pool[best].bytes > 2 * bytes + (1 << 20)) { /* much larger ones stay for others */
        *got = bytes;
        return tensor_alloc_floats((int64_t)((bytes + 3) / 4));
    }
    void *data = pool[best].data;
    *got = pool[best].bytes;
    pool[best].data = NULL;
    return data;
}

static void pool_give(void *data, size_t bytes)
{
    int slot = 0;
    for (int i = 0; i < POOL_SIZE; i++) /* an empty slot, else the smallest buffer makes room */
        if (!pool[i].data || (pool[slot].data && pool[i].bytes < pool[slot].bytes))
            slot = i;
    if (pool[slot].data && pool[slot].bytes >= bytes) {
        free(data);
        return;
    }
    free(pool[slot].data);
    pool[slot].data = data;
    pool[slot].bytes = bytes;
}

struct nn_exec {
    int nplans;
    plan *plans[MAX_PLANS]; /* most recently used first */
};

/* Drops the least recently used entries no plan holds until those left fit the idle limits. */
static void fixed_trim(void)
{
    for (;;) {
        size_t idle = 0;
        int oldest = -1, nidle = 0;
        for (int i = 0; i < nfixed; i++)
            if (fixed_cache[i]->refs == 0) {
                idle += fixed_cache[i]->bytes;
                nidle++;
                if (oldest < 0 || fixed_cache[i]->used < fixed_cache[oldest]->used)
                    oldest = i;
            }
        if (idle <= FIXED_IDLE_BYTES && nidle <= FIXED_IDLE_ENTRIES)
            return;
        dnnl_memory_destroy(fixed_cache[oldest]->mem);
        free(fixed_cache[oldest]);
        fixed_cache[oldest] = fixed_cache[--nfixed];
    }
}

static void plan_free(plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].prim)
            dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->nvalues; i++)
        if (p->values[i].mem)
            dnnl_memory_destroy(p->values[i].mem);
    for (int i = 0; p->buffers && i < p->nbuffers; i++)
        if (p->buffers[i])
            pool_give(p->buffers[i], p->buffer_bytes[i]);
    for (int i = 0; i < p->nheld; i++)
        p->held[i]->refs--;
    free(p->steps);
    free(p->values);
    free(p->buffers);
    free(p->buffer_bytes);
    free(p->held);
    free(p);
    fixed_trim();
}

void nn_exec_free(nn_exec *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nplans; i++)
        plan_free(e->plans[i]);
    free(e);
}

/* ---- building a plan ---------------------------------------------------------------------- */

static int new_value(plan *p, const dnnl_memory_desc_t *md)
{
    if (dn_grow((void **)&p->values, p->nvalues, sizeof *p->values))
        return -1;
    value *v = &p->values[p->nvalues];
    memset(v, 0, sizeof *v);
    v->md = *md;
    v->inherit = v->reorder_of = -1;
    v->def = v->last = -1;
    v->buffer = -1;
    return p->nvalues++;
}

static step *new_step(plan *p, dnnl_primitive_desc_t pd)
{
    if (dn_grow((void **)&p->steps, p->nsteps, sizeof *p->steps))
        return NULL;
    step *s = &p->steps[p->nsteps];
    memset(s, 0, sizeof *s);
    if (pd && dn_check(dnnl_primitive_create(&s->prim, pd), "creating a primitive"))
        return NULL;
    p->nsteps++;
    return s;
}

static void add_arg(step *s, int id, int value, dnnl_memory_t fixed)
{
    s->args[s->nargs++] = (arg){id, value, fixed};
}

/* A new value holding a copy of v in layout want (a reorder step). */
static int copy_value(plan *p, int v, const dnnl_memory_desc_t *want)
{
    dnnl_primitive_desc_t pd;
    if (dn_check(dnnl_reorder_primitive_desc_create(&pd, &p->values[v].md, dn_engine, want, dn_engine, NULL),
              "creating a reorder"))
        return -1;
    step *s = new_step(p, pd);
    dnnl_primitive_desc_destroy(pd);
    int r = s ? new_value(p, want) : -1;
    if (r < 0)
        return -1;
    add_arg(s, DNNL_ARG_FROM, v, NULL);
    add_arg(s, DNNL_ARG_TO, r, NULL);
    return r;
}

/* The value v in layout want: v itself, an earlier reordered copy, or a new reorder step. */
static int in_layout(plan *p, int v, const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_desc_equal(&p->values[v].md, want))
        return v;
    for (int i = 0; i < p->nvalues; i++)
        if (p->values[i].reorder_of == v && dnnl_memory_desc_equal(&p->values[i].md, want))
            return i;
    int r = copy_value(p, v, want);
    if (r >= 0)
        p->values[r].reorder_of = v;
    return r;
}

static int hold(plan *p, fixed *f)
{
    if (dn_grow((void **)&p->held, p->nheld, sizeof *p->held))
        return -1;
    p->held[p->nheld++] = f;
    f->refs++;
    f->used = ++fixed_clock;
    return 0;
}

/* The cached memory for key in layout want, now held by p; NULL when there is none. */
static dnnl_memory_t fixed_find(plan *p, const uint64_t *key, const dnnl_memory_desc_t *want)
{
    for (int i = 0; i < nfixed; i++) {
        fixed *f = fixed_cache[i];
        const dnnl_memory_desc_t *md;
        if (memcmp(f->key, key, sizeof f->key) == 0 && dnnl_memory_get_memory_desc(f->mem, &md) == dnnl_success &&
            dnnl_memory_desc_equal(md, want))
            return hold(p, f) == 0 ? f->mem : NULL;
    }
    return NULL;
}

/* Caches m (made by dn_reordered_memory, NULL on failure) under key, held by p. */
static dnnl_memory_t fixed_keep(plan *p, const uint64_t *key, dnnl_memory_t m)
{
    fixed *f = m ? calloc(1, sizeof *f) : NULL;
    const dnnl_memory_desc_t *md;
    if (!f || dn_grow((void **)&fixed_cache, nfixed, sizeof *fixed_cache) || hold(p, f)) {
        if (m)
            dnnl_memory_destroy(m);
        free(f);
        return m ? (err_set("out of memory"), NULL) : NULL;
    }
    memcpy(f->key, key, sizeof f->key);
    f->mem = m;
    f->bytes = dnnl_memory_get_memory_desc(m, &md) == dnnl_success ? dnnl_memory_desc_get_size(md) : 0;
    fixed_cache[nfixed++] = f;
    return m;
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
    plan *p;
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
    if (f->sum == NN_INPUT || c->p->values[c->val[f->sum]].shared)
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

/* Convolution weights (OIHW) and bias with a batch norm folded in, in freshly allocated arrays. */
static int folded_params(const nn_node *n, const nn_node *bn, float **w, float **b)
{
    int64_t per_out = n->weight->numel / n->out;
    *w = malloc((size_t)n->weight->numel * sizeof **w);
    *b = calloc((size_t)n->out, sizeof **b);
    if (!*w || !*b)
        return err_set("out of memory");
    if (!bn) { /* nothing to fold: the weights as they are, the bias or zeros */
        memcpy(*w, n->weight->data, (size_t)n->weight->numel * sizeof **w);
        if (n->bias)
            memcpy(*b, n->bias->data, (size_t)n->out * sizeof **b);
        return 0;
    }
    for (int o = 0; o < n->out; o++) {
        double scale = 1, shift = n->bias ? n->bias->data[o] : 0;
        if (bn) {
            scale = bn->weight->data[o] / sqrt((double)bn->var->data[o] + bn->eps);
            shift = (shift - bn->mean->data[o]) * scale + bn->bias->data[o];
        }
        for (int64_t j = 0; j < per_out; j++)
            (*w)[o * per_out + j] = (float)(n->weight->data[o * per_out + j] * scale);
        (*b)[o] = (float)shift;
    }
    return 0;
}

/* Convolution or inner product with its fused chain; the output value of the chain's last node. */
static int emit_weighted(compiler *c, int i, const fusion *f)
{
    const nn_node *n = &c->net->nodes[i];
    plan *p = c->p;
    nn_dims in = in_dims(c, i), out = c->dims[i];
    int64_t batch = p->key[0];
    int src = src_value(c, i, 0);
    int conv = n->op == NN_CONV;
    int src_nd = conv ? 4 : p->values[src].md.ndims;
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
        dmd = p->values[other].md;
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
    float *w = NULL, *b = NULL;
    const nn_node *bn = f->bn >= 0 ? &c->net->nodes[f->bn] : NULL;
    uint64_t wkey[FIXED_KEY] = {0, id_of(n->weight), id_of(n->bias), bn ? id_of(bn->weight) : 0,
                                bn ? id_of(bn->bias) : 0, bn ? id_of(bn->mean) : 0, bn ? id_of(bn->var) : 0};
    uint64_t bkey[FIXED_KEY];
    memcpy(bkey, wkey, sizeof bkey);
    bkey[0] = 1;
    int s_in = in_layout(p, src, &want_src);
    dnnl_memory_t wmem = fixed_find(p, wkey, &want_w);
    dnnl_memory_t bmem = fixed_find(p, bkey, &bmd);
    if (s_in >= 0 && (!wmem || !bmem) && folded_params(n, bn, &w, &b) == 0) {
        if (!wmem)
            wmem = fixed_keep(p, wkey, dn_reordered_memory(w, wnd, wdims, &want_w));
        if (!bmem)
            bmem = fixed_keep(p, bkey, dn_reordered_memory(b, 1, bdims, &bmd));
    }
    if (s_in < 0)
        wmem = bmem = NULL;
    free(w);
    free(b);
    int dst = -1, sum_src = in_place ? other : -1;
    if (bmem && f->has_sum && !in_place) /* the output starts as a copy of the residual operand */
        sum_src = copy_value(p, other, &want_dst);
    step *s = bmem && (!f->has_sum || sum_src >= 0) ? new_step(p, pd) : NULL;
    dnnl_primitive_desc_destroy(pd);
    if (s && (dst = new_value(p, &want_dst)) >= 0) {
        p->values[dst].inherit = sum_src;
        add_arg(s, DNNL_ARG_SRC, s_in, NULL);
        add_arg(s, DNNL_ARG_WEIGHTS, -1, wmem);
        add_arg(s, DNNL_ARG_BIAS, -1, bmem);
        add_arg(s, DNNL_ARG_DST, dst, NULL);
    }
    return dst < 0 ? err_prefix("layer %s", n->name) : dst;
}

static int emit_pool(compiler *c, int i)
{
    const nn_node *n = &c->net->nodes[i];
    plan *p = c->p;
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
    if (dn_check(dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, alg, &p->values[src].md, &dmd,
                                             strides, kernel, pl, pr),
              "pooling descriptor") ||
        dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "pooling primitive descriptor"))
        return err_prefix("layer %s", n->name);
    step *s = new_step(p, pd);
    int dst = s ? new_value(p, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)) : -1;
    dnnl_primitive_desc_destroy(pd);
    if (dst < 0)
        return -1;
    add_arg(s, DNNL_ARG_SRC, src, NULL);
    add_arg(s, DNNL_ARG_DST, dst, NULL);
    return dst;
}

static int emit_adaptive(compiler *c, int i)
{
    nn_dims in = in_dims(c, i), out = c->dims[i];
    int src = src_value(c, i, 0);
    if (in.h == out.h && in.w == out.w) {
        c->p->values[src].shared = 1;
        return src;
    }
    if (in.h % out.h == 0 && in.w % out.w == 0)
        return emit_pool(c, i);
    plan *p = c->p;
    int64_t sdims[4] = {p->key[0], in.c, in.h, in.w}, ddims[4] = {p->key[0], out.c, out.h, out.w};
    dnnl_memory_desc_t smd, dmd;
    dn_md_plain(&smd, 4, sdims);
    dn_md_plain(&dmd, 4, ddims);
    int s_in = in_layout(p, src, &smd);
    step *s = s_in >= 0 ? new_step(p, NULL) : NULL;
    int dst = s ? new_value(p, &dmd) : -1;
    if (dst < 0)
        return -1;
    s->pool = (adaptive_pool){(int)p->key[0], in.c, in.h, in.w, out.h, out.w};
    add_arg(s, DNNL_ARG_SRC, s_in, NULL);
    add_arg(s, DNNL_ARG_DST, dst, NULL);
    return dst;
}

/* A primitive with one source whose descriptor is built by init(), and an optional second source. */
static int finish_simple(compiler *c, int i, dnnl_primitive_desc_t pd, int src0, int src1, int src1_arg)
{
    step *s = new_step(c->p, pd);
    int dst = s ? new_value(c->p, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)) : -1;
    dnnl_primitive_desc_destroy(pd);
    if (dst < 0)
        return err_prefix("layer %s", c->net->nodes[i].name);
    add_arg(s, src1 >= 0 ? DNNL_ARG_SRC_0 : DNNL_ARG_SRC, src0, NULL);
    if (src1 >= 0)
        add_arg(s, src1_arg, src1, NULL);
    add_arg(s, DNNL_ARG_DST, dst, NULL);
    return dst;
}

static int emit_add(compiler *c, int i, int relu)
{
    plan *p = c->p;
    int a = src_value(c, i, 0);
    dnnl_memory_desc_t dmd = p->values[a].md;
    int b = in_layout(p, src_value(c, i, 1), &dmd);
    if (b < 0)
        return -1;
    dnnl_binary_desc_t d;
    dnnl_primitive_attr_t attr = dn_post_ops_attr(0, relu);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &p->values[a].md, &p->values[b].md, &dmd),
                   "add descriptor") ||
             dn_check(dnnl_primitive_desc_create(&pd, &d, attr, dn_engine, NULL), "add primitive descriptor");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc ? err_prefix("layer %s", c->net->nodes[i].name) : finish_simple(c, i, pd, a, b, DNNL_ARG_SRC_1);
}

static int emit_unary(compiler *c, int i)
{
    const nn_node *n = &c->net->nodes[i];
    plan *p = c->p;
    int src = src_value(c, i, 0);
    const dnnl_memory_desc_t *md = &p->values[src].md;
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
    plan *p = c->p;
    int src = src_value(c, i, 0);
    dnnl_batch_normalization_desc_t d;
    dnnl_primitive_desc_t pd;
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    if (dn_check(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_inference, &p->values[src].md,
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
        uint64_t key[FIXED_KEY] = {2 + (uint64_t)k, ts[k]->id};
        if (!(mems[k] = fixed_find(p, key, &cmd)) &&
            !(mems[k] = fixed_keep(p, key, dn_reordered_memory(ts[k]->data, 1, cdims, &cmd)))) {
            dnnl_primitive_desc_destroy(pd);
            return -1;
        }
    }
    int dst = finish_simple(c, i, pd, src, -1, 0);
    if (dst >= 0)
        for (int k = 0; k < 4; k++)
            add_arg(&p->steps[p->nsteps - 1], ids[k], -1, mems[k]);
    return dst;
}

/* Assigns buffers to values: a value reuses a buffer whose holder is no longer read. */
static int allocate(plan *p)
{
    size_t *size = calloc((size_t)p->nvalues + 1, sizeof *size);
    int *holder_last = calloc((size_t)p->nvalues + 1, sizeof *holder_last);
    int rc = -1;
    if (!size || !holder_last) {
        err_set("out of memory");
        goto done;
    }
    for (int s = 0; s < p->nsteps; s++)
        for (int a = 0; a < p->steps[s].nargs; a++) {
            const arg *ar = &p->steps[s].args[a];
            if (ar->value < 0)
                continue;
            value *v = &p->values[ar->value];
            if (ar->id == DNNL_ARG_DST || ar->id == DNNL_ARG_TO)
                v->def = s;
            else
                v->last = s;
        }
    for (int i = 0; i < p->nvalues; i++) /* a buffer taken over stays reserved until then */
        if (p->values[i].inherit >= 0 && p->values[p->values[i].inherit].last < p->values[i].def)
            p->values[p->values[i].inherit].last = p->values[i].def;
    for (int i = 0; i < p->nvalues; i++) { /* values in order of definition */
        value *v = &p->values[i];
        if (v->external)
            continue;
        int last = v->last > v->def ? v->last : v->def;
        size_t need = dnnl_memory_desc_get_size(&v->md);
        int best = -1;
        if (v->inherit >= 0) {
            best = p->values[v->inherit].buffer;
        } else {
            best = dn_best_buffer(holder_last, size, p->nbuffers, v->def, need);
            if (best < 0) {
                best = p->nbuffers++;
                size[best] = 0;
            }
        }
        if (size[best] < need)
            size[best] = need;
        if (holder_last[best] < last || v->inherit < 0)
            holder_last[best] = last;
        v->buffer = best;
    }
    if (!(p->buffers = calloc((size_t)p->nbuffers + 1, sizeof *p->buffers)) ||
        !(p->buffer_bytes = calloc((size_t)p->nbuffers + 1, sizeof *p->buffer_bytes)))
        goto done;
    for (int b = 0; b < p->nbuffers; b++)
        if (!(p->buffers[b] = pool_take(size[b], &p->buffer_bytes[b]))) {
            err_set("out of memory allocating %zu bytes of activations", size[b]);
            goto done;
        }
    for (int i = 0; i < p->nvalues; i++) {
        value *v = &p->values[i];
        void *handle = v->external ? DNNL_MEMORY_NONE : p->buffers[v->buffer];
        if (dn_check(dnnl_memory_create(&v->mem, &v->md, dn_engine, handle), "activation memory"))
            goto done;
    }
    for (int s = 0; s < p->nsteps; s++) {
        step *st = &p->steps[s];
        for (int a = 0; a < st->nargs; a++)
            st->exec[a] = (dnnl_exec_arg_t){st->args[a].id,
                                            st->args[a].value >= 0 ? p->values[st->args[a].value].mem
                                                                   : st->args[a].fixed};
    }
    rc = 0;
done:
    if (rc && !p->buffers)
        err_set("out of memory");
    free(size);
    free(holder_last);
    return rc;
}

static plan *compile(const nn_net *net, int64_t n, int64_t ch, int64_t h, int64_t w, int target)
{
    plan *p = calloc(1, sizeof *p);
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
    int64_t idims[4] = {n, ch, h, w};
    dnnl_memory_desc_t imd;
    dn_md_plain(&imd, 4, idims);
    if ((p->input = new_value(p, &imd)) < 0)
        goto fail;
    p->values[p->input].external = 1;
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
            p->values[v].shared = 1;
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
    const dnnl_memory_desc_t *lmd = &p->values[last].md;
    p->out_ndim = lmd->ndims;
    memcpy(p->out_shape, lmd->dims, (size_t)lmd->ndims * sizeof *p->out_shape);
    dnnl_memory_desc_t omd;
    dn_md_plain(&omd, p->out_ndim, p->out_shape);
    dnnl_primitive_desc_t pd;
    step *s;
    if (dn_check(dnnl_reorder_primitive_desc_create(&pd, lmd, dn_engine, &omd, dn_engine, NULL), "output reorder") ||
        !(s = new_step(p, pd)))
        goto fail;
    dnnl_primitive_desc_destroy(pd);
    if ((p->output = new_value(p, &omd)) < 0)
        goto fail;
    p->values[p->output].external = 1;
    add_arg(s, DNNL_ARG_FROM, last, NULL);
    add_arg(s, DNNL_ARG_TO, p->output, NULL);
    if (allocate(p) != 0)
        goto fail;
    ok = 1;
fail:
    free(dims);
    free(c.uses);
    free(c.consumer);
    free(c.val);
    free(done);
    if (!ok) {
        plan_free(p);
        return NULL;
    }
    return p;
}

/* ---- running a plan ----------------------------------------------------------------------- */

static int run(plan *p, const tensor *x, tensor *y)
{
    if (dn_check(dnnl_memory_set_data_handle(p->values[p->input].mem, x->data), "input handle") ||
        dn_check(dnnl_memory_set_data_handle(p->values[p->output].mem, y->data), "output handle"))
        return -1;
    for (int i = 0; i < p->nsteps; i++) {
        step *s = &p->steps[i];
        if (s->prim) {
            if (dn_check(dnnl_primitive_execute(s->prim, dn_stream, s->nargs, s->exec), "execute"))
                return -1;
        } else {
            void *src, *dst;
            dnnl_memory_get_data_handle(s->exec[0].memory, &src);
            dnnl_memory_get_data_handle(s->exec[1].memory, &dst);
            if (dn_check(dnnl_stream_wait(dn_stream), "execute"))
                return -1;
            const adaptive_pool *a = &s->pool;
            nn_adaptive_pool_forward(src, dst, (int64_t)a->n * a->c, a->h, a->w, a->oh, a->ow);
        }
    }
    return dn_check(dnnl_stream_wait(dn_stream), "execute");
}

static plan *find_plan(nn_net *net, const int64_t *key)
{
    nn_exec *e = net->exec;
    if (!e && !(e = net->exec = calloc(1, sizeof *e))) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < e->nplans; i++)
        if (memcmp(e->plans[i]->key, key, 5 * sizeof *key) == 0) {
            plan *p = e->plans[i];
            memmove(e->plans + 1, e->plans, (size_t)i * sizeof *e->plans);
            e->plans[0] = p;
            return p;
        }
    plan *p = compile(net, key[0], key[1], key[2], key[3], (int)key[4]);
    if (!p)
        return NULL;
    if (e->nplans == MAX_PLANS)
        plan_free(e->plans[--e->nplans]);
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
        err_set("input of shape %s: expected N×C×H×W (or N×F)", tensor_shape_str(x->ndim, x->shape, buf, sizeof buf));
        return NULL;
    }
    if (key[0] < 1) {
        err_set("input has an empty batch");
        return NULL;
    }
    plan *p = find_plan(net, key);
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
