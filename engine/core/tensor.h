/* tensor: dense float32 arrays, row-major, at most TENSOR_MAX_DIM dimensions, 64-byte aligned. */
#ifndef BOENGINE_TENSOR_H
#define BOENGINE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIM 8

typedef struct tensor {
    int ndim;
    int64_t shape[TENSOR_MAX_DIM];
    int64_t numel;
    float *data;
    uint64_t id; /* unique per content: new at creation and at tensor_touch (caches key on it) */
} tensor;

/* A zero-filled tensor; NULL (with err_set) on a bad shape or out of memory. */
tensor *tensor_new(int ndim, const int64_t *shape);
tensor *tensor_clone(const tensor *t);
void tensor_free(tensor *t);

/* Gives t a new id: call after changing its data in place, so that nothing derived from the old
 * content (reordered weights, say) is taken for it. */
void tensor_touch(tensor *t);

/* Number of elements of a shape; -1 when a dimension is negative or the product overflows. */
int64_t tensor_shape_numel(int ndim, const int64_t *shape);
int tensor_same_shape(const tensor *a, const tensor *b);

/* Writes "64x3x3x3" into buf (at least 128 bytes is always enough for messages). */
const char *tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);

/* Reshapes in place to a shape with the same number of elements; -1 otherwise. */
int tensor_reshape(tensor *t, int ndim, const int64_t *shape);

/* Aligned allocation for any float buffer that may be handed to oneDNN. */
float *tensor_alloc_floats(int64_t n);

#endif
