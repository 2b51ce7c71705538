/* The external strategy: proposals come from a driver, another process (scripts/tpe runs Optuna's
 * TPE), over two pipes whose file descriptors the engine finds in its environment:
 *
 *   BOENGINE_ASK_FD     the engine writes its messages here
 *   BOENGINE_ANSWER_FD  the engine reads the driver's answers here
 *
 * One JSON object per line in both directions (docs/experiments.md, "External drivers"):
 *
 *   engine → driver  {"protocol":"boengine-external/1","d":..,"lower":[..],"upper":[..],
 *                     "integer":[false,..],"seed":..,"init":..}           once, first
 *                    {"number":k,"x":[..],"y":..,"se":..|null}             evaluation k as recorded;
 *                                                                          "replayed":true when the
 *                                                                          driver did not propose it
 *                                                                          (a journal's evaluations)
 *                    {"number":k,"x":[..],"y":..,"se":..,"rescored":true}  evaluation k's new value
 *                                                                          (a Lagrangian's new γ)
 *                    {"ask":k}                                             propose evaluation k
 *   driver → engine  {"x":[..]}  or  {"error":"text"}                      one answer per ask
 *
 * The session rebuilds its strategy from scratch when it re-scores the history (bo_session.c), so
 * the connection is the process's, opened by the first state and shared by those that follow: a
 * state only counts its tells, and the connection tells the driver what it has not yet heard (a new
 * evaluation) or heard otherwise (a re-scored one). One problem per process: a second session on
 * another box is refused. Answers are checked (length, finite, inside the box, integers) and refused
 * with one line; a driver that dies is an error at the next read or write (SIGPIPE is held off),
 * and the journal, written before the driver hears of an evaluation, resumes the run. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bo/bo_num.h"
#include "bo/bo_space.h"
#include "bo/bo_strategy.h"
#include "core/err.h"

#define PROTOCOL "boengine-external/1"
#define MAX_LINE (1 << 20)

typedef struct connection {
    int open, broken;
    int ask_fd, answer_fd;
    /* the problem it serves */
    bo_space space;
    uint64_t seed;
    int init;
    /* what the driver heard: evaluations 1..sent, each with its last y and se */
    int sent, cap;
    double *y, *se;
    /* the driver's last answer: the proposal for evaluation `answered` */
    int64_t answered;
    double *x;
    /* unread input */
    char *buf;
    size_t len, size, line; /* line: the bytes of the line read_line returned, its newline included */
} connection;

static connection conn;

typedef struct external {
    int told;
} external;

/* ---- the pipes */

static int fd_from_env(const char *name, int want_write, int *fd)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return err_set("strategy 'external' needs a driver: %s and %s must name the file descriptors of its "
                       "pipes (scripts/tpe starts one)", "BOENGINE_ASK_FD", "BOENGINE_ANSWER_FD");
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > 65535)
        return err_set("%s must be a file descriptor number, got \"%s\"", name, v);
    int flags = fcntl((int)n, F_GETFL);
    if (flags < 0)
        return err_set("%s=%ld is not an open file descriptor", name, n);
    int mode = flags & O_ACCMODE;
    if (want_write ? mode == O_RDONLY : mode == O_WRONLY)
        return err_set("%s=%ld is not open for %s", name, n, want_write ? "writing" : "reading");
    /* children of the engine (os.execute) must not hold the driver's pipes open */
    if (fcntl((int)n, F_SETFD, FD_CLOEXEC) != 0)
        return err_set("%s=%ld: %s", name, n, strerror(errno));
    *fd = (int)n;
    return 0;
}

static int broken(void)
{
    conn.broken = 1;
    return -1;
}

/* Writes the line; a driver that is gone gives EPIPE, not a SIGPIPE that would kill the engine
 * (the signal is blocked while writing, and a pending one taken off again). */
static int send_line(const char *text)
{
    if (conn.broken)
        return err_set("external driver: its pipes failed before");
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    size_t n = strlen(text), done = 0;
    int rc = 0, saved = 0;
    while (done <= n) {
        const char *p = done < n ? text + done : "\n";
        size_t left = done < n ? n - done : 1;
        ssize_t w = write(conn.ask_fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            saved = errno;
            rc = -1;
            break;
        }
        done += (size_t)w;
        if (done == n + 1)
            break;
    }
    if (rc != 0 && saved == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        broken();
        if (saved == EPIPE)
            return err_set("external driver: it has closed its end (it exited?); the journal keeps every "
                           "evaluation so far: start the run again to resume");
        return err_set("external driver: cannot write to BOENGINE_ASK_FD: %s", strerror(saved));
    }
    return 0;
}

