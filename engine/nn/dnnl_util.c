#include "nn/dnnl_util.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/tensor.h"

dnnl_engine_t dn_engine;
dnnl_stream_t dn_stream;

int dn_check(dnnl_status_t st, const char *what)
{
    return st == dnnl_success ? 0 : err_set("oneDNN: %s: %s", what, dnnl_status2str(st));
}

int dn_init(void)
{
    if (dn_engine)
        return 0;
    if (dn_check(dnnl_engine_create(&dn_engine, dnnl_cpu, 0), "creating the CPU engine") ||
        dn_check(dnnl_stream_create(&dn_stream, dn_engine, dnnl_stream_default_flags), "creating a stream"))
        return -1;
    return 0;
}

void dn_free(void)
{
    if (dn_stream)
        dnnl_stream_destroy(dn_stream);
    if (dn_engine)
        dnnl_engine_destroy(dn_engine);
    dn_stream = NULL;
    dn_engine = NULL;
}

void dn_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
                                             dnnl_abcde};
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tags[ndims]);
}

void dn_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims)
{
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, dnnl_format_tag_any);
}

dnnl_primitive_attr_t dn_post_ops_attr(int sum, int relu)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (!sum && !relu)
        return NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success || dnnl_post_ops_create(&po) != dnnl_success)
        return attr;
    if (sum)
        dnnl_post_ops_append_sum(po, 1.0f);
    if (relu)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return attr;
}

dnnl_memory_t dn_reordered_memory(const float *data, int ndims, const int64_t *dims, const dnnl_memory_desc_t *want)
{
    dnnl_memory_desc_t plain;
    dn_md_plain(&plain, ndims, dims);
    dnnl_memory_t src = NULL, dst = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    size_t bytes = dnnl_memory_desc_get_size(want);
    float *buffer = tensor_alloc_floats((int64_t)((bytes + 3) / 4));
    if (!buffer) {
        err_set("out of memory allocating weights of %zu bytes", bytes);
        return NULL;
    }
    int ok = !dn_check(dnnl_memory_create(&dst, want, dn_engine, buffer), "weights memory");
    if (ok && dnnl_memory_desc_equal(&plain, want)) { /* biases, statistics: a copy, no reorder primitive */
        memcpy(buffer, data, bytes);
        return dst;
    }
    ok = ok && !dn_check(dnnl_memory_create(&src, &plain, dn_engine, (void *)data), "weights memory") &&
         !dn_check(dnnl_reorder_primitive_desc_create(&pd, &plain, dn_engine, want, dn_engine, NULL),
                   "weights reorder") &&
         !dn_check(dnnl_primitive_create(&reorder, pd), "weights reorder");
    if (ok) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        ok = !dn_check(dnnl_primitive_execute(reorder, dn_stream, 2, args), "weights reorder") &&
             !dn_check(dnnl_stream_wait(dn_stream), "weights reorder");
    }
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (src)
        dnnl_memory_destroy(src);
    if (!ok) {
        if (dst)
            dnnl_memory_destroy(dst);
        free(buffer);
        dst = NULL;
    }
    return dst;
}

int dn_grow(void **array, int count, size_t elem)
{
    if (count != 0 && (count < 8 || (count & (count - 1)) != 0))
        return 0;
    void *a = realloc(*array, (size_t)(count ? 2 * count : 8) * elem);
    if (!a)
        return err_set("out of memory");
    *array = a;
    return 0;
}

int dn_weight_dims(const nn_node *n, nn_dims in, int src_nd, int64_t *wdims, int64_t *sdims)
{
    if (n->op == NN_CONV && n->groups > 1) {
        int64_t g[5] = {n->groups, n->out / n->groups, in.c / n->groups, n->kh, n->kw};
        memcpy(wdims, g, sizeof g);
        return 5;
    }
    if (n->op == NN_CONV || src_nd == 4) {
        int64_t w4[4] = {n->out, in.c, n->op == NN_CONV ? n->kh : in.h, n->op == NN_CONV ? n->kw : in.w};
        memcpy(wdims, w4, sizeof w4);
        return 4;
    }
    wdims[0] = n->out;
    wdims[1] = sdims[1] = (int64_t)in.c * in.h * in.w;
    return 2;
}

int dn_weighted_forward_desc(dn_weighted_desc *d, dnnl_prop_kind_t prop, const nn_node *n,
                             const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *weights,
                             const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst)
{
    dnnl_dims_t strides = {n->sh, n->sw}, pad = {n->ph, n->pw};
    if (n->op == NN_CONV)
        return dn_check(dnnl_convolution_forward_desc_init(&d->conv, prop, dnnl_convolution_direct, src, weights, bias,
                                                           dst, strides, pad, pad),
                        "convolution descriptor");
    return dn_check(dnnl_inner_product_forward_desc_init(&d->ip, prop, src, weights, bias, dst),
                    "inner product descriptor");
}
