#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/err.h"

int64_t tensor_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && n > INT64_MAX / 4 / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

/* Arrays of 4 MB and more are asked for in 2 MB pages where the kernel offers them on request
 * (transparent huge pages in "madvise" mode, Debian's default): a search allocates tens of MB
 * per candidate (its weights, activations), and on a virtual machine each 4 kB page fault costs
 * about 10 µs (a VGG16 candidate met about 15,000 of them; docs/benchmarks.md). */
#define HUGE_FROM ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

float *tensor_alloc_floats(int64_t n)
{
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (bytes < HUGE_FROM)
        return aligned_alloc(64, (bytes + 63) / 64 * 64);
    bytes = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    float *p = aligned_alloc(HUGE_PAGE, bytes);
    if (p)
        madvise(p, bytes, MADV_HUGEPAGE); /* advice only: 4 kB pages when refused */
    return p;
}

static uint64_t last_id;

void tensor_touch(tensor *t) { t->id = ++last_id; }

tensor *tensor_new(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIM) {
        err_set("tensor rank %d is outside 0..%d", ndim, TENSOR_MAX_DIM);
        return NULL;
    }
    int64_t n = tensor_shape_numel(ndim, shape);
    if (n < 0) {
        char buf[160];
        err_set("invalid tensor shape %s", tensor_shape_str(ndim, shape, buf, sizeof buf));
        return NULL;
    }
    tensor *t = calloc(1, sizeof *t);
    float *data = tensor_alloc_floats(n);
    if (!t || !data) {
        free(t);
        free(data);
        err_set("out of memory allocating a tensor of %lld floats", (long long)n);
        return NULL;
    }
    memset(data, 0, (size_t)n * sizeof(float));
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = n;
    t->data = data;
    tensor_touch(t);
    return t;
}

tensor *tensor_clone(const tensor *t)
{
    tensor *c = tensor_new(t->ndim, t->shape);
    if (c)
        memcpy(c->data, t->data, (size_t)t->numel * sizeof(float));
    return c;
}

void tensor_free(tensor *t)
{
    if (!t)
        return;
    free(t->data);
    free(t);
}

int tensor_same_shape(const tensor *a, const tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

const char *tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    if (ndim == 0)
        snprintf(buf, size, "scalar");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? "x%lld" : "%lld", (long long)shape[i]);
    return buf;
}

int tensor_reshape(tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIM || tensor_shape_numel(ndim, shape) != t->numel) {
        char a[160], b[160];
        return err_set("cannot reshape %s to %s", tensor_shape_str(t->ndim, t->shape, a, sizeof a),
                       tensor_shape_str(ndim, shape, b, sizeof b));
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return 0;
}
