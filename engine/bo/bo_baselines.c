/* The baselines that propose without a model: random search (independent uniform points) and a
 * Sobol sequence (GSL's, with the seed's digital shift, through bo_qmc). Both are uniform over the
 * box with integer dimensions respected, and proposal k depends only on the seed and k, so that
 * they need no history and any number of proposals may be pending at once. */
#include <stdlib.h>

#include "bo/bo_qmc.h"
#include "bo/bo_space.h"
#include "bo/bo_strategy.h"
#include "core/err.h"
#include "core/rng.h"

/* sub-streams of the seed, apart from those of the BO loop */
enum { STREAM_RANDOM = 0x72616e64, STREAM_SOBOL = 0x736f626f };

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

const bo_strategy bo_strategy_random = {
    .name = "random", .create = create, .destroy = destroy, .ask = random_ask, .tell = tell};

const bo_strategy bo_strategy_sobol = {
    .name = "sobol", .create = create, .destroy = destroy, .ask = sobol_ask, .tell = tell};
