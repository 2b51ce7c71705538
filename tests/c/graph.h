/* graph: building test networks node by node with nn_add, the defaults filled in (no name, one
 * group, batch-norm epsilon 1e-5, no second input unless the node adds). */
#ifndef BOENGINE_TEST_GRAPH_H
#define BOENGINE_TEST_GRAPH_H

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

#endif
