/* compress: compression families (VH, SVD, Tucker-2 decompositions, channel and magnitude pruning,
 * k-bit quantization), each declared on a set of layers of a reference network with one parameter
 * θ per layer and its bounds, and their application: θ → a real, smaller network plus its ratios.
 *
 * The costly part of each family (SVDs, HOSVD, channel norms) is computed once when the family is
 * declared; applying a θ only truncates those factors, so one candidate costs little more than
 * building its (smaller) oneDNN plans. Candidates share every untouched parameter tensor with the
 * reference (nn_clone with share), so the reference must outlive them. */
#ifndef BOENGINE_COMPRESS_H
#define BOENGINE_COMPRESS_H

#include <stdint.h>

#include "nn/net.h"

typedef enum cp_kind {
    CP_VH,             /* Jaderberg's vertical-horizontal split of a k×k convolution */
    CP_SVD,            /* truncated SVD of a linear layer (or a convolution reshaped N × C·kh·kw) */
    CP_TUCKER2,        /* Tucker-2: 1×1, k×k core, 1×1 */
    CP_PRUNE_CHANNELS, /* output channels with the smallest L1 norms removed, and their readers' inputs */
    CP_PRUNE_WEIGHTS,  /* unstructured: the smallest weights set to zero */
    CP_QUANTIZE,       /* symmetric uniform k-bit weights (simulated in float32) */
    CP_KINDS
} cp_kind;

/* How θ maps to a rank (vh, svd, tucker2). */
typedef enum cp_mode {
    CP_FRACTION, /* vh, svd: K = floor(θ·break-even rank); tucker2: r = round(θ·channels) */
    CP_ABSOLUTE, /* θ is the rank itself (rounded) */
    CP_ENERGY,   /* svd: K = number of leading singular values whose cumulative fraction of their
                    sum stays below θ (numpy's searchsorted, as the follow-up code); can be 0 */
} cp_mode;

typedef struct cp_options {
    cp_mode mode;
    int dense; /* svd: replace the weights by their rank-K reconstruction instead of two layers */
    int hooi;  /* tucker2: HOOI iterations after the HOSVD (0: HOSVD only) */
    int multiple; /* vh, svd, tucker2: ranks rounded up to a multiple of this (capped at full rank),
                     so that candidates repeat layer shapes and oneDNN reuses its compiled kernels */
} cp_options;

typedef struct cp_layer {
    char *name;
    int node;          /* index in the reference network */
    double lo, hi;     /* bounds of θ */
    int integer;       /* θ is rounded (absolute ranks, bits) */
    int max_rank;      /* largest meaningful setting: full rank, channels, 32 bits... */
    int break_even;    /* vh, svd: rank at which the split has as many weights as the layer */
    void *cache;       /* the family's factors */
} cp_layer;

typedef struct cp_family {
    cp_kind kind;
    cp_options opt;
    const nn_net *net; /* the reference, not owned */
    int count;
    cp_layer *layers;
    int prepared;      /* factors computed (cp_family_prepare) */
} cp_family;

const char *cp_kind_name(cp_kind k);

/* Declares a family on the layers of net that match any of the patterns (nn_match globs). Layers a
 * family cannot apply to are skipped when matched by a pattern with wildcards, and an error when
 * named exactly; no eligible layer at all is an error. Bounds start at the family's default.
 * NULL with a message on error. Nothing costly happens here: see cp_family_prepare. */
cp_family *cp_family_new(cp_kind kind, const nn_net *net, int npatterns, const char *const *patterns,
                         const cp_options *opt);
void cp_family_free(cp_family *f);
/* Computes the factors (SVDs, HOSVD, channel norms) from the reference's current weights, once;
 * cp_apply calls it when needed. */
int cp_family_prepare(cp_family *f);
/* Sets the bounds of layer i (all layers when i < 0); -1 when lo > hi or outside the family's range. */
int cp_family_set_bounds(cp_family *f, int i, double lo, double hi);

/* What θ became for one layer. */
typedef struct cp_choice {
    int family, layer;    /* indices into the family list and its layers */
    double theta;
    int rank, rank2;      /* vh/svd: K; tucker2: r1, r2; prune_channels: kept channels; quantize: bits */
    double kept;          /* prune_weights: fraction of weights kept */
    int64_t weights_ref, weights; /* weights of this layer before and after */
} cp_choice;

