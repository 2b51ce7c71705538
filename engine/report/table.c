#include "report/table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/atomic.h"
#include "report/outdir.h"

#define DEFAULT_DIGITS 4

static int check_text(const char *s, const char *what, int lines_ok)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(lines_ok && (*p == '\n' || *p == '\r' || *p == '\t'))) || *p == 0x7f)
            return err_set("%s holds a control character", what);
    return 0;
}

static int check_spec(const table_spec *t)
{
    if (t->ncols < 1 || !t->columns)
        return err_set("a table needs at least one column");
    if (t->nrows < 0 || (t->nrows > 0 && !t->cells))
        return err_set("a table needs its cells");
    if (t->title && check_text(t->title, "the title", 0) != 0)
        return -1;
    for (int j = 0; j < t->ncols; j++) {
        const table_column *c = &t->columns[j];
        if (!c->name || !*c->name)
            return err_set("column %d has no name", j + 1);
        if (check_text(c->name, "a column name", 0) != 0)
            return err_prefix("column %d", j + 1);
        if (c->digits < 0 || c->digits > 17)
            return err_set("column '%s': digits must be from 1 to 17, got %d", c->name, c->digits);
        for (int k = 0; k < j; k++)
            if (strcmp(t->columns[k].name, c->name) == 0)
                return err_set("column '%s' is named twice", c->name);
    }
    for (int i = 0; i < t->nrows; i++)
        for (int j = 0; j < t->ncols; j++) {
            const table_cell *c = &t->cells[(size_t)i * t->ncols + j];
            if (c->kind == TABLE_TEXT && !c->text)
                return err_set("row %d, column '%s': text cell without text", i + 1, t->columns[j].name);
            if (c->kind != TABLE_EMPTY && c->kind != TABLE_NUMBER && c->kind != TABLE_TEXT)
                return err_set("row %d, column '%s': unknown cell kind", i + 1, t->columns[j].name);
            if (c->kind == TABLE_TEXT && check_text(c->text, "text", 1) != 0)
                return err_prefix("row %d, column '%s'", i + 1, t->columns[j].name);
        }
    return prov_check(t->prov, t->nprov);
}

