#include "bo/bo_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_qmc.h"
#include "core/blas_serial.h"
#include "core/err.h"
#include "core/rng.h"

/* sub-streams of the seed: one for the design, and per ask (after n evaluations) three more */
enum { STREAM_DESIGN = 0x64657369, STREAM_FIT = 1, STREAM_ACQ = 2, STREAM_ACQOPT = 3 };

struct bo {
    bo_options o;
    double *lower, *upper;
    int *levels; /* integer dimensions: number of steps between the bounds; 0 continuous */
    int n, cap;
    double *X, *U, *y, *se; /* caller units, unit cube, observations, standard errors (NaN unknown) */
    gp *model;
    int model_n;
    double ymean, ysd;
    double last_acq;
};

void bo_defaults(bo_options *o, int d, const double *lower, const double *upper)
{
    memset(o, 0, sizeof *o);
    o->d = d;
    o->lower = lower;
    o->upper = upper;
    o->init = 0;
    o->acquisition = ACQ_EI_C;
    acq_defaults(&o->acq);
    o->kernel = GP_MATERN52;
    gp_fit_defaults(&o->fit);
    acqopt_defaults(&o->opt);
    o->learn_noise = -1;
    o->seed = 1;
}

bo *bo_new(const bo_options *o)
{
    int d = o->d;
    if (d < 1 || d > 10000) {
        err_set("the number of dimensions must be between 1 and 10000, got %d", d);
        return NULL;
    }
    for (int j = 0; j < d; j++) {
        if (!isfinite(o->lower[j]) || !isfinite(o->upper[j]) || !(o->lower[j] < o->upper[j])) {
            err_set("bounds %d: need finite lower < upper, got [%g, %g]", j + 1, o->lower[j], o->upper[j]);
            return NULL;
        }
        if (o->integer && o->integer[j] && (o->lower[j] != floor(o->lower[j]) || o->upper[j] != floor(o->upper[j]))) {
            err_set("bounds %d: an integer dimension needs integer bounds, got [%g, %g]", j + 1, o->lower[j],
                    o->upper[j]);
            return NULL;
        }
    }
    bo *b = calloc(1, sizeof *b);
    if (!b) {
        err_set("out of memory");
        return NULL;
    }
    b->o = *o;
    b->lower = malloc((size_t)d * sizeof *b->lower);
    b->upper = malloc((size_t)d * sizeof *b->upper);
    b->levels = calloc((size_t)d, sizeof *b->levels);
    if (!b->lower || !b->upper || !b->levels) {
        bo_free(b);
        err_set("out of memory");
        return NULL;
    }
    memcpy(b->lower, o->lower, (size_t)d * sizeof *b->lower);
    memcpy(b->upper, o->upper, (size_t)d * sizeof *b->upper);
    for (int j = 0; j < d; j++)
        if (o->integer && o->integer[j])
            b->levels[j] = (int)(o->upper[j] - o->lower[j]);
    b->o.lower = b->lower;
    b->o.upper = b->upper;
    b->o.integer = NULL;
    if (b->o.init <= 0)
        b->o.init = 3 * d < 30 ? 3 * d : 30;
    b->last_acq = NAN;
    return b;
}

void bo_free(bo *b)
{
    if (!b)
        return;
    free(b->lower);
    free(b->upper);
    free(b->levels);
    free(b->X);
    free(b->U);
    free(b->y);
    free(b->se);
    gp_free(b->model);
    free(b);
}

int bo_count(const bo *b) { return b->n; }
int bo_dim(const bo *b) { return b->o.d; }
int bo_init_count(const bo *b) { return b->o.init; }
const double *bo_x(const bo *b, int i) { return b->X + (size_t)i * b->o.d; }
double bo_y(const bo *b, int i) { return b->y[i]; }
double bo_se(const bo *b, int i) { return b->se[i]; }
double bo_last_acquisition(const bo *b) { return b->last_acq; }

/* caller units -> unit cube, integer dimensions rounded */
static void to_unit(const bo *b, const double *x, double *u)
{
    for (int j = 0; j < b->o.d; j++) {
        double v = (x[j] - b->lower[j]) / (b->upper[j] - b->lower[j]);
        u[j] = v;
    }
    acqopt_round(b->o.d, b->levels, u);
}

static void from_unit(const bo *b, const double *u, double *x)
{
    for (int j = 0; j < b->o.d; j++) {
        double v = u[j] < 0 ? 0 : u[j] > 1 ? 1 : u[j];
        if (b->levels[j] > 0)
            x[j] = b->lower[j] + round(v * b->levels[j]);
        else
            x[j] = b->lower[j] + v * (b->upper[j] - b->lower[j]);
        if (x[j] > b->upper[j])
            x[j] = b->upper[j];
    }
}

