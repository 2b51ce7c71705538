/* Batch and asynchronous proposals (bo_ask_pending, bo_session_propose_pending): a proposal with
 * nothing pending is the sequential ask; the design is the sequential design whatever is pending;
 * a proposal seeing the first t of n evaluations is the one a loop told only those t makes (the
 * fit is the same, the later evaluations are ignored); the same arguments give the same point;
 * a batch stays in the box, puts integer dimensions at integers and never repeats a told or
 * pending point; bad arguments are refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_functions.h"
#include "bo/bo_loop.h"
#include "bo/bo_session.h"
#include "core/err.h"
#include "tap.h"

static const double lo[2] = {-5, 0}, hi[2] = {10, 15};

static double branin(const double *x)
{
    const double pi = 3.14159265358979323846, b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
    double u = x[1] - b * x[0] * x[0] + c * x[0] - 6;
    return u * u + 10 * (1 - t) * cos(x[0]) + 10;
}

static bo *make(const int *integer)
{
    bo_options o;
    bo_defaults(&o, 2, lo, hi);
    o.init = 5;
    o.seed = 7;
    o.integer = integer;
    o.opt.raw_samples = 128;
    return bo_new(&o);
}

/* Tells b n evaluations of Branin at its own sequential proposals. */
static void run(bo *b, int n)
{
    double x[2];
    for (int i = 0; i < n; i++) {
        if (bo_ask(b, x) != 0 || bo_tell(b, x, branin(x), 0.1) != 0)
            tap_diag("run: %s", err_msg());
    }
}

static int same(const double *a, const double *b, int d)
{
    for (int j = 0; j < d; j++)
        if (a[j] != b[j])
            return 0;
    return 1;
}

static void sequential_equivalence(void)
{
    bo *a = make(NULL), *b = make(NULL);
    run(a, 8);
    run(b, 8);
    double xa[2], xb[2];
    int ok = bo_ask(a, xa) == 0 && bo_ask_pending(b, 9, 8, 0, NULL, xb) == 0;
    tap_ok(ok && same(xa, xb, 2), "nothing pending: the sequential ask (%g, %g) vs (%g, %g)", xa[0], xa[1], xb[0],
           xb[1]);
    /* the design: proposals 1..5 with the earlier ones pending are the sequential design points */
    bo *c = make(NULL), *seq = make(NULL);
    double P[10], x[2];
    int match = 1;
    for (int k = 1; k <= 5; k++) {
        if (bo_ask_pending(c, k, 0, k - 1, P, P + 2 * (k - 1)) != 0 || bo_ask(seq, x) != 0)
            match = 0;
        match = match && same(x, P + 2 * (k - 1), 2);
        bo_tell(seq, x, branin(x), 0.1);
    }
    tap_ok(match, "the design proposed as one batch is the sequential design");
    bo_free(a);
    bo_free(b);
    bo_free(c);
    bo_free(seq);
}

/* The proposal seeing the first t of n told evaluations, against a loop told only those t. */
static void told_prefix(void)
{
    bo *full = make(NULL), *prefix = make(NULL);
    run(full, 10);
    for (int i = 0; i < 7; i++)
        bo_tell(prefix, bo_x(full, i), bo_y(full, i), bo_se(full, i));
    double pend[6], x1[2], x2[2];
    memcpy(pend, bo_x(full, 7), 2 * sizeof *pend);
    memcpy(pend + 2, bo_x(full, 8), 2 * sizeof *pend);
    memcpy(pend + 4, bo_x(full, 9), 2 * sizeof *pend);
    /* proposal 11 seeing 7 told evaluations and 3 pending ones */
    int ok = bo_ask_pending(full, 11, 7, 3, pend, x1) == 0 && bo_ask_pending(prefix, 11, 7, 3, pend, x2) == 0;
    tap_ok(ok && same(x1, x2, 2), "a proposal seeing the first 7 of 10 is the one of a loop told those 7");
    double x3[2];
    ok = bo_ask_pending(full, 11, 7, 3, pend, x3) == 0;
    tap_ok(ok && same(x1, x3, 2), "asked again: the same point");
    double xs[2];
    ok = bo_ask(full, xs) == 0; /* the cache of the full history is rebuilt after the prefix's */
    double xr[2];
    bo *again = make(NULL);
    run(again, 10);
    ok = ok && bo_ask(again, xr) == 0;
    tap_ok(ok && same(xs, xr, 2), "the sequential ask after a prefix proposal is unchanged");
    /* a pending point is believed, not ignored: the proposal after it looks elsewhere */
    double x8[2], x9[2];
    ok = bo_ask_pending(prefix, 8, 7, 0, NULL, x8) == 0 && bo_ask_pending(prefix, 9, 7, 1, x8, x9) == 0;
    double dist = fmax(fabs(x8[0] - x9[0]) / (hi[0] - lo[0]), fabs(x8[1] - x9[1]) / (hi[1] - lo[1]));
    tap_ok(ok && dist > 0.02, "with proposal 8 (%g, %g) pending, proposal 9 is (%g, %g): %.3f of the box away", x8[0],
           x8[1], x9[0], x9[1], dist);
    bo_free(full);
    bo_free(prefix);
    bo_free(again);
}

