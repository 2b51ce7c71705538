/* report: tables (CSV read back to the same numbers, Markdown rows, provenance, atomic writes),
 * figures decoded by the io layer's independent PNG reader, GIF frames decoded with giflib and
 * compared with their PNGs, montages, and PLplot used repeatedly and from two threads. */
#include <dirent.h>
#include <float.h>
#include <gif_lib.h>
#include <math.h>
#include <plplot.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/images.h"
#include "report/anim.h"
#include "report/plot.h"
#include "report/raster.h"
#include "report/table.h"
#include "tap.h"

static char dir[256];

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Files in the test folder whose name holds ".tmp." (temporaries left behind). */
static int temporaries(const char *sub)
{
    DIR *d = opendir(sub);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static const prov_kv PROV[] = {
    {"seed", "7"}, {"version", "0.1.0"}, {"commit", "0123456789abcdef0123"}, {"script_sha256", "ab12cd"}};

/* ---- CSV reading, written here from RFC 4180 rather than with the writer's code ---- */

typedef struct csv_row {
    int n;
    char *f[16];
} csv_row;

/* Parses the next record from *p (quoted fields may hold commas, quotes and line breaks). */
static int csv_next(const char **p, csv_row *row)
{
    const char *s = *p;
    row->n = 0;
    if (!*s)
        return 0;
    for (;;) {
        char *out = malloc(strlen(s) + 1), *o = out;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == '"' && s[1] == '"') {
                    *o++ = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else if (!*s) {
                    break;
                } else {
                    *o++ = *s++;
                }
            }
        } else {
            while (*s && *s != ',' && *s != '\n')
                *o++ = *s++;
        }
        *o = '\0';
        if (row->n < 16)
            row->f[row->n++] = out;
        else
            free(out);
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\n')
            s++;
        break;
    }
    *p = s;
    return 1;
}

static void csv_free(csv_row *row)
{
    for (int i = 0; i < row->n; i++)
        free(row->f[i]);
    row->n = 0;
}

/* ---- tables ---- */

static void test_exact_numbers(void)
{
    const double v[] = {0.1, 1.0 / 3, 1e-300, -2.5e17, 123456789, 5e-324, DBL_MAX, 0.0, 2.0 / 3 * 1e-7, -0.015625};
    char buf[40];
    int ok = 1;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        table_format_exact(v[i], buf, sizeof buf);
        if (strtod(buf, NULL) != v[i]) {
            ok = 0;
            tap_diag("%.17g written as %s", v[i], buf);
        }
    }
    tap_ok(ok, "CSV numbers read back to the same doubles (subnormal, huge, thirds)");
    table_format_exact(0.1, buf, sizeof buf);
    tap_ok(strcmp(buf, "0.1") == 0, "0.1 is written as 0.1, not 0.10000000000000001 (got %s)", buf);
    table_format_exact(138357544, buf, sizeof buf);
    tap_ok(strcmp(buf, "138357544") == 0, "integers without exponent (got %s)", buf);
}

#define NROWS 5
#define NCOLS 5

static void make_table(table_spec *t, table_column *cols, table_cell *cells, const double *num)
{
    static const char *const text[NROWS] = {"conv1", "a,b", "say \"hi\"", "#5 line\nbreak", "tail"};
    cols[0] = (table_column){"layer", 0};
    cols[1] = (table_column){"R", 3};
    cols[2] = (table_column){"params", 0};
    cols[3] = (table_column){"L (mean)", 0};
    cols[4] = (table_column){"note", 0};
    for (int i = 0; i < NROWS; i++) {
        table_cell *r = cells + i * NCOLS;
        r[0] = (table_cell){TABLE_TEXT, 0, text[i]};
        r[1] = (table_cell){TABLE_NUMBER, num[i], NULL};
        r[2] = (table_cell){TABLE_NUMBER, 1000.0 * (i + 1) * (i + 1) * (i + 1) * 1000, NULL};
        r[3] = (table_cell){TABLE_NUMBER, i == 2 ? NAN : 0.6523418234 / (i + 1), NULL};
        r[4] = i == 1 ? (table_cell){TABLE_EMPTY, 0, NULL} : (table_cell){TABLE_NUMBER, 1e-9 * i, NULL};
    }
    memset(t, 0, sizeof *t);
    t->title = "Per-layer | table";
    t->ncols = NCOLS;
    t->nrows = NROWS;
    t->columns = cols;
    t->cells = cells;
    t->prov = PROV;
    t->nprov = 4;
}

