/* naive_net: runs a network graph node by node with the naive loops of naive.h, in plain NCHW,
 * without fusion, folding or buffer sharing: the reference the oneDNN plans are compared with. */
#ifndef BOENGINE_NAIVE_NET_H
#define BOENGINE_NAIVE_NET_H

#include <stdlib.h>
#include <string.h>

#include "naive.h"
#include "nn/net.h"

/* Output of the last node for x (N×C×H×W), in a malloc'ed array of *count floats; NULL on error. */
static inline float *naive_forward(const nn_net *net, const tensor *x, long *count)
{
    int n = (int)x->shape[0], c = (int)x->shape[1];
    int h = x->ndim == 4 ? (int)x->shape[2] : 1, w = x->ndim == 4 ? (int)x->shape[3] : 1;
    nn_dims *dims = malloc((size_t)net->count * sizeof *dims);
    float **out = calloc((size_t)net->count, sizeof *out);
    if (nn_infer(net, c, h, w, dims) != 0)
        return NULL;
    for (int i = 0; i < net->count; i++) {
        const nn_node *nd = &net->nodes[i];
        nn_dims in = nd->in[0] == NN_INPUT ? (nn_dims){c, h, w} : dims[nd->in[0]], o = dims[i];
        const float *src = nd->in[0] == NN_INPUT ? x->data : out[nd->in[0]];
        long in_count = (long)n * in.c * in.h * in.w, out_count = (long)n * o.c * o.h * o.w;
        float *y = out[i] = malloc((size_t)out_count * sizeof *y);
        switch (nd->op) {
        case NN_CONV:
            naive_conv(src, n, in.c, in.h, in.w, nd->weight->data, nd->bias ? nd->bias->data : NULL, nd->out,
                       nd->kh, nd->kw, nd->sh, nd->sw, nd->ph, nd->pw, nd->groups, y, o.h, o.w);
            break;
        case NN_MAXPOOL:
        case NN_AVGPOOL:
            naive_pool(src, n, in.c, in.h, in.w, nd->kh, nd->kw, nd->sh, nd->sw, nd->ph, nd->pw,
                       nd->op == NN_MAXPOOL, y, o.h, o.w);
            break;
        case NN_ADAPTIVE_AVGPOOL:
            naive_adaptive_avg(src, n, in.c, in.h, in.w, y, o.h, o.w);
            break;
        case NN_LINEAR:
            naive_linear(src, n, in.c * in.h * in.w, nd->weight->data, nd->bias ? nd->bias->data : NULL, nd->out, y);
            break;
        case NN_BATCHNORM:
            memcpy(y, src, (size_t)in_count * sizeof *y);
            naive_batchnorm(y, n, in.c, in.h * in.w, nd->weight->data, nd->bias->data, nd->mean->data,
                            nd->var->data, nd->eps);
            break;
        case NN_ADD:
            memcpy(y, src, (size_t)in_count * sizeof *y);
            naive_add(y, nd->in[1] == NN_INPUT ? x->data : out[nd->in[1]], in_count);
            break;
        case NN_RELU:
            memcpy(y, src, (size_t)in_count * sizeof *y);
            naive_relu(y, in_count);
            break;
        case NN_SOFTMAX:
            memcpy(y, src, (size_t)in_count * sizeof *y);
            naive_softmax(y, n, in.c * in.h * in.w);
            break;
        case NN_DROPOUT:
            memcpy(y, src, (size_t)in_count * sizeof *y);
            break;
        }
        if (i == net->count - 1)
            *count = out_count;
    }
    float *result = out[net->count - 1];
    for (int i = 0; i < net->count - 1; i++)
        free(out[i]);
    free(out);
    free(dims);
    return result;
}

#endif
