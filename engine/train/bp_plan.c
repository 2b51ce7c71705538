/* Bookkeeping of a training plan under construction: values, fixed memories, steps, reorders. */
#include "train/bp_plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int bp_new_value(nn_backprop *p, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t copy = *md; /* md may point into the array that grows */
    if (dn_grow((void **)&p->values, p->nvalues, sizeof *p->values))
        return -1;
    value *v = &p->values[p->nvalues];
    memset(v, 0, sizeof *v);
    v->md = copy;
    v->def = v->last = v->buffer = -1;
    return p->nvalues++;
}

/* The fixed memory of (node, slot), created on first use. */
int bp_get_fixed(nn_backprop *p, int node, int slot, int ndims, const int64_t *dims)
{
    for (int i = 0; i < p->nfixed; i++)
        if (p->fixed[i].node == node && p->fixed[i].slot == slot)
            return i;
    if (dn_grow((void **)&p->fixed, p->nfixed, sizeof *p->fixed))
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

step *bp_new_step(nn_backprop *p, step_kind kind, dnnl_primitive_desc_t pd)
{
    if (dn_grow((void **)&p->steps, p->nsteps, sizeof *p->steps))
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

/* A reorder from value (or fixed memory) src into value dst, adding to dst's content when acc. */
int bp_reorder(nn_backprop *p, int src, int src_fixed, int dst, int acc)
{
    const dnnl_memory_desc_t *smd;
    if (src >= 0)
        smd = bp_md(p, src);
    else if (dnnl_memory_get_memory_desc(p->fixed[src_fixed].mem, &smd) != dnnl_success)
        return err_set("oneDNN: parameter memory has no descriptor");
    dnnl_primitive_attr_t attr = dn_post_ops_attr(acc, 0);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_reorder_primitive_desc_create(&pd, smd, dn_engine, bp_md(p, dst), dn_engine, attr),
                      "reorder");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return -1;
    step *s = bp_new_step(p, ST_PRIM, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    if (src >= 0)
        bp_arg(s, DNNL_ARG_FROM, src);
    else
        bp_arg_fixed(s, DNNL_ARG_FROM, src_fixed);
    bp_arg(s, DNNL_ARG_TO, dst);
    return 0;
}

/* A reorder from value src into fixed memory f (a gradient in plain layout). */
int bp_reorder_to_fixed(nn_backprop *p, int src, int f)
{
    const dnnl_memory_desc_t *dmd;
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_get_memory_desc(p->fixed[f].mem, &dmd) != dnnl_success ||
        dn_check(dnnl_reorder_primitive_desc_create(&pd, bp_md(p, src), dn_engine, dmd, dn_engine, NULL),
                 "gradient reorder"))
        return -1;
    step *s = bp_new_step(p, ST_PRIM, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    bp_arg(s, DNNL_ARG_FROM, src);
    bp_arg_fixed(s, DNNL_ARG_TO, f);
    return 0;
}

/* Value v in layout want, reordered by a step emitted now when it is not already. */
int bp_as_layout(nn_backprop *p, int v, const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_desc_equal(bp_md(p, v), want))
        return v;
    int r = bp_new_value(p, want);
    return r < 0 || bp_reorder(p, v, -1, r, 0) ? -1 : r;
}

int bp_sole_consumer(const builder *b, int node, nn_op op)
{
    if (node == b->net->count - 1 || b->uses[node] != 1)
        return -1;
    int k = b->consumer[node];
    return b->net->nodes[k].op == op ? k : -1;
}

nn_dims bp_in_dims(const builder *b, int node)
{
    int src = b->net->nodes[node].in[0];
    return src == NN_INPUT ? (nn_dims){b->p->c, b->p->h, b->p->w} : b->p->dims[src];
}

int bp_src_value(const builder *b, int node, int which)
{
    int src = b->net->nodes[node].in[which];
    return src == NN_INPUT ? b->p->input : b->act[src];
}

/* The weights of node i in layout want: the plain fixed memory itself (-1 in *value) or a value
 * reordered from it by a step emitted now. */
int bp_weights_in(builder *b, int i, const unit *u, const dnnl_memory_desc_t *want, int *value, int *fixed_out)
{
    int f = bp_get_fixed(b->p, i, 0, u->wnd, u->wdims);
    if (f < 0)
        return -1;
    const dnnl_memory_desc_t *plain;
    dnnl_memory_get_memory_desc(b->p->fixed[f].mem, &plain);
    *fixed_out = f;
    *value = -1;
    if (dnnl_memory_desc_equal(plain, want))
        return 0;
    if ((*value = bp_new_value(b->p, want)) < 0)
        return -1;
    return bp_reorder(b->p, -1, f, *value, 0);
}

unit *bp_new_unit(builder *b, int head)
{
    if (dn_grow((void **)&b->units, b->nunits, sizeof *b->units))
        return NULL;
    unit *u = &b->units[b->nunits++];
    memset(u, 0, sizeof *u);
    u->head = u->last = head;
    u->src = u->src1 = u->dst = u->ws = u->mean = u->var = u->wvalue = -1;
    return u;
}

int bp_relu_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md)
{
    dnnl_eltwise_desc_t d;
    return dn_check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, md,
                                                   0, 0),
                    "relu descriptor") ||
           dn_check(dnnl_primitive_desc_create(pd, &d, NULL, dn_engine, NULL), "relu primitive descriptor");
}

/* Pooling geometry of node i (adaptive pools over even bins become ordinary average pools). */
void bp_pool_geometry(const builder *b, int i, dnnl_alg_kind_t *alg, dnnl_dims_t strides, dnnl_dims_t kernel,
                          dnnl_dims_t pl, dnnl_dims_t pr)
{
    const nn_node *n = &b->net->nodes[i];
    nn_dims in = bp_in_dims(b, i), out = b->p->dims[i];
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
