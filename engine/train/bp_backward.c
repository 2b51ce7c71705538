/* The backward pass of a training plan, unit by unit in reverse: gradients of each unit's inputs
 * from the gradient of its output, weight gradients into plain tensors. Gradients are never
 * written again once computed, so one value may serve as the gradient of several nodes (an add
 * hands its gradient to both operands) without copies; a node read by several consumers gets the
 * sum of their gradients. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "train/bp_plan.h"

/* A new value holding a + b (both in layout md of a; b reordered first when it is not). */
static int emit_sum(nn_backprop *p, int a, int v)
{
    dnnl_memory_desc_t md = *bp_md(p, a);
    int bv = bp_as_layout(p, v, &md);
    dnnl_binary_desc_t d;
    dnnl_primitive_desc_t pd;
    if (bv < 0 || dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &md, &md, &md), "gradient sum descriptor") ||
        dn_check(dnnl_primitive_desc_create(&pd, &d, NULL, dn_engine, NULL), "gradient sum"))
        return -1;
    plan_step *s = plan_step_new(&p->plan, PLAN_PRIMITIVE, pd);
    dnnl_primitive_desc_destroy(pd);
    int r = s ? plan_value_new(&p->plan, &md) : -1;
    if (r < 0)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC_0, a);
    plan_arg_value(s, DNNL_ARG_SRC_1, bv);
    plan_arg_value(s, DNNL_ARG_DST, r);
    return r;
}

/* Hands the gradient v of node j's output (or of the input) to j: the first becomes j's gradient
 * (reordered into j's layout if need be), later ones are added to it. */
static int deliver(bp_builder *b, int j, int v)
{
    nn_backprop *p = b->p;
    if (j == NN_INPUT && p->dinput < 0)
        return 0;
    if (j == NN_INPUT) { /* the caller's buffer: copied into, then added to in place */
        int acc = b->input_grad_written;
        b->input_grad_written = 1;
        return plan_reorder(&p->plan, v, NULL, p->dinput, NULL, acc);
    }
    if (b->grad[j] >= 0)
        return (b->grad[j] = emit_sum(p, b->grad[j], v)) < 0 ? -1 : 0;
    return (b->grad[j] = bp_as_layout(p, v, bp_md(p, b->act[j]))) < 0 ? -1 : 0;
}

static int prim_step(nn_backprop *p, const void *desc, const dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                     plan_step **s, const char *what)
{
    if (dn_check(dnnl_primitive_desc_create(pd, desc, NULL, dn_engine, hint), what))
        return -1;
    *s = plan_step_new(&p->plan, PLAN_PRIMITIVE, *pd);
    return *s ? 0 : -1;
}

