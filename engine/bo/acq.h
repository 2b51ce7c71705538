/* acq: acquisition functions for minimization on a fitted GP (noise-free posterior of f): EI with the
 * best-posterior-mean incumbent, corrected EI (EI_C) and PI_C using the incumbent's variance and
 * covariance, noisy EI (quasi-Monte-Carlo over joint posterior samples at the evaluated points), PI
 * and LCB. The value maximized is the logarithm for the EI and PI family (stable for vanishing
 * improvements) and kappa*sigma - mu for LCB, with its gradient in x. */
#ifndef BOENGINE_ACQ_H
#define BOENGINE_ACQ_H

#include <stdint.h>

#include "bo/gp.h"

typedef enum acq_kind { ACQ_EI, ACQ_EI_C, ACQ_PI, ACQ_PI_C, ACQ_NEI, ACQ_LCB } acq_kind;

/* "ei", "ei_c", "pi", "pi_c", "nei", "lcb"; -1 with err_set for an unknown name. */
int acq_parse(const char *name, acq_kind *out);
const char *acq_name(acq_kind kind);
/* True when acq_eval returns a logarithm (every kind but LCB). */
int acq_is_log(acq_kind kind);

typedef struct acq_options {
    double kappa;    /* LCB's multiple of sigma (default 2) */
    int nei_samples; /* noisy EI's posterior samples (default 128) */
} acq_options;

void acq_defaults(acq_options *o);
/* -1 with err_set naming the option key ('kappa', 'samples') unless kappa is finite and >= 0 and
 * samples >= 1. */
int acq_options_check(const acq_options *o);

/* h(u) = phi(u) + u Phi(u), so that EI = sigma h((best - mu) / sigma): log h(u) without cancellation
 * or underflow for any u, and the ratios phi/h and Phi/h (for gradients) when not NULL. */
double acq_log_h(double u, double *phi_over_h, double *Phi_over_h);
/* log Phi(u) for any u, and d/du of it when not NULL. */
double acq_log_Phi(double u, double *dlog);

typedef struct acq acq;

/* Prepares an acquisition on g (which must stay alive and unchanged); seed drives noisy EI's samples.
 * NULL with err_set on bad options or failure. */
acq *acq_new(const gp *g, acq_kind kind, const acq_options *o, uint64_t seed);
void acq_free(acq *a);

/* The value to maximize at x (d coordinates, the GP's units) and, when grad is not NULL, its gradient. */
double acq_eval(acq *a, const double *x, double *grad);

/* The acquisition at m points (row-major, the GP's units) as a user reads it, for a GP of
 * standardized observations y = y_mean + y_sd * y_gp (0 and 1 for a GP in the caller's units): EI,
 * EI_C and noisy EI in y units, PI and PI_C as probabilities, LCB as the lower confidence bound.
 * -1 with err_set for a point that is not finite. */
int acq_values(acq *a, int m, const double *X, double y_mean, double y_sd, double *out);

/* Index of the incumbent: the evaluated point with the lowest posterior mean. */
int acq_incumbent(const acq *a);

#endif
