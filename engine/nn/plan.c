#include "nn/plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/tensor.h"
#include "nn/adaptive_pool.h"
#include "nn/dnnl_util.h"

/* ---- building ------------------------------------------------------------------------------- */

int plan_value_new(plan *p, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t copy = *md; /* md may point into the array that grows */
    if (dn_grow((void **)&p->values, p->nvalues, sizeof *p->values))
        return -1;
    plan_value *v = &p->values[p->nvalues];
    memset(v, 0, sizeof *v);
    v->md = copy;
    v->inherit = v->reorder_of = -1;
    v->def = v->last = v->buffer = -1;
    return p->nvalues++;
}

plan_step *plan_step_new(plan *p, int kind, const_dnnl_primitive_desc_t pd)
{
    if (dn_grow((void **)&p->steps, p->nsteps, sizeof *p->steps))
        return NULL;
    plan_step *s = &p->steps[p->nsteps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = -1;
    if (pd && dn_check(dnnl_primitive_create(&s->prim, pd), "creating a primitive"))
        return NULL;
    p->nsteps++;
    return s;
}

static int md_of(const plan *p, int v, dnnl_memory_t m, const dnnl_memory_desc_t **md)
{
    if (v >= 0) {
        *md = plan_md(p, v);
        return 0;
    }
    return dnnl_memory_get_memory_desc(m, md) == dnnl_success ? 0 : err_set("oneDNN: a memory without a descriptor");
}

int plan_reorder(plan *p, int src, dnnl_memory_t src_mem, int dst, dnnl_memory_t dst_mem, int acc)
{
    const dnnl_memory_desc_t *smd, *dmd;
    if (md_of(p, src, src_mem, &smd) || md_of(p, dst, dst_mem, &dmd))
        return -1;
    dnnl_primitive_attr_t attr = dn_post_ops_attr(acc, 0);
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_reorder_primitive_desc_create(&pd, smd, dn_engine, dmd, dn_engine, attr), "reorder");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return -1;
    plan_step *s = plan_step_new(p, PLAN_PRIMITIVE, pd);
    dnnl_primitive_desc_destroy(pd);
    if (!s)
        return -1;
    s->args[s->nargs++] = (plan_arg){DNNL_ARG_FROM, src, src >= 0 ? NULL : src_mem};
    s->args[s->nargs++] = (plan_arg){DNNL_ARG_TO, dst, dst >= 0 ? NULL : dst_mem};
    return 0;
}

int plan_copy(plan *p, int v, const dnnl_memory_desc_t *want)
{
    int r = plan_value_new(p, want);
    return r < 0 || plan_reorder(p, v, NULL, r, NULL, 0) ? -1 : r;
}

int plan_as_layout(plan *p, int v, const dnnl_memory_desc_t *want, int reuse)
{
    if (dnnl_memory_desc_equal(plan_md(p, v), want))
        return v;
    for (int i = 0; reuse && i < p->nvalues; i++)
        if (p->values[i].reorder_of == v && dnnl_memory_desc_equal(&p->values[i].md, want))
            return i;
    int r = plan_copy(p, v, want);
    if (r >= 0)
        p->values[r].reorder_of = v;
    return r;
}

/* ---- buffers -------------------------------------------------------------------------------- */

/* The buffer for a value first used at step def that needs need bytes, among nbuffers whose
 * holders are last used at holder_last: one free by then, the smallest that is large enough, else
 * the largest; -1 when none is free. */
static int best_buffer(const int *holder_last, const size_t *size, int nbuffers, int def, size_t need)
{
    int best = -1;
    for (int b = 0; b < nbuffers; b++) {
        if (holder_last[b] >= def)
            continue;
        if (best < 0 || (size[b] >= need && (size[best] < need || size[b] < size[best])) ||
            (size[best] < need && size[b] > size[best]))
            best = b;
    }
    return best;
}

static int cmp_def(const void *a, const void *b, void *ctx)
{
    const plan_value *v = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    return v[x].def != v[y].def ? (v[x].def < v[y].def ? -1 : 1) : (x < y ? -1 : x > y);
}

static void lifetimes(plan *p)
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
    for (int i = 0; i < p->nvalues; i++) { /* a buffer taken over stays reserved until then */
        plan_value *heir = &p->values[i];
        if (heir->inherit >= 0 && p->values[heir->inherit].last < heir->def)
            p->values[heir->inherit].last = heir->def;
    }
}

/* Assigns a buffer index to every value that needs one, in order of first use; sizes in size. */
static void assign_buffers(plan *p, size_t *size, int *holder_last, int *order)
{
    for (int i = 0; i < p->nvalues; i++)
        order[i] = i;
    qsort_r(order, (size_t)p->nvalues, sizeof *order, cmp_def, p->values);
    for (int k = 0; k < p->nvalues; k++) {
        plan_value *v = &p->values[order[k]];
        if (v->external || (v->def < 0 && !v->pinned))
            continue;
        size_t need = dnnl_memory_desc_get_size(&v->md);
        int best = v->inherit >= 0 ? p->values[v->inherit].buffer
                   : v->pinned     ? -1
                                   : best_buffer(holder_last, size, p->nbuffers, v->def, need);
        if (best < 0) {
            best = p->nbuffers++;
            size[best] = 0;
        }
        if (size[best] < need)
            size[best] = need;
        int until = v->pinned ? p->nsteps : v->last;
        if (v->inherit < 0 || holder_last[best] < until)
            holder_last[best] = until;
        v->buffer = best;
    }
}

