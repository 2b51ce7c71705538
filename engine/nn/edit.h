/* edit: graph surgery on networks: copies that share their parameters, a layer replaced by a chain
 * of layers, layers found by name or glob pattern, and the rewrite records that let a saved
 * compressed network be rebuilt from its file alone (its architecture = the builder's spec plus
 * the list of rewrites, e.g. {"layer": "features.0", "op": "vh", "rank": 5}). */
#ifndef BOENGINE_EDIT_H
#define BOENGINE_EDIT_H

#include "nn/net.h"

/* A copy of the graph; its parameters are copies too, or, with share set, the same tensors
 * (the nodes are marked shared: the copy must not outlive net, and changing a parameter of the
 * copy needs nn_node_own first). The architecture record is copied; compiled plans are not. */
nn_net *nn_clone(const nn_net *net, int share);

/* The dense tail of net (its classifier): the nodes from the first linear layer after the last
 * node that is neither a linear layer nor an element-wise op (ReLU, dropout, softmax), as a
 * network of their own that shares their tensors and reads the output of the node before
 * (dims: nn_infer's, for the input at hand) flattened to features. *from is that node; NULL and
 * -1 (no error set) when the network has no such tail or is all tail, or out of memory (error set). */
nn_net *nn_dense_tail(const nn_net *net, const nn_dims *dims, int *from);

/* Gives every node that shares its tensors private copies (e.g. before training a candidate,
 * whose updates must not reach the network it was compressed from). */
int nn_own(nn_net *net);

/* Index of the node of that name, or -1. */
int nn_find(const nn_net *net, const char *name);

/* True when name matches the glob pattern: '*' any run of characters (dots included), '?' one. */
int nn_match(const char *pattern, const char *name);

/* Consumers of node i (nodes that read its output, an add counted once) into out (at most max);
 * returns their number. */
int nn_consumers(const nn_net *net, int i, int *out, int max);

/* Replaces node at by a chain of count nodes: nodes[0] reads at's inputs, nodes[k] reads
 * nodes[k-1], and every reader of at now reads nodes[count-1]. The nodes are copied (names
 * duplicated, tensors taken over); indices after at shift by count - 1. at's own tensors are
 * freed unless shared. */
int nn_replace(nn_net *net, int at, int count, const nn_node *nodes);

/* Structural rewrites, the same ones compression applies and nn_from_arch replays. The new
 * nodes have no parameters (compression fills them; nn_from_arch allocates them all):
 *   "vh"        conv L (N×C×kh×kw) -> L.v (rank×C×kh×1, L's vertical stride and padding, no bias)
 *                                     -> L.h (N×rank×1×kw, horizontal stride and padding, L's bias)
 *   "svd"       linear L -> L.a (rank×in, no bias) -> L.b (out×rank, L's bias);
 *               conv L -> L.a (rank×C×kh×kw, L's stride and padding, no bias) -> L.b (1×1, N, bias)
 *   "tucker2"   conv L -> L.first (1×1, C->r1, no bias) -> L.core (kh×kw, r1->r2, L's stride and
 *               padding, no bias) -> L.last (1×1, r2->N, L's bias)
 *   "prune_channels"  conv L keeps `rank` output channels (its readers follow by shape)
 * Other ops (dense reconstructions, pruned or quantized weights) change values, not structure,
 * and are accepted as no-ops. Returns the index of the chain's first node. */
int nn_rewrite(nn_net *net, const char *layer, const char *op, int rank, int rank2);

/* The nodes that stand for layer after the rewrites above: the layer itself, or the chain that
 * replaced it (layer.v, layer.h...); their indices into out (at most max) and their number, 0 when
 * there is neither. */
int nn_layer_nodes(const nn_net *net, const char *layer, int *out, int max);

/* Appends a rewrite to net->arch's "rewrites" list (creating it). extra (may be NULL) is a JSON
 * object whose members are added to the record (informational fields such as bits). */
int nn_arch_add_rewrite(nn_net *net, const char *layer, const char *op, int rank, int rank2,
                        const char *extra);

/* A network rebuilt from an architecture record: the builder's spec, then its rewrites in order;
 * parameters freshly initialized (nn_load fills them). NULL with a message on a bad record. */
nn_net *nn_from_arch(const char *json);
/* The same structure without parameters: what nn.load builds before checking a file's tensors
 * against it, so that a record announcing a huge network allocates nothing. */
nn_net *nn_arch_graph(const char *json);

#endif
