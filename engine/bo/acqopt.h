/* acqopt: maximizes an acquisition over the unit cube: quasi-random raw samples, then multi-start
 * L-BFGS in the box (NLopt) from the best of them, or NLopt's DIRECT-L followed by L-BFGS. Integer
 * dimensions are rounded (the acquisition is evaluated at the rounded point), and a point within
 * min_distance of an evaluated one is never returned. */
#ifndef BOENGINE_ACQOPT_H
#define BOENGINE_ACQOPT_H

#include <stdint.h>

#include "bo/acq.h"

typedef enum acqopt_method { ACQOPT_LBFGS, ACQOPT_DIRECT } acqopt_method;

typedef struct acqopt_options {
    acqopt_method method;
    int raw_samples;     /* quasi-random points scored first (default 512) */
    int restarts;        /* L-BFGS starts from the best raw samples (default 8) */
    int maxeval;         /* evaluations per L-BFGS start (default 100) */
    int direct_maxeval;  /* evaluations of DIRECT-L (default 1000) */
    double min_distance; /* max-norm distance in the unit cube below which points count as equal (1e-6) */
} acqopt_options;

void acqopt_defaults(acqopt_options *o);
/* -1 with err_set naming the option key ('raw_samples', 'restarts', 'min_distance') unless
 * raw_samples >= 1, restarts >= 0 and min_distance is finite and >= 0. */
int acqopt_options_check(const acqopt_options *o);
/* "lbfgs" or "direct"; -1 with err_set otherwise. */
int acqopt_parse_method(const char *name, acqopt_method *out);

/* Rounds x (d coordinates in [0, 1]) in place: dimension j with levels[j] > 0 takes the values
 * k / levels[j]. levels may be NULL (all continuous). */
void acqopt_round(int d, const int *levels, double *x);

/* Writes the maximizer to x and the acquisition there to *value (may be NULL). avoid holds navoid
 * evaluated points (row-major, unit cube). -1 with err_set when every candidate is an evaluated point. */
int acqopt_maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value);

#endif
