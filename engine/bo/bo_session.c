#include "bo/bo_session.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bo/bo_num.h"
#include "bo/bo_space.h"
#include "bo/bo_strategy.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timer.h"

struct bo_session {
    bo_options o; /* the checked settings, its bounds and integer flags pointing at those below */
    bo_space space;
    int *integer;
    const bo_strategy *strategy;
    void *state;
    int told;    /* the state holds the first `told` evaluations (all of them but after a failure or ...) */
    int partial; /* ... a re-scoring of the first ones only, which the model readers see as it is */
    bo_journal *journal;
    bo_record *records;
    int count, cap, resumed;
    /* the cached proposal for the next evaluation */
    int asked;
    double *asked_x;
    /* working memory of the loops, owned here so that a callback may leave by a long jump */
    double *run_x, *tell_x;
    bo_outcome *rescored;
    int rescored_cap;
    progress bar;
};

void bo_session_config_defaults(bo_session_config *c, int d, const double *lower, const double *upper)
{
    memset(c, 0, sizeof *c);
    bo_options o;
    bo_defaults(&o, d, lower, upper);
    c->d = d;
    c->lower = lower;
    c->upper = upper;
    c->strategy = "bo";
    c->acquisition = acq_name(o.acquisition);
    c->design = bo_qmc_kind_name(o.design);
    c->kernel = gp_kernel_name(o.kernel);
    c->optimizer = "lbfgs";
    c->init = 0;
    c->samples = o.acq.nei_samples;
    c->raw_samples = o.opt.raw_samples;
    c->restarts = o.opt.restarts;
    c->fit_restarts = o.fit.restarts;
    c->kappa = o.acq.kappa;
    c->min_distance = o.opt.min_distance;
    c->priors = o.fit.prior;
    c->learn_noise = o.learn_noise;
    c->seed = (int64_t)o.seed;
    c->resume = "check";
}

/* ---- settings */

/* A count as an int, refused rather than truncated when it does not fit. */
static int narrow(const char *key, int64_t v, int *out)
{
    if (v > INT_MAX)
        return err_set("'%s' must be at most %d, got %lld", key, INT_MAX, (long long)v);
    if (v < INT_MIN)
        return err_set("'%s' must be at least %d, got %lld", key, INT_MIN, (long long)v);
    *out = (int)v;
    return 0;
}

/* The settings of c as the loop's options (o's bounds still to be set), checked. */
static int resolve_options(const bo_session_config *c, bo_options *o, const bo_strategy **strategy)
{
    bo_defaults(o, c->d, c->lower, c->upper);
    o->integer = c->integer;
    if (!(*strategy = bo_strategy_find(c->strategy ? c->strategy : "bo")))
        return -1;
    if (acq_parse(c->acquisition ? c->acquisition : acq_name(o->acquisition), &o->acquisition) != 0 ||
        (c->design && bo_qmc_kind_parse(c->design, &o->design) != 0) ||
        gp_kernel_parse(c->kernel ? c->kernel : "matern52", &o->kernel) != 0 ||
        acqopt_parse_method(c->optimizer ? c->optimizer : "lbfgs", &o->opt.method) != 0)
        return -1;
    if (narrow("init", c->init, &o->init) != 0 || narrow("samples", c->samples, &o->acq.nei_samples) != 0 ||
        narrow("raw_samples", c->raw_samples, &o->opt.raw_samples) != 0 ||
        narrow("restarts", c->restarts, &o->opt.restarts) != 0 ||
        narrow("fit_restarts", c->fit_restarts, &o->fit.restarts) != 0)
        return -1;
    o->acq.kappa = c->kappa;
    o->opt.min_distance = c->min_distance;
    o->fit.prior = c->priors;
    o->learn_noise = c->learn_noise;
    if (c->seed < 0)
        return err_set("'seed' must be >= 0, got %lld", (long long)c->seed);
    o->seed = (uint64_t)c->seed;
    if (c->journal && !c->journal[0])
        return err_set("'journal' must name a file, got an empty string");
    const char *resume = c->resume ? c->resume : "check";
    if (strcmp(resume, "check") != 0 && strcmp(resume, "force") != 0)
        return err_set("'resume' must be \"check\" or \"force\", got \"%s\"", resume);
    if (c->fresh && strcmp(resume, "force") == 0)
        return err_set("fresh = true (start over) and resume = \"force\" (continue) contradict each other");
    return bo_options_check(o);
}

/* ---- the history */

static int reserve(bo_session *s)
{
    if (s->count < s->cap)
        return 0;
    int cap = s->cap ? 2 * s->cap : 64;
    bo_record *r = realloc(s->records, (size_t)cap * sizeof *r);
    if (!r)
        return err_set("out of memory recording evaluation %d", s->count + 1);
    s->records = r;
    s->cap = cap;
    return 0;
}

