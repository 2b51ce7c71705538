/* GP regression: posteriors and marginal likelihoods against scikit-learn, gradients against finite
 * differences, and the jitter ladder on degenerate data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/gp.h"
#include "bo/gp_fit.h"
#include "core/err.h"
#include "core/rng.h"
#include "fixture_json.h"
#include "tap.h"

/* max_i |a_i - b_i| / max_i |b_i| */
static double rel_err(const double *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / fmax(den, 1e-300);
}

static void check_sklearn_case(const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    gp_kernel_kind kind;
    gp_kernel_parse(cJSON_GetObjectItem(c, "kernel")->valuestring, &kind);
    int n = (int)fixture_number(c, "n"), d = (int)fixture_number(c, "d"), m = (int)fixture_number(c, "m");
    double *X = fixture_array(c, "X", NULL), *y = fixture_array(c, "y", NULL);
    double *noise = fixture_array(c, "noise", NULL), *ls = fixture_array(c, "lengthscale", NULL);
    double *Xs = fixture_array(c, "Xs", NULL), *mu_ref = fixture_array(c, "mu", NULL);
    double *var_ref = fixture_array(c, "var", NULL), *cov_ref = fixture_array(c, "cov", NULL);
    double *gl_ref = fixture_array(c, "lml_grad_log_lengthscale", NULL);
    gp *g = gp_new(n, d, X, y, noise, kind);
    memcpy(g->lengthscale, ls, (size_t)d * sizeof *ls);
    g->outputscale = fixture_number(c, "outputscale");
    g->mean = 0; /* scikit-learn's GP has a zero mean */
    tap_ok(gp_update(g) == 0, "%s: factorizes", name);
    tap_ok(g->jitter == 0, "%s: no jitter needed", name);
    double *mu = malloc(m * sizeof *mu), *var = malloc(m * sizeof *var), *cov = malloc((size_t)m * m * sizeof *cov);
    gp_predict(g, m, Xs, mu, var, cov);
    double e = rel_err(mu, mu_ref, m);
    tap_ok(e < 1e-8, "%s: posterior mean matches scikit-learn (rel %.2g)", name, e);
    e = rel_err(var, var_ref, m);
    tap_ok(e < 1e-8, "%s: posterior variance matches scikit-learn (rel %.2g)", name, e);
    e = rel_err(cov, cov_ref, m * m);
    tap_ok(e < 1e-8, "%s: posterior covariance matches (rel %.2g)", name, e);
    double lml_ref = fixture_number(c, "lml");
    e = fabs(g->lml - lml_ref) / fabs(lml_ref);
    tap_ok(e < 1e-8, "%s: log marginal likelihood matches (rel %.2g)", name, e);
    double *grad = malloc(gp_nparams(g) * sizeof *grad);
    gp_lml_grad(g, grad);
    e = rel_err(grad + 1, gl_ref, d);
    tap_ok(e < 1e-8, "%s: d lml / d log lengthscale matches (rel %.2g)", name, e);
    double gos_ref = fixture_number(c, "lml_grad_log_outputscale");
    e = fabs(grad[1 + d] - gos_ref) / fabs(gos_ref);
    tap_ok(e < 1e-8, "%s: d lml / d log outputscale matches (rel %.2g)", name, e);
    free(grad);
    free(mu), free(var), free(cov);
    gp_free(g);
    free(X), free(y), free(noise), free(ls), free(Xs), free(mu_ref), free(var_ref), free(cov_ref), free(gl_ref);
}

static gp *random_gp(rng *r, int n, int d, gp_kernel_kind kind, int learn_noise)
{
    double *X = malloc((size_t)n * d * sizeof *X), *y = malloc(n * sizeof *y), *noise = malloc(n * sizeof *noise);
    for (int i = 0; i < n; i++) {
        y[i] = 0.3;
        for (int j = 0; j < d; j++) {
            X[i * d + j] = rng_uniform(r);
            y[i] += sin(4 * X[i * d + j] + j);
        }
        y[i] += 0.05 * rng_normal(r);
        noise[i] = 1e-3 + 0.01 * rng_uniform(r);
    }
    gp *g = gp_new(n, d, X, y, noise, kind);
    g->learn_noise = learn_noise;
    g->noise_level = 0.02;
    g->mean = 0.4;
    g->outputscale = 1.7;
    for (int j = 0; j < d; j++)
        g->lengthscale[j] = 0.3 + 0.2 * j;
    free(X), free(y), free(noise);
    return g;
}