int bo_tell(bo *b, const double *x, double y, double se)
{
    int d = b->o.d;
    if (!isfinite(y))
        return err_set("the observation must be a finite number, got %g", y);
    if (isfinite(se) && se < 0)
        return err_set("the standard error must be >= 0, got %g", se);
    for (int j = 0; j < d; j++) {
        double slack = 1e-9 * (b->upper[j] - b->lower[j]);
        if (!(x[j] >= b->lower[j] - slack && x[j] <= b->upper[j] + slack))
            return err_set("coordinate %d = %g is outside the bounds [%g, %g]", j + 1, x[j], b->lower[j],
                           b->upper[j]);
    }
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 32;
        double *X = realloc(b->X, (size_t)cap * d * sizeof *X);
        if (X)
            b->X = X;
        double *U = realloc(b->U, (size_t)cap * d * sizeof *U);
        if (U)
            b->U = U;
        double *Y = realloc(b->y, (size_t)cap * sizeof *Y);
        if (Y)
            b->y = Y;
        double *S = realloc(b->se, (size_t)cap * sizeof *S);
        if (S)
            b->se = S;
        if (!X || !U || !Y || !S)
            return err_set("out of memory recording evaluation %d", b->n + 1);
        b->cap = cap;
    }
    double *u = b->U + (size_t)b->n * d;
    to_unit(b, x, u);
    from_unit(b, u, b->X + (size_t)b->n * d); /* rounds integer coordinates, keeps the rest */
    for (int j = 0; j < d; j++)
        if (b->levels[j] == 0)
            b->X[(size_t)b->n * d + j] = x[j] < b->lower[j] ? b->lower[j] : x[j] > b->upper[j] ? b->upper[j] : x[j];
    b->y[b->n] = y;
    b->se[b->n] = isfinite(se) ? se : NAN;
    b->n++;
    return 0;
}

/* The GP of the current history (unit cube, standardized y), fitted once per history length. */
static int model_fit(bo *b);

static int model(bo *b)
{
    if (b->model && b->model_n == b->n)
        return 0;
    int threads = blas_serial_begin();
    int rc = model_fit(b);
    blas_serial_end(threads);
    return rc;
}

