/* The BO journal: exact round trip of evaluations and their info, a header that must match the
 * problem, a journal of another experiment file, seed, strategy or acquisition refused unless
 * forced, starting over atomically, one process at a time (flock), missing folders created, an
 * interrupted last line dropped, corrupt lines refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bo/bo_journal.h"
#include "core/err.h"
#include "tap.h"

static const double lo[2] = {-1, 0}, hi[2] = {1, 0.1};

static void append_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "ab");
    fputs(text, f);
    fclose(f);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int c, n = 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static char *first_line(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    return buf;
}

static bo_journal_header header(uint64_t seed, const char *acq)
{
    return (bo_journal_header){.d = 2, .lower = lo, .upper = hi, .seed = seed, .strategy = "bo", .acquisition = acq,
                               .script = "exp.lua", .script_sha256 = "aaaa1111"};
}

/* Opens and closes at once: 0 and the count of evaluations, or -1. */
static int try_open(const char *path, const bo_journal_header *h, int flags)
{
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, h, flags, &recs, &count);
    if (!j)
        return -1;
    bo_records_free(recs, count);
    bo_journal_close(j);
    return count;
}

static void check_round_trip(const char *path)
{
    bo_journal_header h = header(42, "ei_c");
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, &h, 0, &recs, &count);
    tap_ok(j && count == 0, "a new journal opens empty");
    /* values one ulp apart from a short decimal: a 15-digit printer would lose them */
    double xs[3][2] = {{0.1, nextafter(1.0 / 3.0, 1)}, {-0.7, 0.0123456789012345678}, {1e-300, nextafter(0.1, 0)}};
    double ys[3] = {M_PI, -1e-17, 12345.678901234567};
    double ses[3] = {0.25, NAN, 0};
    char info[160];
    snprintf(info, sizeof info, "{\"ratio\": 0.5, \"ranks\": [3, 4], \"L\": %.17g, \"tiny\": 1e-300}",
             nextafter(0.1, 1));
    for (int i = 0; i < 3; i++) {
        bo_record r = {i + 1, xs[i], ys[i], ses[i], 0.5, NAN, i == 1 ? info : NULL};
        tap_ok(bo_journal_append(j, &r) == 0, "append evaluation %d", i + 1);
    }
    bo_record bad = {4, xs[0], 1, 0, NAN, NAN, "{\"a\": }"};
    tap_error(bo_journal_append(j, &bad), "not one JSON value", NULL, "info that is not JSON is refused");
    bo_journal_close(j);
    tap_ok(count_lines(path) == 4, "header plus one line per evaluation");
    j = bo_journal_open(path, &h, 0, &recs, &count);
    int exact = j && count == 3;
    for (int i = 0; exact && i < 3; i++) {
        exact = exact && recs[i].index == i + 1 && recs[i].x[0] == xs[i][0] && recs[i].x[1] == xs[i][1] &&
                recs[i].y == ys[i] && (isnan(ses[i]) ? isnan(recs[i].se) : recs[i].se == ses[i]);
    }
    tap_ok(exact, "evaluations read back bit for bit (x, y, se; a missing se stays missing)");
    char want[160];
    snprintf(want, sizeof want, "{\"ratio\":0.5,\"ranks\":[3,4],\"L\":%.17g,\"tiny\":1e-300}", nextafter(0.1, 1));
    tap_ok(j && recs[1].info && strcmp(recs[1].info, want) == 0 && !recs[0].info,
           "an evaluation's info reads back as JSON text on one line, its numbers exact: %s", j ? recs[1].info : "");
    bo_records_free(recs, count);
    bo_journal_close(j);
    char *one = bo_journal_json(" [1, {\"a\" : \"b c\"}]\n");
    tap_ok(one && strcmp(one, "[1,{\"a\":\"b c\"}]") == 0, "JSON text is put on one line, strings untouched");
    free(one);

    /* a kill in the middle of a write leaves an unfinished line: it is dropped, and appending goes on */
    append_text(path, "{\"i\":4,\"x\":[0.5,0.0");
    j = bo_journal_open(path, &h, 0, &recs, &count);
    tap_ok(j && count == 3, "an unfinished last line is dropped (%d evaluations)", count);
    bo_record r4 = {4, (double[]){0.5, 0.05}, 1.5, 0.1, NAN, NAN, NULL};
    tap_ok(j && bo_journal_append(j, &r4) == 0, "appending after it works");
    bo_records_free(recs, count);
    bo_journal_close(j);
    j = bo_journal_open(path, &h, 0, &recs, &count);
    tap_ok(j && count == 4 && recs[3].y == 1.5 && count_lines(path) == 5, "and the file is whole again");
    bo_records_free(recs, count);
    bo_journal_close(j);
}

