#include "bo/bo_journal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/atomic.h"

#define JOURNAL_KIND "boengine bo journal"
#define RESUME_HINT "; resume = \"force\" continues it anyway, fresh = true starts it over"

struct bo_journal {
    FILE *f; /* appending; its descriptor holds the lock */
    char *path;
    int d;
    char *forced; /* the difference resumed past, or NULL */
};

void bo_record_clear(bo_record *r)
{
    free(r->x);
    free(r->info);
    r->x = NULL;
    r->info = NULL;
}

void bo_records_free(bo_record *records, int count)
{
    for (int i = 0; records && i < count; i++)
        bo_record_clear(&records[i]);
    free(records);
}

/* ---- JSON text with exact numbers */

/* The shortest of %.15g, %.16g and %.17g that reads back as v: exact, and as short as it can be
 * (cJSON's own printer may round to 15 digits when the difference looks negligible). */
static void format_number(double v, char *buf, size_t size)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static cJSON *number_item(double v)
{
    char buf[32];
    format_number(v, buf, sizeof buf);
    return cJSON_CreateRaw(buf);
}

static cJSON *number_list(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, number_item(v[i]));
    return a;
}

/* Replaces the numbers under item (in place) by raw text that reads back exactly. */
static void exact_numbers(cJSON *item)
{
    cJSON *e = item ? item->child : NULL;
    while (e) {
        cJSON *next = e->next;
        if (cJSON_IsNumber(e)) {
            cJSON *raw = number_item(e->valuedouble);
            if (raw) { /* the key moves to the replacement */
                raw->string = e->string;
                e->string = NULL;
                cJSON_ReplaceItemViaPointer(item, e, raw);
            }
        }
        else
            exact_numbers(e);
        e = next;
    }
}

/* item as JSON text on one line, numbers exact; NULL on out of memory. */
static char *print_exact(const cJSON *item)
{
    if (cJSON_IsNumber(item)) {
        char buf[32];
        format_number(item->valuedouble, buf, sizeof buf);
        return strdup(buf);
    }
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (!copy)
        return NULL;
    exact_numbers(copy);
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    return text;
}

char *bo_journal_json(const char *text)
{
    cJSON *o = cJSON_ParseWithOpts(text, NULL, 1);
    if (!o) {
        err_set("info is not one JSON value");
        return NULL;
    }
    char *s = print_exact(o); /* the form a journal gives back, so that a resumed run sees the same text */
    cJSON_Delete(o);
    if (!s)
        err_set("out of memory");
    return s;
}

/* ---- the header */

static cJSON *header_json(const bo_journal_header *h)
{
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateArray();
    for (int j = 0; j < h->d; j++)
        cJSON_AddItemToArray(in, cJSON_CreateBool(h->integer && h->integer[j]));
    cJSON_AddStringToObject(o, "journal", JOURNAL_KIND);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "dim", h->d);
    cJSON_AddItemToObject(o, "lower", number_list(h->lower, h->d));
    cJSON_AddItemToObject(o, "upper", number_list(h->upper, h->d));
    cJSON_AddItemToObject(o, "integer", in);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->seed);
    cJSON_AddItemToObject(o, "seed", cJSON_CreateRaw(seed));
    cJSON_AddStringToObject(o, "strategy", h->strategy ? h->strategy : "bo");
    cJSON_AddStringToObject(o, "acquisition", h->acquisition ? h->acquisition : "");
    const char *keys[4] = {"engine", "commit", "script", "script_sha256"};
    const char *values[4] = {h->engine, h->commit, h->script, h->script_sha256};
    for (int k = 0; k < 4; k++)
        if (values[k])
            cJSON_AddStringToObject(o, keys[k], values[k]);
    return o;
}

static int number_array(const cJSON *a, int d, double *out)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != d)
        return -1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e))
            return -1;
        out[i++] = e->valuedouble;
    }
    return 0;
}