/* The checks of every observation, told or re-scored; y_name and se_name say what they were. */
static int check_outcome(const bo_outcome *o, const char *y_name, const char *se_name)
{
    if (!isfinite(o->y))
        return err_set("%s must be a finite number, got %s", y_name, BO_NUM(o->y));
    if (o->has_se && !(o->se >= 0 && isfinite(o->se)))
        return err_set("%s must be a finite number >= 0, got %s", se_name, BO_NUM(o->se));
    return 0;
}

/* A new state of the strategy, told the first n evaluations with the observations ys (NULL: the
 * recorded ones). */
static void *rebuild(bo_session *s, int n, const bo_outcome *ys)
{
    void *state = s->strategy->create(&s->o);
    for (int i = 0; state && i < n; i++) {
        double y = ys ? ys[i].y : s->records[i].y;
        double se = ys ? (ys[i].has_se ? ys[i].se : NAN) : s->records[i].se;
        if (s->strategy->tell(state, s->records[i].x, y, se) != 0) {
            s->strategy->destroy(state);
            state = NULL;
        }
    }
    return state;
}

/* Brings the strategy up to the whole history, unless a partial re-scoring left it holding the first
 * evaluations and the caller only reads the model (full = 0). */
static int sync_state(bo_session *s, int full)
{
    if (s->told == s->count || (!full && s->partial))
        return 0;
    void *state = rebuild(s, s->count, NULL);
    if (!state)
        return -1;
    s->strategy->destroy(s->state);
    s->state = state;
    s->told = s->count;
    s->partial = 0;
    return 0;
}

/* Adds an evaluation (x in the box and snapped, the outcome checked, info compact) to the journal
 * when `journal` is set, then to the history and the strategy. */
static int record(bo_session *s, const double *x, double y, double se, double seconds, double when,
                  const char *info, int journal)
{
    if (reserve(s) != 0)
        return -1;
    bo_record *r = &s->records[s->count];
    memset(r, 0, sizeof *r);
    r->index = s->count + 1;
    r->x = malloc((size_t)s->o.d * sizeof *r->x);
    r->info = info ? strdup(info) : NULL;
    if (!r->x || (info && !r->info)) {
        bo_record_clear(r);
        return err_set("out of memory recording evaluation %d", r->index);
    }
    memcpy(r->x, x, (size_t)s->o.d * sizeof *r->x);
    r->y = y;
    r->se = se;
    r->seconds = seconds;
    r->time = when;
    if (journal && s->journal && bo_journal_append(s->journal, r) != 0) {
        bo_record_clear(r);
        return -1;
    }
    s->count++;
    s->asked = 0;
    /* recorded (and journaled): a strategy that cannot take it now is rebuilt before the next use */
    if (s->told != s->count - 1)
        return 0;
    if (s->strategy->tell(s->state, r->x, y, se) != 0)
        return err_prefix("evaluation %d is recorded, but the strategy could not take it", r->index);
    s->told++;
    return 0;
}

/* ---- opening */

static int open_journal(bo_session *s, const bo_session_config *c)
{
    bo_journal_header h = {
        .d = s->o.d,
        .lower = s->space.lower,
        .upper = s->space.upper,
        .integer = s->integer,
        .seed = s->o.seed,
        .strategy = s->strategy->name,
        .acquisition = s->strategy->uses_acquisition ? acq_name(s->o.acquisition) : NULL,
        .engine = c->engine,
        .commit = c->commit,
        .script = c->script,
        .script_sha256 = c->script_sha256,
    };
    int force = c->resume && strcmp(c->resume, "force") == 0;
    int flags = (c->fresh ? BO_JOURNAL_FRESH : 0) | (force ? BO_JOURNAL_FORCE : 0);
    bo_record *recs;
    int n;
    if (!(s->journal = bo_journal_open(c->journal, &h, flags, &recs, &n)))
        return err_prefix("journal");
    if (bo_journal_forced(s->journal))
        log_warn("bo: %s: %s; resuming it anyway (resume = \"force\")", c->journal, bo_journal_forced(s->journal));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        bo_record *r = &recs[i];
        bo_outcome out = {r->y, r->se, !isnan(r->se), NULL};
        if (bo_space_check(&s->space, r->x) != 0 || check_outcome(&out, "y", "the standard error") != 0)
            rc = err_prefix("journal %s: evaluation %d", c->journal, i + 1);
        else {
            bo_space_snap(&s->space, r->x, r->x);
            rc = record(s, r->x, r->y, r->se, r->seconds, r->time, r->info, 0);
        }
    }
    bo_records_free(recs, n);
    s->resumed = rc == 0 ? n : 0;
    if (rc == 0 && n > 0)
        log_info("bo: %s: resuming after %d evaluations", c->journal, n);
    return rc;
}

