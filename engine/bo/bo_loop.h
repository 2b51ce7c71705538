/* bo_loop: Bayesian optimization (minimization) by ask and tell. Inputs are scaled to the unit cube
 * from the bounds (integer dimensions rounded, and the GP sees the rounded values) and y is
 * standardized before each fit. The first `init` points are a seeded Sobol design (scrambled, origin
 * included, so that it fills the strata: bo_qmc.h); then each ask fits
 * the GP by MAP and maximizes the acquisition. Every random draw of the ask that follows n
 * evaluations depends only on (seed, n) and the history, so a run rebuilt from its journal continues
 * exactly as it would have without interruption. */
#ifndef BOENGINE_BO_LOOP_H
#define BOENGINE_BO_LOOP_H

#include <stdint.h>

#include "bo/acq.h"
#include "bo/acqopt.h"
#include "bo/bo_qmc.h"
#include "bo/gp_fit.h"

typedef struct bo_options {
    int d;
    const double *lower, *upper; /* bounds, d each (copied by bo_new) */
    const int *integer;          /* NULL, or d flags: integer dimension (its bounds must be integers) */
    int init;                    /* Sobol points before the first fit (default min(3 d, 30)) */
    bo_qmc_kind design;          /* default scrambled; shifted: the design before (GSL's from its 2nd point) */
    acq_kind acquisition;        /* default noisy EI (docs/method.md §3: why not EI_C) */
    acq_options acq;
    gp_kernel_kind kernel;       /* default Matérn-5/2 */
    gp_fit_options fit;
    acqopt_options opt;
    int learn_noise;             /* 1 learn a homoscedastic noise, 0 only the told se, -1 (default):
                                    learn when some observation has no se */
    uint64_t seed;
} bo_options;

void bo_defaults(bo_options *o, int d, const double *lower, const double *upper);

/* The checks of bo_new on everything but the bounds (bo_space_init checks those): -1 with err_set
 * naming the option key at fault ('init', 'kappa', 'samples', 'raw_samples', 'restarts',
 * 'fit_restarts', 'min_distance', 'priors.lengthscale'...). */
int bo_options_check(const bo_options *o);

typedef struct bo bo;

/* NULL with err_set on bad options (bo_options_check, bo_space_init) or out of memory. */
bo *bo_new(const bo_options *o);
void bo_free(bo *b);

/* The next point to evaluate (d coordinates, caller units). Asking twice without telling gives the
 * same point. -1 with err_set on failure. */
int bo_ask(bo *b, double *x);

/* Records an evaluation; se is the standard error of y (NaN: unknown). Integer coordinates are
 * rounded (bo_space_snap). -1 with err_set for a point outside the bounds or a y that is not finite. */
int bo_tell(bo *b, const double *x, double y, double se);

/* Proposal `number` while others are pending (batch and asynchronous BO, docs/method.md §8): it
 * sees the first `told` evaluations (told <= bo_count) and the m = number - told - 1 pending
 * points (caller units, row-major), which are to become evaluations told + 1 .. number - 1. Within
 * the design it is the Sobol point number - 1, skipping evaluated and pending points; after, the
 * acquisition of the GP fitted to the told evaluations and conditioned on the pending points at its
 * own posterior mean (Kriging believer), maximized away from told and pending points. Its random
 * streams depend on number alone, so the same number, told and pending points give the same point,
 * and m = 0 with told = bo_count is bo_ask. -1 with err_set on bad arguments or failure. */
int bo_ask_pending(bo *b, int64_t number, int told, int m, const double *pending, double *x);

int bo_count(const bo *b);
int bo_dim(const bo *b);
int bo_init_count(const bo *b);
const double *bo_x(const bo *b, int i); /* evaluation i (0-based), caller units */
double bo_y(const bo *b, int i);
double bo_se(const bo *b, int i);

typedef struct bo_best_point {
    int index;        /* 0-based evaluation index */
    double mu, sd;    /* posterior mean and standard deviation of f there, caller units */
} bo_best_point;

/* The evaluated point with the lowest posterior mean (fits the GP when needed). */
int bo_best(bo *b, bo_best_point *out);

/* Posterior mean and variance of f at m points (caller units), from the GP of the current history. */
int bo_predict(bo *b, int m, const double *X, double *mu, double *var);

/* The acquisition that the next ask maximizes, at m points: EI and EI_C in y units, PI and PI_C as
 * probabilities, noisy EI in y units, LCB as the lower confidence bound itself (lower is better). */
int bo_acquisition(bo *b, int m, const double *X, double *values);

/* The GP fitted to the current history (unit cube, standardized y; fitted when needed), for reports.
 * Owned by b, valid until the next tell. NULL with err_set on failure. */
const gp *bo_model(bo *b);
/* The standardization of y used by that GP: y = mean + sd * y_standardized. */
void bo_y_scale(const bo *b, double *mean, double *sd);

/* The value of the acquisition at the last point proposed by the model (NaN for design points). */
double bo_last_acquisition(const bo *b);

#endif