static int send_json(cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return err_set("out of memory");
    int rc = send_line(text);
    free(text);
    return rc;
}

/* The next line from the driver, without its newline, in conn.buf (valid until the next read). */
static int read_line(int64_t number, char **line)
{
    if (conn.broken)
        return err_set("external driver: its pipes failed before");
    for (;;) {
        char *nl = conn.len ? memchr(conn.buf, '\n', conn.len) : NULL;
        if (nl) {
            *nl = 0;
            conn.line = (size_t)(nl - conn.buf) + 1;
            *line = conn.buf;
            return 0;
        }
        if (conn.len + 1 >= conn.size) {
            if (conn.size >= MAX_LINE)
                return broken(), err_set("external driver: its answer to ask %lld is longer than %d bytes",
                                         (long long)number, MAX_LINE);
            size_t size = conn.size ? 2 * conn.size : 4096;
            char *b = realloc(conn.buf, size);
            if (!b)
                return err_set("out of memory");
            conn.buf = b;
            conn.size = size;
        }
        ssize_t r = read(conn.answer_fd, conn.buf + conn.len, conn.size - conn.len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return broken(), err_set("external driver: cannot read BOENGINE_ANSWER_FD: %s", strerror(errno));
        if (r == 0)
            return broken(), err_set("external driver: it ended without answering ask %lld; the journal keeps "
                                     "every evaluation so far: start the run again to resume", (long long)number);
        conn.len += (size_t)r;
    }
}

/* Drops the line read_line returned. */
static void consume_line(void)
{
    memmove(conn.buf, conn.buf + conn.line, conn.len - conn.line);
    conn.len -= conn.line;
    conn.line = 0;
}

/* ---- messages */

static cJSON *numbers(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int send_space(void)
{
    const bo_space *s = &conn.space;
    cJSON *o = cJSON_CreateObject(), *integer = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "protocol", PROTOCOL);
    cJSON_AddNumberToObject(o, "d", s->d);
    cJSON_AddItemToObject(o, "lower", numbers(s->lower, s->d));
    cJSON_AddItemToObject(o, "upper", numbers(s->upper, s->d));
    for (int j = 0; integer && j < s->d; j++)
        cJSON_AddItemToArray(integer, cJSON_CreateBool(s->levels[j] > 0));
    cJSON_AddItemToObject(o, "integer", integer);
    cJSON_AddNumberToObject(o, "seed", (double)conn.seed);
    cJSON_AddNumberToObject(o, "init", conn.init);
    return send_json(o);
}

static int send_evaluation(int number, const double *x, double y, double se, const char *flag)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "number", number);
    cJSON_AddItemToObject(o, "x", numbers(x, conn.space.d));
    cJSON_AddNumberToObject(o, "y", y);
    if (isnan(se))
        cJSON_AddNullToObject(o, "se");
    else
        cJSON_AddNumberToObject(o, "se", se);
    if (flag)
        cJSON_AddTrueToObject(o, flag);
    return send_json(o);
}

/* The driver's answer to ask `number` into x, checked against the box. */
static int parse_answer(int64_t number, const char *line, double *x)
{
    const bo_space *s = &conn.space;
    char head[64];
    snprintf(head, sizeof head, "external driver: answer to ask %lld", (long long)number);
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return err_set("%s is not one JSON object (JSON has no NaN or Infinity): %.80s", head, line);
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "x");
    int rc = 0;
    if (e)
        rc = err_set("external driver: %s", cJSON_IsString(e) ? e->valuestring : "an error without text");
    else if (!cJSON_IsArray(a))
        rc = err_set("%s has no \"x\": a list of %d numbers", head, s->d);
    else if (cJSON_GetArraySize(a) != s->d)
        rc = err_set("%s: \"x\" has %d numbers, expected %d", head, cJSON_GetArraySize(a), s->d);
    for (int j = 0; rc == 0 && j < s->d; j++) {
        const cJSON *v = cJSON_GetArrayItem(a, j);
        if (!cJSON_IsNumber(v))
            rc = err_set("%s: x[%d] is not a number", head, j + 1);
        else if (!isfinite(v->valuedouble))
            rc = err_set("%s: x[%d] is not finite", head, j + 1);
        else if (!(v->valuedouble >= s->lower[j] && v->valuedouble <= s->upper[j]))
            rc = err_set("%s: x[%d] = %.17g is outside the bounds [%g, %g]", head, j + 1, v->valuedouble,
                         s->lower[j], s->upper[j]);
        else if (s->levels[j] > 0 && v->valuedouble != floor(v->valuedouble))
            rc = err_set("%s: x[%d] = %.17g must be an integer (an integer dimension)", head, j + 1, v->valuedouble);
        else
            x[j] = v->valuedouble;
    }
    cJSON_Delete(o);
    return rc;
}

