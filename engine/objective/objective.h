/* objective: the U-statistics that score a compressed network (docs/method.md §1): the function distance
 * L = E||f~(x) − f*(x)||² on the logits, and the empirical top-1 risk, each estimated on n inputs
 * drawn without replacement from a pool of a dataset, with its standard error.
 *
 * Evaluation k (1, 2, ...) draws its sample from a generator seeded by (seed, k) alone, so a run is
 * reproducible and any evaluation can be redone by its number; with `fixed` every evaluation uses
 * the sample of k = 1. The reference logits f*(x) of each pool example are computed once, the
 * first time the example is drawn (or all at once by ob_prepare): only the missing ones, in
 * forward passes of one size whose last, partial one is filled up with other pool examples not
 * yet known. Pool inputs are kept in memory when they fit in the cache budget, so an evaluation
 * costs one forward pass of the candidate on n inputs. */
#ifndef BOENGINE_OBJECTIVE_H
#define BOENGINE_OBJECTIVE_H

#include <stdint.h>

#include "io/dataset.h"
#include "nn/net.h"

/* Mean of d[0..n-1] and its standard error s/sqrt(n) with s the sample standard deviation
 * (ddof = 1; 0 when n < 2). Computed in double. */
void ob_mean_se(const double *d, int64_t n, double *mean, double *se);

typedef enum ob_kind { OB_FNORM, OB_RISK } ob_kind;

typedef struct ob_options {
    int64_t samples;     /* n per evaluation (default 50) */
    uint64_t seed;
    int64_t pool;        /* examples the samples come from, drawn once with the seed (0: the whole dataset) */
    int fixed;           /* every evaluation uses the same sample (that of evaluation 1) */
    int squared;         /* fnorm: squared L2 distance (default 1); 0: the norm itself */
    int64_t batch;       /* forward passes in batches of this many (0: n at once, or equal batches
                            whose largest activation stays under 128 MB) */
    double se_floor;     /* risk: lower bound of the standard error (< 0: sqrt(p0(1-p0)/n), p0 = 1/(2n)) */
    int64_t cache_bytes; /* pool inputs are kept in memory when they fit (default 512 MB) */
} ob_options;

void ob_defaults(ob_options *o);

typedef struct ob_estimator ob_estimator;

/* An estimator over dataset d (not owned; it must outlive the estimator). fnorm needs the
 * reference network (not owned); risk ignores it. NULL with a message on bad options. */
ob_estimator *ob_new(ob_kind kind, nn_net *reference, const dataset *d, const ob_options *o);
void ob_free(ob_estimator *e);

typedef struct ob_result {
    double value, se;        /* L^ (or the error rate) and its standard error */
    int64_t n, index;        /* sample size, evaluation number */
    double t_data, t_reference, t_forward, t_distance; /* seconds spent on each part */
} ob_result;

/* Evaluates the candidate on evaluation index's sample (index <= 0: the next one). */
int ob_evaluate(ob_estimator *e, nn_net *candidate, int64_t index, ob_result *r);

/* The dataset indices (0-based) of evaluation index's sample, n of them in draw order. */
int ob_sample_indices(const ob_estimator *e, int64_t index, int64_t *out);

/* Computes the reference logits of the whole pool now (fnorm), with a progress bar. In an MPI run
 * of several ranks it is collective: each rank computes a contiguous share of the pool and every
 * rank receives all of them (the same values as one rank computes). */
int ob_prepare(ob_estimator *e);

/* Pool examples whose reference logits are known (fnorm; 0 for risk). */
int64_t ob_known(const ob_estimator *e);

/* The pool size and the number of evaluations drawn so far. */
int64_t ob_pool_size(const ob_estimator *e);
int64_t ob_count(const ob_estimator *e);
const ob_options *ob_get_options(const ob_estimator *e);
ob_kind ob_get_kind(const ob_estimator *e);

#endif