/* A candidate's size and cost against the reference. "weights" counts the weight tensors of the
 * affected layers (those compressed, and the readers of pruned channels), nonzeros only where
 * magnitude pruning applies, and a dense SVD reconstruction as K·(m + n) (its factored size);
 * "params" counts every parameter of the network (biases and batch norms included); "bits" are
 * the same counts weighted by their storage width (quantized weights at k bits, others 32);
 * MACs are multiply-accumulates at the network's nominal input size, as executed. */
typedef struct cp_stats {
    int64_t weights_ref, weights;     /* affected layers */
    double bits_ref, bits;            /* affected layers' weights, in bits */
    int64_t params_ref, params;       /* whole network */
    double net_bits_ref, net_bits;    /* whole network, in bits */
    int64_t macs_ref, macs;           /* whole network */
    int64_t layer_macs_ref, layer_macs;
    double t_prepare;                 /* seconds: factors computed by this call (first use only) */
    double t_truncate, t_rebuild;     /* seconds: factors for θ, graph surgery and accounting */
    int nchoices;
    cp_choice *choices;
} cp_stats;

void cp_stats_free(cp_stats *s);

/* The number of θ entries of a list of families (the sum of their layer counts). */
int cp_dim(int nfam, cp_family *const *fams);

/* Applies θ (cp_dim entries, family by family, layer by layer) to the families' reference net:
 * a new network sharing the untouched parameters with ref, its architecture record extended
 * with the rewrites so that nn_from_arch can rebuild it, and its stats (st may be NULL). A θ
 * outside its bounds, two structural families on one layer, or families of another network
 * are errors. */
nn_net *cp_apply(const nn_net *ref, int nfam, cp_family *const *fams, const double *theta, cp_stats *st);

/* Weights, bits and MACs of a network at its nominal input size (for any network). */
int cp_measure(const nn_net *net, int64_t *params, int64_t *macs);

/* ---- shared by the family implementations (family.c, lowrank.c, prune.c, apply.c) -------- */

/* lowrank.c: vh, svd and tucker2. prepare computes a layer's factors; build rewrites the
 * layer of cand (found by name) for the choice and fills its new weights. */
int cp_lowrank_prepare(const cp_family *f, cp_layer *l);
void cp_lowrank_free(cp_kind k, void *cache);
int cp_lowrank_build(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand);
/* θ → rank for svd's energy mode (needs the singular values). */
int cp_svd_energy_rank(const cp_layer *l, double theta);

/* prune.c. Whether conv node i's output channels can be removed: every path from it goes through
 * channel-wise layers (batch norm, ReLU, pools, dropout) to convolutions or linear layers only
 * (never a residual add nor the output). */
int cp_channels_prunable(const nn_net *net, int i);
int cp_prune_prepare(const cp_family *f, cp_layer *l);
/* Removes the pruned channels of the layer in cand and the matching inputs of its readers; sets
 * touched[j] for every node j of cand whose weights changed. */
int cp_prune_channels(const cp_layer *l, const cp_choice *c, nn_net *cand, char *touched);
/* Keeps the fraction kept of n's largest weights (by magnitude); *nonzeros gets the count left. */
int cp_prune_weights(nn_node *n, double kept, int64_t *nonzeros);
/* Rounds n's weights to a symmetric uniform grid of 2^(bits-1) - 1 levels each side. */
int cp_quantize(nn_node *n, int bits);
/* Replaces one parameter of n (0 weight, 1 bias, 2 mean, 3 var) by t, taking it over; a node that
 * shared its tensors gets private copies of the others first. */
int cp_set_param(nn_node *n, int slot, tensor *t);

/* Thin SVD of the row-major m×n matrix a (a is overwritten): u m×r, s r, vt r×n, r = min(m, n). */
int cp_svd(int m, int n, float *a, float *u, float *s, float *vt);
/* c (m×n) = a (m×k) · b (k×n), row-major, optionally transposed operands (oneDNN's sgemm). */
int cp_gemm(char ta, char tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
            int ldc);

#endif