bo_session *bo_session_open(const bo_session_config *c)
{
    bo_session *s = calloc(1, sizeof *s);
    if (!s) {
        err_set("out of memory");
        return NULL;
    }
    if (resolve_options(c, &s->o, &s->strategy) != 0 ||
        bo_space_init(&s->space, c->d, c->lower, c->upper, c->integer) != 0) {
        free(s);
        return NULL;
    }
    s->o.lower = s->space.lower;
    s->o.upper = s->space.upper;
    s->integer = malloc((size_t)c->d * sizeof *s->integer);
    s->asked_x = malloc((size_t)c->d * sizeof *s->asked_x);
    s->run_x = malloc((size_t)c->d * sizeof *s->run_x);
    s->tell_x = malloc((size_t)c->d * sizeof *s->tell_x);
    if (!s->integer || !s->asked_x || !s->run_x || !s->tell_x) {
        err_set("out of memory");
        goto fail;
    }
    for (int j = 0; j < c->d; j++) /* kept: a rebuilt strategy needs them again */
        s->integer[j] = s->space.levels[j] > 0;
    s->o.integer = s->integer;
    if (!(s->state = s->strategy->create(&s->o)))
        goto fail;
    if (c->journal && open_journal(s, c) != 0)
        goto fail;
    return s;
fail:
    bo_session_free(s);
    return NULL;
}

void bo_session_close_journal(bo_session *s)
{
    bo_journal_close(s->journal);
    s->journal = NULL;
}

void bo_session_free(bo_session *s)
{
    if (!s)
        return;
    bo_session_close_journal(s);
    if (s->state)
        s->strategy->destroy(s->state);
    bo_records_free(s->records, s->count);
    bo_space_free(&s->space);
    free(s->integer);
    free(s->asked_x);
    free(s->run_x);
    free(s->tell_x);
    free(s->rescored);
    free(s);
}

int bo_session_dim(const bo_session *s) { return s->o.d; }
const char *bo_session_strategy(const bo_session *s) { return s->strategy->name; }
int bo_session_count(const bo_session *s) { return s->count; }
int bo_session_resumed(const bo_session *s) { return s->resumed; }
const bo_record *bo_session_record(const bo_session *s, int i) { return &s->records[i]; }

int bo_session_init_count(const bo_session *s)
{
    int d = s->o.d;
    return s->o.init > 0 ? s->o.init : 3 * d < 30 ? 3 * d : 30;
}

/* ---- ask and tell */

int bo_session_propose(bo_session *s, int64_t number, double *x)
{
    if (number <= s->count)
        return err_set("proposal %lld is evaluation %lld, recorded already", (long long)number, (long long)number);
    if (sync_state(s, 1) != 0)
        return -1;
    return s->strategy->ask(s->state, number, x);
}

int bo_session_propose_pending(bo_session *s, int64_t number, int told, int m, const double *pending, double *x)
{
    if (told < 0 || told > s->count)
        return err_set("a proposal can see 0 to %d recorded evaluations, not %d", s->count, told);
    if (m < 0 || number != (int64_t)told + m + 1 || number <= s->count)
        return err_set("proposal %lld must follow the %d told and %d pending evaluations, after the %d recorded",
                       (long long)number, told, m, s->count);
    if (sync_state(s, 1) != 0)
        return -1;
    if (s->strategy->ask_pending)
        return s->strategy->ask_pending(s->state, number, told, m, pending, x);
    return s->strategy->ask(s->state, number, x);
}

int bo_session_ask(bo_session *s, double *x, int64_t *number)
{
    int d = s->o.d;
    if (!s->asked) {
        if (bo_session_propose(s, (int64_t)s->count + 1, s->asked_x) != 0)
            return -1;
        s->asked = 1;
    }
    memcpy(x, s->asked_x, (size_t)d * sizeof *x);
    if (number)
        *number = (int64_t)s->count + 1;
    return 0;
}

int bo_session_tell(bo_session *s, const double *x, const bo_outcome *o, double seconds)
{
    if (s->count == INT_MAX)
        return err_set("the history is full (%d evaluations)", INT_MAX);
    if (bo_space_check(&s->space, x) != 0 || check_outcome(o, "y", "the standard error") != 0)
        return -1;
    char *info = NULL;
    if (sync_state(s, 1) != 0 || (o->info && !(info = bo_journal_json(o->info))))
        return -1;
    bo_space_snap(&s->space, x, s->tell_x);
    int rc = record(s, s->tell_x, o->y, o->has_se ? o->se : NAN, seconds, (double)time(NULL), info, 1);
    free(info);
    return rc;
}

