/* Building a training plan: parameter memories, and the builder's questions about the graph. */
#include "train/bp_plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

dnnl_memory_t bp_param_memory(nn_backprop *p, int node, int slot, int ndims, const int64_t *dims)
{
    for (int i = 0; i < p->nparams; i++)
        if (p->params[i].node == node && p->params[i].slot == slot)
            return p->params[i].mem;
    if (dn_grow((void **)&p->params, p->nparams, sizeof *p->params))
        return NULL;
    dnnl_memory_desc_t md;
    dn_md_plain(&md, ndims, dims);
    bp_param *f = &p->params[p->nparams];
    f->node = node;
    f->slot = slot;
    if (dn_check(dnnl_memory_create(&f->mem, &md, dn_engine, DNNL_MEMORY_NONE), "parameter memory"))
        return NULL;
    p->nparams++;
    return f->mem;
}

int bp_sole_consumer(const bp_builder *b, int node, nn_op op)
{
    if (node == b->net->count - 1 || b->uses[node] != 1)
        return -1;
    int k = b->consumer[node];
    return b->net->nodes[k].op == op ? k : -1;
}

nn_dims bp_in_dims(const bp_builder *b, int node)
{
    int src = b->net->nodes[node].in[0];
    return src == NN_INPUT ? (nn_dims){b->p->c, b->p->h, b->p->w} : b->p->dims[src];
}

int bp_src_value(const bp_builder *b, int node, int which)
{
    int src = b->net->nodes[node].in[which];
    return src == NN_INPUT ? b->p->input : b->act[src];
}

int bp_weights_in(bp_builder *b, int i, const bp_unit *u, const dnnl_memory_desc_t *want, int *value,
                  dnnl_memory_t *mem)
{
    dnnl_memory_t m = bp_param_memory(b->p, i, 0, u->wnd, u->wdims);
    if (!m)
        return -1;
    const dnnl_memory_desc_t *plain;
    dnnl_memory_get_memory_desc(m, &plain);
    *mem = m;
    *value = -1;
    if (dnnl_memory_desc_equal(plain, want))
        return 0;
    if ((*value = plan_value_new(&b->p->plan, want)) < 0)
        return -1;
    return plan_reorder(&b->p->plan, -1, m, *value, NULL, 0);
}

bp_unit *bp_new_unit(bp_builder *b, int head)
{
    if (dn_grow((void **)&b->units, b->nunits, sizeof *b->units))
        return NULL;
    bp_unit *u = &b->units[b->nunits++];
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
void bp_pool_geometry(const bp_builder *b, int i, dnnl_alg_kind_t *alg, dnnl_dims_t strides, dnnl_dims_t kernel,
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
