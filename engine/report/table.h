/* table: result tables written twice from the same cells, as CSV for programs and as Markdown for
 * people, each under a provenance header, atomically (temporary file + rename).
 *
 * CSV: '#' comment lines first ("# key: value", one per provenance pair, then "# title: ..."),
 * then a header row and one row per table row, comma-separated, fields quoted as RFC 4180 does
 * when they hold a comma, a quote, a line break or '#'. Numbers are written with the fewest
 * digits that read back to the same double; NaN is "NaN", infinities "inf" and "-inf", an empty
 * cell an empty field. pandas.read_csv(path, comment="#") reads it; Python's csv module reads it
 * once the lines starting with '#' are dropped.
 *
 * Markdown: "# title", a line with the provenance, and a pipe table whose numbers are rounded to
 * each column's significant digits: integers as integers (thousands grouped from 10,000), other
 * columns with one number of decimals for the whole column (the largest value keeps its digits),
 * or in e-notation when the column spans more than three orders of magnitude. */
#ifndef BOENGINE_TABLE_H
#define BOENGINE_TABLE_H

#include <stddef.h>

#include "report/prov.h"

typedef enum table_kind { TABLE_EMPTY = 0, TABLE_NUMBER, TABLE_TEXT } table_kind;

typedef struct table_cell {
    table_kind kind;
    double num;       /* TABLE_NUMBER */
    const char *text; /* TABLE_TEXT, UTF-8 */
} table_cell;

typedef struct table_column {
    const char *name; /* unique, non-empty; say the unit here: "time (s)" */
    int digits;       /* significant digits in Markdown, 1 to 17; 0 for 4 */
} table_column;

typedef struct table_spec {
    const char *title; /* NULL for none */
    int ncols, nrows;
    const table_column *columns;
    const table_cell *cells; /* nrows x ncols, row after row */
    const prov_kv *prov;
    int nprov;
} table_spec;

/* Writes base.csv and base.md (both are written to temporaries first and renamed into place only
 * when both are complete). -1 with err_set naming the file or the bad cell. */
int table_write(const char *base, const table_spec *t);
int table_write_csv(const char *path, const table_spec *t);
int table_write_md(const char *path, const table_spec *t);

/* The shortest decimal text of v that strtod reads back to v exactly ("0.1", "1e-300", "12"). */
void table_format_exact(double v, char *buf, size_t size);

#endif
