#include "bo/acq_opt.h"

#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_qmc.h"
#include "core/blas_serial.h"
#include "core/err.h"
#include "core/rng.h"

void acqopt_defaults(acqopt_options *o)
{
    o->method = ACQOPT_LBFGS;
    o->raw_samples = 512;
    o->restarts = 8;
    o->maxeval = 100;
    o->direct_maxeval = 1000;
    o->min_distance = 1e-6;
}

int acqopt_parse_method(const char *name, acqopt_method *out)
{
    if (strcmp(name, "lbfgs") == 0)
        *out = ACQOPT_LBFGS;
    else if (strcmp(name, "direct") == 0)
        *out = ACQOPT_DIRECT;
    else
        return err_set("unknown acquisition optimizer '%s' (known: lbfgs, direct)", name);
    return 0;
}

void acqopt_round(int d, const int *levels, double *x)
{
    for (int j = 0; j < d; j++) {
        double v = x[j] < 0 ? 0 : x[j] > 1 ? 1 : x[j];
        if (levels && levels[j] > 0)
            v = round(v * levels[j]) / levels[j];
        x[j] = v;
    }
}

typedef struct cand {
    double value;
    int index; /* row in the candidate array */
} cand;

static int by_value_desc(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->value != q->value)
        return p->value > q->value ? -1 : 1;
    return p->index - q->index; /* ties keep a fixed order, so runs are reproducible */
}

static double score(acq *a, const double *x, double *grad)
{
    double v = acq_eval(a, x, grad);
    return isnan(v) ? -HUGE_VAL : v;
}

static double nlopt_objective(unsigned d, const double *x, double *grad, void *data)
{
    double v = acq_eval(data, x, grad);
    if (!isfinite(v)) {
        if (grad)
            memset(grad, 0, d * sizeof *grad);
        return -1e300;
    }
    return v;
}

static int too_close(int d, const double *x, const double *avoid, int navoid, double tol)
{
    for (int i = 0; i < navoid; i++) {
        const double *p = avoid + (size_t)i * d;
        double m = 0;
        for (int j = 0; j < d && m < tol; j++)
            m = fmax(m, fabs(x[j] - p[j]));
        if (m < tol)
            return 1;
    }
    return 0;
}

/* One local run of L-BFGS from x (in place); returns its final point's value after rounding. */
static void local_opt(nlopt_opt opt, int d, double *x)
{
    double f;
    nlopt_optimize(opt, x, &f); /* any stop (roundoff, maxeval) still leaves the best point in x */
    for (int j = 0; j < d; j++)
        x[j] = x[j] < 0 ? 0 : x[j] > 1 ? 1 : x[j];
}

static int maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value);

int acqopt_maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value)
{
    int threads = blas_serial_begin();
    int rc = maximize(a, d, levels, avoid, navoid, o, seed, x, value);
    blas_serial_end(threads);
    return rc;
}

static int maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value)
{
    int R = o->raw_samples > 0 ? o->raw_samples : 1, S = o->restarts > 0 ? o->restarts : 0;
    if (S > R)
        S = R;
    int total = R + S + 1; /* raw samples, local optima, and DIRECT's point */
    double *pts = malloc((size_t)total * d * sizeof *pts), *lb = malloc((size_t)d * sizeof *lb);
    double *ub = malloc((size_t)d * sizeof *ub);
    cand *c = malloc((size_t)total * sizeof *c);
    nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)d);
    int rc = -1, nc = 0;
    if (!pts || !lb || !ub || !c || !opt) {
        err_set("out of memory maximizing the acquisition");
        goto done;
    }
    for (int j = 0; j < d; j++)
        lb[j] = 0, ub[j] = 1;
    nlopt_set_max_objective(opt, nlopt_objective, a);
    nlopt_set_lower_bounds(opt, lb);
    nlopt_set_upper_bounds(opt, ub);
    nlopt_set_maxeval(opt, o->maxeval > 0 ? o->maxeval : 100);
    nlopt_set_ftol_rel(opt, 1e-9);
    nlopt_set_xtol_rel(opt, 1e-7);
    if (bo_qmc_uniform(d, 0, R, seed, pts) != 0)
        goto done;
    for (int i = 0; i < R; i++) {
        acqopt_round(d, levels, pts + (size_t)i * d);
        c[nc] = (cand){score(a, pts + (size_t)i * d, NULL), i};
        nc++;
    }
    qsort(c, (size_t)nc, sizeof *c, by_value_desc);
    /* local searches from the best raw samples */
    int next = R;
    for (int s = 0; s < S && s < R; s++) {
        double *p = pts + (size_t)next * d;
        memcpy(p, pts + (size_t)c[s].index * d, (size_t)d * sizeof *p);
        local_opt(opt, d, p);
        acqopt_round(d, levels, p);
        next++;
    }
    if (o->method == ACQOPT_DIRECT) {
        nlopt_opt dir = nlopt_create(NLOPT_GN_DIRECT_L, (unsigned)d);
        if (!dir) {
            err_set("cannot create NLopt's DIRECT-L");
            goto done;
        }
        double *p = pts + (size_t)next * d, f;
        nlopt_set_max_objective(dir, nlopt_objective, a);
        nlopt_set_lower_bounds(dir, lb);
        nlopt_set_upper_bounds(dir, ub);
        nlopt_set_maxeval(dir, o->direct_maxeval > 0 ? o->direct_maxeval : 1000);
        for (int j = 0; j < d; j++)
            p[j] = 0.5;
        nlopt_optimize(dir, p, &f);
        nlopt_destroy(dir);
        local_opt(opt, d, p);
        acqopt_round(d, levels, p);
        next++;
    }
    for (int i = R; i < next; i++)
        c[nc++] = (cand){score(a, pts + (size_t)i * d, NULL), i};
    qsort(c, (size_t)nc, sizeof *c, by_value_desc);
    for (int i = 0; i < nc; i++) {
        const double *p = pts + (size_t)c[i].index * d;
        if (!too_close(d, p, avoid, navoid, o->min_distance)) {
            memcpy(x, p, (size_t)d * sizeof *x);
            if (value)
                *value = c[i].value;
            rc = 0;
            goto done;
        }
    }
    /* every candidate was evaluated already (a small integer domain): try random points */
    rng *r = rng_new(seed ^ 0x5bd1e995u);
    for (int t = 0; r && t < 10000 && rc != 0; t++) {
        for (int j = 0; j < d; j++)
            x[j] = rng_uniform(r);
        acqopt_round(d, levels, x);
        if (!too_close(d, x, avoid, navoid, o->min_distance)) {
            if (value)
                *value = score(a, x, NULL);
            rc = 0;
        }
    }
    rng_free(r);
    if (rc != 0)
        err_set("no point left that has not been evaluated");
done:
    if (opt)
        nlopt_destroy(opt);
    free(pts);
    free(lb);
    free(ub);
    free(c);
    return rc;
}
