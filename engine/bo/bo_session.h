/* bo_session: one optimization run, as the Lua binding, the experiment runner and (later) rank 0
 * of an MPI run drive it: the settings checked once (each message names the option key at fault),
 * a proposal strategy (BO or a baseline, bo_strategy.h) asked and told, the journal (opened,
 * checked, replayed, appended), the history with each evaluation's info as JSON text, the best
 * point, re-scoring of the history without evaluating again, and a run loop with an evaluation
 * callback, progress lines on stderr and stopping.
 *
 * Proposals are numbered by the evaluation they are meant to become, and asking is apart from
 * telling, so that several proposals may one day be pending (a strategy that can, such as random
 * search, answers any number; BO answers the next one only). Evaluations are recorded in the order
 * they are told. */
#ifndef BOENGINE_BO_SESSION_H
#define BOENGINE_BO_SESSION_H

#include <stdint.h>

#include "bo/bo_journal.h"
#include "bo/bo_loop.h"

/* The settings of a run as a user gives them: names are parsed and numbers checked by
 * bo_session_open, so that a binding only converts types. */
typedef struct bo_session_config {
    int d;
    const double *lower, *upper; /* d each */
    const int *integer;          /* NULL, or d flags */
    const char *strategy;        /* "bo" (default), "random", "sobol" */
    const char *acquisition;     /* "nei" (acq_parse's names) */
    const char *design;          /* the initial design: "scrambled" (default) or "shifted" (bo_qmc.h) */
    const char *kernel;          /* "matern52" */
    const char *optimizer;       /* "lbfgs" or "direct" */
    int64_t init;                /* evaluations of the initial design; 0: min(3 d, 30) */
    int64_t samples, raw_samples, restarts, fit_restarts;
    double kappa, min_distance;
    gp_prior priors;
    int learn_noise; /* -1: learn a noise when some observation has no standard error; 0; 1 */
    int64_t seed;    /* >= 0 */
    const char *journal; /* NULL: none */
    int fresh;           /* start the journal over (the old one is replaced atomically) */
    const char *resume;  /* "check" (default): refuse a journal of another experiment file, seed,
                            strategy or acquisition; "force": resume it anyway, with a warning */
    const char *engine, *commit, *script, *script_sha256; /* recorded in a new journal's header */
} bo_session_config;

/* The defaults of every setting for the box (lower, upper): BO with noisy EI, no journal, seed 1. */
void bo_session_config_defaults(bo_session_config *c, int d, const double *lower, const double *upper);

typedef struct bo_session bo_session;

/* Checks c, creates the strategy and, when c names a journal, opens it and replays its
 * evaluations. NULL with err_set on bad settings (naming the key), a journal that cannot be
 * resumed (naming the difference, or the line), or out of memory. */
bo_session *bo_session_open(const bo_session_config *c);
void bo_session_free(bo_session *s);
/* Closes the journal and releases its lock; the session goes on without one. */
void bo_session_close_journal(bo_session *s);

int bo_session_dim(const bo_session *s);
const char *bo_session_strategy(const bo_session *s);
int bo_session_init_count(const bo_session *s);
int bo_session_count(const bo_session *s);
int bo_session_resumed(const bo_session *s); /* evaluations replayed from the journal */
/* Evaluation i (0-based) as recorded: its y and se are the re-scored ones after bo_session_rescore,
 * the journal keeps those of the evaluation. */
const bo_record *bo_session_record(const bo_session *s, int i);

/* What one evaluation gave. */
typedef struct bo_outcome {
    double y;
    double se;        /* the standard error of y, when has_se */
    int has_se;
    const char *info; /* JSON text of one value, or NULL; copied */
} bo_outcome;

/* Proposal `number` (1-based, > the evaluations recorded), d coordinates. */
int bo_session_propose(bo_session *s, int64_t number, double *x);
/* Proposal `number` (> the evaluations recorded) while the m = number - told - 1 evaluations before
 * it are pending, seeing the first `told` recorded evaluations and the pending points (caller units,
 * row-major): batch and asynchronous runs (bo_loop.h's bo_ask_pending; a strategy without it answers
 * by its ask). The same arguments give the same point, whatever was told after `told`. */
int bo_session_propose_pending(bo_session *s, int64_t number, int told, int m, const double *pending, double *x);
/* The proposal for the next evaluation, and its number (may be NULL): asking again before telling
 * gives the same point. */
int bo_session_ask(bo_session *s, double *x, int64_t *number);
/* Records an evaluation at x (integer coordinates rounded) lasting `seconds` (NaN: unknown): in
 * the journal first, then in the history and the strategy. -1 with err_set for x outside the
 * bounds, y not finite, a standard error not finite or negative, info that is not JSON. */
int bo_session_tell(bo_session *s, const double *x, const bo_outcome *o, double seconds);

/* The recommended evaluation: the lowest posterior mean for BO; for the baselines, the lowest y
 * (mu = y, sd = its standard error or NaN). */
int bo_session_best(bo_session *s, bo_best_point *out);

/* The BO loop behind the session (for predictions, the acquisition, the model); NULL with err_set
 * when the strategy has no model. */
bo *bo_session_bo(bo_session *s);

/* Re-scores the first n evaluations (n = bo_session_count for all): fn writes each record's new y
 * and standard error (info is ignored), and the strategy is rebuilt from them as if those values had
 * been told; nothing is evaluated again (a Lagrangian's multiplier that changed: y_i = L_i + lambda
 * R_i from the info). With n below the count, the best point and the model (bo_session_bo) see the
 * first n evaluations only, as a round of a run saw them; the next ask, propose or tell brings the
 * strategy back to the whole history, the later evaluations with the values they had. All or
 * nothing: on any failure (fn's -1, a value refused as by tell) the session is unchanged. */
typedef int (*bo_rescore_fn)(void *ctx, const bo_record *r, bo_outcome *out);
int bo_session_rescore(bo_session *s, int n, bo_rescore_fn fn, void *ctx);

/* Evaluates f at x, proposal `number`: fills out, or returns -1 with err_set to end the run. The
 * run's messages call it f ("evaluation 3: f's result must be a finite number, got NaN"). */
typedef int (*bo_evaluate_fn)(void *ctx, int64_t number, const double *x, bo_outcome *out);
/* Called after each recorded evaluation r: 0 goes on, 1 stops the run, -1 (err_set) fails it. */
typedef int (*bo_after_fn)(void *ctx, bo_session *s, const bo_record *r);

typedef struct bo_run {
    int64_t iterations; /* evaluations after the initial design: the run ends at init + iterations */
    bo_evaluate_fn evaluate;
    void *evaluate_ctx;
    bo_after_fn after; /* may be NULL */
    void *after_ctx;
} bo_run;

/* Asks, evaluates and tells until the history holds init + iterations evaluations (a resumed
 * session goes on from where its journal ends) or `after` stops it (*stopped set), with a progress
 * line per evaluation. The callbacks may also leave by a long jump (a Lua error): the session stays
 * consistent, the interrupted evaluation unrecorded. */
int bo_session_run(bo_session *s, const bo_run *run, int *stopped);

#endif