static void check_other_runs(const char *path)
{
    bo_journal_header h = header(42, "ei_c");
    /* another problem is refused, whatever the flags */
    double hi2[2] = {1, 0.2};
    bo_journal_header other = h;
    other.upper = hi2;
    tap_error(try_open(path, &other, BO_JOURNAL_FORCE) < 0, "other bounds", NULL,
              "a journal for other bounds is refused, even when forced");
    other = h;
    other.d = 1;
    tap_error(try_open(path, &other, 0) < 0, "2 dimensions", NULL, "a journal for another dimension is refused");
    int integer[2] = {0, 1};
    other = h;
    other.integer = integer;
    tap_error(try_open(path, &other, 0) < 0, "integer", NULL, "a journal with other integer dimensions is refused");

    /* another experiment file, seed, strategy or acquisition: refused with one line naming it */
    other = h;
    other.script_sha256 = "bbbb2222";
    tap_error(try_open(path, &other, 0) < 0, "written by another experiment file", "resume = \"force\"",
              "a journal of an edited experiment file is refused");
    tap_ok(!strchr(err_msg(), '\n'), "on one line: %s", err_msg());
    other = h;
    other.seed = 7;
    tap_error(try_open(path, &other, 0) < 0, "written with seed 42, this run has seed 7", NULL,
              "a journal of another seed is refused");
    other = h;
    other.acquisition = "nei";
    tap_error(try_open(path, &other, 0) < 0, "written with acquisition 'ei_c', this run uses 'nei'", NULL,
              "a journal of another acquisition is refused");
    other = h;
    other.strategy = "random";
    other.acquisition = NULL;
    tap_error(try_open(path, &other, 0) < 0, "written by strategy 'bo', this run uses 'random'", NULL,
              "a journal of another strategy is refused");
    other = h;
    other.script_sha256 = NULL;
    other.engine = "9.9.9";
    tap_ok(try_open(path, &other, 0) == 4, "what one side does not record is not compared, nor the engine");

    /* unless asked to continue anyway */
    other = h;
    other.seed = 7;
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, &other, BO_JOURNAL_FORCE, &recs, &count);
    tap_ok(j && count == 4 && bo_journal_forced(j) && strstr(bo_journal_forced(j), "seed 42"),
           "forced, it resumes and says what it resumed past: %s", j ? bo_journal_forced(j) : err_msg());
    bo_records_free(recs, count);
    bo_journal_close(j);
    tap_ok(try_open(path, &h, 0) == 4 && strstr(first_line(path), "\"seed\":42,"), "and the header stays the original");

    /* seeds are compared exactly, beyond the 2^53 that a double holds */
    char big[] = "/tmp/bo_journal_seed_XXXXXX";
    close(mkstemp(big));
    bo_journal_header s1 = header(((uint64_t)1 << 60) + 1, "ei_c"), s2 = s1;
    s2.seed = (uint64_t)1 << 60;
    tap_ok(try_open(big, &s1, 0) == 0 && try_open(big, &s1, 0) == 0, "a seed of 2^60 + 1 resumes itself");
    tap_error(try_open(big, &s2, 0) < 0, "written with seed 1152921504606846977", NULL, "and refuses 2^60");
    unlink(big);

    /* a journal from before the strategy was recorded is a BO journal */
    char old[] = "/tmp/bo_journal_old_XXXXXX";
    close(mkstemp(old));
    append_text(old, "{\"journal\":\"boengine bo journal\",\"version\":1,\"dim\":2,\"lower\":[-1,0],\"upper\":[1,0.1],"
                     "\"integer\":[false,false],\"seed\":42,\"acquisition\":\"ei_c\",\"engine\":\"0.1.0\"}\n"
                     "{\"i\":1,\"x\":[0.5,0.05],\"y\":2,\"se\":null,\"time\":1700000000,\"info\":{\"k\":1}}\n");
    j = bo_journal_open(old, &h, 0, &recs, &count);
    tap_ok(j && count == 1 && recs[0].info && strcmp(recs[0].info, "{\"k\":1}") == 0 && isnan(recs[0].se),
           "an older journal (no strategy in its header) resumes: %s", j ? "" : err_msg());
    bo_records_free(recs, count);
    bo_journal_close(j);
    unlink(old);
}

