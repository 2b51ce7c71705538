/* gp: Gaussian-process regression with a constant mean, a scaled ARD kernel, fixed per-observation
 * noise variances and an optional learned homoscedastic noise. Works in the caller's units.
 * Matrices are column-major; points are rows of a row-major n x d array. */
#ifndef BOENGINE_GP_H
#define BOENGINE_GP_H

#include "bo/gp_kernel.h"

typedef struct gp {
    int n, d;
    gp_kernel_kind kernel;
    double *X;            /* n x d training inputs */
    double *y;            /* n observations */
    double *noise;        /* n fixed noise variances (>= 0) */
    /* hyperparameters (set freely, then call gp_update) */
    double mean;
    double *lengthscale;  /* d */
    double outputscale;   /* the kernel's variance s2 */
    double noise_level;   /* learned homoscedastic noise variance, added when learn_noise */
    int learn_noise;
    double jitter_min;    /* first rung of the jitter ladder relative to the mean diagonal (0: none) */
    /* the factorization, valid after gp_update */
    double *L;            /* n x n lower Cholesky factor of K + diag(noise) (+ noise_level) + jitter */
    double *alpha;        /* (K_y)^-1 (y - mean) */
    double jitter;        /* absolute jitter that made K_y positive definite */
    double lml;           /* log marginal likelihood */
    int ready;
    /* private scratch */
    double *inv_l, *kf, *dg, *work;
    double *pair_d2, *pair_tmp; /* squared coordinate differences per pair (gp_cache_pairs) */
} gp;

/* Copies the data; noise may be NULL (all zero). Hyperparameters start at mean 0, lengthscales 1,
 * outputscale 1, no learned noise. NULL with err_set on bad input or out of memory. */
gp *gp_new(int n, int d, const double *X, const double *y, const double *noise, gp_kernel_kind kernel);
void gp_free(gp *g);

/* Builds K_y and factorizes it (jitter ladder: none, then 1e-10 .. 1e-1 of the mean diagonal),
 * computes alpha and the log marginal likelihood. -1 with err_set for a hyperparameter that is not
 * a finite number (or not positive where it must be), or when nothing works. gp_update, gp_lml_grad
 * and gp_predict run OpenBLAS on one thread (core/blas_serial.h). */
int gp_update(gp *g);

/* Keeps the squared coordinate differences of all pairs of inputs (n (n - 1) / 2 x d doubles), which
 * makes the repeated updates and gradients of a hyperparameter fit faster. 0, or -1 (nothing cached)
 * when that would take too much memory. */
int gp_cache_pairs(gp *g);

/* Hyperparameter vector: [mean, log lengthscale_1..d, log outputscale, (log noise_level)]. */
int gp_nparams(const gp *g);
void gp_get_theta(const gp *g, double *theta);
void gp_set_theta(gp *g, const double *theta);

/* Gradient of the log marginal likelihood with respect to the hyperparameter vector (after
 * gp_update). -1 on out of memory. */
int gp_lml_grad(gp *g, double *grad);

/* Noise-free posterior at m points: mean, variance (clamped at 0) and, when cov is not NULL, the
 * m x m covariance. Any of mu, var may be NULL. -1 with err_set for a point that is not finite or
 * on out of memory. */
int gp_predict(const gp *g, int m, const double *Xs, double *mu, double *var, double *cov);

/* The posterior at one point with gradients with respect to the point, for acquisition functions. */
typedef struct gp_point {
    int n, d;
    double mu, var;
    double *k;     /* k(X, x) */
    double *v;     /* L^-1 k */
    double *w;     /* K_y^-1 k (only with gradients) */
    double *dk;    /* n x d: d k(X_i, x) / dx_j */
    double *dmu, *dvar;
} gp_point;

int gp_point_init(gp_point *p, const gp *g);
void gp_point_free(gp_point *p);
/* Fills mu and var (unclamped), and with want_grad also w, dk, dmu and dvar. */
void gp_point_eval(const gp *g, const double *x, gp_point *p, int want_grad);
/* Posterior covariance of f(x) and f(r) where p was evaluated at x (with gradients when dcov is not
 * NULL) and r at another point with gradients; dcov receives d cov / dx. */
double gp_point_cov(const gp *g, const gp_point *p, const double *x, const gp_point *r, const double *xr,
                    double *dcov);

#endif
