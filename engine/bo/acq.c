#include "bo/acq.h"

#include <cblas.h>
#include <gsl/gsl_sf_erf.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_qmc.h"
#include "bo/bo_num.h"
#include "core/blas_serial.h"
#include "core/err.h"

static const char *const names[] = {"ei", "ei_c", "pi", "pi_c", "nei", "lcb"};

int acq_parse(const char *name, acq_kind *out)
{
    for (int i = 0; i < 6; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (acq_kind)i;
            return 0;
        }
    return err_set("unknown acquisition '%s' (known: ei, ei_c, pi, pi_c, nei, lcb)", name);
}

const char *acq_name(acq_kind kind) { return (unsigned)kind < 6 ? names[kind] : "?"; }

int acq_is_log(acq_kind kind) { return kind != ACQ_LCB; }

void acq_defaults(acq_options *o)
{
    o->kappa = 2.0;
    o->nei_samples = 128;
}

int acq_options_check(const acq_options *o)
{
    if (!(o->kappa >= 0 && isfinite(o->kappa)))
        return err_set("'kappa' must be a finite number >= 0, got %s", BO_NUM(o->kappa));
    if (o->nei_samples < 1)
        return err_set("'samples' must be >= 1, got %d", o->nei_samples);
    return 0;
}

static const double LOG_SQRT_2PI = 0.91893853320467274178;

double acq_log_h(double u, double *phi_over_h, double *Phi_over_h)
{
    double r1, q; /* r1 = h / phi, q = Phi / phi */
    if (u > -1) {
        /* no cancellation worth the name: phi + u Phi >= 0.083 phi-units here */
        double phi = exp(-0.5 * u * u - LOG_SQRT_2PI), Phi = 0.5 * erfc(-u / M_SQRT2), h = phi + u * Phi;
        if (phi_over_h)
            *phi_over_h = phi / h;
        if (Phi_over_h)
            *Phi_over_h = Phi / h;
        return log(h);
    }
    double t = -u;
    if (t < 30) {
        /* q = Phi(u) / phi(u) = sqrt(pi/2) erfc(t/sqrt2) exp(t^2/2), with t^2/2 split into hi + lo so that
         * exp sees no rounded argument; h / phi = 1 - t q loses ~log10(t^2) digits */
        double hi = 0.5 * t * t, lo = 0.5 * fma(t, t, -2 * hi);
        q = 1.2533141373155002512 * erfc(t / M_SQRT2) * exp(hi) * (1 + lo);
        r1 = 1.0 - t * q;
    } else if (t < 40) {
        q = 1.0 / gsl_sf_hazard(t); /* past libm's erfc range */
        r1 = 1.0 - t * q;
    } else {
        /* asymptotic Mills-ratio series, its truncation error below 1e-12 relative for t >= 40 */
        double s = 1.0 / (t * t);
        q = (1.0 - s * (1.0 - s * (3.0 - s * (15.0 - s * 105.0)))) / t;
        r1 = s * (1.0 - s * (3.0 - s * (15.0 - s * (105.0 - s * 945.0))));
    }
    if (phi_over_h)
        *phi_over_h = 1.0 / r1;
    if (Phi_over_h)
        *Phi_over_h = q / r1;
    return -0.5 * u * u - LOG_SQRT_2PI + log(r1);
}

double acq_log_Phi(double u, double *dlog)
{
    if (dlog)
        *dlog = gsl_sf_hazard(-u); /* phi(u) / Phi(u) */
    if (u > 0)
        return log1p(-0.5 * erfc(u / M_SQRT2));
    return gsl_sf_log_erfc(-u / M_SQRT2) - M_LN2;
}

struct acq {
    const gp *g;
    acq_kind kind;
    acq_options o;
    int n, d, inc;
    double best_mu, var_floor;
    gp_point p, r;
    double var_r;
    /* noisy EI: a noise-free GP on the evaluated points, and its weights for each posterior sample */
    gp *cg;
    int M;
    double *A, *best_m, *mus, *logs, *c, *Ac;
    double *dcov; /* scratch for EI_C and PI_C */
};

