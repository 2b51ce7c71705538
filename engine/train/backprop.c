/* Training plans (backprop.h): building (bp_forward.c, bp_backward.c), buffers shared by lifetime,
 * and running the steps, the C ones (running statistics, dropout, uneven adaptive pools) here. */
#include "train/backprop.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "nn/adaptive_pool.h"
#include "train/bp_plan.h"

#define BN_MOMENTUM 0.1

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
            best = dn_best_buffer(holder_last, size, p->nbuffers, v->def, need);
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
    nn_readers(net, count - 1, b.uses, b.consumer);
    for (int i = 0; i < count; i++)
        b.grad[i] = -1;
    int64_t idims[4] = {p->batch, p->c, p->h, p->w};
    dnnl_memory_desc_t imd;
    dn_md_plain(&imd, 4, idims);
    if ((p->input = bp_new_value(p, &imd)) < 0)
        goto done;
    p->values[p->input].external = 1;
    p->dinput = -1;
    if (p->flags & NN_BACKPROP_INPUT_GRAD) {
        if ((p->dinput = bp_new_value(p, &imd)) < 0)
            goto done;
        p->values[p->dinput].pinned = 1;
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
    if ((p->output = bp_new_value(p, &omd)) < 0)
        goto done;
    p->values[p->output].pinned = 1;
    if (bp_reorder(p, last, -1, p->output, 0))
        goto done;
    p->nforward = p->nsteps;
    /* backward: the caller's gradient in the outputs' layout, then the units in reverse */
    if ((p->dy = bp_new_value(p, &omd)) < 0)
        goto done;
    p->values[p->dy].external = 1;
    if ((b.grad[count - 1] = bp_new_value(p, lmd)) < 0 || bp_reorder(p, p->dy, -1, b.grad[count - 1], 0))
        goto done;
    for (int k = b.nunits - 1; k >= 0; k--)
        if (bp_backward_unit(&b, &b.units[k]) != 0) {
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

static float *handle_of(dnnl_memory_t m)
{
    void *h = NULL;
    dnnl_memory_get_data_handle(m, &h);
    return h;
}

const float *nn_backprop_input_grad(const nn_backprop *p)
{
    return p->dinput < 0 ? NULL : handle_of(p->values[p->dinput].mem);
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

static void adaptive(const nn_backprop *p, const step *s, int back)
{
    nn_dims in = s->node >= 0 && p->net->nodes[s->node].in[0] >= 0 ? p->dims[p->net->nodes[s->node].in[0]]
                                                                   : (nn_dims){p->c, p->h, p->w};
    nn_dims out = p->dims[s->node];
    float *x = arg_data(s, back ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC);
    float *y = arg_data(s, back ? DNNL_ARG_DIFF_DST : DNNL_ARG_DST);
    if (back)
        nn_adaptive_pool_backward(x, y, p->batch * in.c, in.h, in.w, out.h, out.w);
    else
        nn_adaptive_pool_forward(x, y, p->batch * in.c, in.h, in.w, out.h, out.w);
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
