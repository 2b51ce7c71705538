#include "bo/bo_space.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/acqopt.h"
#include "bo/bo_num.h"
#include "core/err.h"

int bo_space_init(bo_space *s, int d, const double *lower, const double *upper, const int *integer)
{
    memset(s, 0, sizeof *s);
    if (d < 1 || d > 10000)
        return err_set("the number of dimensions must be between 1 and 10000, got %d", d);
    for (int j = 0; j < d; j++) {
        double lo = lower[j], hi = upper[j];
        if (!isfinite(lo) || !isfinite(hi))
            return err_set("bounds %d: lower and upper must be finite numbers, got [%s, %s]", j + 1, BO_NUM(lo),
                           BO_NUM(hi));
        if (!(lo < hi))
            return err_set("bounds %d: lower %g is not below upper %g", j + 1, lo, hi);
        if (!integer || !integer[j])
            continue;
        if (lo != floor(lo) || hi != floor(hi))
            return err_set("bounds %d: an integer dimension needs integer bounds, got [%g, %g]", j + 1, lo, hi);
        /* the grid is counted in int: wider bounds would overflow it and give non-integer points */
        if (lo < -INT_MAX || hi > INT_MAX)
            return err_set("bounds %d: an integer dimension needs bounds within ±%d, got [%.17g, %.17g]", j + 1,
                           INT_MAX, lo, hi);
        if (hi - lo > INT_MAX)
            return err_set("bounds %d: an integer dimension spans at most %d values after the lower one, got "
                           "[%.17g, %.17g]", j + 1, INT_MAX, lo, hi);
    }
    s->d = d;
    s->lower = malloc((size_t)d * sizeof *s->lower);
    s->upper = malloc((size_t)d * sizeof *s->upper);
    s->levels = calloc((size_t)d, sizeof *s->levels);
    if (!s->lower || !s->upper || !s->levels) {
        bo_space_free(s);
        return err_set("out of memory");
    }
    memcpy(s->lower, lower, (size_t)d * sizeof *lower);
    memcpy(s->upper, upper, (size_t)d * sizeof *upper);
    for (int j = 0; j < d; j++)
        if (integer && integer[j])
            s->levels[j] = (int)(upper[j] - lower[j]);
    return 0;
}

void bo_space_free(bo_space *s)
{
    free(s->lower);
    free(s->upper);
    free(s->levels);
    memset(s, 0, sizeof *s);
}

int bo_space_check(const bo_space *s, const double *x)
{
    for (int j = 0; j < s->d; j++) {
        double slack = 1e-9 * (s->upper[j] - s->lower[j]);
        if (!(x[j] >= s->lower[j] - slack && x[j] <= s->upper[j] + slack))
            return err_set("coordinate %d = %s is outside the bounds [%g, %g]", j + 1, BO_NUM(x[j]), s->lower[j],
                           s->upper[j]);
    }
    return 0;
}

void bo_space_to_unit(const bo_space *s, const double *x, double *u)
{
    for (int j = 0; j < s->d; j++)
        u[j] = (x[j] - s->lower[j]) / (s->upper[j] - s->lower[j]);
    acqopt_round(s->d, s->levels, u);
}

void bo_space_from_unit(const bo_space *s, const double *u, double *x)
{
    for (int j = 0; j < s->d; j++) {
        double v = u[j] < 0 ? 0 : u[j] > 1 ? 1 : u[j];
        if (s->levels[j] > 0)
            x[j] = s->lower[j] + round(v * s->levels[j]);
        else
            x[j] = s->lower[j] + v * (s->upper[j] - s->lower[j]);
        if (x[j] > s->upper[j])
            x[j] = s->upper[j];
    }
}

void bo_space_snap(const bo_space *s, const double *x, double *out)
{
    for (int j = 0; j < s->d; j++) {
        double lo = s->lower[j], hi = s->upper[j];
        if (s->levels[j] > 0) { /* through the unit grid, as the loop has always recorded them */
            double v = (x[j] - lo) / (hi - lo);
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            v = round(v * s->levels[j]) / s->levels[j];
            double r = lo + round(v * s->levels[j]);
            out[j] = r > hi ? hi : r;
        } else {
            out[j] = x[j] < lo ? lo : x[j] > hi ? hi : x[j];
        }
    }
}

void bo_space_from_uniform(const bo_space *s, const double *u, double *x)
{
    for (int j = 0; j < s->d; j++) {
        double lo = s->lower[j], hi = s->upper[j];
        if (s->levels[j] > 0) {
            double k = floor(u[j] * (s->levels[j] + 1.0));
            x[j] = lo + (k > s->levels[j] ? s->levels[j] : k < 0 ? 0 : k);
        } else {
            double v = lo + u[j] * (hi - lo);
            x[j] = v > hi ? hi : v;
        }
    }
}