void acq_free(acq *a)
{
    if (!a)
        return;
    gp_point_free(&a->p);
    gp_point_free(&a->r);
    gp_free(a->cg);
    free(a->A);
    free(a->best_m);
    free(a->mus);
    free(a->logs);
    free(a->c);
    free(a->Ac);
    free(a->dcov);
    free(a);
}

/* Cholesky of a symmetric matrix with a jitter ladder (in place, lower triangle). */
static int chol_jitter(int n, double *S, double floor_scale)
{
    double *copy = malloc((size_t)n * n * sizeof *copy);
    if (!copy)
        return err_set("out of memory");
    memcpy(copy, S, (size_t)n * n * sizeof *copy);
    double scale = 0;
    for (int i = 0; i < n; i++)
        scale += S[i + (size_t)i * n];
    scale = fmax(scale / n, floor_scale);
    int ok = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, S, n) == 0;
    for (double rel = 1e-10; !ok && rel <= 1.0; rel *= 10) {
        memcpy(S, copy, (size_t)n * n * sizeof *copy);
        for (int i = 0; i < n; i++)
            S[i + (size_t)i * n] += rel * scale;
        ok = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, S, n) == 0;
    }
    free(copy);
    return ok ? 0 : err_set("the posterior covariance at the evaluated points is not positive definite");
}

/* Noisy EI: M joint samples of f at the evaluated points; EI of a noise-free GP conditioned on each. */
static int nei_prepare(acq *a, uint64_t seed)
{
    const gp *g = a->g;
    int n = a->n, M = a->o.nei_samples;
    a->M = M;
    double *mu = malloc((size_t)n * sizeof *mu), *S = malloc((size_t)n * n * sizeof *S);
    double *Z = malloc((size_t)n * M * sizeof *Z);
    a->A = malloc((size_t)n * M * sizeof *a->A);
    a->best_m = malloc((size_t)M * sizeof *a->best_m);
    a->mus = malloc((size_t)M * sizeof *a->mus);
    a->logs = malloc((size_t)M * sizeof *a->logs);
    a->c = malloc((size_t)M * sizeof *a->c);
    a->Ac = malloc((size_t)n * sizeof *a->Ac);
    int rc = -1;
    if (!mu || !S || !Z || !a->A || !a->best_m || !a->mus || !a->logs || !a->c || !a->Ac) {
        err_set("out of memory preparing noisy EI");
        goto done;
    }
    if (gp_predict(g, n, g->X, mu, NULL, S) != 0 || chol_jitter(n, S, 1e-12 * g->outputscale) != 0)
        goto done;
    /* F = mu + L z, one sample per column (Z is n x M column-major: sample m is column m) */
    if (bo_qmc_normal(n, M, seed, Z) != 0)
        goto done;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            S[i + (size_t)j * n] = 0; /* dtrmm reads the lower triangle only, but keep it clean */
    cblas_dtrmm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, M, 1.0, S, n, Z, n);
    for (int m = 0; m < M; m++) {
        double b = HUGE_VAL;
        for (int i = 0; i < n; i++) {
            double f = mu[i] + Z[i + (size_t)m * n];
            Z[i + (size_t)m * n] = f - g->mean;
            b = f < b ? f : b;
        }
        a->best_m[m] = b;
    }
    a->cg = gp_new(n, a->d, g->X, mu, NULL, g->kernel);
    if (!a->cg)
        goto done;
    a->cg->mean = g->mean;
    memcpy(a->cg->lengthscale, g->lengthscale, (size_t)a->d * sizeof *g->lengthscale);
    a->cg->outputscale = g->outputscale;
    a->cg->jitter_min = 1e-8;
    if (gp_update(a->cg) != 0)
        goto done;
    memcpy(a->A, Z, (size_t)n * M * sizeof *Z);
    if (LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', n, M, a->cg->L, n, a->A, n) != 0) {
        err_set("cannot solve for the noisy EI samples");
        goto done;
    }
    if (gp_point_init(&a->p, a->cg) != 0)
        goto done;
    rc = 0;
done:
    free(mu);
    free(S);
    free(Z);
    return rc;
}

static acq *create(const gp *g, acq_kind kind, const acq_options *o, uint64_t seed);