static void check_lml_gradient(rng *r, gp_kernel_kind kind, int learn_noise)
{
    gp *g = random_gp(r, 25, 3, kind, learn_noise);
    int np = gp_nparams(g);
    double theta[8], grad[8], t2[8];
    gp_update(g);
    gp_get_theta(g, theta);
    gp_lml_grad(g, grad);
    double worst = 0;
    for (int i = 0; i < np; i++) {
        double h = 1e-5;
        memcpy(t2, theta, sizeof theta);
        t2[i] = theta[i] + h;
        gp_set_theta(g, t2);
        gp_update(g);
        double up = g->lml;
        t2[i] = theta[i] - h;
        gp_set_theta(g, t2);
        gp_update(g);
        double fd = (up - g->lml) / (2 * h);
        worst = fmax(worst, fabs(fd - grad[i]) / fmax(1.0, fabs(fd)));
    }
    tap_ok(worst < 1e-6, "%s%s: lml gradient matches central differences (worst rel %.2g)", gp_kernel_name(kind),
           learn_noise ? " + learned noise" : "", worst);
    /* the cached pair differences give the same numbers */
    double lml = g->lml, g2[8];
    gp_set_theta(g, theta);
    gp_update(g);
    lml = g->lml;
    gp_cache_pairs(g);
    gp_update(g);
    gp_lml_grad(g, g2);
    worst = fabs(g->lml - lml) / fabs(lml);
    for (int i = 0; i < np; i++)
        worst = fmax(worst, fabs(g2[i] - grad[i]) / fmax(1, fabs(grad[i])));
    tap_ok(g->pair_d2 && worst < 1e-12, "%s: cached pair differences give the same lml and gradient (rel %.2g)",
           gp_kernel_name(kind), worst);
    /* the log prior's gradient too */
    gp_prior p = gp_prior_default();
    double pg[8];
    gp_log_prior(g, &p, theta, pg);
    worst = 0;
    for (int i = 0; i < np; i++) {
        double h = 1e-6;
        memcpy(t2, theta, sizeof theta);
        t2[i] += h;
        double up = gp_log_prior(g, &p, t2, NULL);
        t2[i] -= 2 * h;
        double fd = (up - gp_log_prior(g, &p, t2, NULL)) / (2 * h);
        worst = fmax(worst, fabs(fd - pg[i]));
    }
    tap_ok(worst < 1e-6, "%s: log prior gradient matches central differences", gp_kernel_name(kind));
    gp_free(g);
}

static void check_point_gradients(rng *r, gp_kernel_kind kind)
{
    gp *g = random_gp(r, 20, 3, kind, 0);
    gp_update(g);
    gp_point p, q, ref;
    gp_point_init(&p, g);
    gp_point_init(&q, g);
    gp_point_init(&ref, g);
    double x[3] = {0.31, 0.72, 0.45}, xr[3] = {0.5, 0.4, 0.6}, x2[3], dcov[3];
    gp_point_eval(g, xr, &ref, 1);
    gp_point_eval(g, x, &p, 1);
    double c = gp_point_cov(g, &p, x, &ref, xr, dcov);
    double mu, var, cov[4], pts[6];
    gp_predict(g, 1, x, &mu, &var, NULL);
    memcpy(pts, x, sizeof x);
    memcpy(pts + 3, xr, sizeof xr);
    gp_predict(g, 2, pts, NULL, NULL, cov);
    tap_ok(fabs(p.mu - mu) < 1e-12 && fabs(p.var - var) < 1e-12, "%s: point and batch predictions agree",
           gp_kernel_name(kind));
    tap_ok(fabs(c - cov[1]) < 1e-12, "%s: point covariance agrees with the batch covariance", gp_kernel_name(kind));
    double worst = 0;
    for (int j = 0; j < 3; j++) {
        double h = 1e-6;
        memcpy(x2, x, sizeof x);
        x2[j] += h;
        gp_point_eval(g, x2, &q, 0);
        double mu_up = q.mu, var_up = q.var, cov_up = gp_point_cov(g, &q, x2, &ref, xr, NULL);
        x2[j] -= 2 * h;
        gp_point_eval(g, x2, &q, 0);
        double cov_dn = gp_point_cov(g, &q, x2, &ref, xr, NULL);
        worst = fmax(worst, fabs((mu_up - q.mu) / (2 * h) - p.dmu[j]));
        worst = fmax(worst, fabs((var_up - q.var) / (2 * h) - p.dvar[j]));
        worst = fmax(worst, fabs((cov_up - cov_dn) / (2 * h) - dcov[j]));
    }
    tap_ok(worst < 1e-6, "%s: gradients of mean, variance, covariance in x match differences (worst %.2g)",
           gp_kernel_name(kind), worst);
    gp_point_free(&p);
    gp_point_free(&q);
    gp_point_free(&ref);
    gp_free(g);
}

