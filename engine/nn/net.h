/* net: a network as a graph of layers in topological order, with torchvision parameter names.
 * The graph is what builders create, what compression rewrites and what exec.h compiles to
 * oneDNN primitives; it holds plain float32 parameters (conv weights OIHW, linear weights OI). */
#ifndef BOENGINE_NET_H
#define BOENGINE_NET_H

#include <stdint.h>

#include "core/tensor.h"
#include "io/safetensors.h"

typedef enum nn_op {
    NN_CONV,
    NN_BATCHNORM,
    NN_RELU,
    NN_MAXPOOL,
    NN_AVGPOOL,
    NN_ADAPTIVE_AVGPOOL,
    NN_LINEAR,
    NN_ADD,
    NN_DROPOUT,
    NN_SOFTMAX,
} nn_op;

#define NN_INPUT (-1) /* the producer index that stands for the network's input */

typedef struct nn_node {
    nn_op op;
    char *name;              /* parameter prefix, e.g. "features.0" or "layer1.0.conv1" */
    int in[2];               /* producers (node index or NN_INPUT); in[1] only for NN_ADD, else -2 */
    int out;                 /* conv: output channels; linear: output features */
    int kh, kw, sh, sw;      /* conv and pooling windows and strides */
    int ph, pw;              /* padding on the top/left (and bottom/right, plus ceil_mode for pools) */
    int groups;              /* conv */
    int has_bias;            /* conv, linear */
    int ceil_mode;           /* pools: output size rounded up, as PyTorch's ceil_mode */
    int oh, ow;              /* adaptive average pool output size */
    float eps;               /* batch norm */
    float dropout;           /* dropout probability (training only) */
    tensor *weight, *bias;   /* conv, linear; batch norm: gamma and beta */
    tensor *mean, *var;      /* batch norm running statistics */
    int shared;              /* the tensors belong to another network (nn_clone): never freed nor
                                written through this node; nn_node_own makes private copies */
} nn_node;

typedef struct nn_net {
    int channels, size, classes; /* nominal input: channels × size × size */
    int count, cap;
    nn_node *nodes;
    char *arch;                  /* how the builder was called (JSON), kept in saved files */
    struct nn_exec *exec;        /* compiled plans (exec.h); dropped whenever the graph changes */
    void (*exec_free)(struct nn_exec *); /* set by exec.c with exec: the graph does not know its compiler */
} nn_net;

/* Output shape of every node for an input of c×h×w: dims[i] = {c, h, w} (linear: {out, 1, 1}). */
typedef struct nn_dims {
    int c, h, w;
} nn_dims;

nn_net *nn_net_new(int channels, int size, int classes);
void nn_net_free(nn_net *net);

/* Frees a node's name and the parameter tensors it owns (not those it shares). */
void nn_node_clear(nn_node *n);
/* Gives a node that shares its tensors private copies of them, so that they can be changed. */
int nn_node_own(nn_node *n);

/* Appends a node (copied; the name is duplicated) and returns its index, -1 on error. */
int nn_add(nn_net *net, const nn_node *node);

/* Computes output shapes for an input c×h×w into dims (net->count entries); -1 with a message
 * naming the layer when the input is too small or does not fit a layer's parameters. */
int nn_infer(const nn_net *net, int c, int h, int w, nn_dims *dims);

/* Replaces every node's parameters with new tensors shaped for the nominal input (a node's
 * tensors are all allocated before they are filled) and initializes them from seed: convolutions
 * Kaiming-normal, std sqrt(2 / (out·kh·kw)) (fan-out, for ReLU), with zero biases; linear layers
 * as PyTorch's nn.Linear by default, weights and biases uniform in ±1/sqrt(in features); batch
 * norm with unit scale and variance, zero shift and mean. -1 with a message when the graph does
 * not fit the nominal input or memory runs out. */
int nn_init_params(nn_net *net, uint64_t seed);

/* Drops compiled plans; call after changing parameters or structure. */
void nn_invalidate(nn_net *net);

/* For nodes 0..last: uses[i], how many of them read node i's output, and consumer[i], the last
 * one that does (both arrays of net->count, filled here). */
void nn_readers(const nn_net *net, int last, int *uses, int *consumer);

/* Parameters, in graph order: name ("features.0.weight") and tensor. count via nn_param_list(net, NULL, NULL). */
int nn_param_list(const nn_net *net, char **names, tensor **tensors);
int64_t nn_param_count(const nn_net *net);
int64_t nn_node_param_count(const nn_node *node);

/* Multiply-accumulates of one node for the given output dims and its input dims. */
int64_t nn_node_macs(const nn_node *node, const nn_dims *in, const nn_dims *out);

const char *nn_op_name(nn_op op);

/* Loads every parameter from a safetensors file: a missing tensor or one of another shape is an
 * error naming it and both shapes; a tensor the network does not have is an error too, except
 * PyTorch's num_batches_tracked counters. Nothing changes unless the whole file fits. */
int nn_load(nn_net *net, const char *path);
/* The same from a file already read (path names it in messages). Parameters the graph lacks are
 * allocated from the file's tensors once every shape has been checked against the graph, so that
 * a graph without parameters (nn_arch_graph) is never sized by what the file claims. */
int nn_load_file(nn_net *net, const st_file *f, const char *path);
/* Saves every parameter (atomically), with the architecture in the file's metadata. */
int nn_save(const nn_net *net, const char *path);
/* The same with extra metadata entries (e.g. how the weights were trained); the keys the engine
 * writes itself (format, boengine.arch, boengine.version, boengine.commit) cannot be overridden. */
int nn_save_meta(const nn_net *net, const char *path, int count, const char *const *keys,
                 const char *const *values);

#endif
