#include "objective/objective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/par.h"
#include "core/rng.h"
#include "core/timer.h"
#include "nn/edit.h"
#include "nn/exec.h"

struct ob_estimator {
    ob_kind kind;
    nn_net *ref;
    const dataset *d;
    ob_options o;
    int64_t pool_n, *pool;  /* dataset indices of the pool */
    int64_t count;          /* highest evaluation number drawn */
    int64_t example;        /* floats per input */
    int64_t chw[3];
    int classes;            /* width of the reference logits, once known */
    float *ref_logits;      /* pool_n × classes */
    char *ref_have;
    float *x_cache;         /* pool_n × example, when it fits the budget */
    char *x_have;
};

void ob_mean_se(const double *d, int64_t n, double *mean, double *se)
{
    double m = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        m += d[i];
    m = n > 0 ? m / (double)n : 0;
    for (int64_t i = 0; i < n; i++)
        ss += (d[i] - m) * (d[i] - m);
    *mean = m;
    *se = n > 1 ? sqrt(ss / (double)(n - 1)) / sqrt((double)n) : 0;
}

void ob_defaults(ob_options *o)
{
    memset(o, 0, sizeof *o);
    o->samples = 50;
    o->seed = 1;
    o->squared = 1;
    o->se_floor = -1;
    o->cache_bytes = (int64_t)512 << 20;
}