/* The problem itself: a journal of another one can never be continued. */
static int check_problem(const cJSON *o, const bo_journal_header *h)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "journal");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, JOURNAL_KIND) != 0)
        return err_set("not a BO journal (its first line has no \"journal\": \"" JOURNAL_KIND "\")");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(o, "dim");
    if (!cJSON_IsNumber(dim) || dim->valuedouble != h->d)
        return err_set("written for %g dimensions, this run has %d", cJSON_IsNumber(dim) ? dim->valuedouble : -1,
                       h->d);
    double *v = malloc((size_t)h->d * sizeof *v);
    if (!v)
        return err_set("out of memory");
    int rc = 0;
    const char *names[2] = {"lower", "upper"};
    const double *want[2] = {h->lower, h->upper};
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (number_array(cJSON_GetObjectItemCaseSensitive(o, names[k]), h->d, v) != 0)
            rc = err_set("its header has no valid \"%s\" bounds", names[k]);
        for (int j = 0; j < h->d && rc == 0; j++)
            if (v[j] != want[k][j]) {
                char a[32], b[32];
                format_number(v[j], a, sizeof a);
                format_number(want[k][j], b, sizeof b);
                rc = err_set("written for other bounds: dimension %d has %s bound %s there, %s here", j + 1,
                             names[k], a, b);
            }
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "integer");
    for (int j = 0; j < h->d && rc == 0; j++) {
        const cJSON *e = cJSON_GetArrayItem(in, j);
        int there = cJSON_IsTrue(e), here = h->integer && h->integer[j];
        if (there != here)
            rc = err_set("written with dimension %d %s, here it is %s", j + 1, there ? "integer" : "continuous",
                         here ? "integer" : "continuous");
    }
    free(v);
    return rc;
}

/* The seed as written in the header line (exact up to 2^64: cJSON keeps only a double); 0 when absent,
 * -1 when it is not a seed (negative, fractional, beyond 2^64). */
static int header_seed(const char *line, const cJSON *o, uint64_t *seed)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (!cJSON_IsNumber(s))
        return 0;
    if (!(s->valuedouble >= 0 && s->valuedouble < 18446744073709551616.0) || s->valuedouble != floor(s->valuedouble))
        return -1;
    *seed = (uint64_t)s->valuedouble;
    /* a "seed": key can only be the header's own: inside a JSON string a quote is escaped */
    const char *p = strstr(line, "\"seed\":");
    if (p) {
        char *end;
        p += 7;
        while (*p == ' ')
            p++;
        if (*p >= '0' && *p <= '9') {
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (errno == 0 && (*end == ',' || *end == '}' || *end == ' '))
                *seed = v;
        }
    }
    return 1;
}

static const char *string_field(const cJSON *o, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) && s->valuestring[0] ? s->valuestring : NULL;
}

/* What made the journal against what makes this run: the first difference, written into diff (empty
 * when there is none). Only what both sides record is compared. */
static void compare_provenance(const char *line, const cJSON *o, const bo_journal_header *h, char *diff, size_t size)
{
    diff[0] = '\0';
    const char *sha = string_field(o, "script_sha256");
    if (sha && h->script_sha256 && strcmp(sha, h->script_sha256) != 0) {
        const char *script = string_field(o, "script");
        snprintf(diff, size,
                 "written by another experiment file (%s%sSHA-256 %.12s... there, %s%sSHA-256 %.12s... here)",
                 script ? script : "", script ? ", " : "", sha, h->script ? h->script : "", h->script ? ", " : "",
                 h->script_sha256);
        return;
    }
    uint64_t seed;
    int has_seed = header_seed(line, o, &seed);
    if (has_seed < 0) {
        snprintf(diff, size, "written with a seed that is not a non-negative integer, this run has seed %llu",
                 (unsigned long long)h->seed);
        return;
    }
    if (has_seed && seed != h->seed) {
        snprintf(diff, size, "written with seed %llu, this run has seed %llu", (unsigned long long)seed,
                 (unsigned long long)h->seed);
        return;
    }
    const char *strategy = string_field(o, "strategy"), *here = h->strategy ? h->strategy : "bo";
    if (!strategy)
        strategy = "bo"; /* journals from before the strategies were all BO */
    if (strcmp(strategy, here) != 0) {
        snprintf(diff, size, "written by strategy '%s', this run uses '%s'", strategy, here);
        return;
    }
    const char *acq = string_field(o, "acquisition");
    if (acq && h->acquisition && h->acquisition[0] && strcmp(acq, h->acquisition) != 0)
        snprintf(diff, size, "written with acquisition '%s', this run uses '%s'", acq, h->acquisition);
}

