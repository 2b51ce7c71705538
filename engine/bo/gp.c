#include "bo/gp.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_num.h"
#include "core/blas_serial.h"
#include "core/err.h"

gp *gp_new(int n, int d, const double *X, const double *y, const double *noise, gp_kernel_kind kernel)
{
    if (n < 1 || d < 1) {
        err_set("a GP needs at least one point and one dimension (got %d points in %d dimensions)", n, d);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            err_set("observation %d is not a finite number", i + 1);
            return NULL;
        }
        if (noise && !(noise[i] >= 0 && isfinite(noise[i]))) {
            err_set("noise variance %d %s (%s)", i + 1, noise[i] < 0 ? "is negative" : "is not a finite number",
                    BO_NUM(noise[i]));
            return NULL;
        }
        for (int j = 0; j < d; j++)
            if (!isfinite(X[(size_t)i * d + j])) {
                err_set("point %d, coordinate %d is not a finite number", i + 1, j + 1);
                return NULL;
            }
    }
    gp *g = calloc(1, sizeof *g);
    if (!g) {
        err_set("out of memory allocating a GP");
        return NULL;
    }
    size_t nn = (size_t)n * n;
    g->n = n;
    g->d = d;
    g->kernel = kernel;
    g->X = malloc((size_t)n * d * sizeof *g->X);
    g->y = malloc((size_t)n * sizeof *g->y);
    g->noise = calloc((size_t)n, sizeof *g->noise);
    g->lengthscale = malloc((size_t)d * sizeof *g->lengthscale);
    g->inv_l = malloc((size_t)d * sizeof *g->inv_l);
    g->L = malloc(nn * sizeof *g->L);
    g->kf = malloc(nn * sizeof *g->kf);
    g->dg = malloc(nn * sizeof *g->dg);
    g->alpha = malloc((size_t)n * sizeof *g->alpha);
    g->work = malloc((nn > (size_t)d ? nn : (size_t)d) * sizeof *g->work); /* also d values in build_kernel */
    if (!g->X || !g->y || !g->noise || !g->lengthscale || !g->inv_l || !g->L || !g->kf || !g->dg ||
        !g->alpha || !g->work) {
        gp_free(g);
        err_set("out of memory allocating a GP of %d points", n);
        return NULL;
    }
    memcpy(g->X, X, (size_t)n * d * sizeof *X);
    memcpy(g->y, y, (size_t)n * sizeof *y);
    if (noise)
        memcpy(g->noise, noise, (size_t)n * sizeof *noise);
    for (int j = 0; j < d; j++)
        g->lengthscale[j] = 1.0;
    g->outputscale = 1.0;
    return g;
}

void gp_free(gp *g)
{
    if (!g)
        return;
    free(g->X);
    free(g->y);
    free(g->noise);
    free(g->lengthscale);
    free(g->inv_l);
    free(g->L);
    free(g->kf);
    free(g->dg);
    free(g->alpha);
    free(g->work);
    free(g->pair_d2);
    free(g->pair_tmp);
    free(g);
}

int gp_cache_pairs(gp *g)
{
    int n = g->n, d = g->d;
    size_t np = (size_t)n * (n - 1) / 2;
    if (g->pair_d2)
        return 0;
    if (np == 0 || np * d > ((size_t)1 << 25)) /* 256 MB */
        return -1;
    g->pair_d2 = malloc(np * d * sizeof *g->pair_d2);
    g->pair_tmp = malloc(np * sizeof *g->pair_tmp);
    if (!g->pair_d2 || !g->pair_tmp) {
        free(g->pair_d2);
        free(g->pair_tmp);
        g->pair_d2 = g->pair_tmp = NULL;
        return -1;
    }
    size_t p = 0;
    for (int c = 0; c < n; c++)
        for (int r = c + 1; r < n; r++, p++)
            for (int j = 0; j < d; j++) {
                double t = g->X[(size_t)r * d + j] - g->X[(size_t)c * d + j];
                g->pair_d2[p * d + j] = t * t;
            }
    return 0;
}

int gp_nparams(const gp *g) { return g->d + 2 + (g->learn_noise ? 1 : 0); }