/* A batch of q = 6 after the design, integer second dimension: in the box, integers, distinct. */
static void batch_properties(void)
{
    int integer[2] = {0, 1};
    bo *b = make(integer);
    run(b, 6);
    double P[12];
    int ok = 1;
    for (int k = 0; k < 6 && ok; k++)
        ok = bo_ask_pending(b, 7 + k, 6, k, P, P + 2 * k) == 0;
    tap_ok(ok, "a batch of 6 is proposed%s%s", ok ? "" : ": ", ok ? "" : err_msg());
    int inbox = 1, ints = 1, distinct = 1;
    for (int k = 0; k < 6; k++) {
        const double *x = P + 2 * k;
        inbox = inbox && x[0] >= lo[0] && x[0] <= hi[0] && x[1] >= lo[1] && x[1] <= hi[1];
        ints = ints && x[1] == floor(x[1]);
        for (int j = 0; j < k; j++)
            distinct = distinct && !same(x, P + 2 * j, 2);
        for (int i = 0; i < 6; i++)
            distinct = distinct && !same(x, bo_x(b, i), 2);
    }
    tap_ok(inbox, "every point of the batch is in the box");
    tap_ok(ints, "the integer dimension is at integers");
    tap_ok(distinct, "no point repeats a told or an earlier pending one");
    bo_free(b);
}

/* Batch BO finds Branin's minimum (0.397887) about as well as sequential BO in the same budget. */
static void batch_quality(void)
{
    bo *b = make(NULL);
    run(b, 5);
    double P[8];
    int ok = 1;
    while (ok && bo_count(b) < 29) {
        int told = bo_count(b);
        for (int k = 0; k < 4 && ok; k++)
            ok = bo_ask_pending(b, told + k + 1, told, k, P, P + 2 * k) == 0;
        for (int k = 0; k < 4 && ok; k++)
            ok = bo_tell(b, P + 2 * k, branin(P + 2 * k), 0.1) == 0;
    }
    double best = INFINITY;
    for (int i = 0; i < bo_count(b); i++)
        best = fmin(best, branin(bo_x(b, i)));
    tap_ok(ok && best - 0.397887 < 0.1, "q = 4 on Branin: best %.4f after %d evaluations (minimum 0.3979)", best,
           bo_count(b));
    bo_free(b);
}

static void errors(void)
{
    bo *b = make(NULL);
    run(b, 6);
    double x[2], P[2] = {20, 1};
    tap_ok(bo_ask_pending(b, 9, 6, 0, NULL, x) != 0 && strstr(err_msg(), "proposal 9 must follow the 6 told and 0"),
           "a number that does not follow told and pending is refused: %s", err_msg());
    tap_ok(bo_ask_pending(b, 8, 7, 0, NULL, x) != 0 && strstr(err_msg(), "0 to 6 told evaluations, not 7"),
           "more told than there are is refused: %s", err_msg());
    tap_ok(bo_ask_pending(b, 8, 6, 1, P, x) != 0 && strstr(err_msg(), "pending point 1"),
           "a pending point outside the box is refused: %s", err_msg());
    bo_free(b);

    bo_session_config c;
    bo_session_config_defaults(&c, 2, lo, hi);
    c.init = 3;
    c.raw_samples = 128;
    bo_session *s = bo_session_open(&c);
    double y[2];
    for (int i = 0; i < 4; i++) {
        bo_outcome o = {0};
        bo_session_ask(s, y, NULL);
        o.y = branin(y);
        bo_session_tell(s, y, &o, NAN);
    }
    tap_ok(bo_session_propose_pending(s, 4, 3, 0, NULL, y) != 0 && strstr(err_msg(), "after the 4 recorded"),
           "the session refuses to propose a recorded evaluation: %s", err_msg());
    double a1[2], a2[2];
    tap_ok(bo_session_propose_pending(s, 6, 4, 1, y, a1) == 0 && bo_session_propose_pending(s, 6, 4, 1, y, a2) == 0 &&
               same(a1, a2, 2), "the session proposes with pending points, the same twice");
    bo_session_free(s);

    c.strategy = "random";
    s = bo_session_open(&c);
    double r1[2], r2[2];
    tap_ok(s && bo_session_propose_pending(s, 3, 0, 2, (double[]){0, 0, 1, 1}, r1) == 0 &&
               bo_session_propose(s, 3, r2) == 0 && same(r1, r2, 2),
           "random search answers by its numbered ask, whatever is pending");
    bo_session_free(s);
}

int main(void)
{
    sequential_equivalence();
    told_prefix();
    batch_properties();
    batch_quality();
    errors();
    return tap_done();
}
