#include "bo/bo_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_num.h"
#include "bo/bo_qmc.h"
#include "bo/bo_space.h"
#include "bo/bo_strategy.h"
#include "core/err.h"
#include "core/rng.h"
#include "core/timer.h"

/* sub-streams of the seed: one for the design, and per ask (after n evaluations) three more */
enum { STREAM_DESIGN = 0x64657369, STREAM_FIT = 1, STREAM_ACQ = 2, STREAM_ACQOPT = 3 };

struct bo {
    bo_options o;
    bo_space space;
    int *levels; /* space.levels: integer dimensions' steps between the bounds, 0 continuous */
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
    o->design = BO_QMC_SCRAMBLED;
    o->acquisition = ACQ_NEI;
    acq_defaults(&o->acq);
    o->kernel = GP_MATERN52;
    gp_fit_defaults(&o->fit);
    acqopt_defaults(&o->opt);
    o->learn_noise = -1;
    o->seed = 1;
}

int bo_options_check(const bo_options *o)
{
    if (o->init < 0)
        return err_set("'init' must be >= 0 (0: the default, min(3 d, 30)), got %d", o->init);
    if (o->fit.restarts < 0)
        return err_set("'fit_restarts' must be >= 0, got %d", o->fit.restarts);
    if (o->design != BO_QMC_SCRAMBLED && o->design != BO_QMC_SHIFTED)
        return err_set("'design' must be scrambled or shifted, got %d", (int)o->design);
    if (o->learn_noise < -1 || o->learn_noise > 1)
        return err_set("learn_noise must be -1 (when some se is unknown), 0 or 1, got %d", o->learn_noise);
    if (acq_options_check(&o->acq) != 0 || acqopt_options_check(&o->opt) != 0 || gp_prior_check(&o->fit.prior) != 0)
        return -1;
    if (o->fit.maxeval < 1)
        return err_set("the GP fit's maxeval must be >= 1, got %d", o->fit.maxeval);
    return 0;
}

bo *bo_new(const bo_options *o)
{
    if (bo_options_check(o) != 0)
        return NULL;
    bo *b = calloc(1, sizeof *b);
    if (!b) {
        err_set("out of memory");
        return NULL;
    }
    if (bo_space_init(&b->space, o->d, o->lower, o->upper, o->integer) != 0) {
        free(b);
        return NULL;
    }
    b->o = *o;
    b->levels = b->space.levels;
    b->o.lower = b->space.lower;
    b->o.upper = b->space.upper;
    b->o.integer = NULL;
    if (b->o.init <= 0)
        b->o.init = 3 * o->d < 30 ? 3 * o->d : 30;
    b->last_acq = NAN;
    return b;
}

void bo_free(bo *b)
{
    if (!b)
        return;
    bo_space_free(&b->space);
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

int bo_tell(bo *b, const double *x, double y, double se)
{
    int d = b->o.d;
    if (!isfinite(y))
        return err_set("the observation must be a finite number, got %s", BO_NUM(y));
    if (isfinite(se) && se < 0)
        return err_set("the standard error must be >= 0, got %g", se);
    if (bo_space_check(&b->space, x) != 0)
        return -1;
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
    bo_space_snap(&b->space, x, b->X + (size_t)b->n * d);
    bo_space_to_unit(&b->space, b->X + (size_t)b->n * d, b->U + (size_t)b->n * d);
    b->y[b->n] = y;
    b->se[b->n] = isfinite(se) ? se : NAN;
    b->n++;
    return 0;
}

/* The GP of the current history (unit cube, standardized y), fitted once per history length. */
static int model(bo *b)
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
        mean += b->y[i] / n; /* divided first: finite observations near the double's limit stay finite */
    for (int i = 0; i < n; i++)
        var += (b->y[i] - mean) * (b->y[i] - mean);
    double sd = n > 1 ? sqrt(var / (n - 1)) : 0;
    if (!isfinite(mean) || !isfinite(var)) {
        double lo = b->y[0], hi = b->y[0];
        for (int i = 1; i < n; i++)
            lo = fmin(lo, b->y[i]), hi = fmax(hi, b->y[i]);
        return err_set("the observations, from %g to %g, spread too far for the GP (their variance overflows a "
                       "double): rescale f", lo, hi);
    }
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
    double t = timer_now();
    int rc = r ? gp_fit(g, &b->o.fit, r, 0, NULL) : -1;
    timer_account("bo.fit", timer_now() - t);
    rng_free(r);
    if (rc != 0) {
        gp_free(g);
        return err_prefix("fitting the GP to %d evaluations", n);
    }
    b->model = g;
    b->model_n = n;
    return 0;
}

