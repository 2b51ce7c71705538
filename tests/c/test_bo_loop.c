/* The BO loop's contract: reproducible asks, the Sobol design, integer rounding, never an evaluated
 * point, validation of told values, the best point by posterior mean, and a run rebuilt from its
 * history asking what the original would have asked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/acqopt.h"
#include "bo/bo_functions.h"
#include "bo/bo_loop.h"
#include "core/err.h"
#include "tap.h"

static double quad(const double *x) { return (x[0] - 0.3) * (x[0] - 0.3) + (x[1] - 7) * (x[1] - 7) / 100; }

static bo *make(uint64_t seed, acq_kind kind, const int *integer)
{
    static const double lo[2] = {-1, 0}, hi[2] = {1, 10};
    bo_options o;
    bo_defaults(&o, 2, lo, hi);
    o.seed = seed;
    o.init = 4;
    o.acquisition = kind;
    o.integer = integer;
    return bo_new(&o);
}

static void check_basics(void)
{
    bo *a = make(3, ACQ_EI_C, NULL), *b = make(3, ACQ_EI_C, NULL), *c = make(4, ACQ_EI_C, NULL);
    double xa[2], xb[2], xc[2], design[8];
    int same = 1, inside = 1;
    for (int i = 0; i < 4; i++) {
        bo_ask(a, xa);
        bo_ask(a, xb);
        same = same && memcmp(xa, xb, sizeof xa) == 0;
        inside = inside && xa[0] >= -1 && xa[0] <= 1 && xa[1] >= 0 && xa[1] <= 10;
        memcpy(design + 2 * i, xa, sizeof xa);
        bo_tell(a, xa, quad(xa), 0.01);
    }
    tap_ok(same, "asking twice without telling gives the same point");
    tap_ok(inside, "design points lie inside the bounds");
    int distinct = 1;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < i; k++)
            distinct = distinct && (design[2 * i] != design[2 * k] || design[2 * i + 1] != design[2 * k + 1]);
    tap_ok(distinct, "the design's points are distinct");
    bo_ask(b, xb);
    bo_ask(c, xc);
    tap_ok(memcmp(design, xb, sizeof xb) == 0 && memcmp(design, xc, sizeof xc) != 0,
           "the design depends on the seed only");
    /* model-based asks: reproducible from the same history, and never an evaluated point */
    for (int i = 0; i < 6; i++) {
        tap_ok(bo_ask(a, xa) == 0, "ask %d after the design", i + 1);
        int fresh = 1;
        for (int k = 0; k < bo_count(a); k++)
            fresh = fresh && (fabs(bo_x(a, k)[0] - xa[0]) > 1e-9 || fabs(bo_x(a, k)[1] - xa[1]) > 1e-9);
        tap_ok(fresh, "ask %d is not an evaluated point", i + 1);
        bo_tell(a, xa, quad(xa), 0.01);
    }
    /* a loop rebuilt from the history continues as the original does */
    bo *r = make(3, ACQ_EI_C, NULL);
    for (int k = 0; k < bo_count(a); k++)
        bo_tell(r, bo_x(a, k), bo_y(a, k), bo_se(a, k));
    bo_ask(a, xa);
    bo_ask(r, xb);
    tap_ok(memcmp(xa, xb, sizeof xa) == 0, "a loop rebuilt from the history asks the same next point (%.17g, %.17g)",
           xa[0], xa[1]);
    bo_best_point bp;
    tap_ok(bo_best(a, &bp) == 0, "best");
    double mu[40];
    double X[80];
    int n = bo_count(a);
    memcpy(X, bo_x(a, 0), (size_t)n * 2 * sizeof *X);
    bo_predict(a, n, X, mu, NULL);
    int lowest = 1;
    for (int k = 0; k < n; k++)
        lowest = lowest && mu[bp.index] <= mu[k];
    tap_ok(lowest && fabs(mu[bp.index] - bp.mu) < 1e-12, "the best point has the lowest posterior mean (%.4g)", bp.mu);
    tap_ok(bo_tell(a, (double[]){2, 5}, 1, 0) != 0 && strstr(err_msg(), "outside the bounds"),
           "a point outside the bounds is refused: %s", err_msg());
    tap_ok(bo_tell(a, (double[]){0, 5}, NAN, 0) != 0, "a y that is not finite is refused: %s", err_msg());
    tap_ok(bo_tell(a, (double[]){0, 5}, 1, -1) != 0, "a negative standard error is refused: %s", err_msg());
    bo_free(a);
    bo_free(b);
    bo_free(c);
    bo_free(r);
}