void gp_get_theta(const gp *g, double *theta)
{
    theta[0] = g->mean;
    for (int j = 0; j < g->d; j++)
        theta[1 + j] = log(g->lengthscale[j]);
    theta[1 + g->d] = log(g->outputscale);
    if (g->learn_noise)
        theta[2 + g->d] = log(g->noise_level);
}

void gp_set_theta(gp *g, const double *theta)
{
    g->mean = theta[0];
    for (int j = 0; j < g->d; j++)
        g->lengthscale[j] = exp(theta[1 + j]);
    g->outputscale = exp(theta[1 + g->d]);
    if (g->learn_noise)
        g->noise_level = exp(theta[2 + g->d]);
    g->ready = 0;
}

/* Kernel part of K (lower triangle) and dg/d(r2) per pair, kept for the gradient. */
static void build_kernel(gp *g)
{
    int n = g->n, d = g->d;
    for (int j = 0; j < d; j++)
        g->inv_l[j] = 1.0 / g->lengthscale[j];
    if (g->pair_d2) {
        /* r2 of every pair at once: pair_d2 (pairs x d) times 1 / l^2 */
        double *il2 = g->work;
        for (int j = 0; j < d; j++)
            il2[j] = g->inv_l[j] * g->inv_l[j];
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)((size_t)n * (n - 1) / 2), d, 1.0, g->pair_d2, d, il2, 1, 0.0,
                    g->pair_tmp, 1);
    }
    size_t p = 0;
    for (int c = 0; c < n; c++) {
        const double *xc = g->X + (size_t)c * d;
        g->kf[c + (size_t)c * n] = g->outputscale;
        g->dg[c + (size_t)c * n] = 0;
        for (int r = c + 1; r < n; r++, p++) {
            double dgv, r2 = g->pair_d2 ? g->pair_tmp[p] : gp_kernel_r2(d, g->X + (size_t)r * d, xc, g->inv_l);
            g->kf[r + (size_t)c * n] = g->outputscale * gp_kernel_profile(g->kernel, r2, &dgv);
            g->dg[r + (size_t)c * n] = dgv;
        }
    }
}

static int try_cholesky(gp *g, double jitter)
{
    int n = g->n;
    double extra = (g->learn_noise ? g->noise_level : 0) + jitter;
    for (int c = 0; c < n; c++) {
        double *dst = g->L + (size_t)c * n, *src = g->kf + (size_t)c * n;
        memcpy(dst + c, src + c, (size_t)(n - c) * sizeof *dst);
        dst[c] += g->noise[c] + extra;
    }
    return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, g->L, n) == 0 ? 0 : -1;
}

/* The hyperparameters as a user may set them: each message names the one at fault. */
static int check_hyperparameters(const gp *g)
{
    if (!isfinite(g->mean))
        return err_set("the mean must be a finite number, got %s", BO_NUM(g->mean));
    if (!(g->outputscale > 0 && isfinite(g->outputscale)))
        return err_set("the outputscale must be a positive number, got %s", BO_NUM(g->outputscale));
    for (int j = 0; j < g->d; j++)
        if (!(g->lengthscale[j] > 0 && isfinite(g->lengthscale[j])))
            return err_set("lengthscale %d must be a positive number, got %s", j + 1, BO_NUM(g->lengthscale[j]));
    if (g->learn_noise && !(g->noise_level >= 0 && isfinite(g->noise_level)))
        return err_set("the noise level must be a number >= 0, got %s", BO_NUM(g->noise_level));
    return 0;
}

static int update(gp *g);

/* Every public entry that calls BLAS runs it on one thread (core/blas_serial.h says why). */
int gp_update(gp *g)
{
    g->ready = 0;
    if (check_hyperparameters(g) != 0)
        return -1;
    int threads = blas_serial_begin();
    int rc = update(g);
    blas_serial_end(threads);
    return rc;
}

