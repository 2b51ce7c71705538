#include "bo/bo_qmc.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_qrng.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"

int bo_qmc_uniform(int d, int64_t first, int count, uint64_t seed, double *out)
{
    if (count <= 0)
        return 0;
    rng *r = rng_new(seed);
    if (!r)
        return -1;
    const gsl_qrng_type *type = d <= 40 ? gsl_qrng_sobol : d <= 1229 ? gsl_qrng_reversehalton : NULL;
    gsl_qrng *q = type ? gsl_qrng_alloc(type, (unsigned)d) : NULL;
    double *shift = malloc((size_t)d * sizeof *shift);
    if ((type && !q) || !shift) {
        rng_free(r);
        gsl_qrng_free(q);
        free(shift);
        return err_set("out of memory drawing quasi-random points");
    }
    for (int j = 0; j < d; j++)
        shift[j] = rng_uniform(r);
    if (q)
        for (int64_t i = 0; i < first; i++)
            gsl_qrng_get(q, out); /* skip, using the first row as scratch */
    for (int i = 0; i < count; i++) {
        double *p = out + (size_t)i * d;
        if (!q) {
            for (int j = 0; j < d; j++)
                p[j] = rng_uniform(r);
            continue;
        }
        gsl_qrng_get(q, p);
        for (int j = 0; j < d; j++) {
            if (type == gsl_qrng_sobol) {
                /* digital shift: XOR the 32-bit binary fraction (GSL's Sobol points are dyadic) */
                uint32_t bits = (uint32_t)(p[j] * 4294967296.0), mask = (uint32_t)(shift[j] * 4294967296.0);
                p[j] = (double)(bits ^ mask) / 4294967296.0;
            } else {
                p[j] += shift[j];
                p[j] -= p[j] >= 1.0 ? 1.0 : 0.0;
            }
        }
    }
    gsl_qrng_free(q);
    free(shift);
    rng_free(r);
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
