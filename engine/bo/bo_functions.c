#include "bo/bo_functions.h"

#include <math.h>
#include <string.h>

#include "bo/bo_num.h"
#include "core/err.h"
#include "core/rng.h"

/* sinone: 0.5 sin(13x) sin(27x) + 0.5 on [0, 1] */
static double sinone(int d, const double *x)
{
    (void)d;
    return 0.5 * sin(13 * x[0]) * sin(27 * x[0]) + 0.5;
}
static void sinone_bounds(int d, double *lo, double *hi) { (void)d, lo[0] = 0, hi[0] = 1; }
static void sinone_argmin(int d, double *x) { (void)d, x[0] = 0.6330132; }

static double branin(int d, const double *x)
{
    (void)d;
    double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
    double u = x[1] - b * x[0] * x[0] + c * x[0] - 6;
    return u * u + 10 * (1 - t) * cos(x[0]) + 10;
}
static void branin_bounds(int d, double *lo, double *hi) { (void)d, lo[0] = -5, hi[0] = 10, lo[1] = 0, hi[1] = 15; }
static void branin_argmin(int d, double *x) { (void)d, x[0] = M_PI, x[1] = 2.275; }

static double hartmann6(int d, const double *x)
{
    (void)d;
    static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                   {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8},
                                   {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                   {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                   {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                   {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
    double s = 0;
    for (int i = 0; i < 4; i++) {
        double e = 0;
        for (int j = 0; j < 6; j++)
            e += A[i][j] * (x[j] - P[i][j]) * (x[j] - P[i][j]);
        s += alpha[i] * exp(-e);
    }
    return -s;
}
static void unit_bounds(int d, double *lo, double *hi)
{
    for (int j = 0; j < d; j++)
        lo[j] = 0, hi[j] = 1;
}
static void hartmann6_argmin(int d, double *x)
{
    (void)d;
    static const double m[6] = {0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054};
    memcpy(x, m, sizeof m);
}

/* Levy: w = 1 + (x - 1)/4 */
static double levy(int d, const double *x)
{
    double w1 = 1 + (x[0] - 1) / 4, wd = 1 + (x[d - 1] - 1) / 4;
    double s = sin(M_PI * w1) * sin(M_PI * w1);
    for (int i = 0; i < d - 1; i++) {
        double w = 1 + (x[i] - 1) / 4, t = sin(M_PI * w + 1);
        s += (w - 1) * (w - 1) * (1 + 10 * t * t);
    }
    double t = sin(2 * M_PI * wd);
    return s + (wd - 1) * (wd - 1) * (1 + t * t);
}
static void levy_bounds(int d, double *lo, double *hi)
{
    for (int j = 0; j < d; j++)
        lo[j] = -10, hi[j] = 10;
}
static void levy_argmin(int d, double *x)
{
    for (int j = 0; j < d; j++)
        x[j] = 1;
}

static double ackley(int d, const double *x)
{
    double s2 = 0, sc = 0;
    for (int j = 0; j < d; j++) {
        s2 += x[j] * x[j];
        sc += cos(2 * M_PI * x[j]);
    }
    return -20 * exp(-0.2 * sqrt(s2 / d)) - exp(sc / d) + 20 + M_E;
}
static void ackley_bounds(int d, double *lo, double *hi)
{
    for (int j = 0; j < d; j++)
        lo[j] = -32.768, hi[j] = 32.768;
}
static void ackley_argmin(int d, double *x)
{
    for (int j = 0; j < d; j++)
        x[j] = 0;
}

static const bo_function functions[] = {
    {"sinone", 1, 0.0429263424338, sinone, sinone_bounds, sinone_argmin},
    {"branin", 2, 0.397887357729738, branin, branin_bounds, branin_argmin},
    {"hartmann6", 6, -3.32236801141551, hartmann6, unit_bounds, hartmann6_argmin},
    {"levy", 0, 0.0, levy, levy_bounds, levy_argmin},
    {"ackley", 0, 0.0, ackley, ackley_bounds, ackley_argmin},
    {NULL, 0, 0, NULL, NULL, NULL},
};

const bo_function *bo_function_list(void) { return functions; }

const bo_function *bo_function_find(const char *name)
{
    for (const bo_function *f = functions; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    err_set("unknown test function '%s' (known: sinone, branin, hartmann6, levy, ackley)", name);
    return NULL;
}

int bo_function_eval(const bo_function *f, int d, const double *x, double sigma, uint64_t seed, double *y)
{
    if (!(sigma >= 0 && isfinite(sigma)))
        return err_set("the noise standard deviation must be a finite number >= 0, got %s", BO_NUM(sigma));
    *y = f->f(d, x);
    if (sigma > 0) {
        rng *r = rng_new(rng_derive_seed(seed, 0x6e6f697365ULL));
        if (!r)
            return -1;
        *y += sigma * rng_normal(r);
        rng_free(r);
    }
    return 0;
}