/* ---- evaluations */

static int parse_record(const cJSON *o, int d, int expect, bo_record *r)
{
    memset(r, 0, sizeof *r);
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "i"), *y = cJSON_GetObjectItemCaseSensitive(o, "y");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(o, "se"), *sec = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time"), *info = cJSON_GetObjectItemCaseSensitive(o, "info");
    if (!cJSON_IsNumber(i) || i->valuedouble != expect) { /* valueint would take 1.5 for 1 */
        char got[32] = "none";
        if (cJSON_IsNumber(i))
            format_number(i->valuedouble, got, sizeof got);
        return err_set("expected evaluation %d, got \"i\": %s", expect, got);
    }
    if (!cJSON_IsNumber(y) || !isfinite(y->valuedouble))
        return err_set("evaluation %d has no finite \"y\"", expect);
    r->x = malloc((size_t)d * sizeof *r->x);
    if (!r->x)
        return err_set("out of memory");
    if (number_array(cJSON_GetObjectItemCaseSensitive(o, "x"), d, r->x) != 0) {
        bo_record_clear(r);
        return err_set("evaluation %d has no \"x\" of %d numbers", expect, d);
    }
    r->index = expect;
    r->y = y->valuedouble;
    r->se = cJSON_IsNumber(se) ? se->valuedouble : NAN;
    r->seconds = cJSON_IsNumber(sec) ? sec->valuedouble : NAN;
    r->time = cJSON_IsNumber(t) ? t->valuedouble : NAN;
    if (info && !cJSON_IsNull(info) && !(r->info = print_exact(info))) {
        bo_record_clear(r);
        return err_set("out of memory");
    }
    return 0;
}

/* One line as a JSON value, nothing after it; *trailing is set when a value parses but text follows. */
static cJSON *parse_line(const char *s, size_t len, int *trailing)
{
    *trailing = 0;
    if (memchr(s, '\0', len)) {
        *trailing = 1;
        return NULL;
    }
    char *t = strndup(s, len);
    if (!t)
        return NULL;
    cJSON *o = cJSON_ParseWithOpts(t, NULL, 1);
    if (!o) {
        cJSON *prefix = cJSON_ParseWithOpts(t, NULL, 0);
        *trailing = prefix != NULL;
        cJSON_Delete(prefix);
    }
    free(t);
    return o;
}

typedef struct loaded {
    bo_record *records;
    int count, cap;
    size_t valid;   /* length of the text to keep */
    int has_header;
    char diff[512]; /* what differs from the header, when forced */
} loaded;

static int add_record(loaded *ld, const cJSON *o, int d)
{
    if (ld->count == ld->cap) {
        int cap = ld->cap ? 2 * ld->cap : 64;
        bo_record *r = realloc(ld->records, (size_t)cap * sizeof *r);
        if (!r)
            return err_set("out of memory");
        ld->records = r;
        ld->cap = cap;
    }
    if (parse_record(o, d, ld->count + 1, ld->records + ld->count) != 0)
        return -1;
    ld->count++;
    return 0;
}

