/* testutil: what the C test programs keep needing: random integers, arrays, inputs and network
 * parameters drawn from a seeded generator, and the relative error of a result against its
 * reference. */
#ifndef BOENGINE_TESTUTIL_H
#define BOENGINE_TESTUTIL_H

#include <math.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "graph.h"
#include "nn/net.h"

/* Uniform in lo..hi, both included. */
static inline int tu_rand_int(rng *r, int lo, int hi) { return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1)); }

/* Uniform values in [lo, hi) for n floats. */
static inline void tu_uniform(float *x, int64_t n, rng *r, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* An n×c×h×w input uniform in [-1, 1); NULL when out of memory. */
static inline tensor *tu_random_input(rng *r, int n, int c, int h, int w)
{
    tensor *x = tensor_new(4, (int64_t[]){n, c, h, w});
    graph_randomize(x, r, -1, 1);
    return x;
}

/* Every parameter drawn at random: weights and biases uniform in [-0.5, 0.5), batch norms away
 * from the identity (graph_randomize_bn, running statistics included). The graph must have its
 * parameters; its plans are dropped. */
static inline void tu_randomize_params(nn_net *net, rng *r)
{
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        if (n->op == NN_BATCHNORM) {
            graph_randomize_bn(n, r);
        } else {
            graph_randomize(n->weight, r, -0.5, 0.5);
            graph_randomize(n->bias, r, -0.5, 0.5);
        }
    }
    nn_invalidate(net);
}

/* max |got - want| over the n entries, relative to max(floor, max |want|). */
static inline double tu_rel_error(const float *got, const float *want, int64_t n, double floor)
{
    double d = 0, scale = floor;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return d / scale;
}

/* tu_rel_error of two tensors; infinity when one is missing or their sizes differ. */
static inline double tu_tensor_rel_error(const tensor *got, const tensor *want)
{
    if (!got || !want || got->numel != want->numel)
        return INFINITY;
    return tu_rel_error(got->data, want->data, got->numel, 1e-30);
}

#endif