/* Duplicate inputs with zero noise, and y scaled by 1e-9 .. 1e9: fitting and predicting must work. */
static void check_degenerate(rng *r)
{
    enum { N = 12 };
    double X[N], y[N];
    for (int i = 0; i < N; i++) {
        X[i] = (i % 4) / 3.0; /* each input three times */
        y[i] = sin(5 * X[i]);
    }
    gp *g = gp_new(N, 1, X, y, NULL, GP_MATERN52);
    int rc = gp_update(g);
    tap_ok(rc == 0 && g->jitter > 0, "duplicate inputs with zero noise factorize with jitter (%.2g)",
           g->jitter);
    gp_free(g);
    double scales[] = {1e-9, 1e-3, 1.0, 1e3, 1e9};
    for (int s = 0; s < 5; s++) {
        double ys[N], Xs[N];
        for (int i = 0; i < N; i++) {
            Xs[i] = rng_uniform(r);
            ys[i] = scales[s] * (sin(6 * Xs[i]) + 2.0);
        }
        Xs[N - 1] = Xs[0]; /* one duplicate */
        ys[N - 1] = ys[0];
        g = gp_new(N, 1, Xs, ys, NULL, GP_MATERN52);
        gp_fit_options o;
        gp_fit_defaults(&o);
        double lp;
        int ok = gp_fit(g, &o, r, 0, &lp) == 0;
        double mu[N];
        ok = ok && gp_predict(g, N, Xs, mu, NULL, NULL) == 0;
        double worst = 0;
        for (int i = 0; ok && i < N; i++)
            worst = fmax(worst, fabs(mu[i] - ys[i]) / scales[s]);
        tap_ok(ok && isfinite(lp) && worst < 1e-3, "y scaled by %g: fit and prediction work (interpolation error %.2g)",
               scales[s], worst);
        if (!ok)
            tap_diag("%s", err_msg());
        gp_free(g);
    }
}

static void check_fit(rng *r)
{
    gp *g = random_gp(r, 30, 2, GP_MATERN52, 1);
    gp_fit_options o;
    gp_fit_defaults(&o);
    gp_update(g);
    double theta[5], before = g->lml, lp;
    gp_get_theta(g, theta);
    before += gp_log_prior(g, &o.prior, theta, NULL);
    int rc = gp_fit(g, &o, r, 1, &lp);
    tap_ok(rc == 0 && lp >= before, "MAP fit improves the log posterior (%.4f -> %.4f)", before,
           lp);
    /* at an interior optimum the gradient of the log posterior vanishes */
    double grad[5], pg[5];
    gp_get_theta(g, theta);
    gp_lml_grad(g, grad);
    gp_log_prior(g, &o.prior, theta, pg);
    double worst = 0;
    for (int i = 0; i < gp_nparams(g); i++)
        worst = fmax(worst, fabs(grad[i] + pg[i]));
    tap_ok(worst < 1e-3, "the log posterior's gradient vanishes at the fit (max %.2g)", worst);
    gp_free(g);
}

int main(void)
{
    cJSON *fx = fixture_load("tests/fixtures/gp_sklearn.json");
    tap_ok(fx != NULL, "fixture tests/fixtures/gp_sklearn.json loads");
    if (fx) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) check_sklearn_case(c);
        cJSON_Delete(fx);
    }
    rng *r = rng_new(7);
    gp_kernel_kind kinds[] = {GP_MATERN52, GP_MATERN32, GP_SE};
    for (int k = 0; k < 3; k++) {
        check_lml_gradient(r, kinds[k], 0);
        check_point_gradients(r, kinds[k]);
    }
    check_lml_gradient(r, GP_MATERN52, 1);
    check_degenerate(r);
    check_fit(r);
    rng_free(r);
    return tap_done();
}