static int update(gp *g)
{
    int n = g->n;
    build_kernel(g);
    double scale = 0;
    for (int i = 0; i < n; i++)
        scale += g->outputscale + g->noise[i];
    scale = scale / n + (g->learn_noise ? g->noise_level : 0);
    double rel = g->jitter_min, next = rel > 0 ? rel * 10 : 1e-10;
    int ok = try_cholesky(g, rel * scale) == 0;
    for (; !ok && next <= 1.0; next *= 10) {
        rel = next;
        ok = try_cholesky(g, rel * scale) == 0;
    }
    if (!ok)
        return err_set("the GP's covariance matrix is not positive definite even with jitter");
    g->jitter = rel * scale;
    for (int i = 0; i < n; i++)
        g->alpha[i] = g->y[i] - g->mean;
    cblas_dtrsv(CblasColMajor, CblasLower, CblasNoTrans, CblasNonUnit, n, g->L, n, g->alpha, 1);
    double quad = cblas_ddot(n, g->alpha, 1, g->alpha, 1), logdet = 0;
    cblas_dtrsv(CblasColMajor, CblasLower, CblasTrans, CblasNonUnit, n, g->L, n, g->alpha, 1);
    for (int i = 0; i < n; i++)
        logdet += log(g->L[i + (size_t)i * n]);
    g->lml = -0.5 * quad - logdet - 0.5 * n * log(2 * M_PI);
    g->ready = 1;
    return 0;
}

static int lml_grad(gp *g, double *grad);

int gp_lml_grad(gp *g, double *grad)
{
    int threads = blas_serial_begin();
    int rc = lml_grad(g, grad);
    blas_serial_end(threads);
    return rc;
}

static int lml_grad(gp *g, double *grad)
{
    int n = g->n, d = g->d;
    /* W = alpha alpha^T - K_y^-1 (lower triangle); dLML/dtheta = 1/2 tr(W dK/dtheta) */
    double *W = g->work;
    for (int c = 0; c < n; c++)
        memcpy(W + (size_t)c * n + c, g->L + (size_t)c * n + c, (size_t)(n - c) * sizeof *W);
    if (LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'L', n, W, n) != 0)
        return err_set("cannot invert the GP's covariance matrix");
    double gmean = 0, gos = 0, gnoise = 0;
    double *gl = grad + 1;
    for (int j = 0; j < d; j++)
        gl[j] = 0;
    size_t p = 0;
    for (int c = 0; c < n; c++) {
        gmean += g->alpha[c];
        const double *xc = g->X + (size_t)c * d;
        double wcc = g->alpha[c] * g->alpha[c] - W[c + (size_t)c * n];
        gos += wcc * g->outputscale;
        gnoise += wcc;
        for (int r = c + 1; r < n; r++, p++) {
            size_t idx = r + (size_t)c * n;
            double w = g->alpha[r] * g->alpha[c] - W[idx]; /* off-diagonal counted twice below */
            gos += 2 * w * g->kf[idx];
            /* dK/dlog l_j = s2 dg (-2) (diff_j / l_j)^2; with the factor 2 for symmetry and 1/2 */
            double f = -2.0 * w * g->outputscale * g->dg[idx];
            if (g->pair_d2) {
                g->pair_tmp[p] = f;
                continue;
            }
            const double *xr = g->X + (size_t)r * d;
            for (int j = 0; j < d; j++) {
                double t = (xr[j] - xc[j]) * g->inv_l[j];
                gl[j] += f * t * t;
            }
        }
    }
    if (g->pair_d2) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)p, d, 1.0, g->pair_d2, d, g->pair_tmp, 1, 0.0, gl, 1);
        for (int j = 0; j < d; j++)
            gl[j] *= g->inv_l[j] * g->inv_l[j];
    }
    grad[0] = gmean;
    grad[1 + d] = 0.5 * gos;
    if (g->learn_noise)
        grad[2 + d] = 0.5 * gnoise * g->noise_level;
    return 0;
}

static int predict(const gp *g, int m, const double *Xs, double *mu, double *var, double *cov);

int gp_predict(const gp *g, int m, const double *Xs, double *mu, double *var, double *cov)
{
    for (size_t i = 0; i < (size_t)m * g->d; i++)
        if (!isfinite(Xs[i]))
            return err_set("point %zu, coordinate %zu is not a finite number", i / g->d + 1, i % g->d + 1);
    int threads = blas_serial_begin();
    int rc = predict(g, m, Xs, mu, var, cov);
    blas_serial_end(threads);
    return rc;
}

