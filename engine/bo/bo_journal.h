/* bo_journal: the journal of a BO run: a header line naming the problem (dimension, bounds, integer
 * dimensions, seed), then one JSON line per evaluation, flushed and fsynced as soon as it is written,
 * so that a killed run restarts from it without losing or repeating an evaluation. */
#ifndef BOENGINE_BO_JOURNAL_H
#define BOENGINE_BO_JOURNAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct bo_journal_header {
    int d;
    const double *lower, *upper;
    const int *integer;      /* NULL: none */
    uint64_t seed;
    const char *acquisition; /* informational, as the rest: what made the journal (each may be NULL) */
    const char *engine, *commit, *script, *script_sha256;
} bo_journal_header;

/* One evaluation: {"i": 1-based index, "x": [...], "y": y, "se": se or null, "seconds": duration,
 * "time": Unix time, "info": any JSON value the caller attached}. */
typedef struct bo_record {
    int index;       /* 1-based */
    double *x;       /* d values (owned) */
    double y, se;    /* se NaN: unknown */
    double seconds;  /* duration of the evaluation, NaN unknown */
    double time;     /* Unix time when recorded */
    cJSON *info;     /* owned, may be NULL */
} bo_record;

typedef struct bo_journal bo_journal;

/* Opens the journal at path for appending, creating it (with the header) when missing or empty. The
 * evaluations already in it come back in *records (free with bo_records_free). A journal written for
 * another dimension, other bounds or other integer dimensions is refused; an unfinished last line
 * (a kill during a write) is dropped. NULL with err_set on failure. */
bo_journal *bo_journal_open(const char *path, const bo_journal_header *h, bo_record **records, int *count);

/* Appends one evaluation (its d coordinates) and syncs it to disk. */
int bo_journal_append(bo_journal *j, const bo_record *r);

void bo_journal_close(bo_journal *j);

/* A JSON number that reads back as exactly v (cJSON's own printing rounds to 15 digits when the
 * difference looks negligible); v must be finite. */
cJSON *bo_json_number(double v);
void bo_records_free(bo_record *records, int count);

#endif