/* 1 when u (unit cube) is within min_distance of one of the m points P (unit cube). */
static int near_any(const bo *b, const double *u, int m, const double *P)
{
    int d = b->o.d;
    for (int i = 0; i < m; i++) {
        double dist = 0;
        for (int j = 0; j < d; j++)
            dist = fmax(dist, fabs(u[j] - P[(size_t)i * d + j]));
        if (dist < b->o.opt.min_distance)
            return 1;
    }
    return 0;
}

/* The design: Sobol points index, index+1, ... (randomized by the seed; 0-based), skipping those
 * near one of the navoid points (unit cube: the evaluated ones, and pending ones of a batch). 1 when
 * u holds one, 0 when there is none left (a small integer domain), -1 on error. */
static int design_point(bo *b, int index, const double *avoid, int navoid, double *u)
{
    int d = b->o.d, found = 0;
    bo_qmc *q = bo_qmc_new_kind(d, rng_derive_seed(b->o.seed, STREAM_DESIGN), b->o.design);
    if (!q)
        return -1;
    for (int k = 0; k < index; k++)
        bo_qmc_next(q, u);
    for (int k = 0; k < 10000 && !found; k++) {
        bo_qmc_next(q, u);
        acqopt_round(d, b->levels, u);
        found = !near_any(b, u, navoid, avoid);
    }
    bo_qmc_free(q);
    return found;
}

/* The maximizer of the acquisition on the GP g, as the ask after `asked` evaluations (its random
 * streams), kept away from the nU points U (unit cube) as acqopt does. */
static int maximize(bo *b, const gp *g, int64_t asked, const double *U, int nU, double *u)
{
    uint64_t s = rng_derive_seed(b->o.seed, (uint64_t)asked);
    double t = timer_now(); /* the acquisition's set-up (noisy EI's posterior samples) and its maximization */
    acq *a = acq_new(g, b->o.acquisition, &b->o.acq, rng_derive_seed(s, STREAM_ACQ));
    if (!a)
        return -1;
    int rc = acqopt_maximize(a, b->o.d, b->levels, U, nU, &b->o.opt, rng_derive_seed(s, STREAM_ACQOPT), u,
                             &b->last_acq);
    acq_free(a);
    timer_account("bo.acquisition", timer_now() - t);
    return rc;
}

/* The maximizer of the acquisition on the GP of the history. */
static int model_point(bo *b, double *u)
{
    if (model(b) != 0)
        return -1;
    return maximize(b, b->model, b->n, b->U, b->n, u);
}

int bo_ask(bo *b, double *x)
{
    double *u = malloc((size_t)b->o.d * sizeof *u);
    if (!u)
        return err_set("out of memory");
    b->last_acq = NAN;
    int rc = 0;
    if (b->n < b->o.init || b->n == 0) {
        rc = design_point(b, b->n, b->U, b->n, u);
        if (rc == 0 && b->n == 0)
            rc = err_set("no design point found");
    }
    if (rc == 0) /* past the design, or no fresh design point left: ask the model */
        rc = model_point(b, u) == 0 ? 1 : -1;
    if (rc > 0)
        bo_space_from_unit(&b->space, u, x);
    free(u);
    return rc > 0 ? 0 : -1;
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
        bo_space_to_unit(&b->space, X + (size_t)i * b->o.d, U + (size_t)i * b->o.d);
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
    int rc = acq_values(a, m, U, b->ymean, b->ysd, values);
    acq_free(a);
    free(U);
    return rc;
}

const gp *bo_model(bo *b) { return model(b) == 0 ? b->model : NULL; }

void bo_y_scale(const bo *b, double *mean, double *sd)
{
    *mean = b->ymean;
    *sd = b->ysd;
}

/* ---- batch and asynchronous proposals (docs/method.md §8) */

/* The GP of the first `told` evaluations, with the same fit (seed and all) as an ask after told
 * evaluations: the history is shortened for the fit and restored. */
static int model_of_first(bo *b, int told)
{
    int n = b->n;
    if (told == n)
        return model(b);
    b->n = told;
    if (b->model && b->model_n != told) { /* the cache holds another length */
        gp_free(b->model);
        b->model = NULL;
    }
    int rc = model(b);
    b->n = n;
    return rc;
}

/* The Kriging believer's model: the GP of the told evaluations (its hyperparameters as fitted),
 * conditioned also on the m pending points P (unit cube) observed at its own posterior mean, with
 * the mean noise variance of the told observations. Adding observations at the posterior mean leaves
 * the mean unchanged and shrinks the variance near them, so that the acquisition of the next point
 * no longer rewards the places already being evaluated. */
