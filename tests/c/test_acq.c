/* Acquisition functions: the stable log-EI pieces against quadrature, gradients against finite
 * differences, EI and EI_C against Monte-Carlo over the GP posterior, noisy EI's noise-free limit. */
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/acq.h"
#include "bo/gp.h"
#include "core/rng.h"
#include "tap.h"

/* h(u) / phi(u) = int_0^inf t exp(u t - t^2 / 2) dt, by GSL's adaptive quadrature */
static double integrand(double t, void *p) { return t * exp(*(double *)p * t - 0.5 * t * t); }

static double h_over_phi_quad(double u)
{
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    gsl_function f = {integrand, &u};
    double r, err;
    gsl_integration_qagiu(&f, 0, 0, 1e-13, 1000, w, &r, &err);
    gsl_integration_workspace_free(w);
    return r;
}

static void check_log_h(void)
{
    double us[] = {-1e4, -300, -60, -40.0001, -39.9999, -30.0001, -29.9999, -25, -8, -3, -1.0001, -0.9999, -0.3, 0, 0.7, 3, 12};
    double worst = 0;
    for (size_t i = 0; i < sizeof us / sizeof *us; i++) {
        double u = us[i], want = -0.5 * u * u - 0.5 * log(2 * M_PI) + log(h_over_phi_quad(u));
        worst = fmax(worst, fabs(acq_log_h(u, NULL, NULL) - want) / fmax(1, fabs(want)));
    }
    tap_ok(worst < 1e-11, "log h(u) matches quadrature from u = -1e4 to 12 (worst rel %.2g)", worst);
    worst = 0;
    for (size_t i = 0; i < sizeof us / sizeof *us; i++) {
        double u = us[i], step = 1e-6 * fmax(1, fabs(u)), ph, Ph;
        acq_log_h(u, &ph, &Ph);
        double fd = (acq_log_h(u + step, NULL, NULL) - acq_log_h(u - step, NULL, NULL)) / (2 * step);
        worst = fmax(worst, fabs(fd - Ph) / fmax(1, fabs(Ph)));
        /* phi/h = 1 - u Phi/h: the two ratios are consistent */
        worst = fmax(worst, fabs(ph - (1 - u * Ph)) / fmax(1, fabs(ph)));
    }
    tap_ok(worst < 1e-6, "d log h / du = Phi/h and phi/h are consistent (worst rel %.2g)", worst);
    int mono = 1;
    double prev = -HUGE_VAL;
    for (double u = -1e7; u < 20; u = u < -1 ? u / 1.3 : u + 0.37) {
        double v = acq_log_h(u, NULL, NULL);
        mono = mono && isfinite(v) && v > prev;
        prev = v;
    }
    tap_ok(mono, "log h is finite and increasing from u = -1e7 to 20");
    worst = 0;
    for (double u = -60; u < 8; u += 0.77) {
        /* reference: erfc where it neither underflows nor rounds to 1, the asymptotic series beyond */
        double dl, got = acq_log_Phi(u, &dl), Q = 0.5 * erfc(fabs(u) / M_SQRT2), s = 1 / (u * u);
        double want = u < -30 ? -0.5 * u * u - 0.5 * log(2 * M_PI) - log(-u) + log1p(-s + 3 * s * s - 15 * s * s * s)
                      : u < 0 ? log(Q) : log1p(-Q);
        worst = fmax(worst, fabs(got - want) / fmax(1e-300, fabs(want)));
        double step = 1e-6 * fmax(1, fabs(u));
        double fd = (acq_log_Phi(u + step, NULL) - acq_log_Phi(u - step, NULL)) / (2 * step);
        worst = fmax(worst, fabs(fd - dl) / fmax(1, fabs(dl)));
    }
    tap_ok(worst < 1e-7, "log Phi(u) and its derivative match erfc (worst rel %.2g)", worst);
    tap_ok(isfinite(acq_log_Phi(-1e5, NULL)) && isfinite(acq_log_Phi(50, NULL)), "log Phi is finite far out");
}

