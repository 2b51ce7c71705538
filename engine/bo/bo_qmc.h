/* bo_qmc: seeded quasi-random points for initial designs, raw acquisition samples and Monte-Carlo
 * posterior samples: GSL's Sobol sequence with a random digital shift (up to 40 dimensions),
 * GSL's reverse Halton with a random shift modulo 1 beyond (up to 1229), pseudo-random past that. */
#ifndef BOENGINE_BO_QMC_H
#define BOENGINE_BO_QMC_H

#include <stdint.h>

typedef struct bo_qmc bo_qmc;

/* A d-dimensional sequence randomized by seed; NULL with err_set on out of memory. */
bo_qmc *bo_qmc_new(int d, uint64_t seed);
/* The next point, d coordinates in [0, 1). */
void bo_qmc_next(bo_qmc *q, double *out);
void bo_qmc_free(bo_qmc *q);

/* Points first .. first+count-1 of the sequence of (d, seed), row-major in out. -1 with err_set on
 * out of memory. */
int bo_qmc_uniform(int d, int64_t first, int count, uint64_t seed, double *out);

/* count standard-normal vectors of dimension d (the inverse normal CDF of bo_qmc_uniform). */
int bo_qmc_normal(int d, int count, uint64_t seed, double *out);

#endif