acq *acq_new(const gp *g, acq_kind kind, const acq_options *o, uint64_t seed)
{
    if (acq_options_check(o) != 0)
        return NULL;
    int threads = blas_serial_begin();
    acq *a = create(g, kind, o, seed);
    blas_serial_end(threads);
    return a;
}

static acq *create(const gp *g, acq_kind kind, const acq_options *o, uint64_t seed)
{
    if (!g->ready) {
        err_set("the GP must be updated before building an acquisition");
        return NULL;
    }
    acq *a = calloc(1, sizeof *a);
    double *mu = malloc((size_t)g->n * sizeof *mu);
    if (a)
        a->dcov = malloc((size_t)g->d * sizeof *a->dcov);
    if (!a || !mu || !a->dcov) {
        if (a)
            free(a->dcov);
        free(a);
        free(mu);
        err_set("out of memory");
        return NULL;
    }
    a->g = g;
    a->kind = kind;
    a->o = *o;
    a->n = g->n;
    a->d = g->d;
    a->var_floor = 1e-12 * g->outputscale;
    if (gp_predict(g, g->n, g->X, mu, NULL, NULL) != 0)
        goto fail;
    a->inc = 0;
    for (int i = 1; i < g->n; i++)
        if (mu[i] < mu[a->inc])
            a->inc = i;
    a->best_mu = mu[a->inc];
    if (kind == ACQ_NEI) {
        if (nei_prepare(a, seed) != 0)
            goto fail;
    } else {
        if (gp_point_init(&a->p, g) != 0 || gp_point_init(&a->r, g) != 0)
            goto fail;
        gp_point_eval(g, g->X + (size_t)a->inc * g->d, &a->r, 1);
        a->var_r = a->r.var > 0 ? a->r.var : 0;
    }
    free(mu);
    return a;
fail:
    free(mu);
    acq_free(a);
    return NULL;
}

int acq_incumbent(const acq *a) { return a->inc; }

/* log EI-type value with sigma, its gradient from d mu and d var (each d values, NULL-safe). */
static double log_ei(int d, double imp, double var, const double *dmu, const double *dvar, double *grad)
{
    double sigma = sqrt(var), u = imp / sigma, ph, Ph;
    double v = log(sigma) + acq_log_h(u, &ph, &Ph);
    if (grad)
        for (int j = 0; j < d; j++) {
            double ds = dvar ? dvar[j] / (2 * sigma) : 0;
            grad[j] = ph * ds / sigma - Ph * dmu[j] / sigma;
        }
    return v;
}

static double log_pi(int d, double imp, double var, const double *dmu, const double *dvar, double *grad)
{
    double sigma = sqrt(var), u = imp / sigma, dl;
    double v = acq_log_Phi(u, &dl);
    if (grad)
        for (int j = 0; j < d; j++) {
            double ds = dvar ? dvar[j] / (2 * sigma) : 0;
            grad[j] = dl * (-dmu[j] - u * ds) / sigma;
        }
    return v;
}