static void test_tables(void)
{
    table_column cols[NCOLS];
    table_cell cells[NROWS * NCOLS];
    const double num[NROWS] = {0.25, 0.2461, 1.0 / 3, 0.1, 0.999};
    table_spec t;
    make_table(&t, cols, cells, num);
    char *base = path_in("sub/dir/layers");
    tap_ok(table_write(base, &t) == 0, "table_write creates missing folders and writes both files");
    char *csv = slurp(path_in("sub/dir/layers.csv")), *md = slurp(path_in("sub/dir/layers.md"));
    tap_ok(csv && md, "layers.csv and layers.md exist");
    if (!csv || !md) {
        tap_diag("%s", err_msg());
        free(csv);
        free(md);
        return;
    }
    tap_ok(strstr(csv, "# seed: 7\n") && strstr(csv, "# commit: 0123456789abcdef0123\n") &&
               strstr(csv, "# script_sha256: ab12cd\n") && strstr(csv, "# title: Per-layer | table\n"),
           "CSV opens with '#' provenance comment lines");
    /* read back: skip comments, a header, then the rows */
    const char *p = csv;
    while (*p == '#')
        p = strchr(p, '\n') + 1;
    csv_row row;
    csv_next(&p, &row);
    tap_ok(row.n == NCOLS && strcmp(row.f[0], "layer") == 0 && strcmp(row.f[3], "L (mean)") == 0,
           "CSV header row holds the column names");
    csv_free(&row);
    int rows = 0, same = 1, texts = 1;
    while (csv_next(&p, &row)) {
        const table_cell *c = cells + rows * NCOLS;
        if (row.n != NCOLS) {
            same = 0;
            csv_free(&row);
            rows++;
            continue;
        }
        texts &= strcmp(row.f[0], c[0].text) == 0;
        for (int j = 1; j < NCOLS; j++) {
            if (c[j].kind == TABLE_EMPTY) {
                same &= row.f[j][0] == '\0';
                continue;
            }
            double v = strtod(row.f[j], NULL);
            same &= isnan(c[j].num) ? isnan(v) : v == c[j].num;
        }
        csv_free(&row);
        rows++;
    }
    tap_ok(rows == NROWS, "CSV has one record per row (%d)", rows);
    tap_ok(same, "CSV numbers parse back to exactly the numbers given; NaN as NaN; empty as empty");
    tap_ok(texts, "text with commas, quotes, '#' and a line break survives quoting");
    /* Markdown */
    int lines = 0;
    for (const char *q = md; (q = strstr(q, "\n|")); q++)
        lines++;
    tap_ok(lines == NROWS + 2, "Markdown table: header, separator and one line per row (%d lines)", lines);
    tap_ok(strncmp(md, "# Per-layer \\| table\n", 21) == 0, "Markdown title escapes '|'");
    tap_ok(strstr(md, "seed: 7 · version: 0.1.0 · commit: 0123456789abcdef0123") != NULL,
           "Markdown carries the provenance under its title");
    tap_ok(strstr(md, "| 0.333 |") && strstr(md, "| 0.250 |"), "a column of 3 significant digits: 0.333, 0.250");
    tap_ok(strstr(md, "1,000,000") && strstr(md, "125,000,000"), "integer column grouped by thousands");
    tap_ok(strstr(md, "|      NaN |") || strstr(md, " NaN |"), "NaN shown as NaN");
    tap_ok(strstr(md, "2e-9") && strstr(md, "4e-9"), "a column of tiny numbers uses e-notation (2e-9)");
    tap_ok(strstr(md, "#5 line break") != NULL, "line breaks in text become spaces in Markdown");
    tap_ok(temporaries(path_in("sub/dir")) == 0, "no temporary file left beside the outputs");
    free(csv);
    free(md);

    /* a bad table leaves the previous files untouched */
    char *before = slurp(path_in("sub/dir/layers.csv"));
    cols[2].name = "R";
    tap_error(table_write(base, &t) != 0, "layers.csv", "column 'R' is named twice",
              "duplicate column names are refused, naming the file");
    char *after = slurp(path_in("sub/dir/layers.csv"));
    tap_ok(before && after && strcmp(before, after) == 0, "a refused table leaves the existing file as it was");
    free(before);
    free(after);
    cols[2].name = "params";

    /* unwritable targets */
    FILE *f = fopen(path_in("plainfile"), "w");
    fclose(f);
    tap_error(table_write(path_in("plainfile/x"), &t) != 0, "plainfile", NULL,
              "a target under a regular file fails with one message naming it");
    tap_ok(!exists(path_in("plainfile/x.csv")) && temporaries(dir) == 0, "and leaves no file and no temporary");
    mkdir(path_in("isdir.csv"), 0777);
    tap_error(table_write(path_in("isdir"), &t) != 0, "isdir.csv", "rename",
              "a CSV target that is a folder fails at the rename");
    tap_ok(!exists(path_in("isdir.md")) && temporaries(dir) == 0,
           "then the Markdown file is not renamed into place either, and no temporary stays");

    /* checks */
    t.title = "two\nlines";
    tap_error(table_write(base, &t) != 0, "title", "control character", "a title with a line break is refused");
    t.title = NULL;
    prov_kv bad[] = {{"seed value", "1"}};
    t.prov = bad;
    t.nprov = 1;
    tap_error(table_write(base, &t) != 0, "seed value", NULL, "a provenance key with a space is refused");
}