static void check_fresh(const char *path)
{
    bo_journal_header h = header(42, "ei_c"), other = h;
    other.seed = 9;
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, &other, BO_JOURNAL_FRESH, &recs, &count);
    tap_ok(j && count == 0 && count_lines(path) == 1 && strstr(first_line(path), "\"seed\":9,"),
           "fresh starts over: the journal holds only the new header");
    bo_record r = {1, (double[]){0, 0}, 1, 0, NAN, NAN, NULL};
    tap_ok(j && bo_journal_append(j, &r) == 0 && count_lines(path) == 2, "and takes evaluations");
    bo_records_free(recs, count);
    bo_journal_close(j);
    /* a journal in use is not replaced: the one holding it keeps it whole */
    j = bo_journal_open(path, &other, 0, &recs, &count);
    tap_error(try_open(path, &h, BO_JOURNAL_FRESH) < 0, "in use by another process", NULL,
              "starting over a journal that is in use is refused");
    tap_ok(count_lines(path) == 2, "and leaves it whole");
    bo_records_free(recs, count);
    bo_journal_close(j);
    char dir[] = "/tmp/bo_journal_fresh_XXXXXX";
    mkdtemp(dir);
    char p[256];
    snprintf(p, sizeof p, "%s/new.jsonl", dir);
    tap_ok(try_open(p, &h, BO_JOURNAL_FRESH) == 0 && count_lines(p) == 1, "fresh on a missing journal creates it");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", dir);
    FILE *ls = popen(cmd, "r");
    int tmps = -1;
    if (ls) {
        if (fscanf(ls, "%d", &tmps) != 1)
            tmps = -1;
        pclose(ls);
    }
    snprintf(p, sizeof p, "%s/new.jsonl", dir);
    tap_ok(try_open(p, &h, BO_JOURNAL_FRESH) == 0 && tmps == 0, "and leaves no temporary file beside it");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
}

static void check_lock(const char *path)
{
    bo_journal_header h = header(42, "ei_c");
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, &h, BO_JOURNAL_FRESH, &recs, &count);
    tap_ok(j != NULL, "the parent holds the journal");
    bo_records_free(recs, count);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* another process: refused while the parent holds the journal */
        int refused = try_open(path, &h, 0) < 0 && strstr(err_msg(), "in use by another process");
        if (!refused)
            printf("# child: %s\n", err_msg()), fflush(stdout);
        _exit(refused ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a second process cannot open a journal in use");
    bo_journal_close(j);
    pid = fork();
    if (pid == 0)
    {
        int ok = try_open(path, &h, 0) >= 0;
        if (!ok)
            printf("# child: %s\n", err_msg()), fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "once closed, another process opens it");
}

static void check_paths(void)
{
    bo_journal_header h = header(42, "ei_c");
    char dir[] = "/tmp/bo_journal_dir_XXXXXX";
    mkdtemp(dir);
    char p[256];
    snprintf(p, sizeof p, "%s/runs/a/b/j.jsonl", dir);
    tap_ok(try_open(p, &h, 0) == 0 && count_lines(p) == 1, "missing parent folders are created");
    tap_error(try_open(dir, &h, 0) < 0, "is a folder, not a journal file", NULL,
              "a folder as journal gets a clear message");
    snprintf(p, sizeof p, "%s/runs/a/b/j.jsonl/x.jsonl", dir);
    tap_error(try_open(p, &h, 0) < 0, "cannot", NULL, "a file where a folder should be is refused");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
}

static void check_corrupt(const char *path)
{
    bo_journal_header h = header(42, "ei_c");
    const char *head = "{\"journal\":\"boengine bo journal\",\"dim\":2,\"lower\":[-1,0],\"upper\":[1,0.1],"
                       "\"integer\":[false,false]}\n";
    struct {
        const char *lines, *error, *what;
    } cases[] = {
        {"{\"i\":1,\"x\":[0,0],\"y\":1}\ngarbage\n{\"i\":2,\"x\":[0,0],\"y\":1}\n", "line 3 is not valid JSON",
         "a corrupt line is refused"},
        {"{\"i\":2,\"x\":[0,0],\"y\":1}\n", "expected evaluation 1", "evaluations out of order are refused"},
        {"{\"i\":1.5,\"x\":[0,0],\"y\":1}\n", "expected evaluation 1, got \"i\": 1.5",
         "a non-integer \"i\" is refused"},
        {"{\"i\":1,\"x\":[0,0],\"y\":1} x\n", "line 2 has text after its JSON value",
         "trailing garbage on a line is refused"},
        {"{\"i\":1,\"x\":[0,0],\"y\":1}{\"i\":2,\"x\":[0,0],\"y\":1}", "line 2 has text after its JSON value",
         "two records on a last line are refused, not taken for an unfinished one"},
        {"[1, 2]\n", "not a JSON object", "a line that is not an object is refused"},
        {"{\"i\":1,\"x\":[0],\"y\":1}\n", "no \"x\" of 2 numbers", "a record with a short x is refused"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        unlink(path);
        append_text(path, head);
        append_text(path, cases[k].lines);
        tap_error(try_open(path, &h, 0) < 0, cases[k].error, NULL, cases[k].what);
    }
    unlink(path);
    append_text(path, "{\"journal\":\"something else\"}\n");
    tap_error(try_open(path, &h, 0) < 0, "not a BO journal", NULL, "another kind of file is refused");
    unlink(path);
}

int main(void)
{
    char path[] = "/tmp/bo_journal_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    check_round_trip(path);
    check_other_runs(path);
    check_fresh(path);
    check_lock(path);
    check_paths();
    check_corrupt(path);
    unlink(path);
    return tap_done();
}