void table_format_exact(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) { /* integers without an exponent */
        snprintf(buf, size, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ---- CSV ---- */

static void csv_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    int quote = n > 0 && (strpbrk(s, ",\"\r\n#") || s[0] == ' ' || s[n - 1] == ' ');
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void write_csv(FILE *f, const table_spec *t)
{
    for (int i = 0; i < t->nprov; i++)
        fprintf(f, "# %s: %s\n", t->prov[i].key, t->prov[i].value);
    if (t->title)
        fprintf(f, "# title: %s\n", t->title);
    for (int j = 0; j < t->ncols; j++) {
        if (j)
            fputc(',', f);
        csv_field(f, t->columns[j].name);
    }
    fputc('\n', f);
    char num[40];
    for (int i = 0; i < t->nrows; i++) {
        for (int j = 0; j < t->ncols; j++) {
            const table_cell *c = &t->cells[(size_t)i * t->ncols + j];
            if (j)
                fputc(',', f);
            if (c->kind == TABLE_NUMBER) {
                table_format_exact(c->num, num, sizeof num);
                fputs(num, f);
            } else if (c->kind == TABLE_TEXT) {
                csv_field(f, c->text);
            }
        }
        fputc('\n', f);
    }
}

/* ---- Markdown ---- */

typedef enum md_mode { MD_INTEGER, MD_FIXED, MD_GENERAL } md_mode;

typedef struct md_format {
    md_mode mode;
    int decimals, digits, group;
} md_format;

/* One format for the whole column, from its finite numbers. */
static md_format column_format(const table_spec *t, int j)
{
    md_format fmt = {MD_INTEGER, 0, t->columns[j].digits ? t->columns[j].digits : DEFAULT_DIGITS, 0};
    double maxabs = 0, minabs = INFINITY;
    int integers = 1;
    for (int i = 0; i < t->nrows; i++) {
        const table_cell *c = &t->cells[(size_t)i * t->ncols + j];
        if (c->kind != TABLE_NUMBER || !isfinite(c->num))
            continue;
        double a = fabs(c->num);
        if (a > maxabs)
            maxabs = a;
        if (a > 0 && a < minabs)
            minabs = a;
        if (c->num != floor(c->num) || a >= 1e15)
            integers = 0;
    }
    if (integers) {
        fmt.group = maxabs >= 10000;
        return fmt;
    }
    int e = (int)floor(log10(maxabs));
    if (e >= 6 || e < -3 || minabs < maxabs * 1e-3) {
        fmt.mode = MD_GENERAL;
        return fmt;
    }
    fmt.mode = MD_FIXED;
    fmt.decimals = fmt.digits - 1 - e;
    if (fmt.decimals < 0)
        fmt.decimals = 0;
    fmt.group = maxabs >= 10000;
    return fmt;
}

/* Inserts ',' between groups of three digits of the integer part. */
static void group_thousands(char *s, size_t size)
{
    char *digits = s + (s[0] == '-');
    size_t intlen = strspn(digits, "0123456789");
    size_t commas = intlen > 3 ? (intlen - 1) / 3 : 0;
    size_t len = strlen(s);
    if (!commas || len + commas + 1 > size)
        return;
    memmove(digits + intlen + commas, digits + intlen, len - (size_t)(digits - s) - intlen + 1);
    char *src = digits + intlen - 1, *dst = digits + intlen + commas - 1;
    for (size_t k = 0; k < intlen; k++) {
        *dst-- = *src--;
        if (k % 3 == 2 && k + 1 < intlen)
            *dst-- = ',';
    }
}

/* "1.5e-05" → "1.5e-5", "2e+06" → "2e6" */
static void compact_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return;
    char *p = e + 1, *out = e + 1;
    if (*p == '+')
        p++;
    else if (*p == '-')
        *out++ = *p++;
    while (*p == '0' && p[1])
        p++;
    memmove(out, p, strlen(p) + 1);
}

static void md_number(double v, const md_format *fmt, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
        return;
    }
    if (fmt->mode == MD_GENERAL) {
        snprintf(buf, size, "%.*g", fmt->digits, v);
        compact_exponent(buf);
    } else {
        snprintf(buf, size, "%.*f", fmt->mode == MD_INTEGER ? 0 : fmt->decimals, v);
    }
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)) /* no "-0.00" */
        memmove(buf, buf + 1, strlen(buf));
    if (fmt->group)
        group_thousands(buf, size);
}

/* Text for a pipe-table cell: no line breaks, and the characters Markdown would read as table or
 * emphasis syntax escaped. */
static void md_text(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            fputc(' ', f);
        else if (strchr("\\|`*<", *p))
            fprintf(f, "\\%c", *p);
        else
            fputc(*p, f);
    }
}

static size_t md_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xc0) != 0x80 ? 1 + (strchr("\\|`*<", *p) != NULL) : 0;
    return w;
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