static void check_acquisitions(void)
{
    acq_kind kinds[] = {ACQ_EI, ACQ_EI_C, ACQ_PI, ACQ_PI_C, ACQ_NEI, ACQ_LCB};
    for (int k = 0; k < 6; k++) {
        bo *b = make(5, kinds[k], NULL);
        double x[2];
        int ok = 1;
        for (int i = 0; i < 12 && ok; i++) {
            ok = bo_ask(b, x) == 0;
            bo_tell(b, x, quad(x), i % 2 ? NAN : 0.01); /* some observations without a standard error */
        }
        bo_best_point bp;
        ok = ok && bo_best(b, &bp) == 0;
        /* the probability-of-improvement kinds exploit by design: only the others must get close */
        double tol = kinds[k] == ACQ_PI || kinds[k] == ACQ_PI_C ? 1 : 0.05;
        tap_ok(ok && quad(bo_x(b, bp.index)) < tol, "%s: 12 evaluations of a quadratic work (regret %.3g)",
               acq_name(kinds[k]), ok ? quad(bo_x(b, bp.index)) : NAN);
        double v[3], pts[6] = {0, 0, 0.3, 7, -1, 10};
        tap_ok(bo_acquisition(b, 3, pts, v) == 0 && isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]),
               "%s: acquisition values at points are finite", acq_name(kinds[k]));
        bo_free(b);
    }
}

static void check_integers(void)
{
    int integer[2] = {0, 1};
    bo *b = make(7, ACQ_EI_C, integer);
    double x[2];
    int all_int = 1;
    for (int i = 0; i < 10; i++) {
        bo_ask(b, x);
        all_int = all_int && x[1] == round(x[1]);
        bo_tell(b, x, quad(x), 0);
    }
    tap_ok(all_int, "an integer dimension is asked at integers");
    bo_tell(b, (double[]){0.5, 3.4}, 1.0, 0);
    tap_ok(bo_x(b, bo_count(b) - 1)[1] == 3, "a told integer coordinate is rounded (3.4 -> 3)");
    bo_free(b);
    /* a domain of 4 points: after 4 evaluations there is nothing left to ask */
    double lo = 0, hi = 3;
    int one = 1;
    bo_options o;
    bo_defaults(&o, 1, &lo, &hi);
    o.integer = &one;
    o.init = 10; /* a design larger than the domain: the loop must not search it forever */
    b = bo_new(&o);
    int seen[4] = {0}, ok = 1;
    for (int i = 0; i < 4 && ok; i++) {
        ok = bo_ask(b, x) == 0 && x[0] >= 0 && x[0] <= 3;
        if (ok) {
            seen[(int)x[0]]++;
            bo_tell(b, x, (x[0] - 2) * (x[0] - 2), 0);
        }
    }
    tap_ok(ok && seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1,
           "on {0, 1, 2, 3} four asks visit each point once");
    tap_ok(bo_ask(b, x) != 0 && strstr(err_msg(), "no point left"), "then asking fails: %s", err_msg());
    bo_free(b);
    o.integer = NULL;
    hi = 2.5;
    o.integer = &one;
    tap_ok(bo_new(&o) == NULL && strstr(err_msg(), "integer bounds"), "integer dimensions need integer bounds: %s",
           err_msg());
}

static void check_direct(void)
{
    const double lo[2] = {-1, 0}, hi[2] = {1, 10};
    bo_options o;
    bo_defaults(&o, 2, lo, hi);
    o.init = 4;
    o.opt.method = ACQOPT_DIRECT;
    bo *b = bo_new(&o);
    double x[2];
    int ok = 1;
    for (int i = 0; i < 10 && ok; i++) {
        ok = bo_ask(b, x) == 0;
        bo_tell(b, x, quad(x), 0.01);
    }
    bo_best_point bp;
    ok = ok && bo_best(b, &bp) == 0;
    tap_ok(ok && quad(bo_x(b, bp.index)) < 0.1, "DIRECT-L as the acquisition optimizer works (%.3g)",
           ok ? quad(bo_x(b, bp.index)) : NAN);
    bo_free(b);
}

int main(void)
{
    check_basics();
    check_acquisitions();
    check_integers();
    check_direct();
    return tap_done();
}