static int model_fit(bo *b)
{
    int n = b->n, d = b->o.d;
    if (b->model && b->model_n == n)
        return 0;
    if (n == 0)
        return err_set("no evaluation yet");
    gp_free(b->model);
    b->model = NULL;
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += b->y[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (b->y[i] - mean) * (b->y[i] - mean);
    double sd = n > 1 ? sqrt(var / (n - 1)) : 0;
    if (!(sd > 0) || !isfinite(sd))
        sd = fabs(mean) > 0 ? fabs(mean) : 1.0;
    b->ymean = mean;
    b->ysd = sd;
    double *ys = malloc((size_t)n * sizeof *ys), *noise = malloc((size_t)n * sizeof *noise);
    if (!ys || !noise) {
        free(ys);
        free(noise);
        return err_set("out of memory");
    }
    int unknown = 0;
    for (int i = 0; i < n; i++) {
        ys[i] = (b->y[i] - mean) / sd;
        noise[i] = isnan(b->se[i]) ? 0 : (b->se[i] / sd) * (b->se[i] / sd);
        unknown += isnan(b->se[i]);
    }
    gp *g = gp_new(n, d, b->U, ys, noise, b->o.kernel);
    free(ys);
    free(noise);
    if (!g)
        return -1;
    g->learn_noise = b->o.learn_noise > 0 || (b->o.learn_noise < 0 && unknown > 0);
    rng *r = rng_new(rng_derive_seed(rng_derive_seed(b->o.seed, (uint64_t)n), STREAM_FIT));
    int rc = r ? gp_fit(g, &b->o.fit, r, 0, NULL) : -1;
    rng_free(r);
    if (rc != 0) {
        gp_free(g);
        return err_prefix("fitting the GP to %d evaluations", n);
    }
    b->model = g;
    b->model_n = n;
    return 0;
}

static int is_evaluated(const bo *b, const double *u)
{
    int d = b->o.d;
    for (int i = 0; i < b->n; i++) {
        const double *p = b->U + (size_t)i * d;
        double m = 0;
        for (int j = 0; j < d; j++)
            m = fmax(m, fabs(u[j] - p[j]));
        if (m < b->o.opt.min_distance)
            return 1;
    }
    return 0;
}

int bo_ask(bo *b, double *x)
{
    int d = b->o.d, n = b->n;
    double *u = malloc((size_t)d * sizeof *u);
    if (!u)
        return err_set("out of memory");
    int rc = -1, threads = blas_serial_begin();
    b->last_acq = NAN;
    int design = n < b->o.init || n == 0;
    if (design) {
        /* the design: Sobol points n, n+1, ... (randomized by the seed), skipping evaluated ones */
        bo_qmc *q = bo_qmc_new(d, rng_derive_seed(b->o.seed, STREAM_DESIGN));
        if (!q)
            goto done;
        for (int k = 0; k < n; k++)
            bo_qmc_next(q, u);
        design = 0;
        for (int k = 0; k < 10000 && !design; k++) {
            bo_qmc_next(q, u);
            acqopt_round(d, b->levels, u);
            design = !is_evaluated(b, u);
        }
        bo_qmc_free(q);
        if (!design && n == 0) {
            err_set("no design point found");
            goto done;
        }
        rc = design ? 0 : -1; /* no fresh design point (a small integer domain): ask the model */
    }
    if (!design) {
        if (model(b) != 0)
            goto done;
        uint64_t s = rng_derive_seed(b->o.seed, (uint64_t)n);
        acq *a = acq_new(b->model, b->o.acquisition, &b->o.acq, rng_derive_seed(s, STREAM_ACQ));
        if (!a)
            goto done;
        rc = acqopt_maximize(a, d, b->levels, b->U, n, &b->o.opt, rng_derive_seed(s, STREAM_ACQOPT), u,
                             &b->last_acq);
        acq_free(a);
        if (rc != 0)
            goto done;
    }
    from_unit(b, u, x);
done:
    blas_serial_end(threads);
    free(u);
    return rc;
}

int bo_best(bo *b, bo_best_point *out)
{
    if (model(b) != 0)
        return -1;
    int n = b->n;
    double *mu = malloc((size_t)n * sizeof *mu), *var = malloc((size_t)n * sizeof *var);
    if (!mu || !var) {
        free(mu);
        free(var);
        return err_set("out of memory");
    }
    int rc = gp_predict(b->model, n, b->U, mu, var, NULL);
    if (rc == 0) {
        int k = 0;
        for (int i = 1; i < n; i++)
            if (mu[i] < mu[k])
                k = i;
        out->index = k;
        out->mu = b->ymean + b->ysd * mu[k];
        out->sd = b->ysd * sqrt(var[k]);
    }
    free(mu);
    free(var);
    return rc;
}

static double *points_to_unit(const bo *b, int m, const double *X)
{
    double *U = malloc((size_t)(m > 0 ? m : 1) * b->o.d * sizeof *U);
    if (!U) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < m; i++)
        to_unit(b, X + (size_t)i * b->o.d, U + (size_t)i * b->o.d);
    return U;
}

int bo_predict(bo *b, int m, const double *X, double *mu, double *var)
{
    if (model(b) != 0)
        return -1;
    double *U = points_to_unit(b, m, X);
    if (!U)
        return -1;
    int rc = gp_predict(b->model, m, U, mu, var, NULL);
    for (int i = 0; rc == 0 && i < m; i++) {
        if (mu)
            mu[i] = b->ymean + b->ysd * mu[i];
        if (var)
            var[i] *= b->ysd * b->ysd;
    }
    free(U);
    return rc;
}

int bo_acquisition(bo *b, int m, const double *X, double *values)
{
    if (model(b) != 0)
        return -1;
    double *U = points_to_unit(b, m, X);
    if (!U)
        return -1;
    acq *a = acq_new(b->model, b->o.acquisition, &b->o.acq,
                     rng_derive_seed(rng_derive_seed(b->o.seed, (uint64_t)b->n), STREAM_ACQ));
    if (!a) {
        free(U);
        return -1;
    }
    acq_kind k = b->o.acquisition;
    for (int i = 0; i < m; i++) {
        double v = acq_eval(a, U + (size_t)i * b->o.d, NULL);
        if (k == ACQ_LCB)
            values[i] = b->ymean - b->ysd * v;
        else if (k == ACQ_PI || k == ACQ_PI_C)
            values[i] = exp(v);
        else
            values[i] = b->ysd * exp(v);
    }
    acq_free(a);
    free(U);
    return 0;
}

const gp *bo_model(bo *b) { return model(b) == 0 ? b->model : NULL; }

void bo_y_scale(const bo *b, double *mean, double *sd)
{
    *mean = b->ymean;
    *sd = b->ysd;
}