/* ---- figures ---- */

#define NPTS 120

static int count_rgb(const img_rgb *im, int r, int g, int b)
{
    int n = 0;
    for (int i = 0; i < im->width * im->height; i++)
        n += im->px[3 * i] == r && im->px[3 * i + 1] == g && im->px[3 * i + 2] == b;
    return n;
}

static double non_white(const img_rgb *im)
{
    int n = 0;
    for (int i = 0; i < im->width * im->height; i++)
        n += im->px[3 * i] < 250 || im->px[3 * i + 1] < 250 || im->px[3 * i + 2] < 250;
    return (double)n / (im->width * im->height);
}

static int draw_sine(const char *path, double phase, int width, int height)
{
    static double x[NPTS], y[NPTS], lo[NPTS], hi[NPTS];
    for (int i = 0; i < NPTS; i++) {
        x[i] = i / (NPTS - 1.0);
        y[i] = sin(8 * x[i] + phase);
        lo[i] = y[i] - 0.3;
        hi[i] = y[i] + 0.3;
    }
    plot_series s[2];
    plot_series_init(&s[0], PLOT_BAND);
    s[0].n = NPTS, s[0].x = x, s[0].lo = lo, s[0].hi = hi, s[0].label = "band", s[0].color = 0x0072b2;
    plot_series_init(&s[1], PLOT_LINE);
    s[1].n = NPTS, s[1].x = x, s[1].y = y, s[1].label = "sin", s[1].color = 0xd55e00;
    plot_refline v = {1, 0.5, 0x009e73, PLOT_SOLID, "x = 0.5"};
    plot_panel p;
    plot_panel_init(&p);
    p.title = "a sine";
    p.xlabel = "x (s)";
    p.ylabel = "y";
    p.series = s;
    p.nseries = 2;
    p.lines = &v;
    p.nlines = 1;
    p.ylim[0] = -1.5, p.ylim[1] = 1.5;
    p.legend = PLOT_LEGEND_OUTSIDE;
    plot_figure f;
    plot_figure_init(&f);
    f.panels = &p;
    f.npanels = 1;
    f.width = width, f.height = height;
    f.prov = PROV;
    f.nprov = 4;
    return plot_write(path, &f);
}

