#include "bo/acqopt.h"

#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_num.h"
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

int acqopt_options_check(const acqopt_options *o)
{
    if (o->raw_samples < 1)
        return err_set("'raw_samples' must be >= 1, got %d", o->raw_samples);
    if (o->restarts < 0)
        return err_set("'restarts' must be >= 0, got %d", o->restarts);
    if (!(o->min_distance >= 0 && isfinite(o->min_distance)))
        return err_set("'min_distance' must be a finite number >= 0, got %s", BO_NUM(o->min_distance));
    return 0;
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

/* One local run of L-BFGS from x (in place), clamped to the box. */
static void local_opt(nlopt_opt opt, int d, double *x)
{
    double f;
    nlopt_optimize(opt, x, &f); /* any stop (roundoff, maxeval) still leaves the best point in x */
    for (int j = 0; j < d; j++)
        x[j] = x[j] < 0 ? 0 : x[j] > 1 ? 1 : x[j];
}

/* The candidates of one maximization: the raw samples (rows 0..R-1 of pts), then the local optima
 * and DIRECT's point appended after them; c holds their scores. */
typedef struct search {
    acq *a;
    int d;
    const int *levels;
    const acqopt_options *o;
    int R, S;          /* raw samples, local starts */
    double *pts, *lb, *ub;
    cand *c;
    int nc, next;      /* scored candidates, next free row of pts */
    nlopt_opt lbfgs;
} search;

static void search_free(search *s)
{
    if (s->lbfgs)
        nlopt_destroy(s->lbfgs);
    free(s->pts);
    free(s->lb);
    free(s->ub);
    free(s->c);
    memset(s, 0, sizeof *s);
}

static int search_init(search *s, acq *a, int d, const int *levels, const acqopt_options *o)
{
    memset(s, 0, sizeof *s);
    s->a = a;
    s->d = d;
    s->levels = levels;
    s->o = o;
    s->R = o->raw_samples > 0 ? o->raw_samples : 1;
    s->S = o->restarts > 0 ? o->restarts : 0;
    if (s->S > s->R)
        s->S = s->R;
    size_t total = (size_t)s->R + (size_t)s->S + 1; /* raw samples, local optima, and DIRECT's point */
    s->pts = malloc(total * d * sizeof *s->pts);
    s->lb = malloc((size_t)d * sizeof *s->lb);
    s->ub = malloc((size_t)d * sizeof *s->ub);
    s->c = malloc(total * sizeof *s->c);
    s->lbfgs = nlopt_create(NLOPT_LD_LBFGS, (unsigned)d);
    if (!s->pts || !s->lb || !s->ub || !s->c || !s->lbfgs) {
        search_free(s);
        return err_set("out of memory maximizing the acquisition");
    }
    for (int j = 0; j < d; j++)
        s->lb[j] = 0, s->ub[j] = 1;
    nlopt_set_max_objective(s->lbfgs, nlopt_objective, a);
    nlopt_set_lower_bounds(s->lbfgs, s->lb);
    nlopt_set_upper_bounds(s->lbfgs, s->ub);
    nlopt_set_maxeval(s->lbfgs, o->maxeval > 0 ? o->maxeval : 100);
    nlopt_set_ftol_rel(s->lbfgs, 1e-9);
    nlopt_set_xtol_rel(s->lbfgs, 1e-7);
    return 0;
}

/* Scores R quasi-random points (rounded to the integer grid) and sorts them, best first. */
static int score_raw_samples(search *s, uint64_t seed)
{
    int d = s->d;
    if (bo_qmc_uniform(d, 0, s->R, seed, s->pts) != 0)
        return -1;
    for (int i = 0; i < s->R; i++) {
        acqopt_round(d, s->levels, s->pts + (size_t)i * d);
        s->c[s->nc++] = (cand){score(s->a, s->pts + (size_t)i * d, NULL), i};
    }
    qsort(s->c, (size_t)s->nc, sizeof *s->c, by_value_desc);
    s->next = s->R;
    return 0;
}

/* L-BFGS from each of the S best raw samples; the optima are appended as candidates. */
static void refine_best(search *s)
{
    int d = s->d;
    for (int k = 0; k < s->S; k++) {
        double *p = s->pts + (size_t)s->next * d;
        memcpy(p, s->pts + (size_t)s->c[k].index * d, (size_t)d * sizeof *p);
        local_opt(s->lbfgs, d, p);
        acqopt_round(d, s->levels, p);
        s->next++;
    }
}

/* DIRECT-L over the box from its centre, polished by L-BFGS; its point is appended. */
static int direct_search(search *s)
{
    int d = s->d;
    nlopt_opt dir = nlopt_create(NLOPT_GN_DIRECT_L, (unsigned)d);
    if (!dir)
        return err_set("cannot create NLopt's DIRECT-L");
    double *p = s->pts + (size_t)s->next * d, f;
    nlopt_set_max_objective(dir, nlopt_objective, s->a);
    nlopt_set_lower_bounds(dir, s->lb);
    nlopt_set_upper_bounds(dir, s->ub);
    nlopt_set_maxeval(dir, s->o->direct_maxeval > 0 ? s->o->direct_maxeval : 1000);
    for (int j = 0; j < d; j++)
        p[j] = 0.5;
    nlopt_optimize(dir, p, &f);
    nlopt_destroy(dir);
    local_opt(s->lbfgs, d, p);
    acqopt_round(d, s->levels, p);
    s->next++;
    return 0;
}

/* The best candidate that is not an evaluated point; -1 (no message) when there is none. */
static int pick_fresh(search *s, const double *avoid, int navoid, double *x, double *value)
{
    int d = s->d;
    for (int i = s->R; i < s->next; i++)
        s->c[s->nc++] = (cand){score(s->a, s->pts + (size_t)i * d, NULL), i};
    qsort(s->c, (size_t)s->nc, sizeof *s->c, by_value_desc);
    for (int i = 0; i < s->nc; i++) {
        const double *p = s->pts + (size_t)s->c[i].index * d;
        if (!too_close(d, p, avoid, navoid, s->o->min_distance)) {
            memcpy(x, p, (size_t)d * sizeof *x);
            if (value)
                *value = s->c[i].value;
            return 0;
        }
    }
    return -1;
}

/* Every candidate was evaluated already (a small integer domain): random points of the grid. */
static int pick_random(search *s, const double *avoid, int navoid, uint64_t seed, double *x, double *value)
{
    int d = s->d, rc = -1;
    rng *r = rng_new(seed ^ 0x5bd1e995u);
    for (int t = 0; r && t < 10000 && rc != 0; t++) {
        for (int j = 0; j < d; j++)
            x[j] = rng_uniform(r);
        acqopt_round(d, s->levels, x);
        if (!too_close(d, x, avoid, navoid, s->o->min_distance)) {
            if (value)
                *value = score(s->a, x, NULL);
            rc = 0;
        }
    }
    rng_free(r);
    return rc == 0 ? 0 : err_set("no point left that has not been evaluated");
}

static int maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value)
{
    search s;
    if (search_init(&s, a, d, levels, o) != 0)
        return -1;
    int rc = score_raw_samples(&s, seed);
    if (rc == 0) {
        refine_best(&s);
        if (o->method == ACQOPT_DIRECT)
            rc = direct_search(&s);
    }
    if (rc == 0 && pick_fresh(&s, avoid, navoid, x, value) != 0)
        rc = pick_random(&s, avoid, navoid, seed, x, value);
    search_free(&s);
    return rc;
}

int acqopt_maximize(acq *a, int d, const int *levels, const double *avoid, int navoid, const acqopt_options *o,
                    uint64_t seed, double *x, double *value)
{
    int threads = blas_serial_begin();
    int rc = maximize(a, d, levels, avoid, navoid, o, seed, x, value);
    blas_serial_end(threads);
    return rc;
}
