#include "bo/gp_fit.h"

#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_num.h"
#include "core/blas_serial.h"
#include "core/err.h"

gp_prior gp_prior_default(void) { return (gp_prior){3.0, 6.0, 2.0, 0.15, 1.1, 0.05}; }
gp_prior gp_prior_none(void) { return (gp_prior){0, 0, 0, 0, 0, 0}; }

int gp_prior_check(const gp_prior *p)
{
    const char *names[3] = {"lengthscale", "outputscale", "noise"};
    double v[3][2] = {{p->ls_shape, p->ls_rate}, {p->os_shape, p->os_rate}, {p->noise_shape, p->noise_rate}};
    for (int k = 0; k < 3; k++) {
        double a = v[k][0], b = v[k][1];
        if (a == 0 && b == 0)
            continue;
        if (!(a > 0 && b > 0 && isfinite(a) && isfinite(b)))
            return err_set("priors.%s: a Gamma prior needs shape > 0 and rate > 0, got {%s, %s}", names[k],
                           BO_NUM(a), BO_NUM(b));
    }
    return 0;
}

void gp_fit_defaults(gp_fit_options *o)
{
    o->prior = gp_prior_default();
    o->restarts = 2;
    o->maxeval = 200;
    o->ftol_rel = 1e-9;
}

/* log Gamma(v; a, b) for v = exp(t), and d/dt of it */
static double log_gamma_pdf(double a, double b, double t, double *dt)
{
    double v = exp(t);
    *dt = (a - 1) - b * v;
    return a * log(b) - lgamma(a) + (a - 1) * t - b * v;
}

double gp_log_prior(const gp *g, const gp_prior *p, const double *theta, double *grad)
{
    int np = gp_nparams(g), d = g->d;
    double lp = 0, dt;
    if (grad)
        memset(grad, 0, (size_t)np * sizeof *grad);
    if (p->ls_shape > 0)
        for (int j = 0; j < d; j++) {
            lp += log_gamma_pdf(p->ls_shape, p->ls_rate, theta[1 + j], &dt);
            if (grad)
                grad[1 + j] = dt;
        }
    if (p->os_shape > 0) {
        lp += log_gamma_pdf(p->os_shape, p->os_rate, theta[1 + d], &dt);
        if (grad)
            grad[1 + d] = dt;
    }
    if (g->learn_noise && p->noise_shape > 0) {
        lp += log_gamma_pdf(p->noise_shape, p->noise_rate, theta[2 + d], &dt);
        if (grad)
            grad[2 + d] = dt;
    }
    return lp;
}

typedef struct fit_ctx {
    gp *g;
    const gp_prior *prior;
    double *pgrad;
    int failed;
} fit_ctx;

/* NLopt minimizes the negative log posterior. */
static double objective(unsigned np, const double *theta, double *grad, void *data)
{
    fit_ctx *c = data;
    gp_set_theta(c->g, theta);
    if (gp_update(c->g) != 0 || (grad && gp_lml_grad(c->g, grad) != 0)) {
        c->failed++;
        if (grad)
            memset(grad, 0, np * sizeof *grad);
        return HUGE_VAL;
    }
    double lp = gp_log_prior(c->g, c->prior, theta, grad ? c->pgrad : NULL);
    if (grad)
        for (unsigned i = 0; i < np; i++)
            grad[i] = -(grad[i] + c->pgrad[i]);
    return -(c->g->lml + lp);
}

/* One local optimization from x (in place); returns the negative log posterior reached. */
static double run_start(gp *g, const gp_fit_options *o, const double *lb, const double *ub, double *x)
{
    int np = gp_nparams(g);
    double *pgrad = malloc((size_t)np * sizeof *pgrad), f = HUGE_VAL;
    nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)np);
    if (pgrad && opt) {
        fit_ctx ctx = {g, &o->prior, pgrad, 0};
        nlopt_set_min_objective(opt, objective, &ctx);
        nlopt_set_lower_bounds(opt, lb);
        nlopt_set_upper_bounds(opt, ub);
        nlopt_set_ftol_rel(opt, o->ftol_rel);
        nlopt_set_maxeval(opt, o->maxeval);
        nlopt_optimize(opt, x, &f); /* a start that stops early (roundoff, maxeval) still gives a point */
    }
    if (opt)
        nlopt_destroy(opt);
    free(pgrad);
    return f;
}

/* The data's scales, which the bounds and the starts are relative to: the mean and variance of y,
 * and the span of the inputs in each dimension. */
typedef struct scales {
    double ymean, yvar;
    double *span; /* d */
} scales;