static void write_md(FILE *f, const table_spec *t, char *cellbuf)
{
    if (t->title) {
        fputs("# ", f);
        md_text(f, t->title);
        fputs("\n\n", f);
    }
    if (t->nprov > 0) {
        for (int i = 0; i < t->nprov; i++) {
            fprintf(f, "%s%s: ", i ? " · " : "", t->prov[i].key);
            md_text(f, t->prov[i].value);
        }
        fputs("\n\n", f);
    }
    /* cells as text first, to pad every column to its width */
    enum { CELL = 48 };
    size_t *width = calloc((size_t)t->ncols, sizeof *width);
    int *right = calloc((size_t)t->ncols, sizeof *right);
    if (!width || !right) {
        free(width);
        free(right);
        fputs("(out of memory)\n", f);
        return;
    }
    for (int j = 0; j < t->ncols; j++) {
        md_format fmt = column_format(t, j);
        width[j] = md_width(t->columns[j].name);
        int numbers = 0, texts = 0;
        for (int i = 0; i < t->nrows; i++) {
            const table_cell *c = &t->cells[(size_t)i * t->ncols + j];
            char *out = cellbuf + ((size_t)i * t->ncols + j) * CELL;
            out[0] = '\0';
            if (c->kind == TABLE_NUMBER) {
                md_number(c->num, &fmt, out, CELL);
                numbers++;
            }
            size_t w = c->kind == TABLE_TEXT ? md_width(c->text) : strlen(out);
            texts += c->kind == TABLE_TEXT;
            if (w > width[j])
                width[j] = w;
        }
        right[j] = numbers > 0 && texts == 0;
        if (width[j] < 3)
            width[j] = 3;
    }
    fputc('|', f);
    for (int j = 0; j < t->ncols; j++) {
        fputc(' ', f);
        size_t w = md_width(t->columns[j].name);
        if (right[j])
            pad(f, width[j] - w);
        md_text(f, t->columns[j].name);
        if (!right[j])
            pad(f, width[j] - w);
        fputs(" |", f);
    }
    fputs("\n|", f);
    for (int j = 0; j < t->ncols; j++) {
        fputc(right[j] ? '-' : ':', f);
        for (size_t k = 0; k < width[j]; k++)
            fputc('-', f);
        fputs(right[j] ? ":|" : "-|", f);
    }
    fputc('\n', f);
    for (int i = 0; i < t->nrows; i++) {
        fputc('|', f);
        for (int j = 0; j < t->ncols; j++) {
            const table_cell *c = &t->cells[(size_t)i * t->ncols + j];
            const char *out = cellbuf + ((size_t)i * t->ncols + j) * CELL;
            size_t w = c->kind == TABLE_TEXT ? md_width(c->text) : strlen(out);
            fputc(' ', f);
            if (right[j])
                pad(f, width[j] - w);
            if (c->kind == TABLE_TEXT)
                md_text(f, c->text);
            else
                fputs(out, f);
            if (!right[j])
                pad(f, width[j] - w);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    free(width);
    free(right);
}

static char *cell_buffer(const table_spec *t)
{
    size_t cells = (size_t)t->nrows * (size_t)t->ncols;
    char *buf = malloc(cells * 48 + 1);
    if (!buf)
        err_set("out of memory for a table of %d rows", t->nrows);
    return buf;
}

int table_write_csv(const char *path, const table_spec *t)
{
    if (check_spec(t) != 0)
        return err_prefix("%s", path);
    atomic_file a;
    if (outdir_make_parents(path) != 0 || atomic_open(&a, path) != 0)
        return -1;
    write_csv(a.f, t);
    return atomic_close(&a, 1);
}

int table_write_md(const char *path, const table_spec *t)
{
    if (check_spec(t) != 0)
        return err_prefix("%s", path);
    char *cells = cell_buffer(t);
    if (!cells)
        return err_prefix("%s", path);
    atomic_file a;
    if (outdir_make_parents(path) != 0 || atomic_open(&a, path) != 0) {
        free(cells);
        return -1;
    }
    write_md(a.f, t, cells);
    free(cells);
    return atomic_close(&a, 1);
}

int table_write(const char *base, const table_spec *t)
{
    size_t n = strlen(base);
    char *csv = malloc(n + 5), *md = malloc(n + 4);
    if (!csv || !md) {
        free(csv);
        free(md);
        return err_set("%s: out of memory", base);
    }
    snprintf(csv, n + 5, "%s.csv", base);
    snprintf(md, n + 4, "%s.md", base);
    int rc = -1;
    char *cells = NULL;
    atomic_file ac, am;
    if (check_spec(t) != 0) {
        err_prefix("%s", csv);
        goto done;
    }
    if (!(cells = cell_buffer(t))) {
        err_prefix("%s", md);
        goto done;
    }
    if (outdir_make_parents(csv) != 0 || atomic_open(&ac, csv) != 0)
        goto done;
    if (atomic_open(&am, md) != 0) {
        atomic_close(&ac, 0);
        goto done;
    }
    /* both complete before either is renamed into place */
    write_csv(ac.f, t);
    write_md(am.f, t, cells);
    int ok = fflush(ac.f) == 0 && !ferror(ac.f) && fflush(am.f) == 0 && !ferror(am.f);
    if (!ok) {
        err_set("%s: write failed", ferror(ac.f) ? csv : md);
        atomic_close(&ac, 0);
        atomic_close(&am, 0);
        goto done;
    }
    if (atomic_close(&ac, 1) != 0) {
        atomic_close(&am, 0);
        goto done;
    }
    rc = atomic_close(&am, 1);
done:
    free(cells);
    free(csv);
    free(md);
    return rc;
}
