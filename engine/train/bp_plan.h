/* bp_plan: the inside of a training plan (backprop.h), shared by the files that build it:
 * bp_plan.c (parameter memories, the builder's helpers), bp_forward.c (the forward pass in
 * training mode), bp_backward.c (the backward pass) and backprop.c (running, the public API).
 * Its values, steps and buffers are an nn/plan.h plan, as an inference plan's are; what is its
 * own: parameters and gradients bound from tensors at each call, batch-norm running statistics
 * and dropout as C steps, and the units the forward pass leaves for the backward pass. */
#ifndef BOENGINE_BP_PLAN_H
#define BOENGINE_BP_PLAN_H

#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>

#include "nn/dnnl_util.h"
#include "nn/plan.h"
#include "train/backprop.h"

/* The C steps of a training plan, beside nn/plan.h's primitives and adaptive pools. */
enum {
    BP_RUNNING_STATS = PLAN_OWNER_STEP, /* batch-norm running statistics from the batch's mean and variance */
    BP_DROPOUT,                         /* mask drawn, then dst = src · mask */
    BP_DROPOUT_BACK,                    /* diff_src = diff_dst · mask */
};

/* A parameter or a gradient in its plain layout, wrapped as a oneDNN memory whose handle is set
 * from the tensor at each call (the tensor is the net's or the plan's). */
typedef struct bp_param {
    int node, slot; /* slot 0/1: weight/bias of the net; 2/3: their gradients */
    dnnl_memory_t mem;
} bp_param;

struct nn_backprop {
    plan plan;                     /* values, steps and buffers (nn/plan.h) */
    nn_net *net;
    int64_t batch, outputs;
    int c, h, w, flags;
    int nparams, nforward;         /* steps [0, nforward) are the forward pass */
    bp_param *params;
    int input, output, dy, dinput; /* values */
    tensor **grad;                 /* 2 per node: weight, bias gradients */
    uint64_t seed;                 /* of the current forward pass (dropout masks) */
    nn_dims *dims;
    int *skipped;                  /* nodes whose gradient is zero (no path to the outputs) */
    int nskipped;
};

/* What the forward pass of a chain of nodes left for its backward pass. */
typedef struct bp_unit {
    int head, last;   /* first and last node of the chain (last names the output) */
    int relu;         /* a ReLU fused after the head: post-op, or the batch norm's flag */
    int src, src1;    /* values the primitive read (after any reorder) */
    int dst;          /* output value */
    int ws;           /* workspace (max pool, BN+ReLU) or dropout mask, or -1 */
    int mean, var;    /* batch norm */
    int wvalue;       /* conv/linear weights in the forward layout (or -1: the plain parameter memory) */
    int alias;        /* identity (dropout 0, adaptive pool to the same size): dst is src */
    int wnd;          /* weight dims */
    int64_t wdims[5];
    dnnl_primitive_desc_t pd; /* forward primitive descriptor: the backward's hint */
} bp_unit;

typedef struct bp_builder {
    nn_backprop *p;
    const nn_net *net;
    int *act;    /* value holding each node's output */
    int *grad;   /* value holding the gradient of each node's output, or -1 */
    int *uses;   /* consumers of each node */
    int *consumer;
    bp_unit *units;
    int nunits;
    int input_grad_written; /* a gradient has reached the input (later ones are added to it) */
} bp_builder;

static inline const dnnl_memory_desc_t *bp_md(const nn_backprop *p, int v) { return plan_md(&p->plan, v); }

/* The memory of parameter (node, slot) (bp_param), created on first use; NULL with err_set. */
dnnl_memory_t bp_param_memory(nn_backprop *p, int node, int slot, int ndims, const int64_t *dims);
/* Node i's weights in layout want: the plain parameter memory (*value = -1, *mem set) or a value
 * reordered from it by a step emitted now. */
int bp_weights_in(bp_builder *b, int i, const bp_unit *u, const dnnl_memory_desc_t *want, int *value,
                  dnnl_memory_t *mem);
/* Value v in layout want: v itself or a copy made now (the training plan reuses no copy). */
static inline int bp_as_layout(nn_backprop *p, int v, const dnnl_memory_desc_t *want)
{
    return plan_as_layout(&p->plan, v, want, 0);
}

/* The only consumer of node when it is of kind op (and node is not the last), else -1. */
int bp_sole_consumer(const bp_builder *b, int node, nn_op op);
nn_dims bp_in_dims(const bp_builder *b, int node);
/* The value holding input `which` of node (the plan's input for NN_INPUT). */
int bp_src_value(const bp_builder *b, int node, int which);
bp_unit *bp_new_unit(bp_builder *b, int head);
/* A forward-training ReLU descriptor that keeps the output for the backward pass. */
int bp_relu_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md);
/* Pooling geometry of node i (adaptive pools over even bins become ordinary average pools). */
void bp_pool_geometry(const bp_builder *b, int i, dnnl_alg_kind_t *alg, dnnl_dims_t strides, dnnl_dims_t kernel,
                      dnnl_dims_t pl, dnnl_dims_t pr);

/* The forward pass: a unit per chain of fused nodes, in order (bp_forward.c). */
int bp_forward(bp_builder *b);
/* The backward steps of one unit, to be called in reverse order of the units (bp_backward.c). */
int bp_backward_unit(bp_builder *b, bp_unit *u);

#endif