static void data_scales(const gp *g, scales *sc)
{
    int n = g->n, d = g->d;
    double ymean = 0, yvar = 0;
    for (int i = 0; i < n; i++)
        ymean += g->y[i];
    ymean /= n;
    for (int i = 0; i < n; i++)
        yvar += (g->y[i] - ymean) * (g->y[i] - ymean);
    yvar = n > 1 ? yvar / (n - 1) : 0;
    if (!(yvar > 0))
        yvar = ymean != 0 ? ymean * ymean : 1.0;
    sc->ymean = ymean;
    sc->yvar = yvar;
    for (int j = 0; j < d; j++) {
        double lo = g->X[j], hi = g->X[j];
        for (int i = 1; i < n; i++) {
            double v = g->X[(size_t)i * d + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        sc->span[j] = hi > lo ? hi - lo : 1.0;
    }
}

/* The box of the log-parameters: lengthscales within 1e-3..1e3 of the spans, the outputscale within
 * 1e-6..1e6 of y's variance, a learned noise within 1e-9..10 of it; the mean is free. */
static void theta_bounds(const gp *g, const scales *sc, double *lb, double *ub)
{
    int d = g->d;
    lb[0] = -HUGE_VAL;
    ub[0] = HUGE_VAL;
    for (int j = 0; j < d; j++) {
        lb[1 + j] = log(1e-3 * sc->span[j]);
        ub[1 + j] = log(1e3 * sc->span[j]);
    }
    lb[1 + d] = log(1e-6 * sc->yvar);
    ub[1 + d] = log(1e6 * sc->yvar);
    if (g->learn_noise) {
        lb[2 + d] = log(1e-9 * sc->yvar);
        ub[2 + d] = log(10 * sc->yvar);
    }
}

/* The first start: the GP's current hyperparameters, or data-driven ones (the lengthscale prior's
 * mode, y's mean and variance). */
static void first_start(const gp *g, const gp_fit_options *o, const scales *sc, int from_current, double *x)
{
    int d = g->d;
    if (from_current) {
        gp_get_theta(g, x);
        if (g->learn_noise && !(g->noise_level > 0))
            x[2 + d] = log(1e-2 * sc->yvar);
        return;
    }
    x[0] = sc->ymean;
    for (int j = 0; j < d; j++) {
        const gp_prior *p = &o->prior;
        double mode = p->ls_shape > 1 ? (p->ls_shape - 1) / p->ls_rate : 0.5 * sc->span[j];
        x[1 + j] = log(mode);
    }
    x[1 + d] = log(sc->yvar);
    if (g->learn_noise)
        x[2 + d] = log(1e-2 * sc->yvar);
}

/* A random start around the data's scales. */
static void random_start(const gp *g, const scales *sc, rng *r, double *x)
{
    int d = g->d;
    x[0] = sc->ymean + 0.5 * sqrt(sc->yvar) * rng_normal(r);
    for (int j = 0; j < d; j++)
        x[1 + j] = log(sc->span[j]) + log(0.05) + rng_uniform(r) * log(40.0);
    x[1 + d] = log(sc->yvar) + 4 * rng_uniform(r) - 2;
    if (g->learn_noise)
        x[2 + d] = log(sc->yvar) + log(1e-4) + rng_uniform(r) * log(5e3);
}

static int fit(gp *g, const gp_fit_options *o, rng *r, int from_current, double *log_post)
{
    int d = g->d, np = gp_nparams(g), S = o->restarts + 1;
    /* every start is drawn first, in order, so that the draws do not depend on how the starts end */
    double *buf = calloc((size_t)np * (3 + (size_t)S) + (size_t)S + (size_t)d, sizeof *buf);
    if (!buf)
        return err_set("out of memory fitting a GP");
    double *lb = buf, *ub = lb + np, *best = ub + np, *xs = best + np, *fs = xs + (size_t)S * np;
    scales sc = {.span = fs + S};
    data_scales(g, &sc);
    theta_bounds(g, &sc, lb, ub);
    for (int s = 0; s < S; s++) {
        double *x = xs + (size_t)s * np;
        if (s == 0)
            first_start(g, o, &sc, from_current, x);
        else
            random_start(g, &sc, r, x);
        for (int i = 0; i < np; i++)
            x[i] = x[i] < lb[i] ? lb[i] : x[i] > ub[i] ? ub[i] : x[i];
    }
    gp_cache_pairs(g); /* optional: a fit without the cache is only slower */
    /* (running the starts on parallel threads was measured slower on the shared 2-core machine) */
    double best_f = HUGE_VAL;
    for (int s = 0; s < S; s++) {
        fs[s] = run_start(g, o, lb, ub, xs + (size_t)s * np);
        if (fs[s] < best_f && isfinite(fs[s])) {
            best_f = fs[s];
            memcpy(best, xs + (size_t)s * np, (size_t)np * sizeof *best);
        }
    }
    int rc = -1;
    if (!isfinite(best_f)) {
        err_set("GP fit failed: no start gave a finite marginal likelihood");
    } else {
        gp_set_theta(g, best);
        rc = gp_update(g);
        if (rc == 0 && log_post)
            *log_post = g->lml + gp_log_prior(g, &o->prior, best, NULL);
    }
    free(buf);
    return rc;
}

int gp_fit(gp *g, const gp_fit_options *o, rng *r, int from_current, double *log_post)
{
    if (o->restarts < 0 || o->maxeval < 1)
        return err_set("a GP fit needs restarts >= 0 and maxeval >= 1, got %d and %d", o->restarts, o->maxeval);
    if (gp_prior_check(&o->prior) != 0)
        return -1;
    int threads = blas_serial_begin();
    int rc = fit(g, o, r, from_current, log_post);
    blas_serial_end(threads);
    return rc;
}
