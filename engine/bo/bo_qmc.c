#include "bo/bo_qmc.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_qrng.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

struct bo_qmc {
    int d;
    bo_qmc_kind kind;
    const gsl_qrng_type *type; /* NULL: pseudo-random */
    gsl_qrng *q;
    rng *r;
    double *shift;
    uint64_t *keys; /* scrambled Sobol: a key a dimension, seeding the flips of its digit tree */
    int started;    /* scrambled: the origin has been given */
};

static const char *const kind_names[] = {"scrambled", "shifted"};

const char *bo_qmc_kind_name(bo_qmc_kind kind) { return (unsigned)kind < 2 ? kind_names[kind] : "?"; }

int bo_qmc_kind_parse(const char *name, bo_qmc_kind *out)
{
    for (int k = 0; k < 2; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (bo_qmc_kind)k;
            return 0;
        }
    return err_set("unknown design '%s' (known: scrambled, shifted)", name);
}

bo_qmc *bo_qmc_new_kind(int d, uint64_t seed, bo_qmc_kind kind)
{
    bo_qmc *q = calloc(1, sizeof *q);
    if (!q) {
        err_set("out of memory drawing quasi-random points");
        return NULL;
    }
    q->d = d;
    q->kind = kind;
    q->type = d <= 40 ? gsl_qrng_sobol : d <= 1229 ? gsl_qrng_reversehalton : NULL;
    q->r = rng_new(seed);
    q->shift = malloc((size_t)d * sizeof *q->shift);
    if (q->type)
        q->q = gsl_qrng_alloc(q->type, (unsigned)d);
    int scrambled_sobol = kind == BO_QMC_SCRAMBLED && q->type == gsl_qrng_sobol;
    if (scrambled_sobol)
        q->keys = malloc((size_t)d * sizeof *q->keys);
    if (!q->r || !q->shift || (q->type && !q->q) || (scrambled_sobol && !q->keys)) {
        bo_qmc_free(q);
        err_set("out of memory drawing quasi-random points");
        return NULL;
    }
    for (int j = 0; j < d; j++)
        q->shift[j] = rng_uniform(q->r);
    for (int j = 0; q->keys && j < d; j++)
        q->keys[j] = rng_derive_seed(seed, 0x6f77656e00000000ULL + (uint64_t)j); /* "owen" */
    return q;
}

bo_qmc *bo_qmc_new(int d, uint64_t seed) { return bo_qmc_new_kind(d, seed, BO_QMC_SHIFTED); }

void bo_qmc_free(bo_qmc *q)
{
    if (!q)
        return;
    if (q->q)
        gsl_qrng_free(q->q);
    rng_free(q->r);
    free(q->shift);
    free(q->keys);
    free(q);
}

/* Owen's nested scramble of a coordinate's 32 binary digits: digit r is flipped or not by a random
 * bit of the node that digits 0..r-1 lead to in the binary tree (a hash of the key, r and those
 * digits), so that points in different intervals get independent positions inside them. */
static uint32_t scramble(uint64_t key, uint32_t bits)
{
    uint32_t out = 0;
    for (int r = 0; r < 32; r++) {
        uint64_t node = r == 0 ? 0 : (uint64_t)(bits >> (32 - r)); /* the digits before r */
        uint32_t flip = (uint32_t)(rng_derive_seed(key, ((uint64_t)r << 32) | node) >> 63);
        out |= (((bits >> (31 - r)) & 1u) ^ flip) << (31 - r);
    }
    return out;
}

void bo_qmc_next(bo_qmc *q, double *p)
{
    int d = q->d;
    if (!q->q) {
        for (int j = 0; j < d; j++)
            p[j] = rng_uniform(q->r);
        return;
    }
    if (q->kind == BO_QMC_SCRAMBLED) {
        if (q->started)
            gsl_qrng_get(q->q, p);
        else /* GSL starts at the sequence's second point: the first is the origin */
            for (int j = 0; j < d; j++)
                p[j] = 0;
        q->started = 1;
    } else {
        gsl_qrng_get(q->q, p);
    }
    for (int j = 0; j < d; j++) {
        if (q->type == gsl_qrng_sobol && q->keys) {
            p[j] = (double)scramble(q->keys[j], (uint32_t)(p[j] * 4294967296.0)) / 4294967296.0;
        } else if (q->type == gsl_qrng_sobol) {
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
