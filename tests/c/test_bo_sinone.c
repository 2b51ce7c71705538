/* BO on sinone with Gaussian noise (sigma 0.03, known): within 25 evaluations the best point by
 * posterior mean lies within 0.01 of the minimizer 0.6330 for at least 9 of 10 seeds (noisy EI). */
#include <math.h>
#include <stdlib.h>

#include "bo/bo_functions.h"
#include "bo/bo_loop.h"
#include "core/err.h"
#include "core/rng.h"
#include "tap.h"

/* Runs BO for `budget` evaluations; returns the best point's x. */
static double run(acq_kind kind, int init, int budget, uint64_t seed)
{
    const bo_function *f = bo_function_find("sinone");
    double lo = 0, hi = 1, x, best = NAN;
    bo_options o;
    bo_defaults(&o, 1, &lo, &hi);
    o.seed = seed;
    o.init = init;
    o.acquisition = kind;
    bo *b = bo_new(&o);
    rng *noise = rng_new(rng_derive_seed(seed, 77));
    for (int i = 0; i < budget; i++) {
        if (bo_ask(b, &x) != 0) {
            tap_diag("ask failed: %s", err_msg());
            break;
        }
        bo_tell(b, &x, f->f(1, &x) + 0.03 * rng_normal(noise), 0.03);
    }
    bo_best_point bp;
    if (bo_best(b, &bp) == 0)
        best = bo_x(b, bp.index)[0];
    rng_free(noise);
    bo_free(b);
    return best;
}

int main(void)
{
    int hits = 0;
    for (uint64_t s = 1; s <= 10; s++) {
        double x = run(ACQ_NEI, 5, 25, s);
        hits += fabs(x - 0.6330) <= 0.01;
        tap_diag("seed %d: best x %.4f", (int)s, x);
    }
    tap_ok(hits >= 9, "noisy EI on noisy sinone: best within 0.01 of 0.6330 after 25 evaluations for %d of 10 seeds",
           hits);
    return tap_done();
}