static void test_plot(void)
{
    char *png = path_in("figs/sine.png");
    tap_ok(draw_sine(png, 0, 0, 0) == 0, "plot_write draws a band, a line and a reference line");
    img_rgb im = {0};
    int decoded = img_load(png, &im) == 0;
    tap_ok(decoded && im.width == PLOT_WIDTH && im.height == PLOT_HEIGHT,
           "the PNG decodes (io's reader) at the default %d x %d", PLOT_WIDTH, PLOT_HEIGHT);
    if (decoded) {
        double ink = non_white(&im);
        tap_ok(ink > 0.05 && ink < 0.6, "not blank: %.1f%% of pixels are not white", 100 * ink);
        tap_ok(count_rgb(&im, 0xd5, 0x5e, 0x00) > 200, "the line's colour is drawn exactly (vermillion)");
        tap_ok(count_rgb(&im, 0x00, 0x9e, 0x73) > 100, "the reference line's colour is drawn exactly (green)");
        tap_ok(im.px[0] == 255 && im.px[1] == 255 && im.px[2] == 255, "the background is white");
    }
    img_free(&im);
    raster_info info;
    tap_ok(raster_inspect(png, &info) == 0 && info.ntext == 4 && strcmp(info.keys[0], "seed") == 0 &&
               strcmp(info.values[0], "7") == 0 && strcmp(info.values[2], "0123456789abcdef0123") == 0,
           "the provenance is in the PNG's text chunks, in order");
    tap_ok(info.colors > 20, "antialiased: %d colours", info.colors);
    raster_info_free(&info);
    tap_ok(temporaries(path_in("figs")) == 0, "no temporary left beside the PNG");

    /* errors: nothing written */
    plot_series s;
    plot_series_init(&s, PLOT_BAND);
    double x[3] = {0, 1, 2}, y[3] = {1, 2, 3};
    s.n = 3, s.x = x, s.y = y;
    plot_panel p;
    plot_panel_init(&p);
    p.series = &s, p.nseries = 1;
    plot_figure f;
    plot_figure_init(&f);
    f.panels = &p, f.npanels = 1;
    tap_error(plot_write(path_in("figs/bad.png"), &f) != 0, "bad.png", "series 1: a band needs x, lo and hi",
              "a band without lo and hi is refused, naming file and series");
    tap_ok(!exists(path_in("figs/bad.png")), "and nothing is written");
    s.kind = PLOT_LINE;
    p.xlog = 1;
    p.xlim[0] = 0, p.xlim[1] = 1;
    tap_error(plot_write(path_in("figs/bad.png"), &f) != 0, "xlim of a log axis must be positive", NULL,
              "log axis limits must be positive");
    p.xlog = 0;
    p.xlim[0] = p.xlim[1] = NAN;
    tap_error(plot_write(path_in("plainfile/x.png"), &f) != 0, "plainfile", NULL,
              "an unwritable figure path fails with one message");
    tap_ok(temporaries(dir) == 0, "and leaves no temporary");

    /* every figure its own PLplot stream, released afterwards */
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= draw_sine(path_in("figs/again.png"), i, 320, 240) == 0;
    PLINT cur, next;
    plgstrm(&cur);
    plmkstrm(&next);
    plend1();
    tap_ok(ok && cur == 0 && next == 1, "repeated figures leave no PLplot stream behind (current %d, next free %d)",
           (int)cur, (int)next);
}

typedef struct job {
    int id, rc;
} job;

