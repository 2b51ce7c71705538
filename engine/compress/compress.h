/* compress: compression families (VH, SVD, Tucker-2 decompositions, channel and magnitude pruning,
 * k-bit quantization), each declared on a set of layers of a reference network with one parameter
 * θ per layer and its bounds, and their application: θ → a real, smaller network plus its ratios.
 *
 * Each family is a table of operations (cp_family_ops): which layers it takes, what it knows of a
 * layer, the range of θ, θ → its setting (a rank, kept channels, bits), the factors computed once,
 * the change to the candidate and the rewrite record. A family is one file defining its table and
 * one line in the registry (family.c); cp_family_new, cp_apply and the Lua module know no family
 * by name.
 *
 * The costly part of each family (SVDs, HOSVD, channel norms) is computed once when the family is
 * first used; applying a θ only truncates those factors, so one candidate costs little more than
 * building its (smaller) oneDNN plans. Candidates share every untouched parameter tensor with the
 * reference (nn_clone with share), so the reference must outlive them. */
#ifndef BOENGINE_COMPRESS_H
#define BOENGINE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/net.h"

/* How θ maps to a rank (vh, svd, tucker2). */
typedef enum cp_mode {
    CP_FRACTION, /* vh, svd: K = floor(θ·break-even rank); tucker2: r = round(θ·channels) */
    CP_ABSOLUTE, /* θ is the rank itself (rounded) */
    CP_ENERGY,   /* svd: K = number of leading singular values whose cumulative fraction of their
                    sum stays below θ (numpy's searchsorted, as the follow-up code); can be 0 */
    CP_MODES
} cp_mode;

/* The declaration's options; zero is every option's default. */
typedef struct cp_options {
    cp_mode mode; /* the declaration's `rank`: "fraction", "absolute", "energy" */
    int dense;    /* svd: replace the weights by their rank-K reconstruction instead of two layers */
    int hooi;     /* tucker2: HOOI iterations after the HOSVD, 0..100 (0: HOSVD only) */
    int multiple; /* vh, svd, tucker2: ranks rounded up to a multiple of this, 0..4096 (0 and 1: none;
                     capped at full rank), so that candidates repeat layer shapes and oneDNN reuses
                     its compiled kernels */
} cp_options;

typedef struct cp_layer {
    char *name;
    int node;           /* index in the reference network */
    int ndim;           /* its weight's shape in the reference (N, C, kh, kw or N, C) */
    int64_t shape[4];
    double min, max;    /* the range θ may take */
    double lo, hi;      /* bounds of θ (the search box), within the range */
    int integer;        /* θ is rounded (absolute ranks, bits) */
    int max_rank;       /* largest meaningful setting: full rank, channels, 32 bits... */
    int break_even;     /* vh, svd: rank at which the split has as many weights as the layer; -1: none */
    void *cache;        /* the family's factors */
} cp_layer;

typedef struct cp_family_ops cp_family_ops;

typedef struct cp_family {
    const cp_family_ops *ops;
    cp_options opt;
    const nn_net *net;  /* the reference, not owned */
    int count;
    cp_layer *layers;
    int prepared;       /* factors computed (cp_family_prepare) */
} cp_family;

/* The registry: every family, NULL-terminated, in a fixed order (the Lua module's). */
extern const cp_family_ops *const cp_families[];
/* The family of that name ("vh"...), or NULL with a message listing the known ones. */
const cp_family_ops *cp_family_find(const char *name);
const char *cp_family_name(const cp_family *f);

/* The mode named `name` ("fraction"...) if the family takes it, else -1 with a message listing
 * those it takes. */
int cp_mode_parse(const cp_family_ops *ops, const char *name, cp_mode *mode);
const char *cp_mode_name(cp_mode mode);

/* Declares the family named `family` on the layers of net that match any of the patterns (nn_match
 * globs). Layers a family cannot apply to are skipped when matched by a pattern with wildcards, and
 * an error when named exactly; no eligible layer at all is an error, and so are options the family
 * does not take or out of their range. Bounds start at the family's default. NULL with a message on
 * error. Nothing costly happens here: see cp_family_prepare. */
cp_family *cp_family_new(const char *family, const nn_net *net, int npatterns, const char *const *patterns,
                         const cp_options *opt);
void cp_family_free(cp_family *f);
/* Computes the factors (SVDs, HOSVD, channel norms) from the reference's current weights, once;
 * cp_apply calls it when needed. */
int cp_family_prepare(cp_family *f);
/* Sets the bounds of layer i (all layers when i < 0); -1 when lo > hi or outside the layer's range. */
int cp_family_set_bounds(cp_family *f, int i, double lo, double hi);
/* Sets the bounds of every layer from n pairs (n must be the family's layer count). */
int cp_family_set_bounds_list(cp_family *f, int n, const double *lo, const double *hi);

