/* The baselines that propose without a model: random search (independent uniform points), a Sobol
 * sequence (GSL's, with the seed's digital shift, through bo_qmc) and the uniform baseline (one
 * shared fraction for every coordinate: points on the box's diagonal, the fraction t searched in 1-D
 * by the one-dimensional scrambled Sobol sequence: its first 2^k fractions put one in each of 2^k
 * equal intervals of [0, 1), so that the diagonal is filled ever more finely). Random and Sobol are uniform over the box; all three respect integer
 * dimensions, and proposal k depends only on the seed and k, so that they need no history and any
 * number of proposals may be pending at once. */
#include <stdlib.h>

#include "bo/bo_qmc.h"
#include "bo/bo_space.h"
#include "bo/bo_strategy.h"
#include "core/err.h"
#include "core/rng.h"

/* sub-streams of the seed, apart from those of the BO loop */
enum { STREAM_RANDOM = 0x72616e64, STREAM_SOBOL = 0x736f626f, STREAM_UNIFORM = 0x756e6966 };

typedef struct baseline {
    bo_space space;
    uint64_t seed;
    double *u; /* d */
} baseline;

static void destroy(void *state)
{
    baseline *b = state;
    if (!b)
        return;
    bo_space_free(&b->space);
    free(b->u);
    free(b);
}

static void *create(const bo_options *o)
{
    baseline *b = calloc(1, sizeof *b);
    if (!b) {
        err_set("out of memory");
        return NULL;
    }
    if (bo_space_init(&b->space, o->d, o->lower, o->upper, o->integer) != 0) {
        free(b);
        return NULL;
    }
    b->seed = o->seed;
    if (!(b->u = malloc((size_t)o->d * sizeof *b->u))) {
        destroy(b);
        err_set("out of memory");
        return NULL;
    }
    return b;
}

static int tell(void *state, const double *x, double y, double se)
{
    (void)state, (void)x, (void)y, (void)se; /* proposals do not depend on what was observed */
    return 0;
}

static int check_number(int64_t number)
{
    return number >= 1 ? 0 : err_set("proposal numbers start at 1, got %lld", (long long)number);
}

static int random_ask(void *state, int64_t number, double *x)
{
    baseline *b = state;
    if (check_number(number) != 0)
        return -1;
    rng *r = rng_new(rng_derive_seed(rng_derive_seed(b->seed, STREAM_RANDOM), (uint64_t)number));
    if (!r)
        return -1;
    for (int j = 0; j < b->space.d; j++)
        b->u[j] = rng_uniform(r);
    rng_free(r);
    bo_space_from_uniform(&b->space, b->u, x);
    return 0;
}

static int sobol_ask(void *state, int64_t number, double *x)
{
    baseline *b = state;
    if (check_number(number) != 0)
        return -1;
    if (bo_qmc_uniform(b->space.d, number - 1, 1, rng_derive_seed(b->seed, STREAM_SOBOL), b->u) != 0)
        return -1;
    bo_space_from_uniform(&b->space, b->u, x);
    return 0;
}

/* Every coordinate at the same relative place t of its range: lower + t (upper - lower) for a
 * continuous one; for an integer one the value of cell floor(t (levels + 1)) of its levels + 1 equal
 * cells, as bo_space_from_uniform maps a uniform coordinate. */
static int uniform_ask(void *state, int64_t number, double *x)
{
    baseline *b = state;
    double t;
    if (check_number(number) != 0)
        return -1;
    bo_qmc *q = bo_qmc_new_kind(1, rng_derive_seed(b->seed, STREAM_UNIFORM), BO_QMC_SCRAMBLED);
    if (!q)
        return -1;
    for (int64_t k = 0; k < number; k++) /* a few hundred proposals at most: replaying is cheap */
        bo_qmc_next(q, &t);
    bo_qmc_free(q);
    for (int j = 0; j < b->space.d; j++)
        b->u[j] = t;
    bo_space_from_uniform(&b->space, b->u, x);
    return 0;
}

const bo_strategy bo_strategy_random = {
    .name = "random", .create = create, .destroy = destroy, .ask = random_ask, .tell = tell};

const bo_strategy bo_strategy_sobol = {
    .name = "sobol", .create = create, .destroy = destroy, .ask = sobol_ask, .tell = tell};

const bo_strategy bo_strategy_uniform = {
    .name = "uniform", .create = create, .destroy = destroy, .ask = uniform_ask, .tell = tell};