/* The gradient before a ReLU from the one after it and the ReLU's output: a new value. */
static int bwd_relu(bp_builder *b, int dst, int g, dnnl_primitive_desc_t hint)
{
    nn_backprop *p = b->p;
    dnnl_primitive_desc_t own = NULL, pd = NULL;
    if (!hint && bp_relu_pd(&own, bp_md(p, dst)))
        return -1;
    dnnl_eltwise_desc_t d;
    plan_step *s = NULL;
    int rc = dn_check(dnnl_eltwise_backward_desc_init(&d, dnnl_eltwise_relu_use_dst_for_bwd, bp_md(p, g),
                                                      bp_md(p, dst), 0, 0),
                      "relu backward descriptor") ||
             prim_step(p, &d, hint ? hint : own, &pd, &s, "relu backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (own)
        dnnl_primitive_desc_destroy(own);
    int r = rc ? -1 : plan_value_new(&p->plan, bp_md(p, g));
    if (r < 0)
        return -1;
    plan_arg_value(s, DNNL_ARG_DST, dst);
    plan_arg_value(s, DNNL_ARG_DIFF_DST, g);
    plan_arg_value(s, DNNL_ARG_DIFF_SRC, r);
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
 * in the forward pass's layouts (same) or in layouts oneDNN may choose. */
static int bwd_desc(void *d, const nn_node *n, const bp_unit *u, const nn_backprop *p, int g, int data, int same)
{
    dnnl_dims_t strides = {n->sh, n->sw}, pad = {n->ph, n->pw};
    int64_t bdims[1] = {n->out};
    dnnl_memory_desc_t wmd, bmd, smd = *bp_md(p, u->src), gmd = *bp_md(p, g);
    dn_md_any(&wmd, u->wnd, u->wdims);
    dn_md_plain(&bmd, 1, bdims);
    if (!same) {
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
static int bwd_pd(dnnl_primitive_desc_t *pd, const nn_node *n, const bp_unit *u, const nn_backprop *p, int g, int data)
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
           dn_check(dnnl_primitive_desc_create(pd, &d, NULL, dn_engine, u->pd),
                    data ? "backward data" : "backward weights");
}

static int bwd_weighted(bp_builder *b, bp_unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    int in = n->in[0];
    int64_t bdims[1] = {n->out};
    dnnl_primitive_desc_t pd = NULL;
    plan_step *s;
    /* data first: it reads the weights before nothing else changes them, and frees g's consumers */
    if (in != NN_INPUT || p->dinput >= 0) {
        if (bwd_pd(&pd, n, u, p, g, 1))
            return -1;
        int wv = -1;
        dnnl_memory_t wf = NULL;
        int gd = bp_as_layout(p, g, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
        int ds = gd < 0 ? -1 : plan_value_new(&p->plan, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0));
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (u->wvalue >= 0 && dnnl_memory_desc_equal(bp_md(p, u->wvalue), want))
            wv = u->wvalue; /* the forward pass's copy in this layout */
        int rc = ds < 0 || (wv < 0 && bp_weights_in(b, i, u, want, &wv, &wf)) ||
                 !(s = plan_step_new(&p->plan, PLAN_PRIMITIVE, pd));
        dnnl_primitive_desc_destroy(pd);
        if (rc)
            return -1;
        plan_arg_value(s, DNNL_ARG_DIFF_DST, gd);
        if (wv >= 0)
            plan_arg_value(s, DNNL_ARG_WEIGHTS, wv);
        else
            plan_arg_memory(s, DNNL_ARG_WEIGHTS, wf);
        plan_arg_value(s, DNNL_ARG_DIFF_SRC, ds);
        if (deliver(b, in, ds))
            return -1;
    }
    if (bwd_pd(&pd, n, u, p, g, 0))
        return -1;
    int gw = bp_as_layout(p, g, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
    int src = gw < 0 ? -1 : bp_as_layout(p, u->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    dnnl_memory_t gwf = bp_param_memory(p, i, 2, u->wnd, u->wdims);
    dnnl_memory_t gbf = gwf && n->has_bias ? bp_param_memory(p, i, 3, 1, bdims) : NULL;
    int params_ok = gwf && (gbf || !n->has_bias);
    const dnnl_memory_desc_t *dwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    const dnnl_memory_desc_t *plain;
    int dw = -1;
    if (src >= 0 && params_ok) {
        dnnl_memory_get_memory_desc(gwf, &plain);
        if (!dnnl_memory_desc_equal(plain, dwmd))
            dw = plan_value_new(&p->plan, dwmd);
    }
    s = src >= 0 && params_ok ? plan_step_new(&p->plan, PLAN_PRIMITIVE, pd) : NULL;
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, src);
    plan_arg_value(s, DNNL_ARG_DIFF_DST, gw);
    if (dw >= 0)
        plan_arg_value(s, DNNL_ARG_DIFF_WEIGHTS, dw);
    else
        plan_arg_memory(s, DNNL_ARG_DIFF_WEIGHTS, gwf);
    if (n->has_bias)
        plan_arg_memory(s, DNNL_ARG_DIFF_BIAS, gbf);
    return dw >= 0 ? plan_reorder(&p->plan, dw, NULL, -1, gwf, 0) : 0;
}

static int bwd_batchnorm(bp_builder *b, bp_unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (u->relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    plan_step *s = NULL;
    int64_t cdims[1] = {p->dims[i].c};
    int rc = dn_check(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, bp_md(p, g), bp_md(p, u->src),
                                                                  n->eps, flags),
                      "batch norm backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "batch norm backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    dnnl_memory_t mems[4] = {NULL}; /* scale, shift and their gradients */
    for (int slot = 0; slot < 4 && !rc; slot++)
        rc = !(mems[slot] = bp_param_memory(p, i, slot, 1, cdims));
    if (rc)
        return -1;
    dnnl_memory_t sf = mems[0], hf = mems[1], gsf = mems[2], ghf = mems[3];
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_value(s, DNNL_ARG_MEAN, u->mean);
    plan_arg_value(s, DNNL_ARG_VARIANCE, u->var);
    plan_arg_memory(s, DNNL_ARG_SCALE, sf);
    plan_arg_memory(s, DNNL_ARG_SHIFT, hf);
    if (u->relu)
        plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    int ds = plan_value_new(&p->plan, bp_md(p, g));
    if (ds < 0)
        return -1;
    plan_arg_value(s, DNNL_ARG_DIFF_DST, g);
    plan_arg_value(s, DNNL_ARG_DIFF_SRC, ds);
    plan_arg_memory(s, DNNL_ARG_DIFF_SCALE, gsf);
    plan_arg_memory(s, DNNL_ARG_DIFF_SHIFT, ghf);
    return deliver(b, n->in[0], ds);
}

static int bwd_pool(bp_builder *b, bp_unit *u, int g)
{
    nn_backprop *p = b->p;
    int i = u->head;
    dnnl_alg_kind_t alg;
    dnnl_dims_t strides, kernel, pl, pr;
    bp_pool_geometry(b, i, &alg, strides, kernel, pl, pr);
    dnnl_pooling_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    plan_step *s = NULL;
    int ds = plan_value_new(&p->plan, bp_md(p, u->src));
    int rc = ds < 0 ||
             dn_check(dnnl_pooling_backward_desc_init(&d, alg, bp_md(p, ds), bp_md(p, g), strides, kernel, pl, pr),
                      "pooling backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "pooling backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        return -1;
    plan_arg_value(s, DNNL_ARG_DIFF_DST, g);
    plan_arg_value(s, DNNL_ARG_DIFF_SRC, ds);
    if (u->ws >= 0)
        plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    return deliver(b, b->net->nodes[i].in[0], ds);
}

static int bwd_softmax(bp_builder *b, bp_unit *u, int g)
{
    nn_backprop *p = b->p;
    dnnl_softmax_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    plan_step *s = NULL;
    int ds = plan_value_new(&p->plan, bp_md(p, g));
    int rc = ds < 0 ||
             dn_check(dnnl_softmax_backward_desc_init(&d, bp_md(p, g), bp_md(p, u->dst), 1),
                      "softmax backward descriptor") ||
             prim_step(p, &d, u->pd, &pd, &s, "softmax backward");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        return -1;
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    plan_arg_value(s, DNNL_ARG_DIFF_DST, g);
    plan_arg_value(s, DNNL_ARG_DIFF_SRC, ds);
    return deliver(b, b->net->nodes[u->head].in[0], ds);
}

static int bwd_c_step(bp_builder *b, bp_unit *u, int g, int kind)
{
    nn_backprop *p = b->p;
    const nn_node *n = &b->net->nodes[u->head];
    int ds = plan_value_new(&p->plan, kind == PLAN_ADAPTIVE_POOL_BACK ? bp_md(p, u->src) : bp_md(p, g));
    if (ds < 0)
        return -1;
    plan_step *s = plan_step_new(&p->plan, kind, NULL);
    if (!s)
        return -1;
    s->node = u->head;
    plan_arg_value(s, DNNL_ARG_DIFF_DST, g);
    if (u->ws >= 0)
        plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    plan_arg_value(s, DNNL_ARG_DIFF_SRC, ds);
    return deliver(b, n->in[0], ds);
}

int bp_backward_unit(bp_builder *b, bp_unit *u)
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
        return u->alias ? deliver(b, n->in[0], g) : bwd_c_step(b, u, g, BP_DROPOUT_BACK);
    case NN_ADAPTIVE_AVGPOOL:
        if (u->alias)
            return deliver(b, n->in[0], g);
        if (u->pd)
            return bwd_pool(b, u, g);
        return bwd_c_step(b, u, g, PLAN_ADAPTIVE_POOL_BACK);
    default:
        return bwd_pool(b, u, g);
    }
}