/* ---- the best point, the model, re-scoring */

int bo_session_best(bo_session *s, bo_best_point *out)
{
    if (s->count == 0)
        return err_set("no evaluation yet");
    if (sync_state(s, 0) != 0)
        return -1;
    if (s->strategy->best)
        return s->strategy->best(s->state, out);
    int k = 0;
    for (int i = 1; i < s->told; i++)
        if (s->records[i].y < s->records[k].y)
            k = i;
    out->index = k;
    out->mu = s->records[k].y;
    out->sd = s->records[k].se;
    return 0;
}

bo *bo_session_bo(bo_session *s)
{
    if (s->strategy != &bo_strategy_bo) {
        err_set("strategy '%s' has no model", s->strategy->name);
        return NULL;
    }
    return sync_state(s, 0) == 0 ? s->state : NULL;
}

int bo_session_rescore(bo_session *s, int n, bo_rescore_fn fn, void *ctx)
{
    if (n < 1 || n > s->count)
        return err_set("can re-score the first 1 to %d evaluations, not %d", s->count, n);
    if (s->rescored_cap < n) {
        bo_outcome *r = realloc(s->rescored, (size_t)n * sizeof *r);
        if (!r)
            return err_set("out of memory");
        s->rescored = r;
        s->rescored_cap = n;
    }
    for (int i = 0; i < n; i++) {
        const bo_record *r = &s->records[i];
        bo_outcome *out = &s->rescored[i];
        *out = (bo_outcome){r->y, r->se, !isnan(r->se), NULL};
        if (fn(ctx, r, out) != 0)
            return err_prefix("re-scoring evaluation %d", i + 1);
        if (check_outcome(out, "the re-scored y", "the re-scored standard error") != 0)
            return err_prefix("evaluation %d", i + 1);
    }
    void *state = rebuild(s, n, s->rescored);
    if (!state)
        return err_prefix("rebuilding the strategy from the re-scored history");
    s->strategy->destroy(s->state);
    s->state = state;
    s->told = n;
    s->partial = n < s->count;
    s->asked = 0;
    for (int i = 0; i < n; i++) {
        s->records[i].y = s->rescored[i].y;
        s->records[i].se = s->rescored[i].has_se ? s->rescored[i].se : NAN;
    }
    return 0;
}

/* ---- the run loop */

/* The progress line's text after an evaluation: its y and the best point's. */
static void progress_text(bo_session *s, double y, char *buf, size_t size)
{
    bo_best_point bp;
    const char *best = s->strategy->best ? "best mean" : "best";
    int ok = bo_session_best(s, &bp) == 0;
    if (isnan(y))
        snprintf(buf, size, "%s %.6g", best, ok ? bp.mu : NAN);
    else if (ok)
        snprintf(buf, size, "y %.6g, %s %.6g", y, best, bp.mu);
    else
        snprintf(buf, size, "y %.6g", y);
}

int bo_session_run(bo_session *s, const bo_run *run, int *stopped)
{
    *stopped = 0;
    int64_t init = bo_session_init_count(s);
    if (run->iterations < 0 || run->iterations > INT_MAX - init)
        return err_set("'iterations' must be from 0 to %lld (with init %lld), got %lld", (long long)(INT_MAX - init),
                       (long long)init, (long long)run->iterations);
    int total = (int)(init + run->iterations);
    char text[96];
    progress_start(&s->bar, s->strategy->name, total);
    while (s->count < total && !*stopped) {
        int64_t number;
        double *x = s->run_x;
        if (bo_session_ask(s, x, &number) != 0)
            return -1;
        bo_outcome out = {NAN, NAN, 0, NULL};
        double t0 = timer_now();
        if (run->evaluate(run->evaluate_ctx, number, x, &out) != 0)
            return err_prefix("evaluation %lld", (long long)number);
        double seconds = timer_now() - t0;
        if (check_outcome(&out, "f's result", "f's second result: the standard error") != 0 ||
            bo_session_tell(s, x, &out, seconds) != 0)
            return err_prefix("evaluation %lld", (long long)number);
        progress_text(s, out.y, text, sizeof text);
        progress_update(&s->bar, s->count, text);
        if (run->after) {
            int rc = run->after(run->after_ctx, s, &s->records[s->count - 1]);
            if (rc < 0)
                return -1;
            *stopped = rc > 0;
        }
    }
    if (s->count > 0) {
        progress_text(s, NAN, text, sizeof text);
        progress_end(&s->bar, text);
    }
    return 0;
}
