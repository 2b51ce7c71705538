/* BO against random search on Branin and Hartmann-6: after 50 evaluations (noise-free), the median
 * over 10 seeds of the simple regret f(x best by posterior mean) - f* is smaller for BO (EI_C). */
#include <math.h>
#include <stdlib.h>

#include "bo/bo_functions.h"
#include "bo/bo_loop.h"
#include "core/err.h"
#include "core/rng.h"
#include "core/timer.h"
#include "tap.h"

enum { SEEDS = 10, BUDGET = 50 };

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double bo_regret(const bo_function *f, uint64_t seed)
{
    int d = f->dim;
    double lo[6], hi[6], x[6];
    f->bounds(d, lo, hi);
    bo_options o;
    bo_defaults(&o, d, lo, hi);
    o.seed = seed;
    o.acquisition = ACQ_EI_C; /* named: the default became noisy EI */
    bo *b = bo_new(&o);
    for (int i = 0; i < BUDGET; i++) {
        if (bo_ask(b, x) != 0) {
            tap_diag("ask failed: %s", err_msg());
            break;
        }
        bo_tell(b, x, f->f(d, x), 0.0);
    }
    bo_best_point bp;
    double r = bo_best(b, &bp) == 0 ? f->f(d, bo_x(b, bp.index)) - f->minimum : HUGE_VAL;
    bo_free(b);
    return r;
}

static double random_regret(const bo_function *f, uint64_t seed)
{
    int d = f->dim;
    double lo[6], hi[6], x[6], best = HUGE_VAL;
    f->bounds(d, lo, hi);
    rng *r = rng_new(seed);
    for (int i = 0; i < BUDGET; i++) {
        for (int j = 0; j < d; j++)
            x[j] = lo[j] + (hi[j] - lo[j]) * rng_uniform(r);
        best = fmin(best, f->f(d, x));
    }
    rng_free(r);
    return best - f->minimum;
}

int main(void)
{
    const char *names[] = {"branin", "hartmann6"};
    for (int k = 0; k < 2; k++) {
        const bo_function *f = bo_function_find(names[k]);
        double rb[SEEDS], rr[SEEDS], t0 = timer_now();
        for (int s = 0; s < SEEDS; s++) {
            rb[s] = bo_regret(f, (uint64_t)s + 1);
            rr[s] = random_regret(f, (uint64_t)s + 101);
        }
        double mb = median(rb, SEEDS), mr = median(rr, SEEDS);
        tap_ok(mb < mr, "%s: median simple regret after %d evaluations, BO %.3g < random search %.3g", names[k],
               BUDGET, mb, mr);
        tap_diag("%s: BO regrets %.2g .. %.2g, %.1f s for %d runs", names[k], rb[0], rb[SEEDS - 1],
                 timer_now() - t0, SEEDS);
    }
    return tap_done();
}