/* What θ became for one layer, and the layer's own size before and after (its node, or the chain
 * of nodes that replaced it; the readers of pruned channels count in cp_stats, not here). */
typedef struct cp_choice {
    int family, layer;    /* indices into the family list and its layers */
    double theta;
    int rank;             /* vh, svd: the rank K */
    int ranks[2];         /* tucker2: r_in (1×1 C → r_in) and r_out (core r_in → r_out) */
    int keep;             /* prune_channels: output channels kept */
    double kept;          /* prune_weights: fraction of weights kept */
    int bits;             /* quantize: bits per weight */
    int64_t weights_ref, weights; /* weight tensors, nonzeros only under magnitude pruning */
    int64_t params_ref, params;   /* weights and biases */
    int64_t macs_ref, macs;       /* multiply-accumulates at the nominal input size */
} cp_choice;

/* A choice's setting under its name (as compress.apply's info.layers[i] has it): "rank" (vh, svd),
 * "ranks" (tucker2: r_in, r_out), "keep" (prune_channels), "kept" (prune_weights, a fraction),
 * "bits" (quantize). */
typedef struct cp_setting {
    const char *key;
    int count;       /* 1, or 2 for a pair */
    int integer;     /* whole numbers (all but a fraction kept) */
    double value[2];
} cp_setting;

void cp_choice_setting(const cp_family *f, const cp_choice *c, cp_setting *s);
/* The setting as a short text: "rank 12", "ranks 8, 16", "keep 6", "kept 0.25", "bits 4". Returns
 * what snprintf returns. */
int cp_choice_format(const cp_family *f, const cp_choice *c, char *buf, size_t size);

/* Candidate / reference (1 where the reference count is 0); see cp_stats for what each counts. */
typedef struct cp_ratios {
    double params;       /* weights of the affected layers */
    double params_net;   /* every parameter of the network */
    double bits;         /* the affected layers' weights in bits */
    double bits_net;     /* the network's parameters in bits */
    double flops;        /* MACs of the network */
    double flops_layers; /* MACs of the affected layers */
} cp_ratios;

/* The names of the ratios ("params", "params_net", "bits", "bits_net", "flops", "flops_layers"),
 * NULL-terminated, as the Lua info table and objective.scalarize's `ratio` spell them. */
extern const char *const cp_ratio_names[];
/* The ratio of that name, or -1 with a message for an unknown name. */
int cp_ratio_get(const cp_ratios *r, const char *name, double *value);

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
    cp_ratios ratio;                  /* the ratios of the counts above */
    double t_prepare;                 /* seconds: factors computed by this call (first use only) */
    double t_truncate, t_rebuild;     /* seconds: factors for θ, graph surgery and accounting */
    int nchoices;
    cp_choice *choices;               /* one per θ entry */
} cp_stats;

void cp_stats_free(cp_stats *s);

/* The number of θ entries of a list of families (the sum of their layer counts). */
int cp_dim(int nfam, cp_family *const *fams);
/* The search box of θ (cp_dim entries, family by family, layer by layer): bounds and which entries
 * are integers; any output may be NULL. */
void cp_box(int nfam, cp_family *const *fams, double *lo, double *hi, int *integer);
/* The label of θ entry i: "vh:features.0". Returns what snprintf returns, -1 for no such entry. */
int cp_theta_name(int nfam, cp_family *const *fams, int i, char *buf, size_t size);

/* θ → the setting of every layer (ntheta must be cp_dim entries), without building anything: out
 * gets cp_dim choices, their size fields zero. A θ outside its bounds, two families of one role on
 * one layer (two structural ones, two prunings by magnitude, two quantizations), or families of
 * different networks are errors. */
int cp_choose(int nfam, cp_family *const *fams, int ntheta, const double *theta, cp_choice *out);

/* Applies θ to the families' reference net: a new network sharing the untouched parameters with
 * ref, its architecture record extended with the rewrites so that nn_from_arch can rebuild it, and
 * its stats (st may be NULL; free with cp_stats_free). Errors as cp_choose's, and families declared
 * on a network other than ref. */
nn_net *cp_apply(const nn_net *ref, int nfam, cp_family *const *fams, int ntheta, const double *theta,
                 cp_stats *st);

/* measure.c, for any network: its parameters and MACs at its nominal input size; per node. */
int cp_measure(const nn_net *net, int64_t *params, int64_t *macs);
int cp_node_macs(const nn_net *net, int64_t *macs);
/* The median seconds of one forward pass on a random batch (normal inputs, seed 1) of batch images
 * of size × size (net->size is the nominal one), timed over runs passes after warmup untimed ones. */