static gp *make_gp(rng *r, int n, int d, double noise)
{
    double *X = malloc((size_t)n * d * sizeof *X), *y = malloc(n * sizeof *y), *nz = malloc(n * sizeof *nz);
    for (int i = 0; i < n; i++) {
        y[i] = 0;
        for (int j = 0; j < d; j++) {
            X[i * d + j] = rng_uniform(r);
            y[i] += cos(5 * X[i * d + j] + 0.3 * j);
        }
        nz[i] = noise;
        y[i] += sqrt(noise) * rng_normal(r);
    }
    gp *g = gp_new(n, d, X, y, nz, GP_MATERN52);
    g->mean = 0.2;
    g->outputscale = 1.3;
    for (int j = 0; j < d; j++)
        g->lengthscale[j] = 0.35 + 0.1 * j;
    gp_update(g);
    free(X), free(y), free(nz);
    return g;
}

static void check_gradients(rng *r)
{
    gp *g = make_gp(r, 15, 3, 0.01);
    acq_options o;
    acq_defaults(&o);
    acq_kind kinds[] = {ACQ_EI, ACQ_EI_C, ACQ_PI, ACQ_PI_C, ACQ_NEI, ACQ_LCB};
    for (int k = 0; k < 6; k++) {
        acq *a = acq_new(g, kinds[k], &o, 99);
        double worst = 0;
        for (int t = 0; t < 20; t++) {
            double x[3], x2[3], grad[3];
            for (int j = 0; j < 3; j++)
                x[j] = -0.2 + 1.4 * rng_uniform(r);
            double v = acq_eval(a, x, grad);
            for (int j = 0; j < 3; j++) {
                double h = 1e-6;
                memcpy(x2, x, sizeof x);
                x2[j] += h;
                double up = acq_eval(a, x2, NULL);
                x2[j] -= 2 * h;
                double fd = (up - acq_eval(a, x2, NULL)) / (2 * h);
                worst = fmax(worst, fabs(fd - grad[j]) / fmax(1, fabs(fd)));
            }
            (void)v;
        }
        tap_ok(worst < 1e-5, "%s: gradient matches central differences at 20 points (worst rel %.2g)",
               acq_name(kinds[k]), worst);
        acq_free(a);
    }
    /* far from the data and far above the incumbent: tiny improvement, still a usable value and slope */
    gp *h = make_gp(r, 10, 1, 1e-6);
    for (int i = 0; i < 10; i++)
        h->y[i] = h->X[i] < 0.5 ? 0.0 : 60.0;
    h->lengthscale[0] = 0.05;
    h->outputscale = 1.0;
    gp_update(h);
    acq *a = acq_new(h, ACQ_EI, &o, 1);
    int good = 1;
    double ref = 0;
    for (int i = 0; i < 10; i++)
        if (h->X[i] >= 0.5)
            ref = h->X[i];
    double x = ref + 1e-4, grad, v = acq_eval(a, &x, &grad);
    good = isfinite(v) && isfinite(grad) && v < -100;
    double x2 = x + 1e-7, fd = (acq_eval(a, &x2, NULL) - acq_eval(a, (x2 = x - 1e-7, &x2), NULL)) / 2e-7;
    tap_ok(good && fabs(fd - grad) < 1e-4 * fabs(grad), "log EI at an improvement of ~60 sigma: %.1f, gradient %.3g",
           v, grad);
    acq_free(a);
    gp_free(h);
    gp_free(g);
}