static void *draw_job(void *arg)
{
    job *j = arg;
    char name[64];
    j->rc = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "figs/thread%d_%d.png", j->id, i);
        j->rc |= draw_sine(path_in(name), j->id + i, 320, 240);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[2];
    job jobs[2] = {{0, -1}, {1, -1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, draw_job, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    int ok = jobs[0].rc == 0 && jobs[1].rc == 0;
    for (int t = 0; t < 2 && ok; t++)
        for (int i = 0; i < 3 && ok; i++) {
            char name[64];
            snprintf(name, sizeof name, "figs/thread%d_%d.png", t, i);
            img_rgb im = {0};
            ok = img_load(path_in(name), &im) == 0 && non_white(&im) > 0.05;
            img_free(&im);
        }
    tap_ok(ok, "figures drawn from two threads at once are all complete");
}

/* ---- animations and montages ---- */

/* A synthetic frame: white, a gradient stripe (more than 256 colours) and a solid square that
 * moves. */
static void make_frame(raster *r, int w, int h, int k)
{
    r->width = w, r->height = h;
    r->rgb = malloc((size_t)w * h * 3);
    memset(r->rgb, 255, (size_t)w * h * 3);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = r->rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1)), p[1] = (uint8_t)(y * 12), p[2] = (uint8_t)(255 - x);
        }
    for (int y = 40; y < 60; y++)
        for (int x = 10 + 15 * k; x < 30 + 15 * k; x++) {
            uint8_t *p = r->rgb + ((size_t)y * w + x) * 3;
            p[0] = 0x00, p[1] = 0x72, p[2] = 0xb2;
        }
}

