/* The BO journal: exact round trip of evaluations, a header that must match the problem, an
 * interrupted last line dropped, a corrupt line refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    int c, n = 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

int main(void)
{
    char path[] = "/tmp/bo_journal_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    bo_journal_header h = {2, lo, hi, NULL, 42, "ei_c"};
    bo_record *recs;
    int count;
    bo_journal *j = bo_journal_open(path, &h, &recs, &count);
    tap_ok(j && count == 0, "a new journal opens empty");
    /* values one ulp apart from a short decimal: a 15-digit printer would lose them */
    double xs[3][2] = {{0.1, nextafter(1.0 / 3.0, 1)}, {-0.7, 0.0123456789012345678}, {1e-300, nextafter(0.1, 0)}};
    double ys[3] = {M_PI, -1e-17, 12345.678901234567};
    double ses[3] = {0.25, NAN, 0};
    for (int i = 0; i < 3; i++) {
        bo_record r = {i + 1, xs[i], ys[i], ses[i], 0.5, NAN, NULL};
        if (i == 1)
            r.info = cJSON_Parse("{\"ratio\": 0.5, \"ranks\": [3, 4]}");
        tap_ok(bo_journal_append(j, &r) == 0, "append evaluation %d", i + 1);
        cJSON_Delete(r.info);
    }
    bo_journal_close(j);
    tap_ok(count_lines(path) == 4, "header plus one line per evaluation");
    j = bo_journal_open(path, &h, &recs, &count);
    int exact = j && count == 3;
    for (int i = 0; exact && i < 3; i++) {
        exact = exact && recs[i].index == i + 1 && recs[i].x[0] == xs[i][0] && recs[i].x[1] == xs[i][1] &&
                recs[i].y == ys[i] && (isnan(ses[i]) ? isnan(recs[i].se) : recs[i].se == ses[i]);
    }
    tap_ok(exact, "evaluations read back bit for bit (x, y, se; a missing se stays missing)");
    tap_ok(j && recs[1].info && cJSON_GetObjectItem(recs[1].info, "ratio")->valuedouble == 0.5,
           "an evaluation's info reads back");
    bo_records_free(recs, count);
    bo_journal_close(j);

    /* a kill in the middle of a write leaves an unfinished line: it is dropped, and appending goes on */
    append_text(path, "{\"i\":4,\"x\":[0.5,0.0");
    j = bo_journal_open(path, &h, &recs, &count);
    tap_ok(j && count == 3, "an unfinished last line is dropped (%d evaluations)", count);
    bo_record r4 = {4, (double[]){0.5, 0.05}, 1.5, 0.1, NAN, NAN, NULL};
    tap_ok(j && bo_journal_append(j, &r4) == 0, "appending after it works");
    bo_records_free(recs, count);
    bo_journal_close(j);
    j = bo_journal_open(path, &h, &recs, &count);
    tap_ok(j && count == 4 && recs[3].y == 1.5 && count_lines(path) == 5, "and the file is whole again");
    bo_records_free(recs, count);
    bo_journal_close(j);

    /* another problem is refused */
    double hi2[2] = {1, 0.2};
    bo_journal_header other = {2, lo, hi2, NULL, 42, "ei_c"};
    tap_ok(!bo_journal_open(path, &other, &recs, &count) && strstr(err_msg(), "other bounds"),
           "a journal for other bounds is refused: %s", err_msg());
    bo_journal_header other_d = {1, lo, hi, NULL, 42, "ei_c"};
    tap_ok(!bo_journal_open(path, &other_d, &recs, &count) && strstr(err_msg(), "2 dimensions"),
           "a journal for another dimension is refused: %s", err_msg());
    int integer[2] = {0, 1};
    bo_journal_header other_i = {2, lo, hi, integer, 42, "ei_c"};
    tap_ok(!bo_journal_open(path, &other_i, &recs, &count) && strstr(err_msg(), "integer"),
           "a journal with other integer dimensions is refused: %s", err_msg());
    bo_journal_header other_seed = {2, lo, hi, NULL, 7, "nei"};
    j = bo_journal_open(path, &other_seed, &recs, &count);
    tap_ok(j && count == 4, "another seed or acquisition may continue a journal");
    bo_records_free(recs, count);
    bo_journal_close(j);

    /* a corrupt line in the middle is an error naming the line */
    append_text(path, "garbage\n{\"i\":5,\"x\":[0,0],\"y\":1}\n");
    tap_ok(!bo_journal_open(path, &h, &recs, &count) && strstr(err_msg(), "line 6"),
           "a corrupt line is refused: %s", err_msg());
    unlink(path);
    append_text(path, "{\"journal\":\"something else\"}\n");
    tap_ok(!bo_journal_open(path, &h, &recs, &count) && strstr(err_msg(), "not a BO journal"),
           "another kind of file is refused: %s", err_msg());
    unlink(path);
    append_text(path, "{\"journal\":\"boengine bo journal\",\"dim\":2,\"lower\":[-1,0],\"upper\":[1,0.1],"
                      "\"integer\":[false,false]}\n{\"i\":2,\"x\":[0,0],\"y\":1}\n");
    tap_ok(!bo_journal_open(path, &h, &recs, &count) && strstr(err_msg(), "expected evaluation 1"),
           "evaluations out of order are refused: %s", err_msg());
    unlink(path);
    return tap_done();
}
