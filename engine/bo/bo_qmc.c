#include "bo/bo_qmc.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_qrng.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"

struct bo_qmc {
    int d;
    const gsl_qrng_type *type; /* NULL: pseudo-random */
    gsl_qrng *q;
    rng *r;
    double *shift;
};

bo_qmc *bo_qmc_new(int d, uint64_t seed)
{
    bo_qmc *q = calloc(1, sizeof *q);
    if (!q) {
        err_set("out of memory drawing quasi-random points");
        return NULL;
    }
    q->d = d;
    q->type = d <= 40 ? gsl_qrng_sobol : d <= 1229 ? gsl_qrng_reversehalton : NULL;
    q->r = rng_new(seed);
    q->shift = malloc((size_t)d * sizeof *q->shift);
    if (q->type)
        q->q = gsl_qrng_alloc(q->type, (unsigned)d);
    if (!q->r || !q->shift || (q->type && !q->q)) {
        bo_qmc_free(q);
        err_set("out of memory drawing quasi-random points");
        return NULL;
    }
    for (int j = 0; j < d; j++)
        q->shift[j] = rng_uniform(q->r);
    return q;
}

void bo_qmc_free(bo_qmc *q)
{
    if (!q)
        return;
    if (q->q)
        gsl_qrng_free(q->q);
    rng_free(q->r);
    free(q->shift);
    free(q);
}

void bo_qmc_next(bo_qmc *q, double *p)
{
    int d = q->d;
    if (!q->q) {
        for (int j = 0; j < d; j++)
            p[j] = rng_uniform(q->r);
        return;
    }
    gsl_qrng_get(q->q, p);
    for (int j = 0; j < d; j++) {
        if (q->type == gsl_qrng_sobol) {
            /* digital shift: XOR the 32-bit binary fraction (GSL's Sobol points are dyadic) */
            uint32_t bits = (uint32_t)(p[j] * 4294967296.0), mask = (uint32_t)(q->shift[j] * 4294967296.0);
            p[j] = (double)(bits ^ mask) / 4294967296.0;
        } else {
            p[j] += q->shift[j];
            p[j] -= p[j] >= 1.0 ? 1.0 : 0.0;
        }
    }
}

int bo_qmc_uniform(int d, int64_t first, int count, uint64_t seed, double *out)
{
    if (count <= 0)
        return 0;
    bo_qmc *q = bo_qmc_new(d, seed);
    if (!q)
        return -1;
    for (int64_t i = 0; i < first; i++)
        bo_qmc_next(q, out); /* skip, using the first row as scratch */
    for (int i = 0; i < count; i++)
        bo_qmc_next(q, out + (size_t)i * d);
    bo_qmc_free(q);
    return 0;
}

int bo_qmc_normal(int d, int count, uint64_t seed, double *out)
{
    if (bo_qmc_uniform(d, 0, count, seed, out) != 0)
        return -1;
    for (size_t i = 0; i < (size_t)count * d; i++) {
        double u = out[i] < 1e-12 ? 1e-12 : out[i] > 1 - 1e-12 ? 1 - 1e-12 : out[i];
        out[i] = gsl_cdf_ugaussian_Pinv(u);
    }
    return 0;
}
