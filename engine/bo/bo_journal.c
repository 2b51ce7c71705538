#include "bo/bo_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"

#define JOURNAL_KIND "boengine bo journal"

struct bo_journal {
    FILE *f;
    char *path;
    int d;
};

void bo_records_free(bo_record *records, int count)
{
    for (int i = 0; records && i < count; i++) {
        free(records[i].x);
        cJSON_Delete(records[i].info);
    }
    free(records);
}

cJSON *bo_json_number(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static cJSON *number_list(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, bo_json_number(v[i]));
    return a;
}

static char *slurp(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)*size + 1)) && fread(buf, 1, (size_t)*size, f) == (size_t)*size)
        buf[*size] = '\0';
    else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
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

static cJSON *header_json(const bo_journal_header *h)
{
    cJSON *o = cJSON_CreateObject(), *lo = number_list(h->lower, h->d), *hi = number_list(h->upper, h->d),
          *in = cJSON_CreateArray();
    for (int j = 0; j < h->d; j++)
        cJSON_AddItemToArray(in, cJSON_CreateBool(h->integer && h->integer[j]));
    cJSON_AddStringToObject(o, "journal", JOURNAL_KIND);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "dim", h->d);
    cJSON_AddItemToObject(o, "lower", lo);
    cJSON_AddItemToObject(o, "upper", hi);
    cJSON_AddItemToObject(o, "integer", in);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->seed);
    cJSON_AddItemToObject(o, "seed", cJSON_CreateRaw(seed));
    cJSON_AddStringToObject(o, "acquisition", h->acquisition ? h->acquisition : "");
    const char *keys[4] = {"engine", "commit", "script", "script_sha256"};
    const char *values[4] = {h->engine, h->commit, h->script, h->script_sha256};
    for (int k = 0; k < 4; k++)
        if (values[k])
            cJSON_AddStringToObject(o, keys[k], values[k]);
    return o;
}

/* Checks that the header line describes the same problem. */
static int check_header(const cJSON *o, const bo_journal_header *h)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "journal");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, JOURNAL_KIND) != 0)
        return err_set("not a BO journal (its first line has no \"journal\": \"" JOURNAL_KIND "\")");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(o, "dim");
    if (!cJSON_IsNumber(dim) || dim->valueint != h->d)
        return err_set("written for %d dimensions, this run has %d", cJSON_IsNumber(dim) ? dim->valueint : -1, h->d);
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
                snprintf(a, sizeof a, "%.15g", v[j]);
                snprintf(b, sizeof b, "%.15g", want[k][j]);
                if (strcmp(a, b) == 0) { /* show the digits that differ */
                    snprintf(a, sizeof a, "%.17g", v[j]);
                    snprintf(b, sizeof b, "%.17g", want[k][j]);
                }
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

static int parse_record(const cJSON *o, int d, int expect, bo_record *r)
{
    memset(r, 0, sizeof *r);
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "i"), *y = cJSON_GetObjectItemCaseSensitive(o, "y");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(o, "se"), *sec = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time"), *info = cJSON_GetObjectItemCaseSensitive(o, "info");
    if (!cJSON_IsNumber(i) || i->valueint != expect)
        return err_set("expected evaluation %d", expect);
    if (!cJSON_IsNumber(y) || !isfinite(y->valuedouble))
        return err_set("evaluation %d has no finite \"y\"", expect);
    r->x = malloc((size_t)d * sizeof *r->x);
    if (!r->x)
        return err_set("out of memory");
    if (number_array(cJSON_GetObjectItemCaseSensitive(o, "x"), d, r->x) != 0) {
        free(r->x);
        r->x = NULL;
        return err_set("evaluation %d has no \"x\" of %d numbers", expect, d);
    }
    r->index = expect;
    r->y = y->valuedouble;
    r->se = cJSON_IsNumber(se) ? se->valuedouble : NAN;
    r->seconds = cJSON_IsNumber(sec) ? sec->valuedouble : NAN;
    r->time = cJSON_IsNumber(t) ? t->valuedouble : NAN;
    r->info = info ? cJSON_Duplicate(info, 1) : NULL;
    return 0;
}

static int write_line(bo_journal *j, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (!text)
        return err_set("%s: out of memory", j->path);
    int ok = fputs(text, j->f) >= 0 && fputc('\n', j->f) != EOF && fflush(j->f) == 0 && fsync(fileno(j->f)) == 0;
    free(text);
    return ok ? 0 : err_set("%s: write failed: %s", j->path, strerror(errno));
}

