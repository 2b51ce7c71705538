/* graph: building test networks node by node with nn_add, the defaults filled in (no name, one
 * group, batch-norm epsilon 1e-5, no second input unless the node adds), and drawing their
 * parameters at random. */
#ifndef BOENGINE_TEST_GRAPH_H
#define BOENGINE_TEST_GRAPH_H

#include "core/rng.h"
#include "nn/net.h"

static inline int graph_add(nn_net *net, nn_node n)
{
    if (!n.name)
        n.name = "";
    if (n.op == NN_CONV && !n.groups)
        n.groups = 1;
    if (!n.eps)
        n.eps = 1e-5f;
    if (n.in[1] == 0 && n.op != NN_ADD)
        n.in[1] = -2;
    return nn_add(net, &n);
}

/* Uniform values in [lo, hi) for every element of t (nothing when t is NULL). */
static inline void graph_randomize(tensor *t, rng *r, double lo, double hi)
{
    for (int64_t i = 0; t && i < t->numel; i++)
        t->data[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* A batch norm's scale, shift and running statistics away from the identity (variances positive). */
static inline void graph_randomize_bn(nn_node *n, rng *r)
{
    graph_randomize(n->weight, r, 0.5, 1.5);
    graph_randomize(n->bias, r, -0.5, 0.5);
    graph_randomize(n->mean, r, -0.3, 0.3);
    graph_randomize(n->var, r, 0.5, 2.0);
}

#endif