int plan_allocate(plan *p, const plan_buffers *source)
{
    p->source = source;
    lifetimes(p);
    size_t *size = calloc((size_t)p->nvalues + 1, sizeof *size);
    int *holder_last = calloc((size_t)p->nvalues + 1, sizeof *holder_last);
    int *order = malloc(((size_t)p->nvalues + 1) * sizeof *order);
    int rc = -1;
    if (!size || !holder_last || !order) {
        err_set("out of memory");
        goto done;
    }
    assign_buffers(p, size, holder_last, order);
    if (!(p->buffers = calloc((size_t)p->nbuffers + 1, sizeof *p->buffers)) ||
        !(p->buffer_bytes = calloc((size_t)p->nbuffers + 1, sizeof *p->buffer_bytes))) {
        err_set("out of memory");
        goto done;
    }
    for (int b = 0; b < p->nbuffers; b++) {
        if (source) {
            p->buffers[b] = source->take(size[b], &p->buffer_bytes[b]);
        } else { /* a float to spare beyond the rounded size */
            p->buffers[b] = tensor_alloc_floats((int64_t)((size[b] + 3) / 4 + 1));
            p->buffer_bytes[b] = size[b];
        }
        if (!p->buffers[b]) {
            err_set("out of memory allocating a buffer of %zu bytes", size[b]);
            goto done;
        }
        p->bytes += (int64_t)size[b];
    }
    for (int i = 0; i < p->nvalues; i++) {
        plan_value *v = &p->values[i];
        void *handle = v->external || v->buffer < 0 ? DNNL_MEMORY_NONE : p->buffers[v->buffer];
        if (dn_check(dnnl_memory_create(&v->mem, &v->md, dn_engine, handle), "plan memory"))
            goto done;
    }
    for (int s = 0; s < p->nsteps; s++) {
        plan_step *st = &p->steps[s];
        for (int a = 0; a < st->nargs; a++) {
            const plan_arg *ar = &st->args[a];
            st->exec[a] = (dnnl_exec_arg_t){ar->id, ar->value >= 0 ? p->values[ar->value].mem : ar->mem};
        }
    }
    rc = 0;
done:
    free(size);
    free(holder_last);
    free(order);
    return rc;
}

/* ---- running and teardown ------------------------------------------------------------------- */

float *plan_memory_data(dnnl_memory_t m)
{
    void *h = NULL;
    dnnl_memory_get_data_handle(m, &h);
    return h;
}

static dnnl_memory_t arg_memory(const plan_step *s, int id)
{
    for (int a = 0; a < s->nargs; a++)
        if (s->args[a].id == id)
            return s->exec[a].memory;
    return NULL;
}

float *plan_arg_data(const plan_step *s, int id)
{
    dnnl_memory_t m = arg_memory(s, id);
    return m ? plan_memory_data(m) : NULL;
}

int64_t plan_arg_floats(const plan_step *s, int id)
{
    dnnl_memory_t m = arg_memory(s, id);
    const dnnl_memory_desc_t *md;
    if (!m || dnnl_memory_get_memory_desc(m, &md) != dnnl_success)
        return 0;
    return (int64_t)(dnnl_memory_desc_get_size(md) / sizeof(float));
}

/* An adaptive average pool step: the planes and sizes from the plain 4-D descriptors of its
 * input (N×C×H×W) and output (N×C×OH×OW). */
static void adaptive_pool(const plan_step *s)
{
    int back = s->kind == PLAN_ADAPTIVE_POOL_BACK;
    dnnl_memory_t in = arg_memory(s, back ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC);
    dnnl_memory_t out = arg_memory(s, back ? DNNL_ARG_DIFF_DST : DNNL_ARG_DST);
    const dnnl_memory_desc_t *imd, *omd;
    dnnl_memory_get_memory_desc(in, &imd);
    dnnl_memory_get_memory_desc(out, &omd);
    int64_t planes = imd->dims[0] * imd->dims[1];
    int h = (int)imd->dims[2], w = (int)imd->dims[3], oh = (int)omd->dims[2], ow = (int)omd->dims[3];
    if (back)
        nn_adaptive_pool_backward(plan_memory_data(in), plan_memory_data(out), planes, h, w, oh, ow);
    else
        nn_adaptive_pool_forward(plan_memory_data(in), plan_memory_data(out), planes, h, w, oh, ow);
}

int plan_run(plan *p, int from, int to, plan_step_fn own_step, void *ctx)
{
    for (int i = from; i < to; i++) {
        const plan_step *s = &p->steps[i];
        if (s->kind == PLAN_PRIMITIVE) {
            if (dn_check(dnnl_primitive_execute(s->prim, dn_stream, s->nargs, s->exec), "execute"))
                return -1;
            continue;
        }
        if (dn_check(dnnl_stream_wait(dn_stream), "execute")) /* C steps read what primitives wrote */
            return -1;
        if (s->kind == PLAN_ADAPTIVE_POOL || s->kind == PLAN_ADAPTIVE_POOL_BACK)
            adaptive_pool(s);
        else if (own_step(ctx, s) != 0)
            return -1;
    }
    return dn_check(dnnl_stream_wait(dn_stream), "execute");
}

void plan_clear(plan *p)
{
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].prim)
            dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->nvalues; i++)
        if (p->values[i].mem)
            dnnl_memory_destroy(p->values[i].mem);
    for (int i = 0; p->buffers && i < p->nbuffers; i++) {
        if (!p->buffers[i])
            continue;
        if (p->source)
            p->source->give(p->buffers[i], p->buffer_bytes[i]);
        else
            free(p->buffers[i]);
    }
    free(p->steps);
    free(p->values);
    free(p->buffers);
    free(p->buffer_bytes);
    memset(p, 0, sizeof *p);
}
