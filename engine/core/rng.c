#include "core/rng.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <stdlib.h>

#include "core/err.h"

struct rng {
    gsl_rng *g;
};

uint64_t rng_derive_seed(uint64_t seed, uint64_t stream)
{
    /* splitmix64 finalizer: nearby (seed, stream) pairs give unrelated seeds */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

rng *rng_new(uint64_t seed)
{
    rng *r = malloc(sizeof *r);
    if (!r || !(r->g = gsl_rng_alloc(gsl_rng_mt19937))) {
        free(r);
        err_set("out of memory allocating a random generator");
        return NULL;
    }
    /* MT19937 takes 32 bits of seed; fold the 64-bit seed so both halves matter */
    gsl_rng_set(r->g, (unsigned long)((seed ^ (seed >> 32)) & 0xffffffffUL));
    return r;
}

void rng_free(rng *r)
{
    if (r) {
        gsl_rng_free(r->g);
        free(r);
    }
}

double rng_uniform(rng *r) { return gsl_rng_uniform(r->g); }

double rng_normal(rng *r) { return gsl_ran_gaussian_ziggurat(r->g, 1.0); }

uint64_t rng_below(rng *r, uint64_t n)
{
    if (n <= 0xffffffffUL)
        return gsl_rng_uniform_int(r->g, (unsigned long)n);
    uint64_t hi = gsl_rng_get(r->g), lo = gsl_rng_get(r->g);
    return ((hi << 32) | lo) % n;
}

int rng_sample(rng *r, int64_t n, int64_t k, int64_t *out)
{
    if (k < 0 || k > n)
        return err_set("cannot draw %lld distinct items out of %lld", (long long)k, (long long)n);
    int64_t *pool = malloc((size_t)(n > 0 ? n : 1) * sizeof *pool);
    if (!pool)
        return err_set("out of memory drawing a sample");
    for (int64_t i = 0; i < n; i++)
        pool[i] = i;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)rng_below(r, (uint64_t)(n - i));
        int64_t t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        out[i] = pool[i];
    }
    free(pool);
    return 0;
}

void rng_permutation(rng *r, int64_t n, int64_t *out) { rng_sample(r, n, n, out); }