static void check_monte_carlo(rng *r)
{
    gp *g = make_gp(r, 12, 2, 0.02);
    acq_options o;
    acq_defaults(&o);
    acq *ei = acq_new(g, ACQ_EI, &o, 1), *eic = acq_new(g, ACQ_EI_C, &o, 1);
    int inc = acq_incumbent(ei);
    const double *xp = g->X + 2 * inc;
    double mu_all[12];
    gp_predict(g, 12, g->X, mu_all, NULL, NULL);
    int lowest = 1;
    for (int i = 0; i < 12; i++)
        lowest = lowest && mu_all[inc] <= mu_all[i];
    tap_ok(lowest, "the incumbent has the lowest posterior mean among the evaluated points");
    for (int t = 0; t < 3; t++) {
        double x[2] = {rng_uniform(r), rng_uniform(r)}, pts[4] = {x[0], x[1], xp[0], xp[1]}, mu[2], cov[4];
        gp_predict(g, 2, pts, mu, NULL, cov);
        /* f(x), f(x+) jointly: Cholesky of the 2 x 2 covariance */
        double l11 = sqrt(cov[0]), l21 = cov[1] / l11, l22 = sqrt(fmax(cov[3] - l21 * l21, 0));
        int N = 400000;
        double s_ei = 0, s2_ei = 0, s_eic = 0, s2_eic = 0;
        for (int k = 0; k < N; k++) {
            double z1 = rng_normal(r), z2 = rng_normal(r);
            double fx = mu[0] + l11 * z1, fp = mu[1] + l21 * z1 + l22 * z2;
            double a = fmax(mu[1] - fx, 0), b = fmax(fp - fx, 0);
            s_ei += a, s2_ei += a * a, s_eic += b, s2_eic += b * b;
        }
        double m_ei = s_ei / N, se_ei = sqrt((s2_ei / N - m_ei * m_ei) / N);
        double m_eic = s_eic / N, se_eic = sqrt((s2_eic / N - m_eic * m_eic) / N);
        double v_ei = exp(acq_eval(ei, x, NULL)), v_eic = exp(acq_eval(eic, x, NULL));
        tap_ok(fabs(v_ei - m_ei) < 4 * se_ei + 1e-12,
               "EI closed form %.6g vs Monte-Carlo %.6g +- %.2g at (%.2f, %.2f)", v_ei, m_ei, se_ei, x[0], x[1]);
        tap_ok(fabs(v_eic - m_eic) < 4 * se_eic + 1e-12,
               "EI_C closed form %.6g vs Monte-Carlo over (f(x), f(x+)) %.6g +- %.2g", v_eic, m_eic, se_eic);
    }
    acq_free(ei);
    acq_free(eic);
    gp_free(g);
    /* noisy EI with (almost) noise-free data: every posterior sample at the evaluated points is the
     * data, so noisy EI is EI with the best observation as the incumbent */
    g = make_gp(r, 10, 2, 1e-12);
    acq *nei = acq_new(g, ACQ_NEI, &o, 5);
    ei = acq_new(g, ACQ_EI, &o, 1);
    double worst = 0;
    for (int t = 0; t < 10; t++) {
        double x[2] = {rng_uniform(r), rng_uniform(r)};
        worst = fmax(worst, fabs(exp(acq_eval(nei, x, NULL)) / exp(acq_eval(ei, x, NULL)) - 1));
    }
    tap_ok(worst < 1e-3, "noisy EI on noise-free data equals EI (worst rel %.2g)", worst);
    acq_free(nei);
    acq_free(ei);
    /* and with noise, noisy EI averages over samples: its seeded samples make it reproducible */
    gp_free(g);
    g = make_gp(r, 10, 2, 0.05);
    acq *n1 = acq_new(g, ACQ_NEI, &o, 5), *n2 = acq_new(g, ACQ_NEI, &o, 5), *n3 = acq_new(g, ACQ_NEI, &o, 6);
    double x[2] = {0.3, 0.6}, v1 = acq_eval(n1, x, NULL), v2 = acq_eval(n2, x, NULL), v3 = acq_eval(n3, x, NULL);
    tap_ok(v1 == v2 && v1 != v3, "noisy EI is a function of its seed (%.6f, %.6f, %.6f)", v1, v2, v3);
    acq_free(n1);
    acq_free(n2);
    acq_free(n3);
    gp_free(g);
}

int main(void)
{
    rng *r = rng_new(11);
    check_log_h();
    check_gradients(r);
    check_monte_carlo(r);
    acq_kind k;
    tap_ok(acq_parse("ei_c", &k) == 0 && k == ACQ_EI_C && acq_parse("eic", &k) != 0, "acquisition names parse");
    rng_free(r);
    return tap_done();
}