/* Parses the existing text: the header, then the evaluations. */
static int load(const char *text, size_t size, const bo_journal_header *h, int flags, loaded *ld)
{
    size_t pos = 0;
    for (int line = 1; pos < size; line++) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - text) : size;
        int trailing;
        cJSON *o = parse_line(text + pos, end - pos, &trailing);
        if (!o) {
            if (!nl && !trailing) /* an unfinished last line: the write was interrupted, the evaluation is redone */
                break;
            return err_set(trailing ? "line %d has text after its JSON value" : "line %d is not valid JSON", line);
        }
        int rc = 0;
        if (!cJSON_IsObject(o)) {
            rc = err_set("line %d is not a JSON object", line);
        } else if (!ld->has_header) {
            rc = check_problem(o, h);
            if (rc == 0) {
                char *s = strndup(text + pos, end - pos);
                if (s)
                    compare_provenance(s, o, h, ld->diff, sizeof ld->diff);
                free(s);
                if (ld->diff[0] && !(flags & BO_JOURNAL_FORCE))
                    rc = err_set("%s" RESUME_HINT, ld->diff);
            }
            ld->has_header = rc == 0;
        } else if (add_record(ld, o, h->d) != 0) {
            rc = err_prefix("line %d", line);
        }
        cJSON_Delete(o);
        if (rc != 0)
            return -1;
        pos = nl ? end + 1 : end;
        ld->valid = pos; /* a complete last line without its newline is kept, the newline added */
    }
    return 0;
}

/* ---- files */

static int write_line(FILE *f, const char *path, const cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (!text)
        return err_set("%s: out of memory", path);
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    free(text);
    return ok ? 0 : err_set("%s: write failed: %s", path, strerror(errno));
}

/* Creates the folders above path that are missing. */
static int make_parents(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return err_set("out of memory");
    int rc = 0;
    for (char *s = strchr(p + 1, '/'); s && rc == 0; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = err_set("%s: cannot create the folder %s: %s", path, p, strerror(errno));
        *s = '/';
    }
    free(p);
    return rc;
}

/* Makes a new directory entry durable. */
static void sync_parent(const char *path)
{
    char *dir = strdup(path);
    int dfd = dir ? open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
}

/* Opens path for reading and appending and takes its lock: the descriptor, or -1 with err_set;
 * -2 without a message when create is 0 and the file does not exist. */
static int open_locked(const char *path, int create)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
        if (fd < 0) {
            if (errno == ENOENT && !create)
                return -2;
            if (errno == EISDIR)
                return err_set("%s is a folder, not a journal file", path);
            return err_set("%s: cannot open: %s", path, strerror(errno));
        }
        struct stat here, there;
        if (fstat(fd, &here) != 0 || !S_ISREG(here.st_mode)) {
            close(fd);
            return err_set("%s is not a regular file", path);
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return err_set("%s is in use by another process or optimizer (it holds the journal's lock)", path);
            return err_set("%s: cannot lock: %s", path, strerror(e));
        }
        if (stat(path, &there) == 0 && there.st_ino == here.st_ino && there.st_dev == here.st_dev)
            return fd;
        close(fd); /* replaced (started over) between the open and the lock: take the new file */
    }
    return err_set("%s keeps being replaced by another process", path);
}

static char *read_all(int fd, const char *path, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set("%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        err_set("%s: out of memory reading %lld bytes", path, (long long)st.st_size);
        return NULL;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t k = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            err_set("%s: cannot read: %s", path, k < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            return NULL;
        }
        done += (size_t)k;
    }
    buf[done] = '\0';
    *size = done;
    return buf;
}

/* Starts over: a new file holding only the header, locked, renamed over the old one (which the
 * caller holds locked), so that the old journal is whole until the new one replaces it. The
 * descriptor of the new file, or -1 with err_set. */
static int replace_fresh(const char *path, const bo_journal_header *h)
{
    atomic_file a;
    if (atomic_open(&a, path) != 0)
        return -1;
    cJSON *o = header_json(h);
    int ok = write_line(a.f, path, o) == 0;
    cJSON_Delete(o);
    int fd = ok ? dup(fileno(a.f)) : -1; /* the duplicate keeps the file, and its lock, open */
    ok = ok && fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (!ok && fd < 0)
        err_set("%s: cannot start over: %s", path, strerror(errno));
    if (atomic_close(&a, ok) != 0 || !ok) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sync_parent(path);
    return fd;
}

