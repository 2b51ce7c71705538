/* rng: the engine's only source of randomness, a seeded generator passed in explicitly
 * (GSL's MT19937, so that a seed means the same stream on every machine). */
#ifndef BOENGINE_RNG_H
#define BOENGINE_RNG_H

#include <stdint.h>

typedef struct rng rng;

rng *rng_new(uint64_t seed);
void rng_free(rng *r);
double rng_uniform(rng *r);                /* [0, 1) */
double rng_normal(rng *r);                 /* standard normal */
uint64_t rng_below(rng *r, uint64_t n);    /* uniform in [0, n), n >= 1 */

/* k distinct indices of [0, n) in random order (partial Fisher-Yates); -1 when k > n. */
int rng_sample(rng *r, int64_t n, int64_t k, int64_t *out);

/* A random permutation of [0, n). */
void rng_permutation(rng *r, int64_t n, int64_t *out);

/* Derives an independent seed for a named sub-stream (e.g. the sample drawn by evaluation i). */
uint64_t rng_derive_seed(uint64_t seed, uint64_t stream);

#endif