int cp_latency(nn_net *net, int batch, int runs, int warmup, int size, double *seconds);

/* ---- the table of operations of a family, and what its implementations share ------------------ */

/* What a family does to a layer, which fixes the order of application and which families may
 * share a layer: at most one family of each role per layer. */
typedef enum cp_role {
    CP_STRUCTURE, /* changes the layer's shape or splits it (applied first) */
    CP_SPARSITY,  /* zeroes weights of whatever the layer became */
    CP_VALUES,    /* rounds the weights left (after pruning, so that zeros stay zeros) */
    CP_ROLES
} cp_role;

/* A candidate under construction, as the apply operations see it: per node of cand, the weights to
 * count (-1: all of them), their storage width in bits, and whether its weights changed. */
typedef struct cp_work {
    const nn_net *ref;
    nn_net *cand;
    int64_t *weights;
    double *bits;
    char *touched;
} cp_work;

struct cp_family_ops {
    const char *name;
    cp_role role;
    unsigned modes;                /* the modes it takes besides CP_FRACTION: bit m for cp_mode m */
    const char *const *options;    /* declaration keys beyond net, layers, bounds: "rank", "dense",
                                      "hooi", "multiple" (NULL-terminated; may be NULL) */
    /* eligible layers: NULL when node i of net can take the family, else why not ("not a
     * convolution"); nodes with weights, grouped convolutions excluded already */
    const char *(*ineligible)(const nn_net *net, int i);
    /* describe: max_rank and break_even of the layer (its name, node and shape are set) */
    void (*describe)(const cp_family *f, cp_layer *l);
    /* θ range: min, max, the default bounds lo, hi, and integer */
    void (*range)(const cp_family *f, cp_layer *l);
    /* setting from θ (within the layer's bounds): fills the choice's setting fields; may compute
     * the layer's factors when the setting depends on them */
    int (*setting)(const cp_family *f, cp_layer *l, double theta, cp_choice *c);
    /* prepare: the layer's factors into l->cache (may be NULL: nothing to compute) */
    int (*prepare)(const cp_family *f, cp_layer *l);
    /* frees a cache made by prepare (NULL: free) */
    void (*release)(void *cache);
    /* structural rewrite (may be NULL): replaces the layer in cand (found by name) for the choice
     * and fills its new weights; called for the layers in decreasing node order, so that the
     * indices of the others stay put, before any apply */
    int (*rewrite)(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand);
    /* apply (may be NULL): the change in the candidate's weights and their accounting, in the pass
     * of the family's role, after every rewrite */
    int (*apply)(const cp_family *f, const cp_layer *l, const cp_choice *c, cp_work *w);
    /* record: appends the choice's rewrite to cand's architecture record (nn_arch_add_rewrite) */
    int (*record)(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand);
    /* report: the choice's setting under its name (cp_choice_setting) */
    void (*report)(const cp_choice *c, cp_setting *s);
};

/* The nodes of cand that stand for reference layer name (itself, or the chain that replaced it);
 * returns their number, at most 3. */
int cp_layer_nodes(const nn_net *cand, const char *name, int *out);

/* lowrank.c: θ as a fraction of the break-even rank b → the largest K >= 0 whose fraction K/b (as
 * a double) does not exceed θ. That is floor(θ·b), but exact for θ = K/b, the top of the range
 * max_rank/b included, where θ·b in floating point may fall just short of the integer. */
int64_t cp_fraction_rank(double theta, int b);

/* prune.c. Whether conv node i's output channels can be removed: every path from it goes through
 * channel-wise layers (batch norm, ReLU, pools, dropout) to convolutions or linear layers only
 * (never a residual add nor the output). */
int cp_channels_prunable(const nn_net *net, int i);
/* Keeps the fraction kept of n's largest weights (by magnitude); *nonzeros gets the count left. */
int cp_prune_weights(nn_node *n, double kept, int64_t *nonzeros);
/* quantize.c: rounds n's weights to a symmetric uniform grid of 2^(bits-1) - 1 levels each side. */
int cp_quantize(nn_node *n, int bits);
/* apply.c: replaces one parameter of n (0 weight, 1 bias, 2 mean, 3 var) by t, taking it over; a
 * node that shared its tensors gets private copies of the others first. */
int cp_set_param(nn_node *n, int slot, tensor *t);

/* Thin SVD of the row-major m×n matrix a (a is overwritten): u m×r, s r, vt r×n, r = min(m, n). */
int cp_svd(int m, int n, float *a, float *u, float *s, float *vt);
/* c (m×n) = a (m×k) · b (k×n), row-major, optionally transposed operands (oneDNN's sgemm). */
int cp_gemm(char ta, char tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
            int ldc);

#endif