static int predict(const gp *g, int m, const double *Xs, double *mu, double *var, double *cov)
{
    int n = g->n, d = g->d;
    double *Ks = malloc((size_t)n * m * sizeof *Ks);
    if (!Ks)
        return err_set("out of memory predicting at %d points", m);
    for (int c = 0; c < m; c++)
        for (int r = 0; r < n; r++)
            Ks[r + (size_t)c * n] = gp_kernel_eval(g->kernel, d, g->X + (size_t)r * d, Xs + (size_t)c * d,
                                                   g->inv_l, g->outputscale, NULL);
    if (mu) {
        for (int c = 0; c < m; c++)
            mu[c] = g->mean;
        cblas_dgemv(CblasColMajor, CblasTrans, n, m, 1.0, Ks, n, g->alpha, 1, 1.0, mu, 1);
    }
    if (var || cov) {
        cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0, g->L, n, Ks, n);
        if (var)
            for (int c = 0; c < m; c++) {
                double v = g->outputscale - cblas_ddot(n, Ks + (size_t)c * n, 1, Ks + (size_t)c * n, 1);
                var[c] = v > 0 ? v : 0;
            }
        if (cov) {
            for (int c = 0; c < m; c++)
                for (int r = 0; r < m; r++)
                    cov[r + (size_t)c * m] = gp_kernel_eval(g->kernel, d, Xs + (size_t)r * d, Xs + (size_t)c * d,
                                                            g->inv_l, g->outputscale, NULL);
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, m, n, -1.0, Ks, n, Ks, n, 1.0, cov, m);
        }
    }
    free(Ks);
    return 0;
}

int gp_point_init(gp_point *p, const gp *g)
{
    memset(p, 0, sizeof *p);
    p->n = g->n;
    p->d = g->d;
    p->k = malloc((size_t)g->n * sizeof *p->k);
    p->v = malloc((size_t)g->n * sizeof *p->v);
    p->w = malloc((size_t)g->n * sizeof *p->w);
    p->dk = malloc((size_t)g->n * g->d * sizeof *p->dk);
    p->dmu = malloc((size_t)g->d * sizeof *p->dmu);
    p->dvar = malloc((size_t)g->d * sizeof *p->dvar);
    if (!p->k || !p->v || !p->w || !p->dk || !p->dmu || !p->dvar) {
        gp_point_free(p);
        return err_set("out of memory");
    }
    return 0;
}

void gp_point_free(gp_point *p)
{
    free(p->k);
    free(p->v);
    free(p->w);
    free(p->dk);
    free(p->dmu);
    free(p->dvar);
    memset(p, 0, sizeof *p);
}

void gp_point_eval(const gp *g, const double *x, gp_point *p, int want_grad)
{
    int n = g->n, d = g->d;
    for (int i = 0; i < n; i++)
        p->k[i] = gp_kernel_eval(g->kernel, d, x, g->X + (size_t)i * d, g->inv_l, g->outputscale,
                                 want_grad ? p->dk + (size_t)i * d : NULL);
    p->mu = g->mean + cblas_ddot(n, p->k, 1, g->alpha, 1);
    memcpy(p->v, p->k, (size_t)n * sizeof *p->v);
    cblas_dtrsv(CblasColMajor, CblasLower, CblasNoTrans, CblasNonUnit, n, g->L, n, p->v, 1);
    p->var = g->outputscale - cblas_ddot(n, p->v, 1, p->v, 1);
    if (!want_grad)
        return;
    memcpy(p->w, p->v, (size_t)n * sizeof *p->w);
    cblas_dtrsv(CblasColMajor, CblasLower, CblasTrans, CblasNonUnit, n, g->L, n, p->w, 1);
    /* dk is n x d row-major = d x n column-major: dmu = dk^T alpha, dvar = -2 dk^T w */
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, p->dk, d, g->alpha, 1, 0.0, p->dmu, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, -2.0, p->dk, d, p->w, 1, 0.0, p->dvar, 1);
}

double gp_point_cov(const gp *g, const gp_point *p, const double *x, const gp_point *r, const double *xr,
                    double *dcov)
{
    int n = g->n, d = g->d;
    double c = gp_kernel_eval(g->kernel, d, x, xr, g->inv_l, g->outputscale, dcov);
    c -= cblas_ddot(n, p->v, 1, r->v, 1);
    if (dcov)
        cblas_dgemv(CblasRowMajor, CblasTrans, n, d, -1.0, p->dk, d, r->w, 1, 1.0, dcov, 1);
    return c;
}
