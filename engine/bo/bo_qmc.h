/* bo_qmc: seeded quasi-random points for initial designs, raw acquisition samples and Monte-Carlo
 * posterior samples: GSL's Sobol sequence (up to 40 dimensions), GSL's reverse Halton beyond (up
 * to 1229), pseudo-random past that. Two randomizations:
 *
 * - shifted: GSL's sequence as it comes (it starts at its second point, skipping the origin), with
 *   a random digital shift (Sobol) or a random shift modulo 1 (Halton). The raw samples and the
 *   posterior samples use it; as an initial design it leaves strata empty (4 points in 1-D: two in
 *   one quarter, none in another, whatever the shift).
 * - scrambled: the whole sequence, origin first, so that its first 2^k points are a digital net:
 *   in 1-D one point in each of 2^k equal intervals, in d dimensions Sobol's (t, k, d)-net. A Sobol
 *   coordinate is then scrambled as Owen's nested uniform scramble does in base 2: its binary digit
 *   r is flipped or not by a random bit drawn for the digits before it (one bit per node of the
 *   binary tree, from a hash, so nothing is stored). A net stays a net, every point is uniform on
 *   [0, 1), and the positions of the points inside their intervals are independent: in 1-D the
 *   first 2^k points are stratified random sampling. (A random linear scramble XOR-links those
 *   positions, and measurably hurt BO with LCB on noisy sinone: docs/figures.md.) Halton points get
 *   the shift modulo 1 (one point per circular stratum). The initial design. */
#ifndef BOENGINE_BO_QMC_H
#define BOENGINE_BO_QMC_H

#include <stdint.h>

typedef enum { BO_QMC_SCRAMBLED, BO_QMC_SHIFTED } bo_qmc_kind;

/* "scrambled", "shifted"; parse: -1 with err_set listing them. */
const char *bo_qmc_kind_name(bo_qmc_kind kind);
int bo_qmc_kind_parse(const char *name, bo_qmc_kind *out);

typedef struct bo_qmc bo_qmc;

/* A d-dimensional sequence randomized by seed; NULL with err_set on out of memory. */
bo_qmc *bo_qmc_new_kind(int d, uint64_t seed, bo_qmc_kind kind);
/* bo_qmc_new_kind(d, seed, BO_QMC_SHIFTED). */
bo_qmc *bo_qmc_new(int d, uint64_t seed);
/* The next point, d coordinates in [0, 1). */
void bo_qmc_next(bo_qmc *q, double *out);
void bo_qmc_free(bo_qmc *q);

/* Points first .. first+count-1 of the shifted sequence of (d, seed), row-major in out. -1 with
 * err_set on out of memory. */
int bo_qmc_uniform(int d, int64_t first, int count, uint64_t seed, double *out);

/* count standard-normal vectors of dimension d (the inverse normal CDF of bo_qmc_uniform). */
int bo_qmc_normal(int d, int count, uint64_t seed, double *out);

#endif