/* ---- the connection */

static int same_problem(const bo_options *o)
{
    const bo_space *s = &conn.space;
    if (o->d != s->d || o->seed != conn.seed)
        return 0;
    for (int j = 0; j < s->d; j++) {
        int integer = o->integer && o->integer[j];
        if (o->lower[j] != s->lower[j] || o->upper[j] != s->upper[j] || integer != (s->levels[j] > 0))
            return 0;
    }
    return 1;
}

static int connect_driver(const bo_options *o)
{
    if (conn.open)
        return same_problem(o) ? 0
                               : err_set("strategy 'external' serves one run per process: its driver already "
                                         "optimizes another box or seed");
    int ask_fd, answer_fd;
    if (fd_from_env("BOENGINE_ASK_FD", 1, &ask_fd) != 0 || fd_from_env("BOENGINE_ANSWER_FD", 0, &answer_fd) != 0)
        return -1;
    if (bo_space_init(&conn.space, o->d, o->lower, o->upper, o->integer) != 0)
        return -1;
    conn.ask_fd = ask_fd;
    conn.answer_fd = answer_fd;
    conn.seed = o->seed;
    conn.init = o->init > 0 ? o->init : 3 * o->d < 30 ? 3 * o->d : 30;
    if (!(conn.x = malloc((size_t)o->d * sizeof *conn.x))) {
        bo_space_free(&conn.space);
        return err_set("out of memory");
    }
    conn.open = 1;
    return send_space();
}

/* Evaluation `number` (1-based, in order) as one state was told it. */
static int hear(int number, const double *x, double y, double se)
{
    if (number <= conn.sent) {
        int k = number - 1;
        int same = conn.y[k] == y && (conn.se[k] == se || (isnan(conn.se[k]) && isnan(se)));
        if (same)
            return 0;
        conn.y[k] = y;
        conn.se[k] = se;
        return send_evaluation(number, x, y, se, "rescored");
    }
    if (conn.sent == conn.cap) {
        int cap = conn.cap ? 2 * conn.cap : 64;
        double *ny = realloc(conn.y, (size_t)cap * sizeof *ny);
        if (ny)
            conn.y = ny;
        double *nse = ny ? realloc(conn.se, (size_t)cap * sizeof *nse) : NULL;
        if (nse)
            conn.se = nse;
        if (!ny || !nse)
            return err_set("out of memory");
        conn.cap = cap;
    }
    conn.y[conn.sent] = y;
    conn.se[conn.sent] = se;
    conn.sent++;
    return send_evaluation(number, x, y, se, number == conn.answered ? NULL : "replayed");
}

/* ---- the strategy */

static void *create(const bo_options *o)
{
    if (connect_driver(o) != 0)
        return NULL;
    external *e = calloc(1, sizeof *e);
    if (!e)
        err_set("out of memory");
    return e;
}

static void destroy(void *state) { free(state); }

static int ask(void *state, int64_t number, double *x)
{
    external *e = state;
    if (number != (int64_t)e->told + 1)
        return err_set("strategy 'external' proposes the next evaluation only (%d), not %lld", e->told + 1,
                       (long long)number);
    if (number == conn.answered) { /* asked again before the tell: the same point */
        memcpy(x, conn.x, (size_t)conn.space.d * sizeof *x);
        return 0;
    }
    char text[48];
    snprintf(text, sizeof text, "{\"ask\":%lld}", (long long)number);
    char *line;
    if (send_line(text) != 0 || read_line(number, &line) != 0)
        return -1;
    int rc = parse_answer(number, line, conn.x);
    consume_line();
    if (rc != 0)
        return -1;
    conn.answered = number;
    memcpy(x, conn.x, (size_t)conn.space.d * sizeof *x);
    return 0;
}

static int tell(void *state, const double *x, double y, double se)
{
    external *e = state;
    if (hear(e->told + 1, x, y, se) != 0)
        return -1;
    e->told++;
    return 0;
}

const bo_strategy bo_strategy_external = {
    .name = "external", .create = create, .destroy = destroy, .ask = ask, .tell = tell};