static bo_journal *journal_new(const char *path, int d)
{
    bo_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        err_set("out of memory");
        return NULL;
    }
    j->d = d;
    return j;
}

/* Reads the journal open on fd, drops an unfinished last line and writes the header when it has
 * none. */
static int resume(bo_journal *j, int fd, const bo_journal_header *h, int flags, loaded *ld)
{
    size_t size = 0;
    char *text = read_all(fd, j->path, &size);
    if (!text)
        return -1;
    int rc = load(text, size, h, flags, ld);
    int needs_newline = rc == 0 && ld->valid > 0 && text[ld->valid - 1] != '\n';
    free(text);
    if (rc != 0)
        return err_prefix("%s", j->path);
    if (ld->diff[0] && !(j->forced = strdup(ld->diff)))
        return err_set("out of memory");
    if (size > ld->valid && ftruncate(fd, (off_t)ld->valid) != 0)
        return err_set("%s: cannot drop its unfinished last line: %s", j->path, strerror(errno));
    if (needs_newline && (fputc('\n', j->f) == EOF || fflush(j->f) != 0))
        return err_set("%s: write failed: %s", j->path, strerror(errno));
    if (ld->has_header)
        return 0;
    cJSON *o = header_json(h);
    rc = write_line(j->f, j->path, o);
    cJSON_Delete(o);
    if (rc == 0)
        sync_parent(j->path);
    return rc;
}

bo_journal *bo_journal_open(const char *path, const bo_journal_header *h, int flags, bo_record **records,
                            int *count)
{
    *records = NULL;
    *count = 0;
    loaded ld = {0};
    bo_journal *j = journal_new(path, h->d);
    if (!j || make_parents(path) != 0)
        goto fail;
    int fd = -1;
    if (flags & BO_JOURNAL_FRESH) {
        int old = open_locked(path, 0);
        if (old == -1)
            goto fail;
        if (old >= 0) {
            fd = replace_fresh(path, h);
            close(old);
            if (fd < 0)
                goto fail;
            ld.has_header = 1;
        }
    }
    if (fd < 0 && (fd = open_locked(path, 1)) < 0)
        goto fail;
    if (!(j->f = fdopen(fd, "a"))) {
        err_set("%s: cannot open for appending: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!ld.has_header && resume(j, fd, h, flags, &ld) != 0)
        goto fail;
    *records = ld.records;
    *count = ld.count;
    return j;
fail:
    bo_journal_close(j);
    bo_records_free(ld.records, ld.count);
    return NULL;
}

const char *bo_journal_forced(const bo_journal *j) { return j->forced; }

int bo_journal_append(bo_journal *j, const bo_record *r)
{
    char *info = NULL;
    if (r->info && !(info = bo_journal_json(r->info)))
        return err_prefix("%s: evaluation %d", j->path, r->index);
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        free(info);
        return err_set("out of memory");
    }
    cJSON_AddNumberToObject(o, "i", r->index);
    cJSON_AddItemToObject(o, "x", number_list(r->x, j->d));
    cJSON_AddItemToObject(o, "y", number_item(r->y));
    if (isfinite(r->se))
        cJSON_AddItemToObject(o, "se", number_item(r->se));
    else
        cJSON_AddNullToObject(o, "se");
    if (isfinite(r->seconds))
        cJSON_AddItemToObject(o, "seconds", number_item(r->seconds));
    cJSON_AddNumberToObject(o, "time", isfinite(r->time) ? r->time : (double)time(NULL));
    if (info)
        cJSON_AddItemToObject(o, "info", cJSON_CreateRaw(info));
    int rc = write_line(j->f, j->path, o);
    cJSON_Delete(o);
    free(info);
    return rc;
}

void bo_journal_close(bo_journal *j)
{
    if (!j)
        return;
    if (j->f)
        fclose(j->f);
    free(j->path);
    free(j->forced);
    free(j);
}
