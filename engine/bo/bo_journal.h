/* bo_journal: the journal of a BO run: a header line naming the problem (dimension, bounds, integer
 * dimensions) and what made the run (seed, strategy, acquisition, engine, experiment file and its
 * SHA-256), then one JSON line per evaluation, flushed and fsynced as soon as it is written, so that
 * a killed run restarts from it without losing or repeating an evaluation. An open journal holds an
 * exclusive lock (flock) on its file: a second process cannot open it. */
#ifndef BOENGINE_BO_JOURNAL_H
#define BOENGINE_BO_JOURNAL_H

#include <stdint.h>

typedef struct bo_journal_header {
    int d;
    const double *lower, *upper;
    const int *integer;      /* NULL: none */
    uint64_t seed;
    const char *strategy;    /* NULL: "bo" */
    const char *acquisition; /* NULL when the strategy has none */
    /* what made the journal (each may be NULL); only script_sha256 is compared */
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
    char *info;      /* JSON text of one value on one line (bo_journal_json), owned, may be NULL */
} bo_record;

typedef struct bo_journal bo_journal;

enum {
    BO_JOURNAL_FRESH = 1, /* start over: the old journal is replaced atomically by a new one */
    BO_JOURNAL_FORCE = 2, /* resume even a journal of another experiment file, seed, strategy or acquisition */
};

/* Opens the journal at path for appending (creating its missing folders, and the file with its
 * header when missing or empty), and locks it. The evaluations already in it come back in *records
 * (free with bo_records_free). Refused with err_set: a file that another process holds; a journal
 * of another problem (dimension, bounds, integer dimensions); unless flags has BO_JOURNAL_FORCE,
 * one written by another experiment file (its SHA-256), seed, strategy or acquisition, the message
 * naming the difference; a line that is not one JSON object, or an evaluation out of order. An
 * unfinished last line (a kill during a write) is dropped. */
bo_journal *bo_journal_open(const char *path, const bo_journal_header *h, int flags, bo_record **records,
                            int *count);

/* The difference that BO_JOURNAL_FORCE resumed past ("written by another experiment file ..."),
 * or NULL when there was none. */
const char *bo_journal_forced(const bo_journal *j);

/* Appends one evaluation (its d coordinates, numbers exactly as they are) and syncs it to disk. */
int bo_journal_append(bo_journal *j, const bo_record *r);

/* Closes the file and releases its lock. */
void bo_journal_close(bo_journal *j);

/* text checked to be one JSON value and put in the form the journal reads back: on one line, numbers
 * in their shortest exact form. A new string, or NULL with err_set. */
char *bo_journal_json(const char *text);

void bo_record_clear(bo_record *r);
void bo_records_free(bo_record *records, int count);

#endif