static double nei_eval(acq *a, const double *x, double *grad)
{
    const gp *cg = a->cg;
    int n = a->n, d = a->d, M = a->M;
    gp_point *p = &a->p;
    gp_point_eval(cg, x, p, grad != NULL);
    double var = p->var, *dvar = p->dvar;
    if (var < a->var_floor) {
        var = a->var_floor;
        dvar = NULL;
    }
    double sigma = sqrt(var), lmax = -HUGE_VAL;
    /* mu_m = mean + k^T A_m */
    for (int m = 0; m < M; m++)
        a->mus[m] = cg->mean;
    cblas_dgemv(CblasColMajor, CblasTrans, n, M, 1.0, a->A, n, p->k, 1, 1.0, a->mus, 1);
    double sum_ph = 0, umax = -HUGE_VAL;
    for (int m = 0; m < M; m++) {
        a->c[m] = (a->best_m[m] - a->mus[m]) / sigma; /* u_m */
        umax = a->c[m] > umax ? a->c[m] : umax;
    }
    /* Samples whose log EI lies 50 below the largest cannot matter: skip their log h (log h(u) <
     * log phi(u) for u < -1 bounds them without computing it). */
    double cut = acq_log_h(umax, NULL, NULL) - 50, log_sigma = log(sigma);
    for (int m = 0; m < M; m++) {
        double u = a->c[m], ph = 0, Ph = 0;
        if (u < -1 && -0.5 * u * u - LOG_SQRT_2PI < cut) {
            a->logs[m] = -HUGE_VAL;
        } else {
            a->logs[m] = log_sigma + acq_log_h(u, &ph, &Ph);
            lmax = a->logs[m] > lmax ? a->logs[m] : lmax;
        }
        a->c[m] = Ph;
        a->mus[m] = ph; /* reuse: phi/h of sample m */
    }
    double z = 0;
    for (int m = 0; m < M; m++) {
        a->logs[m] = exp(a->logs[m] - lmax); /* softmax weights, unnormalized */
        z += a->logs[m];
    }
    double v = lmax + log(z) - log((double)M);
    if (grad) {
        for (int m = 0; m < M; m++) {
            double s = a->logs[m] / z;
            sum_ph += s * a->mus[m];
            a->c[m] *= s;
        }
        /* sum_m c_m dmu_m = dk^T (A c) */
        cblas_dgemv(CblasColMajor, CblasNoTrans, n, M, 1.0, a->A, n, a->c, 1, 0.0, a->Ac, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, p->dk, d, a->Ac, 1, 0.0, grad, 1);
        for (int j = 0; j < d; j++) {
            double ds = dvar ? dvar[j] / (2 * sigma) : 0;
            grad[j] = sum_ph * ds / sigma - grad[j] / sigma;
        }
    }
    return v;
}

double acq_eval(acq *a, const double *x, double *grad)
{
    if (a->kind == ACQ_NEI)
        return nei_eval(a, x, grad);
    const gp *g = a->g;
    int d = a->d;
    gp_point *p = &a->p;
    gp_point_eval(g, x, p, grad != NULL);
    double var = p->var, *dvar = grad ? p->dvar : NULL;
    if (a->kind == ACQ_EI_C || a->kind == ACQ_PI_C) {
        /* variance of f(x) - f(x+) */
        double cov = gp_point_cov(g, p, x, &a->r, g->X + (size_t)a->inc * d, grad ? a->dcov : NULL);
        if (grad)
            for (int j = 0; j < d; j++)
                dvar[j] -= 2 * a->dcov[j];
        var = var + a->var_r - 2 * cov;
    }
    if (var < a->var_floor) {
        var = a->var_floor;
        dvar = NULL;
    }
    double imp = a->best_mu - p->mu;
    switch (a->kind) {
    case ACQ_EI:
    case ACQ_EI_C: return log_ei(d, imp, var, p->dmu, dvar, grad);
    case ACQ_PI:
    case ACQ_PI_C: return log_pi(d, imp, var, p->dmu, dvar, grad);
    case ACQ_LCB: {
        double sigma = sqrt(var);
        if (grad)
            for (int j = 0; j < d; j++)
                grad[j] = a->o.kappa * (dvar ? dvar[j] / (2 * sigma) : 0) - p->dmu[j];
        return a->o.kappa * sigma - p->mu;
    }
    case ACQ_NEI: break;
    }
    return 0;
}

int acq_values(acq *a, int m, const double *X, double y_mean, double y_sd, double *out)
{
    for (size_t i = 0; i < (size_t)m * a->d; i++)
        if (!isfinite(X[i]))
            return err_set("point %zu, coordinate %zu is not a finite number", i / a->d + 1, i % a->d + 1);
    int threads = blas_serial_begin();
    for (int i = 0; i < m; i++) {
        double v = acq_eval(a, X + (size_t)i * a->d, NULL);
        if (a->kind == ACQ_LCB)
            out[i] = y_mean - y_sd * v; /* v = kappa sigma - mu */
        else if (a->kind == ACQ_PI || a->kind == ACQ_PI_C)
            out[i] = exp(v);
        else
            out[i] = y_sd * exp(v);
    }
    blas_serial_end(threads);
    return 0;
}
