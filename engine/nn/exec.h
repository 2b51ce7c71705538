/* exec: inference of a network on oneDNN. A plan per input shape (batch size included) holds the
 * primitives, created once and reused: batch norm folded into the preceding convolution, ReLU and
 * residual additions fused as post-ops, memory formats chosen by oneDNN with reorders only where
 * a consumer needs another layout, activation buffers shared by liveness. */
#ifndef BOENGINE_EXEC_H
#define BOENGINE_EXEC_H

#include "core/tensor.h"
#include "nn/net.h"

typedef struct nn_exec nn_exec;

/* Logits (N×classes) of the network on x (N×C×H×W, or N×F for a network of linear layers).
 * Plans are compiled on first use of an input shape and kept until the graph changes. */
tensor *nn_forward(nn_net *net, const tensor *x);

/* Output of any node (by index) instead of the last one; used by tests and feature extraction. */
tensor *nn_forward_to(nn_net *net, const tensor *x, int node);

void nn_exec_free(nn_exec *e);

#endif
