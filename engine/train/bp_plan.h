/* bp_plan: the inside of a training plan (backprop.h), shared by the files that build it:
 * bp_plan.c (values, steps, reorders), bp_forward.c (the forward pass in training mode),
 * bp_backward.c (the backward pass) and backprop.c (buffers, running, the public API).
 * Values are the plan's tensors (activations, gradients, workspaces), steps the primitives and
 * C loops that read and write them in order; buffers are assigned after the plan is built. */
#ifndef BOENGINE_BP_PLAN_H
#define BOENGINE_BP_PLAN_H

#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>

#include "train/backprop.h"
#include "nn/dnnl_util.h"

#define BP_MAX_ARGS 12

/* A tensor of the plan (activation, gradient, workspace...): its layout and, once allocated,
 * its memory. Buffers are assigned after the plan is built, by lifetime. */
typedef struct value {
    dnnl_memory_desc_t md;
    int external; /* the caller's input or output gradient: the handle is set at each call */
    int pinned;   /* outputs and the input gradient: a buffer of its own, read after the run */
    int def, last, buffer;
    dnnl_memory_t mem;
} value;

/* A parameter or a gradient in its plain layout, wrapped as a oneDNN memory whose handle is set
 * from the tensor at each call (the tensor is the net's or the plan's). */
typedef struct fixed {
    int node, slot; /* slot 0/1: weight/bias of the net; 2/3: their gradients */
    dnnl_memory_t mem;
} fixed;

typedef struct arg {
    int id;
    int value;  /* a value, or -1 */
    int fixed;  /* a fixed memory when value is -1 */
} arg;

typedef enum step_kind {
    ST_PRIM,           /* a oneDNN primitive */
    ST_RUNNING_STATS,  /* batch-norm running statistics from the batch's mean and variance */
    ST_DROPOUT,        /* mask drawn, then dst = src · mask */
    ST_DROPOUT_BACK,   /* diff_src = diff_dst · mask */
    ST_ADAPTIVE,       /* adaptive average pool over uneven bins (plain layout) */
    ST_ADAPTIVE_BACK,
} step_kind;

typedef struct step {
    step_kind kind;
    dnnl_primitive_t prim;
    int node;
    int nargs;
    arg args[BP_MAX_ARGS];
    dnnl_exec_arg_t exec[BP_MAX_ARGS];
} step;

struct nn_backprop {
    nn_net *net;
    int64_t batch, outputs;
    int c, h, w, flags;
    int nvalues, nsteps, nfixed, nbuffers, nforward; /* steps [0, nforward) are the forward pass */
    value *values;
    step *steps;
    fixed *fixed;
    void **buffers;
    int64_t bytes;
    int input, output, dy, dinput; /* values */
    tensor **grad;                 /* 2 per node: weight, bias gradients */
    uint64_t seed;                 /* of the current forward pass (dropout masks) */
    nn_dims *dims;
    int *skipped;                  /* nodes whose gradient is zero (no path to the outputs) */
    int nskipped;
};

/* What the forward pass of a chain of nodes left for its backward pass. */
typedef struct unit {
    int head, last;   /* first and last node of the chain (last names the output) */
    int relu;         /* a ReLU fused after the head: post-op, or the batch norm's flag */
    int src, src1;    /* values the primitive read (after any reorder) */
    int dst;          /* output value */
    int ws;           /* workspace (max pool, BN+ReLU) or dropout mask, or -1 */
    int mean, var;    /* batch norm */
    int wvalue;       /* conv/linear weights in the forward layout (or -1: the plain fixed memory) */
    int alias;        /* identity (dropout 0, adaptive pool to the same size): dst is src */
    int wnd;          /* weight dims */
    int64_t wdims[5];
    dnnl_primitive_desc_t pd; /* forward primitive descriptor: the backward's hint */
} unit;

typedef struct builder {
    nn_backprop *p;
    const nn_net *net;
    int *act;    /* value holding each node's output */
    int *grad;   /* value holding the gradient of each node's output, or -1 */
    int *uses;   /* consumers of each node */
    int *consumer;
    unit *units;
    int nunits;
} builder;

static inline void bp_arg(step *s, int id, int value) { s->args[s->nargs++] = (arg){id, value, -1}; }
static inline void bp_arg_fixed(step *s, int id, int f) { s->args[s->nargs++] = (arg){id, -1, f}; }
static inline const dnnl_memory_desc_t *bp_md(const nn_backprop *p, int v) { return &p->values[v].md; }

/* A new value of layout md; its index, or -1. */
int bp_new_value(nn_backprop *p, const dnnl_memory_desc_t *md);
/* The fixed memory of (node, slot), created on first use; its index, or -1. */
int bp_get_fixed(nn_backprop *p, int node, int slot, int ndims, const int64_t *dims);
/* A new step (a primitive made from pd, or a C loop when pd is NULL). */
step *bp_new_step(nn_backprop *p, step_kind kind, dnnl_primitive_desc_t pd);
/* A reorder step from value src (or fixed memory src_fixed when src is -1) into value dst,
 * adding to dst's content when acc is set. */
int bp_reorder(nn_backprop *p, int src, int src_fixed, int dst, int acc);
/* A reorder step from value src into fixed memory f (a gradient in plain layout). */
int bp_reorder_to_fixed(nn_backprop *p, int src, int f);
/* Value v in layout want: v itself or a reordered copy made by a step emitted now. */
int bp_as_layout(nn_backprop *p, int v, const dnnl_memory_desc_t *want);
#define bp_in_layout(b, v, want) bp_as_layout((b)->p, v, want)
/* Node i's weights in layout want: the plain fixed memory (*value = -1) or a reordered value. */
int bp_weights_in(builder *b, int i, const unit *u, const dnnl_memory_desc_t *want, int *value, int *fixed_out);

/* The only consumer of node when it is of kind op (and node is not the last), else -1. */
int bp_sole_consumer(const builder *b, int node, nn_op op);
nn_dims bp_in_dims(const builder *b, int node);
/* The value holding input `which` of node (the plan's input for NN_INPUT). */
int bp_src_value(const builder *b, int node, int which);
unit *bp_new_unit(builder *b, int head);
/* A forward-training ReLU descriptor that keeps the output for the backward pass. */
int bp_relu_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md);
/* Pooling geometry of node i (adaptive pools over even bins become ordinary average pools). */
void bp_pool_geometry(const builder *b, int i, dnnl_alg_kind_t *alg, dnnl_dims_t strides, dnnl_dims_t kernel,
                      dnnl_dims_t pl, dnnl_dims_t pr);

/* The forward pass: a unit per chain of fused nodes, in order (bp_forward.c). */
int bp_forward(builder *b);
/* The backward steps of one unit, to be called in reverse order of the units (bp_backward.c). */
int bp_backward_unit(builder *b, unit *u);

#endif