static gp *believer(bo *b, int told, int m, const double *P)
{
    int d = b->o.d, n = told + m;
    const gp *g = b->model;
    double *X = malloc((size_t)n * d * sizeof *X), *y = malloc((size_t)n * sizeof *y);
    double *noise = malloc((size_t)n * sizeof *noise), *theta = malloc((size_t)gp_nparams(g) * sizeof *theta);
    gp *f = NULL;
    if (!X || !y || !noise || !theta) {
        err_set("out of memory");
        goto done;
    }
    memcpy(X, g->X, (size_t)told * d * sizeof *X);
    memcpy(X + (size_t)told * d, P, (size_t)m * d * sizeof *X);
    memcpy(y, g->y, (size_t)told * sizeof *y);
    memcpy(noise, g->noise, (size_t)told * sizeof *noise);
    double mean_noise = 0;
    for (int i = 0; i < told; i++)
        mean_noise += g->noise[i] / told;
    if (gp_predict(g, m, P, y + told, NULL, NULL) != 0)
        goto done;
    for (int i = told; i < n; i++)
        noise[i] = mean_noise;
    if (!(f = gp_new(n, d, X, y, noise, g->kernel)))
        goto done;
    gp_get_theta(g, theta);
    f->learn_noise = g->learn_noise;
    gp_set_theta(f, theta);
    f->jitter_min = g->jitter_min;
    if (gp_update(f) != 0) {
        gp_free(f);
        f = NULL;
        err_prefix("conditioning the GP on %d pending points", m);
    }
done:
    free(X);
    free(y);
    free(noise);
    free(theta);
    return f;
}

int bo_ask_pending(bo *b, int64_t number, int told, int m, const double *pending, double *x)
{
    int d = b->o.d;
    if (told < 0 || told > b->n)
        return err_set("a proposal can see 0 to %d told evaluations, not %d", b->n, told);
    if (m < 0 || number != (int64_t)told + m + 1)
        return err_set("proposal %lld must follow the %d told and %d pending evaluations", (long long)number, told,
                       m);
    if (m == 0 && told == b->n)
        return bo_ask(b, x);
    double *U = malloc((size_t)(told + m) * d * sizeof *U), *u = malloc((size_t)d * sizeof *u);
    if (!U || !u) {
        free(U);
        free(u);
        return err_set("out of memory");
    }
    if (told > 0) /* b->U is NULL before the first tell */
        memcpy(U, b->U, (size_t)told * d * sizeof *U);
    int rc = 0;
    for (int i = 0; i < m && rc == 0; i++) {
        const double *p = pending + (size_t)i * d;
        if (bo_space_check(&b->space, p) != 0) {
            rc = err_prefix("pending point %d", i + 1);
            break;
        }
        double *snapped = u; /* as told points are: snapped, then scaled */
        bo_space_snap(&b->space, p, snapped);
        bo_space_to_unit(&b->space, snapped, U + (size_t)(told + i) * d);
    }
    b->last_acq = NAN;
    int found = 0;
    if (rc == 0 && (number <= b->o.init || told == 0)) {
        found = design_point(b, (int)(number - 1), U, told + m, u);
        if (found < 0 || (found == 0 && told == 0))
            rc = found < 0 ? -1 : err_set("no design point found for proposal %lld", (long long)number);
    }
    if (rc == 0 && !found) {
        gp *f = NULL;
        if (model_of_first(b, told) != 0 || !(f = m > 0 ? believer(b, told, m, U + (size_t)told * d) : b->model))
            rc = -1;
        /* the streams of the ask after number - 1 evaluations: m = 0 is the sequential ask */
        if (rc == 0)
            rc = maximize(b, f, number - 1, U, told + m, u);
        if (f != b->model)
            gp_free(f);
    }
    if (rc == 0)
        bo_space_from_unit(&b->space, u, x);
    free(U);
    free(u);
    return rc;
}

/* ---- Bayesian optimization as a proposal strategy of the session */

static void *strategy_create(const bo_options *o) { return bo_new(o); }
static void strategy_destroy(void *state) { bo_free(state); }

static int strategy_ask(void *state, int64_t number, double *x)
{
    bo *b = state;
    if (number != (int64_t)b->n + 1)
        return err_set("BO proposes the evaluation that follows the %d told ones, not number %lld", b->n,
                       (long long)number);
    return bo_ask(b, x);
}

static int strategy_ask_pending(void *state, int64_t number, int told, int m, const double *pending, double *x)
{
    return bo_ask_pending(state, number, told, m, pending, x);
}

static int strategy_tell(void *state, const double *x, double y, double se) { return bo_tell(state, x, y, se); }
static int strategy_best(void *state, bo_best_point *out) { return bo_best(state, out); }

const bo_strategy bo_strategy_bo = {
    .name = "bo",
    .uses_acquisition = 1,
    .create = strategy_create,
    .destroy = strategy_destroy,
    .ask = strategy_ask,
    .tell = strategy_tell,
    .best = strategy_best,
    .ask_pending = strategy_ask_pending,
};
