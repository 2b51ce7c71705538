/* The BO session: settings checked once with the key at fault named (NaN, counts beyond int, wide
 * integer bounds), observations refused without "-nan", the run loop with its journal (an
 * interrupted run resumed ends as the uninterrupted one), stopping, re-scoring the history for a new
 * Lagrange multiplier without evaluating again (against a loop told the re-scored values directly,
 * and after a resume), and the random and Sobol strategies: determinism, bounds, integer dimensions,
 * numbered proposals. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bo/bo_session.h"
#include "core/err.h"
#include "core/log.h"
#include "tap.h"

static const double lo2[2] = {-1, 0}, hi2[2] = {1, 10};

static bo_session_config config(void)
{
    bo_session_config c;
    bo_session_config_defaults(&c, 2, lo2, hi2);
    c.init = 4;
    c.seed = 3;
    c.raw_samples = 128; /* keeps the asks quick */
    return c;
}

static int opens(const bo_session_config *c)
{
    bo_session *s = bo_session_open(c);
    bo_session_free(s);
    return s != NULL;
}

static void check_settings(void)
{
    bo_session_config c = config();
    tap_ok(opens(&c), "the defaults open");
    struct {
        const char *expect, *what;
        void (*set)(bo_session_config *);
    } cases[] = {
        {"'kappa' must be a finite number >= 0, got NaN", "a NaN kappa", NULL},
        {"'min_distance' must be a finite number >= 0, got NaN", "a NaN min_distance", NULL},
        {"'init' must be at most 2147483647, got 4294967298", "init = 2^32 + 2", NULL},
        {"'samples' must be >= 1, got 0", "samples = 0", NULL},
        {"'raw_samples' must be at most 2147483647", "raw_samples beyond int", NULL},
        {"'fit_restarts' must be >= 0, got -1", "fit_restarts = -1", NULL},
        {"'seed' must be >= 0, got -5", "a negative seed", NULL},
        {"priors.outputscale: a Gamma prior needs shape > 0 and rate > 0, got {NaN, 1}", "a NaN prior", NULL},
        {"unknown strategy 'grid' (known: bo, random, sobol, uniform, external)", "an unknown strategy", NULL},
        {"unknown acquisition 'qei'", "an unknown acquisition", NULL},
        {"'resume' must be \"check\" or \"force\", got \"maybe\"", "an unknown resume policy", NULL},
        {"contradict", "fresh with resume = \"force\"", NULL},
        {"bounds 2: lower and upper must be finite numbers, got [0, NaN]", "a NaN bound", NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        c = config();
        static double nan_hi[2] = {1, NAN};
        switch (k) {
        case 0: c.kappa = NAN; break;
        case 1: c.min_distance = NAN; break;
        case 2: c.init = ((int64_t)1 << 32) + 2; break;
        case 3: c.samples = 0; break;
        case 4: c.raw_samples = (int64_t)INT_MAX + 1; break;
        case 5: c.fit_restarts = -1; break;
        case 6: c.seed = -5; break;
        case 7: c.priors.os_shape = NAN, c.priors.os_rate = 1; break;
        case 8: c.strategy = "grid"; break;
        case 9: c.acquisition = "qei"; break;
        case 10: c.resume = "maybe"; break;
        case 11: c.fresh = 1, c.resume = "force"; break;
        case 12: c.upper = nan_hi; break;
        }
        tap_error(!opens(&c), cases[k].expect, NULL, cases[k].what);
        tap_ok(!strstr(err_msg(), "nan"), "  and its message has no printf NaN: %s", err_msg());
    }
    /* integer dimensions wider than an int could count are refused, not cast into non-integers */
    static const double wide_lo[1] = {0}, wide_hi[1] = {4294967296.0 * 256};
    static const int one[1] = {1};
    bo_session_config_defaults(&c, 1, wide_lo, wide_hi);
    c.integer = one;
    tap_error(!opens(&c), "bounds 1: an integer dimension needs bounds within", NULL, "integer bounds beyond INT_MAX");
    static const double span_lo[1] = {-2000000000.0}, span_hi[1] = {2000000000.0};
    bo_session_config_defaults(&c, 1, span_lo, span_hi);
    c.integer = one;
    tap_error(!opens(&c), "spans at most 2147483647", NULL, "integer bounds more than INT_MAX apart");
    static const double ok_lo[1] = {-2147483647.0}, ok_hi[1] = {-2147483640.0};
    bo_session_config_defaults(&c, 1, ok_lo, ok_hi);
    c.integer = one;
    c.init = 3;
    bo_session *s = bo_session_open(&c);
    int ints = s != NULL;
    for (int i = 0; s && i < 6 && ints; i++) {
        double x;
        ints = bo_session_ask(s, &x, NULL) == 0 && x == floor(x) && x >= ok_lo[0] && x <= ok_hi[0];
        bo_outcome o = {x * 1e-9, 0, 1, NULL};
        ints = ints && bo_session_tell(s, &x, &o, NAN) == 0;
    }
    tap_ok(ints, "an integer dimension at the edge of int is asked at integers in its bounds");
    bo_session_free(s);
}

/* f(x) = quadratic + noise-free; info {"L": ..., "R": ...} for the re-scoring tests */
typedef struct objective {
    int calls, fail_at;
    double lambda;
    char info[96];
} objective;

static double part_L(const double *x) { return (x[0] - 0.3) * (x[0] - 0.3); }
static double part_R(const double *x) { return fabs(x[1] - 6.3) / 10; }

static int evaluate(void *ctx, int64_t number, const double *x, bo_outcome *out)
{
    objective *f = ctx;
    if (number == f->fail_at)
        return err_set("killed");
    f->calls++;
    double L = part_L(x), R = part_R(x);
    snprintf(f->info, sizeof f->info, "{\"L\":%.17g,\"R\":%.17g}", L, R);
    *out = (bo_outcome){L + f->lambda * R, 0.01, 1, f->info};
    return 0;
}

static int history_equal(bo_session *a, bo_session *b)
{
    if (bo_session_count(a) != bo_session_count(b))
        return 0;
    for (int i = 0; i < bo_session_count(a); i++) {
        const bo_record *p = bo_session_record(a, i), *q = bo_session_record(b, i);
        if (memcmp(p->x, q->x, 2 * sizeof *p->x) != 0 || p->y != q->y || p->se != q->se || strcmp(p->info, q->info))
            return 0;
    }
    return 1;
}

static void check_run_and_resume(const char *journal)
{
    bo_session_config c = config();
    objective f = {0, 0, 1, ""};
    bo_run run = {.iterations = 6, .evaluate = evaluate, .evaluate_ctx = &f};
    int stopped;
    bo_session *a = bo_session_open(&c);
    tap_ok(a && bo_session_run(a, &run, &stopped) == 0 && bo_session_count(a) == 10 && f.calls == 10 && !stopped,
           "a run makes init + iterations evaluations");
    /* the same run journaled, killed at evaluation 7, reopened from its journal */
    c.journal = journal;
    objective g = {0, 7, 1, ""};
    run.evaluate_ctx = &g;
    bo_session *b = bo_session_open(&c);
    tap_error(bo_session_run(b, &run, &stopped) != 0, "evaluation 7: killed", NULL,
              "an evaluation that fails ends the run");
    tap_ok(bo_session_count(b) == 6, "after 6 recorded evaluations");
    bo_session_free(b);
    g.fail_at = 0;
    b = bo_session_open(&c);
    tap_ok(b && bo_session_resumed(b) == 6, "reopened, the session replays the 6 evaluations of its journal");
    tap_ok(b && bo_session_run(b, &run, &stopped) == 0 && g.calls == 10, "and evaluates only the 4 missing ones");
    tap_ok(b && history_equal(a, b), "the resumed run's history equals the uninterrupted run's (x, y, se, info)");
    bo_best_point pa, pb;
    tap_ok(b && bo_session_best(a, &pa) == 0 && bo_session_best(b, &pb) == 0 && pa.index == pb.index && pa.mu == pb.mu,
           "and so does its best point");
    /* a finished run opened again evaluates nothing */
    bo_session_free(b);
    b = bo_session_open(&c);
    g.calls = 0;
    tap_ok(b && bo_session_run(b, &run, &stopped) == 0 && g.calls == 0 && history_equal(a, b),
           "a finished run opened again evaluates nothing");
    /* the run refuses a budget beyond int rather than truncating it */
    run.iterations = INT_MAX;
    tap_error(bo_session_run(b, &run, &stopped) != 0, "'iterations' must be from 0 to", NULL,
              "iterations beyond int are refused");
    run.iterations = -1;
    tap_error(bo_session_run(b, &run, &stopped) != 0, "'iterations' must be from 0", NULL,
              "negative iterations are refused");
    bo_session_free(b);
    /* a journal of another seed is refused naming the difference; fresh replaces it */
    c.seed = 4;
    tap_error(!opens(&c), "written with seed 3, this run has seed 4", NULL, "another seed on the journal is refused");
    c.fresh = 1;
    b = bo_session_open(&c);
    tap_ok(b && bo_session_count(b) == 0, "fresh = true starts over");
    bo_session_free(b);
    bo_session_free(a);
    unlink(journal);
}

static void check_observations(void)
{
    bo_session_config c = config();
    bo_session *s = bo_session_open(&c);
    double x[2] = {0, 5};
    bo_outcome o = {NAN, 0, 0, NULL};
    tap_error(bo_session_tell(s, x, &o, NAN) != 0, "y must be a finite number, got NaN", NULL, "a NaN y is refused");
    o = (bo_outcome){-INFINITY, 0, 0, NULL};
    tap_error(bo_session_tell(s, x, &o, NAN) != 0, "got -inf", NULL, "an infinite y is refused");
    o = (bo_outcome){1, NAN, 1, NULL};
    tap_error(bo_session_tell(s, x, &o, NAN) != 0, "the standard error must be a finite number >= 0, got NaN", NULL,
              "a NaN standard error is refused (no standard error is has_se = 0)");
    o = (bo_outcome){1, 0, 0, "{\"a\":"};
    tap_error(bo_session_tell(s, x, &o, NAN) != 0, "not one JSON value", NULL, "info that is not JSON is refused");
    double out[2] = {2, 5};
    o = (bo_outcome){1, 0, 0, NULL};
    tap_error(bo_session_tell(s, out, &o, NAN) != 0, "outside the bounds", NULL,
              "a point outside the bounds is refused");
    tap_ok(bo_session_count(s) == 0, "nothing refused is recorded");
    o = (bo_outcome){1, 0, 0, " { \"k\" : [1, 2] } "};
    tap_ok(bo_session_tell(s, x, &o, 0.5) == 0 && strcmp(bo_session_record(s, 0)->info, "{\"k\":[1,2]}") == 0 &&
               isnan(bo_session_record(s, 0)->se) && bo_session_record(s, 0)->seconds == 0.5,
           "a told evaluation keeps its info as compact JSON, an unknown se as NaN");
    bo_session_free(s);
}

static int evaluate_nan(void *ctx, int64_t number, const double *x, bo_outcome *out)
{
    (void)ctx, (void)number, (void)x;
    *out = (bo_outcome){NAN, 0, 0, NULL};
    return 0;
}

static int evaluate_bad_se(void *ctx, int64_t number, const double *x, bo_outcome *out)
{
    (void)ctx, (void)number, (void)x;
    *out = (bo_outcome){1, -1, 1, NULL};
    return 0;
}

static int stop_at_3(void *ctx, bo_session *s, const bo_record *r)
{
    (void)ctx, (void)s;
    return r->index >= 3;
}

static void check_run_errors(void)
{
    bo_session_config c = config();
    bo_session *s = bo_session_open(&c);
    int stopped;
    bo_run run = {.iterations = 2, .evaluate = evaluate_nan};
    tap_error(bo_session_run(s, &run, &stopped) != 0, "evaluation 1: f's result must be a finite number, got NaN",
              NULL, "f returning NaN ends the run with a message naming it");
    run.evaluate = evaluate_bad_se;
    tap_error(bo_session_run(s, &run, &stopped) != 0, "f's second result: the standard error must be", NULL,
              "f returning a negative standard error ends the run");
    objective f = {0, 0, 1, ""};
    run = (bo_run){.iterations = 10, .evaluate = evaluate, .evaluate_ctx = &f, .after = stop_at_3};
    tap_ok(bo_session_run(s, &run, &stopped) == 0 && stopped && bo_session_count(s) == 3,
           "the after callback stops the run");
    bo_session_free(s);
}

/* ---- re-scoring */

static int rescore_lambda(void *ctx, const bo_record *r, bo_outcome *out)
{
    double lambda = *(const double *)ctx, L, R;
    if (!r->info || sscanf(r->info, "{\"L\":%lf,\"R\":%lf}", &L, &R) != 2)
        return err_set("no L and R in the info");
    out->y = L + lambda * R;
    return 0;
}

static int rescore_fail_at_3(void *ctx, const bo_record *r, bo_outcome *out)
{
    (void)ctx;
    out->y = -1;
    return r->index == 3 ? err_set("no") : 0;
}

static void check_rescore(const char *journal)
{
    static const int integer[2] = {0, 1}; /* R counts steps: a rebuilt strategy must keep them integers */
    bo_session_config c = config();
    c.integer = integer;
    c.journal = journal;
    c.fresh = 1;
    objective f = {0, 0, 1.0, ""};
    bo_run run = {.iterations = 4, .evaluate = evaluate, .evaluate_ctx = &f};
    int stopped;
    bo_session *s = bo_session_open(&c);
    bo_session_run(s, &run, &stopped);
    int n = bo_session_count(s);
    double y3 = bo_session_record(s, 2)->y;
    tap_error(bo_session_rescore(s, n, rescore_fail_at_3, NULL) != 0, "re-scoring evaluation 3: no", NULL,
              "a re-scoring that fails names the evaluation");
    tap_ok(bo_session_record(s, 2)->y == y3 && bo_session_record(s, 0)->y != -1, "and changes nothing");
    double lambda = 4.0;
    tap_ok(bo_session_rescore(s, n, rescore_lambda, &lambda) == 0, "re-scoring for lambda = 4");
    int calls = f.calls, same = 1;
    for (int i = 0; i < n; i++) {
        const bo_record *r = bo_session_record(s, i);
        same = same && r->y == part_L(r->x) + 4.0 * part_R(r->x) && r->se == 0.01;
    }
    tap_ok(same && f.calls == calls, "every record now holds y = L + 4 R (se kept), nothing evaluated again");
    /* reference: a loop told the re-scored history directly asks the same next point */
    bo_options o;
    bo_defaults(&o, 2, lo2, hi2);
    o.init = 4;
    o.seed = 3;
    o.opt.raw_samples = 128;
    o.integer = integer;
    bo *ref = bo_new(&o);
    for (int i = 0; i < n; i++) {
        const bo_record *r = bo_session_record(s, i);
        bo_tell(ref, r->x, part_L(r->x) + 4.0 * part_R(r->x), 0.01);
    }
    double xs[2], xr[2];
    tap_ok(bo_session_ask(s, xs, NULL) == 0 && bo_ask(ref, xr) == 0 && memcmp(xs, xr, sizeof xs) == 0 &&
               xs[1] == floor(xs[1]),
           "the re-scored session asks what a loop told the re-scored values asks (%.6g, %.6g)", xs[0], xs[1]);
    bo_best_point bs, br;
    tap_ok(bo_session_best(s, &bs) == 0 && bo_best(ref, &br) == 0 && bs.index == br.index && bs.mu == br.mu,
           "and recommends the same point");
    bo_free(ref);
    /* the journal keeps the values as evaluated; a resumed session re-scored again is the same */
    bo_session_free(s);
    c.fresh = 0;
    bo_session *r = bo_session_open(&c);
    tap_ok(r && bo_session_record(r, 0)->y == part_L(bo_session_record(r, 0)->x) + part_R(bo_session_record(r, 0)->x),
           "the journal holds y as evaluated (lambda = 1)");
    double xr2[2];
    tap_ok(r && bo_session_rescore(r, bo_session_count(r), rescore_lambda, &lambda) == 0 &&
               bo_session_ask(r, xr2, NULL) == 0 && memcmp(xs, xr2, sizeof xs) == 0,
           "resumed from the journal and re-scored, it asks the same point");
    bo_session_free(r);
    unlink(journal);
}

/* A loop told the first n evaluations of s, the first k of them with y = L + lambda R. */
static bo *reference(bo_session *s, int n, int k, double lambda)
{
    static const int integer[2] = {0, 1};
    bo_options o;
    bo_defaults(&o, 2, lo2, hi2);
    o.init = 4;
    o.seed = 3;
    o.opt.raw_samples = 128;
    o.integer = integer;
    bo *b = bo_new(&o);
    for (int i = 0; i < n; i++) {
        const bo_record *r = bo_session_record(s, i);
        bo_tell(b, r->x, i < k ? part_L(r->x) + lambda * part_R(r->x) : r->y, r->se);
    }
    return b;
}

static void check_partial_rescore(void)
{
    static const int integer[2] = {0, 1};
    bo_session_config c = config();
    c.integer = integer;
    objective f = {0, 0, 1.0, ""};
    bo_run run = {.iterations = 5, .evaluate = evaluate, .evaluate_ctx = &f};
    int stopped;
    bo_session *s = bo_session_open(&c);
    bo_session_run(s, &run, &stopped);
    double lambda = 0.2, y9 = bo_session_record(s, 8)->y;
    tap_error(bo_session_rescore(s, 10, rescore_lambda, &lambda) != 0, "first 1 to 9 evaluations, not 10", NULL,
              "re-scoring more evaluations than recorded is refused");
    tap_ok(bo_session_rescore(s, 6, rescore_lambda, &lambda) == 0, "re-scoring the first 6 of 9 evaluations");
    const double *x6 = bo_session_record(s, 5)->x;
    tap_ok(bo_session_record(s, 5)->y == part_L(x6) + 0.2 * part_R(x6) && bo_session_record(s, 8)->y == y9,
           "the first 6 hold their new y, the later ones keep theirs");
    bo *six = reference(s, 6, 6, lambda);
    bo_best_point bs, br;
    double grid[4] = {0.1, 3, 0.6, 8}, ms[2], mr[2];
    bo *model = bo_session_bo(s);
    tap_ok(bo_session_best(s, &bs) == 0 && bo_best(six, &br) == 0 && bs.index == br.index && bs.mu == br.mu &&
               bs.index < 6,
           "the best point is that of the first 6 re-scored (evaluation %d)", bs.index + 1);
    tap_ok(model && bo_predict(model, 2, grid, ms, NULL) == 0 && bo_predict(six, 2, grid, mr, NULL) == 0 &&
               ms[0] == mr[0] && ms[1] == mr[1],
           "and so is the model");
    bo_free(six);
    bo *all = reference(s, 9, 6, lambda);
    double xs[2], xr[2];
    tap_ok(bo_session_ask(s, xs, NULL) == 0 && bo_ask(all, xr) == 0 && memcmp(xs, xr, sizeof xs) == 0,
           "the next ask is that of the whole history, the later evaluations with their own y");
    bo_outcome o = {1, 0.01, 1, NULL};
    tap_ok(bo_session_tell(s, xs, &o, NAN) == 0 && bo_session_count(s) == 10 && bo_session_best(s, &bs) == 0,
           "and telling goes on");
    bo_free(all);
    bo_session_free(s);
}

/* ---- the baselines */

/* uniform: every coordinate at the same relative place t of its range (the integer one in cell
 * floor(4 t) of its 4 values), and the t of 64 proposals fill [0, 1): one in each 1/64 */
static void check_uniform_diagonal(void)
{
    static const double lo[3] = {-1, 0, 2}, hi[3] = {1, 3, 2.5};
    static const int integer[3] = {0, 1, 0};
    bo_session_config c;
    bo_session_config_defaults(&c, 3, lo, hi);
    c.integer = integer;
    c.strategy = "uniform";
    c.seed = 5;
    bo_session *s = bo_session_open(&c);
    int diagonal = 1, cells[64] = {0}, filled = 1;
    for (int i = 0; s && i < 64; i++) {
        double x[3];
        bo_session_ask(s, x, NULL);
        double t0 = (x[0] - lo[0]) / (hi[0] - lo[0]), t2 = (x[2] - lo[2]) / (hi[2] - lo[2]);
        diagonal = diagonal && fabs(t0 - t2) < 1e-12 && x[1] == floor(4 * t0);
        cells[(int)(t0 * 64)]++;
        bo_outcome o = {t0, 0, 0, NULL};
        bo_session_tell(s, x, &o, NAN);
    }
    for (int k = 0; k < 64; k++)
        filled = filled && cells[k] == 1;
    tap_ok(s && diagonal, "uniform: every proposal on the box's diagonal, the integer dimension in its cell");
    tap_ok(filled, "uniform: 64 proposals put one fraction in each 1/64 of [0, 1)");
    bo_session_free(s);
}

static void check_baseline(const char *name, const char *journal)
{
    static const double lo[3] = {-1, 0, 2}, hi[3] = {1, 3, 2.5};
    static const int integer[3] = {0, 1, 0};
    bo_session_config c;
    bo_session_config_defaults(&c, 3, lo, hi);
    c.integer = integer;
    c.strategy = name;
    c.seed = 11;
    bo_session *a = bo_session_open(&c), *b = bo_session_open(&c);
    c.seed = 12;
    bo_session *other = bo_session_open(&c);
    enum { N = 400 };
    int inside = 1, same = 1, differ = 0, ints = 1, seen[4] = {0};
    double mean = 0;
    for (int i = 0; a && b && other && i < N; i++) {
        double x[3], y[3], z[3];
        int64_t number;
        bo_session_ask(a, x, &number);
        bo_session_ask(b, y, NULL);
        bo_session_ask(other, z, NULL);
        same = same && memcmp(x, y, sizeof x) == 0 && number == i + 1;
        differ += memcmp(x, z, sizeof x) != 0;
        for (int j = 0; j < 3; j++)
            inside = inside && x[j] >= lo[j] && x[j] <= hi[j];
        ints = ints && x[1] == floor(x[1]);
        if (x[1] >= 0 && x[1] <= 3)
            seen[(int)x[1]]++;
        mean += x[0] / N;
        bo_outcome o = {x[0] * x[0] + x[1], 0, 0, NULL};
        bo_session_tell(a, x, &o, NAN);
        bo_session_tell(b, y, &o, NAN);
        bo_session_tell(other, z, &o, NAN);
    }
    tap_ok(a && same, "%s: the same seed gives the same proposals, numbered 1, 2, ...", name);
    tap_ok(differ > N - 5, "%s: another seed gives other proposals (%d of %d differ)", name, differ, N);
    tap_ok(inside, "%s: every proposal lies in the bounds", name);
    tap_ok(ints, "%s: the integer dimension is proposed at integers", name);
    int balanced = 1;
    for (int k = 0; k < 4; k++)
        balanced = balanced && abs(seen[k] - N / 4) < N / 8;
    tap_ok(balanced, "%s: each of the integer values 0..3 is proposed about as often (%d %d %d %d)", name, seen[0],
           seen[1], seen[2], seen[3]);
    tap_ok(fabs(mean) < 0.1, "%s: the continuous dimension is uniform (mean %.3f in [-1, 1])", name, mean);
    bo_best_point bp;
    int k = 0;
    for (int i = 1; i < N; i++)
        if (bo_session_record(a, i)->y < bo_session_record(a, k)->y)
            k = i;
    tap_ok(bo_session_best(a, &bp) == 0 && bp.index == k && bp.mu == bo_session_record(a, k)->y,
           "%s: the best point is the lowest y", name);
    tap_error(bo_session_bo(a) == NULL, "has no model", NULL, "and there is no model to ask about");
    /* numbered proposals: any number ahead, without telling; the same as asked in order */
    double p3[3], q[3];
    bo_session *fresh = bo_session_open(&c);
    tap_ok(bo_session_propose(fresh, 3, p3) == 0 && bo_session_propose(fresh, 1, q) == 0 &&
               bo_session_propose(fresh, 2, q) == 0,
           "%s: proposals 3, 1 and 2 may be pending at once", name);
    for (int i = 0; i < 3; i++) {
        bo_session_ask(fresh, q, NULL);
        bo_outcome o = {1, 0, 0, NULL};
        bo_session_tell(fresh, q, &o, NAN);
    }
    tap_ok(memcmp(p3, q, sizeof q) == 0, "%s: proposal 3 asked ahead is the third asked in order", name);
    tap_error(bo_session_propose(fresh, 2, q) != 0, "recorded already", NULL,
              "a proposal already evaluated is refused");
    bo_session_free(fresh);
    /* through a journal, which records the strategy */
    c.journal = journal;
    c.fresh = 1;
    objective f = {0, 0, 1, ""};
    bo_session *j = bo_session_open(&c);
    int stopped;
    bo_run run = {.iterations = 3, .evaluate = evaluate, .evaluate_ctx = &f};
    tap_ok(j && bo_session_run(j, &run, &stopped) == 0 && bo_session_count(j) == bo_session_init_count(j) + 3,
           "%s: a run goes through the journal like BO", name);
    bo_session_free(j);
    c.fresh = 0;
    c.strategy = "bo";
    tap_error(!opens(&c), "written by strategy", name, "reopening it as BO is refused");
    unlink(journal);
    bo_session_free(a);
    bo_session_free(b);
    bo_session_free(other);
}

static void check_bo_numbers(void)
{
    bo_session_config c = config();
    bo_session *s = bo_session_open(&c);
    double x[2];
    tap_error(bo_session_propose(s, 2, x) != 0, "BO proposes the evaluation that follows", NULL,
              "BO refuses a proposal other than the next one");
    int64_t number = 0;
    tap_ok(bo_session_ask(s, x, &number) == 0 && number == 1, "and numbers the next one 1");
    bo_session_free(s);
}

int main(void)
{
    log_set_quiet(1);
    char journal[] = "/tmp/bo_session_XXXXXX";
    close(mkstemp(journal));
    unlink(journal);
    check_settings();
    check_observations();
    check_run_errors();
    check_run_and_resume(journal);
    check_rescore(journal);
    check_partial_rescore();
    check_bo_numbers();
    check_baseline("random", journal);
    check_baseline("sobol", journal);
    check_baseline("uniform", journal);
    check_uniform_diagonal();
    return tap_done();
}
