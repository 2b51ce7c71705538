/* backprop: one training step of a network on oneDNN. A plan for one input shape (batch size
 * included) holds the forward primitives in training mode (batch statistics, max-pool and fused
 * BN+ReLU workspaces, dropout masks) and the backward primitives that turn the gradient of a loss
 * with respect to the outputs into gradients of every parameter, in the parameters' plain layouts.
 * Activations stay in the layouts oneDNN chooses; buffers are allocated once and shared between
 * values whose lifetimes do not overlap. A plan reads the net's parameter tensors at every call,
 * so an optimizer may change their values in place; build a new plan after changing the graph. */
#ifndef BOENGINE_BACKPROP_H
#define BOENGINE_BACKPROP_H

#include <stdint.h>

#include "core/tensor.h"
#include "nn/net.h"

typedef struct nn_backprop nn_backprop;

enum {
    NN_BACKPROP_INPUT_GRAD = 1, /* also compute the gradient with respect to the input */
    NN_BACKPROP_KEEP_STATS = 2, /* leave batch-norm running statistics unchanged */
};

/* A plan for inputs of batch × c × h × w (a network of linear layers takes c features, h = w = 1);
 * NULL with err_set naming the layer when the network cannot be trained on that shape. */
nn_backprop *nn_backprop_new(nn_net *net, int64_t batch, int c, int h, int w, int flags);
void nn_backprop_free(nn_backprop *bp);

/* Outputs per example (the last layer's C·H·W, the classes for a classifier). */
int64_t nn_backprop_outputs(const nn_backprop *bp);

/* Forward in training mode on x (batch × c × h × w, plain): batch-norm layers normalize with the
 * batch's statistics and update the running ones as PyTorch does (momentum 0.1, unbiased variance);
 * dropout draws its masks from seed. Returns the outputs (batch × outputs, plain), owned by the plan
 * and valid until the next call; NULL with err_set on failure. */
const float *nn_backprop_forward(nn_backprop *bp, const float *x, uint64_t seed);

/* Backward from dy, the gradient of the loss with respect to the outputs of the last forward call
 * (batch × outputs). Fills the gradients below; -1 with err_set on failure. */
int nn_backprop_backward(nn_backprop *bp, const float *dy);

/* Gradient of node's weight (slot 0) or bias (slot 1; batch norm: gamma and beta), shaped like the
 * parameter; NULL when the node has no such parameter. */
tensor *nn_backprop_grad(const nn_backprop *bp, int node, int slot);

/* Gradient with respect to the input (batch × c × h × w), with NN_BACKPROP_INPUT_GRAD; else NULL. */
const float *nn_backprop_input_grad(const nn_backprop *bp);

/* Bytes of activation, gradient and workspace buffers the plan holds. */
int64_t nn_backprop_bytes(const nn_backprop *bp);

#endif