/* Parses the existing text: header, then records; *valid gets the length of the part to keep. */
static int load(const char *text, long size, const bo_journal_header *h, bo_record **records, int *count,
                long *valid, int *has_header)
{
    int cap = 0, line = 0;
    long pos = 0;
    *valid = 0;
    *has_header = 0;
    while (pos < size) {
        const char *nl = memchr(text + pos, '\n', (size_t)(size - pos));
        long end = nl ? nl - text : size;
        line++;
        char *s = strndup(text + pos, (size_t)(end - pos));
        cJSON *o = s ? cJSON_Parse(s) : NULL;
        free(s);
        if (!o) {
            if (!nl) /* an unfinished last line: the write was interrupted, the evaluation is redone */
                break;
            return err_set("line %d is not valid JSON", line);
        }
        int rc;
        if (!*has_header) {
            rc = check_header(o, h);
            *has_header = rc == 0;
        } else {
            if (*count == cap) {
                cap = cap ? 2 * cap : 64;
                bo_record *r = realloc(*records, (size_t)cap * sizeof *r);
                if (!r) {
                    cJSON_Delete(o);
                    return err_set("out of memory");
                }
                *records = r;
            }
            rc = parse_record(o, h->d, *count + 1, *records + *count);
            if (rc == 0)
                (*count)++;
        }
        cJSON_Delete(o);
        if (rc != 0)
            return err_prefix("line %d", line);
        pos = nl ? end + 1 : end;
        *valid = nl ? pos : end; /* a complete last line without its newline is kept, newline added */
    }
    return 0;
}

bo_journal *bo_journal_open(const char *path, const bo_journal_header *h, bo_record **records, int *count)
{
    *records = NULL;
    *count = 0;
    long size = 0, valid = 0;
    int has_header = 0;
    char *text = slurp(path, &size);
    if (!text && errno != ENOENT) {
        err_set("%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    if (text && load(text, size, h, records, count, &valid, &has_header) != 0) {
        free(text);
        bo_records_free(*records, *count);
        *records = NULL;
        *count = 0;
        err_prefix("%s", path);
        return NULL;
    }
    int needs_newline = text && valid > 0 && text[valid - 1] != '\n';
    free(text);
    bo_journal *j = calloc(1, sizeof *j);
    int fd = -1;
    if (!j || !(j->path = strdup(path))) {
        err_set("out of memory");
        goto fail;
    }
    j->d = h->d;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || (size > valid && ftruncate(fd, valid) != 0) || !(j->f = fdopen(fd, "a"))) {
        err_set("%s: cannot open for appending: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (needs_newline && (fputc('\n', j->f) == EOF || fflush(j->f) != 0)) {
        err_set("%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    if (!has_header) {
        cJSON *o = header_json(h);
        int rc = write_line(j, o);
        cJSON_Delete(o);
        if (rc != 0)
            goto fail;
        /* make the new file's directory entry durable too */
        char *dir = strdup(path);
        int dfd = dir ? open(dirname(dir), O_RDONLY | O_DIRECTORY) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return j;
fail:
    if (fd >= 0)
        close(fd);
    bo_journal_close(j);
    bo_records_free(*records, *count);
    *records = NULL;
    *count = 0;
    return NULL;
}

int bo_journal_append(bo_journal *j, const bo_record *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return err_set("out of memory");
    cJSON_AddNumberToObject(o, "i", r->index);
    cJSON_AddItemToObject(o, "x", number_list(r->x, j->d));
    cJSON_AddItemToObject(o, "y", bo_json_number(r->y));
    if (isfinite(r->se))
        cJSON_AddItemToObject(o, "se", bo_json_number(r->se));
    else
        cJSON_AddNullToObject(o, "se");
    if (isfinite(r->seconds))
        cJSON_AddItemToObject(o, "seconds", bo_json_number(r->seconds));
    cJSON_AddNumberToObject(o, "time", isfinite(r->time) ? r->time : (double)time(NULL));
    if (r->info)
        cJSON_AddItemToObject(o, "info", cJSON_Duplicate(r->info, 1));
    int rc = write_line(j, o);
    cJSON_Delete(o);
    return rc;
}

void bo_journal_close(bo_journal *j)
{
    if (!j)
        return;
    if (j->f)
        fclose(j->f);
    free(j->path);
    free(j);
}