static void test_gif(void)
{
    const int W = 200, H = 80, N = 4;
    char names[4][64];
    const char *frames[4];
    raster src[4];
    for (int k = 0; k < N; k++) {
        make_frame(&src[k], W, H, k);
        snprintf(names[k], sizeof names[k], "%s", path_in(k == 0 ? "f0.png" : k == 1 ? "f1.png" : k == 2 ? "f2.png" : "f3.png"));
        raster_write_png(names[k], &src[k], NULL, 0);
        frames[k] = names[k];
    }
    anim_spec a = {frames, N, 0.25, 1.0, 0, PROV, 4};
    char *gif = path_in("anim/a.gif");
    tap_ok(anim_write_gif(gif, &a) == 0, "anim_write_gif writes 4 frames");
    int error;
    GifFileType *g = DGifOpenFileName(gif, &error);
    int slurped = g && DGifSlurp(g) == GIF_OK;
    tap_ok(slurped && g->ImageCount == N && g->SWidth == W && g->SHeight == H, "giflib reads %d frames of %d x %d", N,
           W, H);
    if (slurped) {
        GraphicsControlBlock gcb0, gcb3;
        DGifSavedExtensionToGCB(g, 0, &gcb0);
        DGifSavedExtensionToGCB(g, N - 1, &gcb3);
        tap_ok(gcb0.DelayTime == 25 && gcb3.DelayTime == 100, "frame delay 0.25 s, the last frame 1 s (%d, %d cs)",
               gcb0.DelayTime, gcb3.DelayTime);
        tap_ok(g->SColorMap && g->SColorMap->ColorCount <= 256, "one global palette of %d colours",
               g->SColorMap ? g->SColorMap->ColorCount : 0);
        tap_ok(g->SavedImages[1].ImageDesc.Width < W, "later frames store only what changed (%d of %d columns)",
               g->SavedImages[1].ImageDesc.Width, W);
        /* composite every frame and compare with its PNG */
        uint8_t *canvas = calloc((size_t)W * H * 3, 1);
        double worst_mean = 0;
        int square_exact = 1;
        for (int k = 0; k < N; k++) {
            SavedImage *s = &g->SavedImages[k];
            ColorMapObject *m = s->ImageDesc.ColorMap ? s->ImageDesc.ColorMap : g->SColorMap;
            for (int y = 0; y < s->ImageDesc.Height; y++)
                for (int x = 0; x < s->ImageDesc.Width; x++) {
                    GifColorType c = m->Colors[s->RasterBits[y * s->ImageDesc.Width + x]];
                    uint8_t *o = canvas + ((size_t)(y + s->ImageDesc.Top) * W + x + s->ImageDesc.Left) * 3;
                    o[0] = c.Red, o[1] = c.Green, o[2] = c.Blue;
                }
            double err = 0;
            for (int i = 0; i < W * H * 3; i++)
                err += abs(canvas[i] - src[k].rgb[i]);
            err /= W * H * 3;
            worst_mean = fmax(worst_mean, err);
            const uint8_t *sq = canvas + ((size_t)50 * W + 20 + 15 * k) * 3;
            square_exact &= sq[0] == 0x00 && sq[1] == 0x72 && sq[2] == 0xb2 && canvas[(size_t)70 * W * 3] == 255;
        }
        tap_ok(worst_mean < 1.5, "decoded frames match their PNGs (worst mean error %.2f levels)", worst_mean);
        tap_ok(square_exact, "solid colours and the white background come out exact in every frame");
        free(canvas);
        int loops = -1, comment = 0;
        for (int i = 0; i < g->SavedImages[0].ExtensionBlockCount; i++) {
            ExtensionBlock *b = &g->SavedImages[0].ExtensionBlocks[i];
            if (b->Function == APPLICATION_EXT_FUNC_CODE && b->ByteCount == 11 && !memcmp(b->Bytes, "NETSCAPE2.0", 11))
                loops = b[1].Bytes[1] | b[1].Bytes[2] << 8;
            if (b->Function == COMMENT_EXT_FUNC_CODE)
                comment |= memmem(b->Bytes, (size_t)b->ByteCount, "seed: 7\n", 8) != NULL;
        }
        tap_ok(loops == 0, "loops forever (NETSCAPE2.0 count 0)");
        tap_ok(comment, "provenance in a comment extension");
    }
    if (g)
        DGifCloseFile(g, &error);
    raster_info info;
    tap_ok(raster_inspect(gif, &info) == 0 && info.frames == N && fabs(info.delay - 0.25) < 1e-9 && info.loops == 0 &&
               info.ntext == 4 && info.ink > 0.1,
           "raster_inspect reads the GIF back: frames, delay, loop, provenance, ink");
    raster_info_free(&info);

    /* a frame of another size is refused, naming it */
    raster odd;
    make_frame(&odd, W + 2, H, 0);
    raster_write_png(path_in("odd.png"), &odd, NULL, 0);
    free(odd.rgb);
    const char *bad[3] = {frames[0], frames[1], path_in("odd.png")};
    anim_spec b = {bad, 3, 0.25, 0, 0, NULL, 0};
    tap_error(anim_write_gif(path_in("anim/bad.gif"), &b) != 0, "frame 3", "202 x 80",
              "a frame of another size is refused, naming it");
    tap_ok(!exists(path_in("anim/bad.gif")) && temporaries(path_in("anim")) == 0, "and no GIF or temporary is left");
    b.nframes = 2;
    b.delay = 0.001;
    tap_error(anim_write_gif(path_in("anim/bad.gif"), &b) != 0, "delay", NULL, "a delay under 0.02 s is refused");

    /* montage */
    tap_ok(raster_montage(path_in("grid.png"), frames, 3, 2, PROV, 4) == 0, "raster_montage tiles 3 frames in 2 columns");
    img_rgb im = {0};
    tap_ok(img_load(path_in("grid.png"), &im) == 0 && im.width == 2 * W && im.height == 2 * H &&
               im.px[((size_t)(H + 50) * im.width + 45) * 3 + 2] == 0xb2,
           "the montage is 2 x 2 cells with the third frame at the lower left");
    img_free(&im);
    for (int k = 0; k < N; k++)
        free(src[k].rgb);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_report.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_exact_numbers();
    test_tables();
    test_plot();
    test_threads();
    test_gif();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    return tap_done();
}
