/* The forward pass of a training plan: one unit per chain of fused nodes, each a oneDNN primitive
 * in training mode (or a C loop) whose descriptors and workspaces the backward pass reuses. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "train/bp_plan.h"

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

static int fwd_weighted(bp_builder *b, bp_unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    nn_dims in = bp_in_dims(b, i), out = p->dims[i];
    int conv = n->op == NN_CONV;
    int src = bp_src_value(b, i, 0);
    int src_nd = conv ? 4 : bp_md(p, src)->ndims;
    int64_t sdims[4] = {p->batch, in.c, in.h, in.w}, ddims[4] = {p->batch, out.c, out.h, out.w};
    u->wnd = dn_weight_dims(n, in, src_nd, u->wdims, sdims);
    int64_t bdims[1] = {n->out};
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dn_md_any(&smd, src_nd, sdims);
    dn_md_any(&wmd, u->wnd, u->wdims);
    dn_md_plain(&bmd, 1, bdims);
    dn_md_any(&dmd, conv ? 4 : 2, ddims);
    dn_weighted_desc d;
    if (dn_weighted_forward_desc(&d, dnnl_forward_training, n, &smd, &wmd, n->has_bias ? &bmd : NULL, &dmd))
        return -1;
    u->relu = relu;
    if (create_pd(&u->pd, &d, &u->relu, "primitive descriptor"))
        return -1;
    dnnl_memory_t wf, bf = NULL;
    u->src = bp_as_layout(p, src, dnnl_primitive_desc_query_md(u->pd, dnnl_query_src_md, 0));
    if (u->src < 0 || bp_weights_in(b, i, u, dnnl_primitive_desc_query_md(u->pd, dnnl_query_weights_md, 0),
                                    &u->wvalue, &wf))
        return -1;
    if (n->has_bias && !(bf = bp_param_memory(p, i, 1, 1, bdims)))
        return -1;
    u->dst = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, PLAN_PRIMITIVE, u->pd) : NULL;
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    if (u->wvalue >= 0)
        plan_arg_value(s, DNNL_ARG_WEIGHTS, u->wvalue);
    else
        plan_arg_memory(s, DNNL_ARG_WEIGHTS, wf);
    if (n->has_bias)
        plan_arg_memory(s, DNNL_ARG_BIAS, bf);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_batchnorm(bp_builder *b, bp_unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    u->src = bp_src_value(b, i, 0);
    u->relu = relu;
    dnnl_batch_normalization_desc_t d;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    if (dn_check(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_training, bp_md(p, u->src), n->eps,
                                                            flags),
                 "batch norm descriptor") ||
        dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "batch norm primitive descriptor"))
        return -1;
    int64_t cdims[1] = {p->dims[i].c};
    dnnl_memory_t sf = bp_param_memory(p, i, 0, 1, cdims), hf = sf ? bp_param_memory(p, i, 1, 1, cdims) : NULL;
    if (!hf)
        return -1;
    u->dst = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    u->mean = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 1));
    u->var = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 2));
    if (relu)
        u->ws = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_workspace_md, 0));
    plan_step *s = u->dst >= 0 && u->mean >= 0 && u->var >= 0 && (!relu || u->ws >= 0)
                       ? plan_step_new(&p->plan, PLAN_PRIMITIVE, u->pd)
                       : NULL;
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_memory(s, DNNL_ARG_SCALE, sf);
    plan_arg_memory(s, DNNL_ARG_SHIFT, hf);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    plan_arg_value(s, DNNL_ARG_MEAN, u->mean);
    plan_arg_value(s, DNNL_ARG_VARIANCE, u->var);
    if (relu)
        plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    if (p->flags & NN_BACKPROP_KEEP_STATS)
        return 0;
    plan_step *r = plan_step_new(&p->plan, BP_RUNNING_STATS, NULL);
    if (!r)
        return -1;
    r->node = i;
    plan_arg_value(r, DNNL_ARG_MEAN, u->mean);
    plan_arg_value(r, DNNL_ARG_VARIANCE, u->var);
    return 0;
}

static int fwd_simple(bp_builder *b, bp_unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    const nn_node *n = &b->net->nodes[i];
    u->src = bp_src_value(b, i, 0);
    const dnnl_memory_desc_t *md = bp_md(p, u->src);
    if (n->op == NN_RELU) {
        if (bp_relu_pd(&u->pd, md))
            return -1;
    } else {
        dnnl_softmax_desc_t d;
        if (dn_check(dnnl_softmax_forward_desc_init(&d, dnnl_forward_training, md, 1), "softmax descriptor") ||
            dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "softmax primitive descriptor"))
            return -1;
    }
    u->dst = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, PLAN_PRIMITIVE, u->pd) : NULL;
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_add(bp_builder *b, bp_unit *u, int relu)
{
    nn_backprop *p = b->p;
    int i = u->head;
    u->src = bp_src_value(b, i, 0);
    dnnl_memory_desc_t dmd = *bp_md(p, u->src);
    u->src1 = bp_as_layout(p, bp_src_value(b, i, 1), &dmd);
    if (u->src1 < 0)
        return -1;
    dnnl_binary_desc_t d;
    u->relu = relu;
    if (dn_check(dnnl_binary_desc_init(&d, dnnl_binary_add, &dmd, bp_md(p, u->src1), &dmd), "add descriptor") ||
        create_pd(&u->pd, &d, &u->relu, "add primitive descriptor"))
        return -1;
    u->dst = plan_value_new(&p->plan, &dmd);
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, PLAN_PRIMITIVE, u->pd) : NULL;
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC_0, u->src);
    plan_arg_value(s, DNNL_ARG_SRC_1, u->src1);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_pool(bp_builder *b, bp_unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    nn_dims out = p->dims[i];
    u->src = bp_src_value(b, i, 0);
    int64_t ddims[4] = {p->batch, out.c, out.h, out.w};
    dnnl_memory_desc_t dmd;
    dn_md_any(&dmd, 4, ddims);
    dnnl_alg_kind_t alg;
    dnnl_dims_t strides, kernel, pl, pr;
    bp_pool_geometry(b, i, &alg, strides, kernel, pl, pr);
    dnnl_pooling_desc_t d;
    if (dn_check(dnnl_pooling_forward_desc_init(&d, dnnl_forward_training, alg, bp_md(p, u->src), &dmd, strides,
                                                kernel, pl, pr),
                 "pooling descriptor") ||
        dn_check(dnnl_primitive_desc_create(&u->pd, &d, NULL, dn_engine, NULL), "pooling primitive descriptor"))
        return -1;
    u->dst = plan_value_new(&p->plan, dnnl_primitive_desc_query_md(u->pd, dnnl_query_dst_md, 0));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(u->pd, dnnl_query_workspace_md, 0);
    if (wmd && wmd->ndims > 0)
        u->ws = plan_value_new(&p->plan, wmd);
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, PLAN_PRIMITIVE, u->pd) : NULL;
    if (!s)
        return -1;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    if (u->ws >= 0)
        plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    return 0;
}

/* Adaptive average pool over uneven bins: plain layout, C loops. */
static int fwd_adaptive_uneven(bp_builder *b, bp_unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    nn_dims in = bp_in_dims(b, i), out = p->dims[i];
    int64_t sdims[4] = {p->batch, in.c, in.h, in.w}, ddims[4] = {p->batch, out.c, out.h, out.w};
    dnnl_memory_desc_t smd, dmd;
    dn_md_plain(&smd, 4, sdims);
    dn_md_plain(&dmd, 4, ddims);
    u->src = bp_as_layout(p, bp_src_value(b, i, 0), &smd);
    u->dst = u->src >= 0 ? plan_value_new(&p->plan, &dmd) : -1;
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, PLAN_ADAPTIVE_POOL, NULL) : NULL;
    if (!s)
        return -1;
    s->node = i;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    return 0;
}

static int fwd_dropout(bp_builder *b, bp_unit *u)
{
    nn_backprop *p = b->p;
    int i = u->head;
    u->src = bp_src_value(b, i, 0);
    u->ws = plan_value_new(&p->plan, bp_md(p, u->src));
    u->dst = u->ws >= 0 ? plan_value_new(&p->plan, bp_md(p, u->src)) : -1;
    plan_step *s = u->dst >= 0 ? plan_step_new(&p->plan, BP_DROPOUT, NULL) : NULL;
    if (!s)
        return -1;
    s->node = i;
    plan_arg_value(s, DNNL_ARG_SRC, u->src);
    plan_arg_value(s, DNNL_ARG_WORKSPACE, u->ws);
    plan_arg_value(s, DNNL_ARG_DST, u->dst);
    return 0;
}

int bp_forward(bp_builder *b)
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
        bp_unit *u = bp_new_unit(b, i);
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
            relu_node = bp_sole_consumer(b, i, NN_RELU);
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
            nn_dims in = bp_in_dims(b, i), out = p->dims[i];
            if (in.h == out.h && in.w == out.w) {
                u->alias = 1;
                u->src = u->dst = bp_src_value(b, i, 0);
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
                u->src = u->dst = bp_src_value(b, i, 0);
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

