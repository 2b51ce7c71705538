/* Training plans (backprop.h): building (bp_forward.c, bp_backward.c, then nn/plan.h's buffers
 * shared by lifetime), and running the steps, the training plan's own C steps (running
 * statistics, dropout) here. */
#include "train/backprop.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "train/bp_plan.h"

#define BN_MOMENTUM 0.1

/* ---- building ------------------------------------------------------------------------------- */

void nn_backprop_free(nn_backprop *p)
{
    if (!p)
        return;
    plan_clear(&p->plan);
    for (int i = 0; i < p->nparams; i++)
        dnnl_memory_destroy(p->params[i].mem);
    if (p->grad)
        for (int i = 0; i < 2 * p->net->count; i++)
            tensor_free(p->grad[i]);
    free(p->grad);
    free(p->params);
    free(p->dims);
    free(p->skipped);
    free(p);
}

static int build(nn_backprop *p)
{
    const nn_net *net = p->net;
    bp_builder b = {.p = p, .net = net};
    int count = net->count, rc = -1;
    b.act = malloc((size_t)count * sizeof *b.act);
    b.grad = malloc((size_t)count * sizeof *b.grad);
    b.uses = calloc((size_t)count, sizeof *b.uses);
    b.consumer = calloc((size_t)count, sizeof *b.consumer);
    if (!b.act || !b.grad || !b.uses || !b.consumer) {
        err_set("out of memory");
        goto done;
    }
    nn_readers(net, count - 1, b.uses, b.consumer);
    for (int i = 0; i < count; i++)
        b.grad[i] = -1;
    int64_t idims[4] = {p->batch, p->c, p->h, p->w};
    dnnl_memory_desc_t imd;
    dn_md_plain(&imd, 4, idims);
    if ((p->input = plan_value_new(&p->plan, &imd)) < 0)
        goto done;
    p->plan.values[p->input].external = 1;
    p->dinput = -1;
    if (p->flags & NN_BACKPROP_INPUT_GRAD) {
        if ((p->dinput = plan_value_new(&p->plan, &imd)) < 0)
            goto done;
        p->plan.values[p->dinput].pinned = 1;
    }
    if (bp_forward(&b) != 0)
        goto done;
    /* the outputs in plain layout for the caller */
    int last = b.act[count - 1];
    dnnl_memory_desc_t last_md = *bp_md(p, last), *lmd = &last_md;
    int64_t odims[2] = {p->batch, 1};
    for (int k = 1; k < lmd->ndims; k++)
        odims[1] *= lmd->dims[k];
    p->outputs = odims[1];
    dnnl_memory_desc_t omd;
    int64_t ldims[DNNL_MAX_NDIMS];
    memcpy(ldims, lmd->dims, (size_t)lmd->ndims * sizeof *ldims);
    dn_md_plain(&omd, lmd->ndims, ldims);
    if ((p->output = plan_value_new(&p->plan, &omd)) < 0)
        goto done;
    p->plan.values[p->output].pinned = 1;
    if (plan_reorder(&p->plan, last, NULL, p->output, NULL, 0))
        goto done;
    p->nforward = p->plan.nsteps;
    /* backward: the caller's gradient in the outputs' layout, then the units in reverse */
    if ((p->dy = plan_value_new(&p->plan, &omd)) < 0)
        goto done;
    p->plan.values[p->dy].external = 1;
    if ((b.grad[count - 1] = plan_value_new(&p->plan, lmd)) < 0 ||
        plan_reorder(&p->plan, p->dy, NULL, b.grad[count - 1], NULL, 0))
        goto done;
    for (int k = b.nunits - 1; k >= 0; k--)
        if (bp_backward_unit(&b, &b.units[k]) != 0) {
            const nn_node *n = &net->nodes[b.units[k].head];
            err_prefix("layer %s (backward)", *n->name ? n->name : nn_op_name(n->op));
            goto done;
        }
    rc = plan_allocate(&p->plan, NULL);
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
int64_t nn_backprop_bytes(const nn_backprop *p) { return p->plan.bytes; }

tensor *nn_backprop_grad(const nn_backprop *p, int node, int slot)
{
    if (node < 0 || node >= p->net->count || slot < 0 || slot > 1)
        return NULL;
    return p->grad[2 * node + slot];
}

const float *nn_backprop_input_grad(const nn_backprop *p)
{
    return p->dinput < 0 ? NULL : plan_memory_data(p->plan.values[p->dinput].mem);
}

static void running_stats(nn_backprop *p, const plan_step *s)
{
    nn_node *n = &p->net->nodes[s->node];
    const float *mean = plan_arg_data(s, DNNL_ARG_MEAN), *var = plan_arg_data(s, DNNL_ARG_VARIANCE);
    double m = (double)p->batch * p->dims[s->node].h * p->dims[s->node].w;
    double unbias = m > 1 ? m / (m - 1) : 1;
    for (int64_t c = 0; c < n->mean->numel; c++) {
        n->mean->data[c] = (float)((1 - BN_MOMENTUM) * n->mean->data[c] + BN_MOMENTUM * mean[c]);
        n->var->data[c] = (float)((1 - BN_MOMENTUM) * n->var->data[c] + BN_MOMENTUM * var[c] * unbias);
    }
}

/* Dropout in whatever layout the activation has: one mask entry per stored float. */
static int dropout(nn_backprop *p, const plan_step *s)
{
    const nn_node *n = &p->net->nodes[s->node];
    int64_t count = plan_arg_floats(s, DNNL_ARG_SRC);
    float *x = plan_arg_data(s, DNNL_ARG_SRC), *mask = plan_arg_data(s, DNNL_ARG_WORKSPACE);
    float *y = plan_arg_data(s, DNNL_ARG_DST);
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

static void dropout_back(const plan_step *s)
{
    int64_t count = plan_arg_floats(s, DNNL_ARG_DIFF_DST);
    const float *mask = plan_arg_data(s, DNNL_ARG_WORKSPACE);
    float *g = plan_arg_data(s, DNNL_ARG_DIFF_DST), *d = plan_arg_data(s, DNNL_ARG_DIFF_SRC);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++)
        d[i] = g[i] * mask[i];
}

/* The training plan's own C steps (plan_run's callback). */
static int own_step(void *ctx, const plan_step *s)
{
    nn_backprop *p = ctx;
    switch (s->kind) {
    case BP_RUNNING_STATS:
        running_stats(p, s);
        return 0;
    case BP_DROPOUT:
        return dropout(p, s);
    case BP_DROPOUT_BACK:
        dropout_back(s);
        return 0;
    default:
        return err_set("a training plan has a step of unknown kind %d", s->kind);
    }
}

/* Points the parameter memories at the current parameter and gradient tensors. */
static int bind_params(nn_backprop *p)
{
    for (int i = 0; i < p->nparams; i++) {
        bp_param *f = &p->params[i];
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
    if (bind_params(p) ||
        dn_check(dnnl_memory_set_data_handle(p->plan.values[p->input].mem, (void *)x), "input handle") ||
        plan_run(&p->plan, 0, p->nforward, own_step, p))
        return NULL;
    return plan_memory_data(p->plan.values[p->output].mem);
}

int nn_backprop_backward(nn_backprop *p, const float *dy)
{
    if (bind_params(p) ||
        dn_check(dnnl_memory_set_data_handle(p->plan.values[p->dy].mem, (void *)dy), "gradient handle"))
        return -1;
    for (int k = 0; k < p->nskipped; k++)
        for (int slot = 0; slot < 2; slot++) {
            tensor *t = p->grad[2 * p->skipped[k] + slot];
            if (t)
                memset(t->data, 0, (size_t)t->numel * sizeof *t->data);
        }
    if (p->dinput >= 0 && p->plan.values[p->dinput].def < 0) /* no step writes it: no path from the input */
        memset(plan_memory_data(p->plan.values[p->dinput].mem), 0,
               (size_t)(p->batch * p->c * p->h * p->w) * sizeof(float));
    return plan_run(&p->plan, p->nforward, p->plan.nsteps, own_step, p);
}
