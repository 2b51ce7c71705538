/* dnnl_util: what inference (exec.c) and training (train/backprop.c) share on oneDNN: the one CPU
 * engine and stream, status checks that record a message, memory descriptors in plain or any
 * layout, post-op attributes, reorders of plain float arrays into a primitive's chosen layout,
 * the descriptors of weighted layers, and growing the arrays of a plan under construction (the
 * plan itself: plan.h). */
#ifndef BOENGINE_DNNL_UTIL_H
#define BOENGINE_DNNL_UTIL_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/net.h"

/* The engine and stream every plan uses; valid after dn_init() succeeded. */
extern dnnl_engine_t dn_engine;
extern dnnl_stream_t dn_stream;

/* Creates the engine and stream on first use; -1 with err_set on failure. */
int dn_init(void);

/* Destroys the engine and stream, once every plan and cached memory made with them is gone
 * (at exit: main.c). */
void dn_free(void);

/* 0 on success, else -1 with "oneDNN: what: status" recorded. */
int dn_check(dnnl_status_t st, const char *what);

/* Row-major f32 descriptor (1 to 5 dimensions), and one whose layout the primitive chooses. */
void dn_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);
void dn_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);

/* Post-ops: a sum with the destination's previous content, then a ReLU (NULL when neither). */
dnnl_primitive_attr_t dn_post_ops_attr(int sum, int relu);

/* A new memory in layout want holding a copy of the plain array data (reordered now). Its data
 * handle comes from tensor_alloc_floats (huge pages for large weights): the owner frees it after
 * destroying the memory. NULL with err_set. */
dnnl_memory_t dn_reordered_memory(const float *data, int ndims, const int64_t *dims, const dnnl_memory_desc_t *want);

/* The weights' dims of convolution or inner product n reading an input of dims in, as src_nd
 * dims (4; an inner product on a flat input: 2, and sdims[1] becomes its feature count). Returns
 * the number of weight dims (5 for a grouped convolution). */
int dn_weight_dims(const nn_node *n, nn_dims in, int src_nd, int64_t *wdims, int64_t *sdims);

/* A convolution's or inner product's forward descriptor; one union serves both. */
typedef union dn_weighted_desc {
    dnnl_convolution_desc_t conv;
    dnnl_inner_product_desc_t ip;
} dn_weighted_desc;

/* Initializes d for node n (a convolution or an inner product; bias NULL for none); -1 with err_set. */
int dn_weighted_forward_desc(dn_weighted_desc *d, dnnl_prop_kind_t prop, const nn_node *n,
                             const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *weights,
                             const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst);

/* Makes room for element number count of *array (elements of elem bytes): the capacity is 8, then
 * doubles at every power of two. -1 with err_set when out of memory. */
int dn_grow(void **array, int count, size_t elem);

#endif