void ob_free(ob_estimator *e)
{
    if (!e)
        return;
    free(e->pool);
    free(e->ref_logits);
    free(e->ref_have);
    free(e->x_cache);
    free(e->x_have);
    free(e);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

ob_estimator *ob_new(ob_kind kind, nn_net *reference, const dataset *d, const ob_options *o)
{
    int64_t size = ds_size(d);
    int64_t pool = o->pool <= 0 || o->pool > size ? size : o->pool;
    if (o->pool > size) {
        err_set("pool of %lld examples: %s has only %lld", (long long)o->pool, ds_name(d), (long long)size);
        return NULL;
    }
    if (o->samples < 1 || o->samples > pool) {
        err_set("samples = %lld must be between 1 and the pool size %lld", (long long)o->samples, (long long)pool);
        return NULL;
    }
    if (kind == OB_FNORM && o->samples < 2) { /* one distance has no spread: an SE of 0 would tell
                                                  the GP the value is exact */
        err_set("samples = 1 gives no standard error: the function distance needs at least 2");
        return NULL;
    }
    if (kind == OB_FNORM && !reference) {
        err_set("fnorm needs a reference network");
        return NULL;
    }
    if (o->batch < 0) {
        err_set("batch = %lld must be positive", (long long)o->batch);
        return NULL;
    }
    ob_estimator *e = calloc(1, sizeof *e);
    rng *r = NULL;
    if (!e)
        goto oom;
    e->kind = kind;
    e->ref = reference;
    e->d = d;
    e->o = *o;
    e->pool_n = pool;
    ds_example_shape(d, e->chw);
    e->example = e->chw[0] * e->chw[1] * e->chw[2];
    if (!(e->pool = malloc((size_t)pool * sizeof *e->pool)) || !(e->ref_have = calloc((size_t)pool, 1)))
        goto oom;
    if (pool == size) {
        for (int64_t i = 0; i < size; i++)
            e->pool[i] = i;
    } else { /* stream 0 of the seed draws the pool; evaluation k uses stream k */
        if (!(r = rng_new(rng_derive_seed(o->seed, 0))) || rng_sample(r, size, pool, e->pool) != 0)
            goto oom;
        qsort(e->pool, (size_t)pool, sizeof *e->pool, cmp_i64);
    }
    if ((double)pool * (double)e->example * sizeof(float) <= (double)o->cache_bytes) {
        e->x_cache = tensor_alloc_floats(pool * e->example);
        e->x_have = calloc((size_t)pool, 1);
        if (!e->x_cache || !e->x_have)
            goto oom;
    }
    rng_free(r);
    return e;
oom:
    err_set("out of memory");
    rng_free(r);
    ob_free(e);
    return NULL;
}

int64_t ob_pool_size(const ob_estimator *e) { return e->pool_n; }
int64_t ob_count(const ob_estimator *e) { return e->count; }

int64_t ob_known(const ob_estimator *e)
{
    int64_t k = 0;
    for (int64_t i = 0; e->kind == OB_FNORM && i < e->pool_n; i++)
        k += e->ref_have[i] == 1;
    return k;
}
const ob_options *ob_get_options(const ob_estimator *e) { return &e->o; }
ob_kind ob_get_kind(const ob_estimator *e) { return e->kind; }

/* Inputs of pool positions pos[0..n-1] as an n×C×H×W tensor, through the cache when there is one. */
static tensor *inputs(ob_estimator *e, int64_t n, const int64_t *pos)
{
    int64_t shape[4] = {n, e->chw[0], e->chw[1], e->chw[2]};
    tensor *x = NULL;
    int64_t *idx = malloc((size_t)n * sizeof *idx), *which = malloc((size_t)n * sizeof *which), missing = 0;
    if (!idx || !which) {
        err_set("out of memory");
        goto done;
    }
    if (!e->x_cache) {
        for (int64_t i = 0; i < n; i++)
            idx[i] = e->pool[pos[i]];
        x = ds_batch(e->d, n, idx, NULL);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (!e->x_have[pos[i]]) {
            idx[missing] = e->pool[pos[i]];
            which[missing++] = pos[i];
        }
    if (missing) {
        tensor *fresh = ds_batch(e->d, missing, idx, NULL);
        if (!fresh)
            goto done;
        for (int64_t k = 0; k < missing; k++) {
            memcpy(e->x_cache + which[k] * e->example, fresh->data + k * e->example, (size_t)e->example * sizeof(float));
            e->x_have[which[k]] = 1;
        }
        tensor_free(fresh);
    }
    if (!(x = tensor_new(4, shape)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        memcpy(x->data + i * e->example, e->x_cache + pos[i] * e->example, (size_t)e->example * sizeof(float));
done:
    free(idx);
    free(which);
    return x;
}

/* The default batch: all n at once unless the largest activation of the network would exceed
 * AUTO_BYTES or the batch AUTO_ROWS; then the fewest equal batches that fit. Smaller plans also
 * spare the first run of each candidate the page faults of fresh activation buffers (VGG16 at
 * 224×224 with n = 50 runs in 5 batches of 10, no slower per image; the Fashion-MNIST VGG's 2,000
 * re-scoring inputs in 8 batches of 250 instead of 2 of 1,000: 7% less wall time for a baseline
 * run, 40% less memory, the same numbers). */
#define AUTO_BYTES ((int64_t)128 << 20)
#define AUTO_ROWS 256

/* Every node's output dims for input x (N×C×H×W, or N×F), malloc'd; NULL when they cannot be
 * inferred (the forward pass will report the problem). */
static nn_dims *dims_for(const nn_net *net, const tensor *x)
{
    nn_dims *dims = malloc((size_t)(net->count ? net->count : 1) * sizeof *dims);
    int c = (int)x->shape[1], h = x->ndim == 4 ? (int)x->shape[2] : 1, w = x->ndim == 4 ? (int)x->shape[3] : 1;
    if (dims && nn_infer(net, c, h, w, dims) != 0) {
        free(dims);
        return NULL;
    }
    return dims;
}

static int64_t auto_batch(const nn_net *net, const tensor *x)
{
    int64_t n = x->shape[0], largest = 0;
    nn_dims *dims = dims_for(net, x);
    if (!dims)
        return n;
    for (int i = 0; i < net->count; i++) {
        int64_t bytes = (int64_t)dims[i].c * dims[i].h * dims[i].w * (int64_t)sizeof(float);
        if (bytes > largest)
            largest = bytes;
    }
    free(dims);
    int64_t fit = largest > 0 ? AUTO_BYTES / largest : n;
    if (fit > AUTO_ROWS)
        fit = AUTO_ROWS;
    if (fit >= n)
        return n;
    if (fit < 1)
        fit = 1;
    int64_t parts = (n + fit - 1) / fit;
    return (n + parts - 1) / parts;
}

/* Output of node `node` of net (-1: the logits) on x, in batches of batch rows. A last, partial
 * batch is padded with zeros to the full size, so that one plan serves every batch. */
static tensor *batched(nn_net *net, const tensor *x, int64_t batch, int node)
{
    int64_t n = x->shape[0];
    int64_t per = x->numel / n;
    tensor *y = NULL, *pad = NULL;
    for (int64_t first = 0; first < n; first += batch) {
        int64_t m = n - first < batch ? n - first : batch;
        tensor view = *x;
        view.shape[0] = batch;
        view.numel = batch * per;
        view.data = x->data + first * per;
        if (m < batch) {
            int64_t shape[TENSOR_MAX_DIM];
            memcpy(shape, x->shape, sizeof shape);
            shape[0] = batch;
            if (!(pad = tensor_new(x->ndim, shape))) {
                tensor_free(y);
                return NULL;
            }
            memcpy(pad->data, view.data, (size_t)(m * per) * sizeof(float));
            view.data = pad->data;
        }
        tensor *part = node < 0 ? nn_forward(net, &view) : nn_forward_to(net, &view, node);
        tensor_free(pad);
        pad = NULL;
        if (!part) {
            tensor_free(y);
            return NULL;
        }
        int64_t width = part->numel / batch;
        if (!y) {
            int64_t shape[TENSOR_MAX_DIM];
            memcpy(shape, part->shape, sizeof shape);
            shape[0] = n;
            if (!(y = tensor_new(part->ndim, shape))) {
                tensor_free(part);
                return NULL;
            }
        }
        memcpy(y->data + first * width, part->data, (size_t)(m * width) * sizeof(float));
        tensor_free(part);
    }
    return y;
}

/* A dense tail (a classifier) is run on all n rows at once when its weights are at least
 * TAIL_BYTES: in batches each pass streams them from memory again (VGG16's 494 MB at 10 rows a
 * pass ran at 40% of the FMA peak, memory-bound), while its activations are small. */
#define TAIL_BYTES ((int64_t)64 << 20)

static int64_t tail_bytes(const nn_net *tail)
{
    int64_t bytes = 0;
    for (int i = 0; i < tail->count; i++)
        bytes += nn_node_param_count(&tail->nodes[i]) * (int64_t)sizeof(float);
    return bytes;
}

/* The dense tail of net worth running on all rows at once, or NULL (*from -1). */
static nn_net *heavy_tail(const nn_net *net, const tensor *x, int *from)
{
    nn_dims *dims = x->ndim == 4 ? dims_for(net, x) : NULL;
    nn_net *tail = NULL;
    *from = -1;
    if (dims)
        tail = nn_dense_tail(net, dims, from);
    free(dims);
    if (tail && tail_bytes(tail) < TAIL_BYTES) {
        nn_net_free(tail);
        tail = NULL;
        *from = -1;
    }
    return tail;
}

/* Logits of net on x, in batches of batch rows (0: automatic, see auto_batch), a heavy dense tail
 * on all rows at once. */
static tensor *forward(nn_net *net, const tensor *x, int64_t batch)
{
    int64_t n = x->shape[0];
    if (batch <= 0)
        batch = auto_batch(net, x);
    if (batch <= 0 || batch >= n)
        return nn_forward(net, x);
    int from;
    nn_net *tail = heavy_tail(net, x, &from);
    if (!tail)
        return batched(net, x, batch, -1);
    tensor *h = batched(net, x, batch, from), *y = NULL;
    if (h) {
        tensor flat = *h; /* the tail reads the features flattened, as PyTorch's classifier does */
        flat.ndim = 2;
        flat.shape[1] = h->numel / n;
        y = nn_forward(tail, &flat);
    }
    tensor_free(h);
    nn_net_free(tail);
    return y;
}

/* The batch of the reference's forward passes: `batch`, or the automatic batch of a sample of n
 * (that of the candidates' forward passes), so that the reference compiles one plan. */
static int64_t reference_batch(ob_estimator *e)
{
    if (e->o.batch > 0)
        return e->o.batch;
    int64_t shape[4] = {e->o.samples, e->chw[0], e->chw[1], e->chw[2]};
    tensor probe = {.ndim = 4, .numel = e->o.samples * e->example};
    memcpy(probe.shape, shape, sizeof shape);
    return auto_batch(e->ref, &probe);
}

/* One forward pass of the reference on exactly b rows: pool positions todo[0..m-1] (m <= b, none
 * known yet), row k copied from x's row from[k] when from[k] >= 0 (the sample being evaluated),
 * else decoded; rows m..b-1 are zeros. Their logits are kept. */
static int reference_pass(ob_estimator *e, int64_t b, int64_t m, const int64_t *todo, const int64_t *from,
                          const tensor *x, tensor *batch)
{
    double t = timer_now(); /* accounted per pass: the account's calls count the passes */
    size_t cap = (size_t)(m ? m : 1);
    int64_t decode = 0, *dpos = malloc(cap * sizeof *dpos), *drow = malloc(cap * sizeof *drow);
    tensor *y = NULL, *fresh = NULL;
    int rc = -1;
    if (!dpos || !drow) {
        err_set("out of memory");
        goto done;
    }
    for (int64_t k = 0; k < m; k++) {
        if (from[k] >= 0) {
            memcpy(batch->data + k * e->example, x->data + from[k] * e->example, (size_t)e->example * sizeof(float));
        } else {
            dpos[decode] = todo[k];
            drow[decode++] = k;
        }
    }
    if (decode) {
        if (!(fresh = inputs(e, decode, dpos)))
            goto done;
        for (int64_t j = 0; j < decode; j++)
            memcpy(batch->data + drow[j] * e->example, fresh->data + j * e->example,
                   (size_t)e->example * sizeof(float));
    }
    memset(batch->data + m * e->example, 0, (size_t)((b - m) * e->example) * sizeof(float));
    if (!(y = nn_forward(e->ref, batch)))
        goto done;
    int classes = (int)(y->numel / b);
    if (!e->ref_logits) {
        e->classes = classes;
        if (!(e->ref_logits = malloc((size_t)e->pool_n * classes * sizeof *e->ref_logits))) {
            err_set("out of memory");
            goto done;
        }
    }
    for (int64_t k = 0; k < m; k++) {
        memcpy(e->ref_logits + todo[k] * e->classes, y->data + k * classes, (size_t)classes * sizeof(float));
        e->ref_have[todo[k]] = 1;
    }
    rc = 0;
done:
    free(dpos);
    free(drow);
    tensor_free(fresh);
    tensor_free(y);
    timer_account("objective.reference", timer_now() - t);
    return rc;
}

/* Makes sure the reference logits of pool positions pos[0..n-1] are known; x holds their inputs
 * (or is NULL: decoded). Only the missing ones are computed, in forward passes of one fixed size
 * (reference_batch: one plan serves every call); a last, partial pass is filled up with other pool
 * examples still missing, in pool order (their logits are kept for later samples), and only then
 * with zero rows. So each pool example's reference runs once per run, and the reference's work
 * is the pool examples drawn, rounded up to a whole batch. */
static int reference_logits(ob_estimator *e, int64_t n, const int64_t *pos, const tensor *x)
{
    int64_t missing = 0;
    for (int64_t i = 0; i < n; i++)
        missing += !e->ref_have[pos[i]];
    if (!missing)
        return 0;
    int64_t b = reference_batch(e);
    int64_t total = (missing + b - 1) / b * b, m = 0;
    int64_t *todo = malloc((size_t)total * sizeof *todo), *from = malloc((size_t)total * sizeof *from);
    int64_t shape[4] = {b, e->chw[0], e->chw[1], e->chw[2]};
    tensor *batch = todo && from ? tensor_new(4, shape) : NULL;
    int rc = -1;
    if (!batch) {
        err_set("out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (!e->ref_have[pos[i]]) {
            e->ref_have[pos[i]] = 2; /* scheduled */
            todo[m] = pos[i];
            from[m++] = x ? i : -1;
        }
    for (int64_t p = 0; p < e->pool_n && m < total; p++)
        if (!e->ref_have[p]) {
            e->ref_have[p] = 2;
            todo[m] = p;
            from[m++] = -1;
        }
    for (int64_t k = 0; k < m; k++)
        e->ref_have[todo[k]] = 0;
    rc = 0;
    for (int64_t first = 0; first < m && rc == 0; first += b)
        rc = reference_pass(e, b, m - first < b ? m - first : b, todo + first, from + first, x, batch);
done:
    free(todo);
    free(from);
    tensor_free(batch);
    return rc;
}

/* After each rank computed the reference logits of its share [lo, hi) of the pool: every rank
 * gets all of them, as doubles summed over the ranks where only the share's owner writes non-zeros
 * (exact: x + 0 = x), in chunks of rows. */
static int share_logits(ob_estimator *e, int64_t lo, int64_t hi)
{
    int computed = e->ref_logits != NULL && hi > lo;
    double c[2] = {computed ? e->classes : 0, computed ? 1 : 0}; /* a rank with no share knows no classes */
    if (par_sum(c, 2) != 0)
        return -1;
    if (c[1] < 1)
        return 0;
    int classes = (int)(c[0] / c[1] + 0.5);
    if (!e->ref_logits) {
        e->classes = classes;
        if (!(e->ref_logits = malloc((size_t)e->pool_n * classes * sizeof *e->ref_logits)))
            return err_set("out of memory");
    }
    int64_t rows = ((int64_t)1 << 22) / classes + 1;
    double *buf = malloc((size_t)(rows < e->pool_n ? rows : e->pool_n) * classes * sizeof *buf);
    if (!buf)
        return err_set("out of memory");
    int rc = 0;
    for (int64_t first = 0; first < e->pool_n && rc == 0; first += rows) {
        int64_t m = e->pool_n - first < rows ? e->pool_n - first : rows;
        for (int64_t i = 0; i < m; i++) {
            int mine = first + i >= lo && first + i < hi;
            for (int j = 0; j < classes; j++)
                buf[i * classes + j] = mine ? e->ref_logits[(first + i) * classes + j] : 0.0;
        }
        rc = par_sum(buf, (int)(m * classes));
        for (int64_t i = 0; rc == 0 && i < m; i++) {
            for (int j = 0; j < classes; j++)
                e->ref_logits[(first + i) * classes + j] = (float)buf[i * classes + j];
            e->ref_have[first + i] = 1;
        }
    }
    free(buf);
    return rc;
}

int ob_prepare(ob_estimator *e)
{
    if (e->kind != OB_FNORM)
        return 0;
    int64_t chunk = reference_batch(e), *pos = malloc((size_t)chunk * sizeof *pos);
    if (!pos)
        return err_set("out of memory");
    /* over the ranks of an MPI run each computes its share of the pool, then all are shared */
    int64_t lo, hi;
    par_share(e->pool_n, &lo, &hi);
    progress p;
    progress_start(&p, "reference outputs", hi - lo);
    int rc = 0;
    for (int64_t first = lo; first < hi && rc == 0; first += chunk) {
        int64_t m = hi - first < chunk ? hi - first : chunk, k = 0;
        for (int64_t i = 0; i < m; i++)
            if (!e->ref_have[first + i])
                pos[k++] = first + i;
        if (k)
            rc = reference_logits(e, k, pos, NULL);
        progress_update(&p, first - lo + m, NULL);
    }
    progress_end(&p, NULL);
    free(pos);
    if (par_ranks() > 1) { /* collective: a rank that failed still takes part, then all fail */
        double failed = rc != 0;
        if (par_sum(&failed, 1) != 0)
            return -1;
        if (failed > 0)
            return rc != 0 ? rc : err_set("computing the reference outputs failed on another rank");
        rc = share_logits(e, lo, hi);
    }
    return rc;
}

/* Pool positions of evaluation index's sample: stream index of the seed alone decides it. */
static int draw(const ob_estimator *e, int64_t index, int64_t *pos)
{
    rng *g = rng_new(rng_derive_seed(e->o.seed, (uint64_t)(e->o.fixed ? 1 : index)));
    int rc = g ? rng_sample(g, e->pool_n, e->o.samples, pos) : -1;
    rng_free(g);
    return rc == 0 ? 0 : err_set("out of memory");
}

int ob_sample_indices(const ob_estimator *e, int64_t index, int64_t *out)
{
    if (index < 1)
        return err_set("sample %lld: evaluations are numbered from 1", (long long)index);
    if (draw(e, index, out) != 0)
        return -1;
    for (int64_t i = 0; i < e->o.samples; i++)
        out[i] = e->pool[out[i]];
    return 0;
}

int ob_evaluate(ob_estimator *e, nn_net *cand, int64_t index, ob_result *r)
{
    memset(r, 0, sizeof *r);
    if (index <= 0)
        index = e->count + 1;
    if (index > e->count)
        e->count = index;
    int64_t n = e->o.samples;
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    double *d = malloc((size_t)n * sizeof *d);
    tensor *x = NULL, *y = NULL;
    int rc = -1;
    if (!pos || !d) {
        err_set("out of memory");
        goto done;
    }
    if (draw(e, index, pos) != 0)
        goto done;
    double t = timer_now();
    if (!(x = inputs(e, n, pos)))
        goto done;
    r->t_data = timer_now() - t;
    timer_account("objective.data", r->t_data);
    t = timer_now();
    if (e->kind == OB_FNORM && reference_logits(e, n, pos, x) != 0) /* accounted per pass */
        goto done;
    r->t_reference = timer_now() - t;
    t = timer_now();
    if (!(y = forward(cand, x, e->o.batch)))
        goto done;
    r->t_forward = timer_now() - t;
    timer_account("objective.forward", r->t_forward);
    t = timer_now();
    int classes = (int)(y->numel / n);
    if (e->kind == OB_FNORM) {
        if (classes != e->classes) {
            err_set("the candidate gives %d outputs per input, the reference %d", classes, e->classes);
            goto done;
        }
        const float *ref = e->ref_logits;
        int squared = e->o.squared;
#pragma omp parallel for if (n * classes > 100000)
        for (int64_t i = 0; i < n; i++) {
            const float *a = y->data + i * classes, *b = ref + pos[i] * classes;
            double s = 0;
            for (int k = 0; k < classes; k++)
                s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
            d[i] = squared ? s : sqrt(s);
        }
        ob_mean_se(d, n, &r->value, &r->se);
    } else {
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *a = y->data + i * classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (a[k] > a[best])
                    best = k;
            wrong += best != ds_label(e->d, e->pool[pos[i]]);
        }
        double p = (double)wrong / (double)n, p0 = 0.5 / (double)n;
        double floor = e->o.se_floor >= 0 ? e->o.se_floor : sqrt(p0 * (1 - p0) / (double)n);
        r->value = p;
        r->se = fmax(sqrt(p * (1 - p) / (double)n), floor);
    }
    r->t_distance = timer_now() - t;
    timer_account("objective.distance", r->t_distance);
    r->n = n;
    r->index = index;
    rc = 0;
done:
    free(pos);
    free(d);
    tensor_free(x);
    tensor_free(y);
    return rc;
}
