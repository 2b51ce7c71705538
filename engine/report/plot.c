/* Everything is laid out and drawn in page pixels (y upwards): PLplot's window is set to the pixel
 * rectangle of the viewport, so the data are mapped to pixels here (log axes included), and PLplot
 * only rasterizes lines, fills and text through cairo. Text sizes are cap heights in pixels. */
#include "report/plot.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <plplot.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "report/raster.h"

/* ---- the look ---- */

#define CAP_TICK 11.0   /* tick labels */
#define CAP_LABEL 12.0  /* axis labels */
#define CAP_TITLE 12.5  /* panel titles, bold */
#define CAP_FIGTITLE 14.0
#define CAP_LEGEND 10.5
#define CAP_NOTE 10.5
#define CAP_FOOTER 7.5
#define FIGTITLE_H 36.0 /* band of the figure's title */
#define FOOTER_H 24.0   /* band of the provenance line */
#define TICK_LEN 5.0
#define LINE_WIDTH 2.25
#define GRID_RGB 0xdedede
#define MINOR_GRID_RGB 0xf0f0f0
#define FRAME_RGB 0x404040
#define TEXT_RGB 0x1a1a1a
#define FOOTER_RGB 0x808080
#define REFLINE_RGB 0x555555
#define BAND_ALPHA 0.22
#define HIST_ALPHA 0.35
#define MAX_TICKS 40
#define MAX_SERIES 100
#define MAX_PANELS 64
#define MAX_POINTS 10000000
#define GRID_CELL 4 /* occupancy cells for legend placement, in pixels */

/* Okabe & Ito's palette for colour-blind readers, in the order series take it (yellow last: it is
 * faint on white). */
const char *const plot_color_names[] = {"blue", "vermillion", "green", "orange", "purple", "sky",
                                        "black", "yellow", "grey", "red", NULL};
const int32_t plot_colors[] = {0x0072b2, 0xd55e00, 0x009e73, 0xe69f00, 0xcc79a7, 0x56b4e9,
                               0x000000, 0xf0e442, 0x7f7f7f, 0xd55e00};
#define PALETTE_CYCLE 8 /* grey and red (vermillion again) are names, not in the cycle */

int plot_parse_color(const char *s, int32_t *rgb)
{
    if (s[0] == '#') {
        int32_t v = 0;
        if (strlen(s) != 7)
            return err_set("colour '%s' is not #rrggbb", s);
        for (int i = 1; i < 7; i++) {
            char c = s[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return err_set("colour '%s' is not #rrggbb", s);
            v = v * 16 + d;
        }
        *rgb = v;
        return 0;
    }
    for (int i = 0; plot_color_names[i]; i++)
        if (strcmp(s, plot_color_names[i]) == 0) {
            *rgb = plot_colors[i];
            return 0;
        }
    return err_set("unknown colour '%s' (known: blue, vermillion, green, orange, purple, sky, black, "
                   "yellow, grey, red, or #rrggbb)", s);
}

void plot_series_init(plot_series *s, plot_kind kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->color = PLOT_AUTO_COLOR;
}

void plot_panel_init(plot_panel *p)
{
    memset(p, 0, sizeof *p);
    p->xlim[0] = p->xlim[1] = p->ylim[0] = p->ylim[1] = NAN;
}

void plot_figure_init(plot_figure *f)
{
    memset(f, 0, sizeof *f);
    f->footer = 1;
}

/* ---- text ---- */

/* DejaVu Sans advance widths (units of 1/2048 em) of ASCII 32..126, for layout; cap height 1493. */
static const short glyph_width[95] = {
    651,  821,  942,  1716, 1303, 1946, 1597, 563,  799,  799,  1024, 1716, 651,  739,  651,  690,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690,  690,  1716, 1716, 1716, 1087,
    2048, 1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 604,  604,  1343, 1141, 1767, 1532, 1612,
    1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799,  690,  799,  1716, 1024,
    1024, 1255, 1300, 1126, 1300, 1260, 721,  1300, 1298, 569,  569,  1186, 569,  1995, 1298, 1253,
    1300, 1300, 842,  1067, 803,  1298, 1212, 1675, 1212, 1212, 1075, 1303, 690,  1303, 1716};

/* Width in pixels of UTF-8 text at a cap height, a little generous. */
static double text_width(const char *s, double cap, int bold)
{
    double units = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp = *p;
        int len = cp < 0x80 ? 1 : cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;
        if (len > 1) {
            cp &= 0x3f >> (len - 1);
            for (int k = 1; k < len && (p[k] & 0xc0) == 0x80; k++)
                cp = cp << 6 | (p[k] & 0x3f);
        }
        for (int k = 0; k < len && *p; k++)
            p++;
        if (cp >= 32 && cp < 127)
            units += glyph_width[cp - 32];
        else if (cp >= 0x300 && cp < 0x370)
            units += 0; /* combining marks */
        else if ((cp >= 0x2070 && cp < 0x20a0) || cp == 0xb2 || cp == 0xb3 || cp == 0xb9)
            units += 820; /* super- and subscripts */
        else
            units += 1300;
    }
    return units / 1493.0 * cap * (bold ? 1.12 : 1.0) * 1.03;
}

/* Shortens text to fit maxw pixels, ending it with an ellipsis when cut. */
static void fit_text(char *buf, size_t size, double cap, double maxw)
{
    size_t len = strlen(buf);
    if (text_width(buf, cap, 0) <= maxw || size < 4)
        return;
    while (len > 0) {
        do /* drop one code point */
            len--;
        while (len > 0 && ((unsigned char)buf[len] & 0xc0) == 0x80);
        if (len + 4 > size)
            continue;
        memcpy(buf + len, "…", 4); /* three bytes and the terminator */
        if (text_width(buf, cap, 0) <= maxw)
            return;
    }
}

/* Copies at most size - 1 bytes of src, not cutting a UTF-8 sequence. */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* PLplot reads '#' as the start of an escape sequence: double it so that text shows as written. */
static char *escape_text(const char *s)
{
    size_t n = strlen(s), hashes = 0;
    for (size_t i = 0; i < n; i++)
        hashes += s[i] == '#';
    char *out = malloc(n + hashes + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i <= n; i++) {
        if (s[i] == '#')
            *o++ = '#';
        *o++ = s[i];
    }
    return out;
}

/* ---- drawing state (one figure at a time, under plot_lock) ---- */

static pthread_mutex_t plot_lock = PTHREAD_MUTEX_INITIALIZER;
static char plot_abort_msg[256];

static void on_plplot_abort(const char *msg)
{
    if (!plot_abort_msg[0])
        snprintf(plot_abort_msg, sizeof plot_abort_msg, "%s", msg);
}

typedef struct canvas {
    int W, H;
} canvas;

/* Whether PLplot knows the memcairo device (plplot-driver-cairo): asking plinit for a device it
 * does not know would make PLplot exit the process. */
static int have_memcairo(void)
{
    static int known = -1;
    if (known < 0) {
        enum { MAX_DEVS = 128 };
        const char *menu[MAX_DEVS], *names[MAX_DEVS];
        const char **menu_p = menu, **names_p = names; /* PLplot fills the caller's arrays */
        int n = MAX_DEVS;
        plgDevs(&menu_p, &names_p, &n);
        known = 0;
        for (int i = 0; i < n && i < MAX_DEVS; i++)
            if (names[i] && strcmp(names[i], "memcairo") == 0)
                known = 1;
    }
    return known;
}

static void set_color(int32_t rgb, double alpha)
{
    plscol0a(15, (rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff, alpha);
    plcol0(15);
}

static void set_style(plot_style style, double width)
{
    PLINT mark, space;
    if (style == PLOT_DASHED) {
        mark = (PLINT)(353 * (5 + 2 * width)); /* micrometres: a pixel is 352.8 at 72 dpi */
        space = (PLINT)(353 * (3 + width));
        plstyl(1, &mark, &space);
    } else if (style == PLOT_DOTTED) {
        mark = (PLINT)(353 * 1.2 * width);
        space = (PLINT)(353 * (1.5 + 1.2 * width));
        plstyl(1, &mark, &space);
    } else {
        plstyl(0, NULL, NULL);
    }
    plwidth(width);
}

/* The whole page as the window, in pixels: for decorations outside the plot areas. */
static void page_window(const canvas *c)
{
    plvpor(0, 1, 0, 1);
    plwind(0, c->W, 0, c->H);
}

/* A rectangle of the page as viewport and window: drawing is clipped to it. */
static void clip_window(const canvas *c, double x0, double y0, double x1, double y1)
{
    plvpor(x0 / c->W, x1 / c->W, y0 / c->H, y1 / c->H);
    plwind(x0, x1, y0, y1);
}

/* Text centred vertically on y (the middle of capital letters); just 0 left, 0.5 centre, 1 right. */
static void draw_text(double x, double y, int vertical, double just, double cap, int bold, int32_t rgb,
                      const char *s)
{
    char *e = escape_text(s);
    if (!e)
        return;
    plsfont(PL_FCI_SANS, PL_FCI_UPRIGHT, bold ? PL_FCI_BOLD : PL_FCI_MEDIUM);
    plschr(cap / 2.8346, 1.0);
    set_color(rgb, 1.0);
    if (vertical)
        plptex(x, y, 0, 1, just, e);
    else
        plptex(x, y, 1, 0, just, e);
    free(e);
}

static void draw_line2(double x0, double y0, double x1, double y1)
{
    PLFLT xs[2] = {x0, x1}, ys[2] = {y0, y1};
    plline(2, xs, ys);
}

static void fill_rect(double x0, double y0, double x1, double y1)
{
    PLFLT xs[4] = {x0, x1, x1, x0}, ys[4] = {y0, y0, y1, y1};
    plfill(4, xs, ys);
}

static void stroke_rect(double x0, double y0, double x1, double y1)
{
    PLFLT xs[5] = {x0, x1, x1, x0, x0}, ys[5] = {y0, y0, y1, y1, y0};
    plline(5, xs, ys);
}

static int marker_shape(plot_marker m, double cx, double cy, double r, PLFLT *xs, PLFLT *ys)
{
    switch (m) {
    case PLOT_MARKER_SQUARE: {
        double h = r * 0.86;
        xs[0] = cx - h, ys[0] = cy - h, xs[1] = cx + h, ys[1] = cy - h;
        xs[2] = cx + h, ys[2] = cy + h, xs[3] = cx - h, ys[3] = cy + h;
        return 4;
    }
    case PLOT_MARKER_TRIANGLE: {
        double R = r * 1.25;
        for (int k = 0; k < 3; k++) {
            double a = M_PI / 2 + k * 2 * M_PI / 3;
            xs[k] = cx + R * cos(a), ys[k] = cy + R * sin(a) - R * 0.2;
        }
        return 3;
    }
    case PLOT_MARKER_DIAMOND: {
        double R = r * 1.22;
        xs[0] = cx, ys[0] = cy - R, xs[1] = cx + R * 0.8, ys[1] = cy;
        xs[2] = cx, ys[2] = cy + R, xs[3] = cx - R * 0.8, ys[3] = cy;
        return 4;
    }
    default:
        for (int k = 0; k < 20; k++) {
            double a = k * 2 * M_PI / 20;
            xs[k] = cx + r * cos(a), ys[k] = cy + r * sin(a);
        }
        return 20;
    }
}

static void draw_marker(plot_marker m, double cx, double cy, double r, int32_t rgb, int edge)
{
    PLFLT xs[21], ys[21];
    int n = marker_shape(m, cx, cy, r, xs, ys);
    set_color(rgb, 1.0);
    plfill(n, xs, ys);
    if (edge) {
        xs[n] = xs[0], ys[n] = ys[0];
        set_color(0xffffff, 0.9);
        set_style(PLOT_SOLID, 0.8);
        plline(n + 1, xs, ys);
    }
}

/* ---- numbers to draw, prepared from the series ---- */

typedef struct prep {
    const plot_series *s;
    int32_t color;
    plot_marker marker;
    double width;
    /* curves (line, step, density, the points of qq), in data units */
    int n;
    double *x, *y;
    /* hist */
    int nb;
    double *edges, *heights;
    /* qq reference line */
    int has_qqline;
    double qx[2], qy[2];
} prep;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of sorted values with linear interpolation (Hyndman and Fan's type 7). */
static double quantile(const double *v, int n, double p)
{
    double h = (n - 1) * p;
    int i = (int)floor(h);
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (h - i) * (v[i + 1] - v[i]);
}

static int prepare(prep *p, const plot_series *s)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->width = s->width > 0 ? s->width : LINE_WIDTH;
    if (s->kind != PLOT_HIST && s->kind != PLOT_DENSITY && s->kind != PLOT_QQ)
        return 0;
    int n = s->n;
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!v)
        return err_set("out of memory");
    if (n > 0)
        memcpy(v, s->values, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    if (n > 0 && !isfinite(v[n - 1] - v[0])) {
        free(v);
        return err_set("the values span more than a double can hold");
    }
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += v[i] / n;
    for (int i = 0; i < n; i++)
        var += (v[i] - mean) * (v[i] - mean) / (n > 1 ? n - 1 : 1);
    double sd = sqrt(var), iqr = n > 0 ? quantile(v, n, 0.75) - quantile(v, n, 0.25) : 0;
    if (s->kind == PLOT_HIST) {
        double lo = n ? v[0] : 0, hi = n ? v[n - 1] : 1;
        int nb = s->bins;
        if (nb <= 0) {
            double h = 2 * iqr / cbrt(n > 0 ? n : 1); /* Freedman and Diaconis */
            double want = h > 0 ? ceil((hi - lo) / h) : ceil(log2(n > 0 ? n : 1)) + 1;
            nb = want < 5 ? 5 : want > 50 ? 50 : (int)want;
        }
        if (hi <= lo) {
            double d = lo != 0 ? fabs(lo) * 0.05 : 0.5;
            lo -= d, hi += d;
        }
        p->nb = nb;
        p->edges = malloc(sizeof(double) * (size_t)(nb + 1));
        p->heights = calloc((size_t)nb, sizeof(double));
        if (!p->edges || !p->heights) {
            free(v);
            return err_set("out of memory");
        }
        for (int b = 0; b <= nb; b++)
            p->edges[b] = lo + (hi - lo) * b / nb;
        for (int i = 0; i < n; i++) {
            int b = (int)((v[i] - lo) / (hi - lo) * nb);
            p->heights[b < 0 ? 0 : b >= nb ? nb - 1 : b] += 1;
        }
        if (s->normalize && n > 0)
            for (int b = 0; b < nb; b++)
                p->heights[b] /= n * (hi - lo) / nb;
    } else if (s->kind == PLOT_DENSITY) {
        double h = s->bandwidth;
        if (h <= 0) { /* Silverman's rule of thumb */
            double spread = iqr > 0 && iqr / 1.349 < sd ? iqr / 1.349 : sd;
            h = 0.9 * spread * pow(n > 0 ? n : 1, -0.2);
            if (!(h > 0))
                h = fabs(mean) > 0 ? fabs(mean) * 0.01 : 0.01;
        }
        const int m = 256;
        p->n = n > 0 ? m : 0;
        p->x = malloc(sizeof(double) * m);
        p->y = malloc(sizeof(double) * m);
        if (!p->x || !p->y) {
            free(v);
            return err_set("out of memory");
        }
        double lo = n ? v[0] - 3 * h : 0, hi = n ? v[n - 1] + 3 * h : 1;
        for (int k = 0; k < p->n; k++) {
            double t = lo + (hi - lo) * k / (m - 1), d = 0;
            for (int i = 0; i < n; i++) {
                double z = (t - v[i]) / h;
                if (fabs(z) < 8)
                    d += exp(-0.5 * z * z);
            }
            p->x[k] = t;
            p->y[k] = d / (n * h * sqrt(2 * M_PI));
        }
    } else { /* Q-Q against the standard normal, with R's plotting positions (ppoints) */
        p->n = n;
        p->x = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        p->y = v;
        v = NULL;
        if (!p->x)
            return err_set("out of memory");
        double a = n <= 10 ? 3.0 / 8 : 0.5;
        for (int i = 0; i < n; i++)
            p->x[i] = gsl_cdf_ugaussian_Pinv((i + 1 - a) / (n + 1 - 2 * a));
        if (n >= 2 && iqr > 0) {
            double z1 = gsl_cdf_ugaussian_Pinv(0.25), z3 = gsl_cdf_ugaussian_Pinv(0.75);
            double q1 = quantile(p->y, n, 0.25), q3 = quantile(p->y, n, 0.75);
            double slope = (q3 - q1) / (z3 - z1);
            p->has_qqline = 1;
            p->qx[0] = p->x[0], p->qx[1] = p->x[n - 1];
            p->qy[0] = q1 + slope * (p->qx[0] - z1), p->qy[1] = q1 + slope * (p->qx[1] - z1);
        }
    }
    free(v);
    return 0;
}

static void prep_free(prep *p)
{
    if (p->s && p->s->kind == PLOT_QQ)
        free(p->y);
    else if (p->s && p->s->kind == PLOT_DENSITY)
        free(p->y);
    free(p->x);
    free(p->edges);
    free(p->heights);
}

/* The x and y arrays that a series draws as a curve or points. */
static void curve_of(const prep *p, const double **x, const double **y, int *n)
{
    if (p->x) {
        *x = p->x, *y = p->y, *n = p->n;
    } else {
        *x = p->s->x, *y = p->s->y, *n = p->s->n;
    }
}

/* ---- axes ---- */

typedef struct axis {
    int log;
    double lo, hi; /* in axis units: log10 of the data on a log axis */
    int nticks, nminor;
    double ticks[MAX_TICKS], minor[MAX_TICKS * 9];
    char labels[MAX_TICKS][40];
    double label_width; /* widest tick label, pixels */
} axis;

/* Axis units of a data value: NaN when it cannot be shown (not finite, or <= 0 on a log axis). */
static double tr(const axis *a, double v)
{
    if (!isfinite(v))
        return NAN;
    if (a->log)
        return v > 0 ? log10(v) : NAN;
    return v;
}

static const char *const superscript[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};

static void append_power(char *buf, size_t size, int e)
{
    char digits[16];
    snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
    strncat(buf, "10", size - strlen(buf) - 1);
    if (e < 0)
        strncat(buf, "⁻", size - strlen(buf) - 1);
    for (char *d = digits; *d; d++)
        strncat(buf, superscript[*d - '0'], size - strlen(buf) - 1);
}

/* A tick label: plain decimals, or m×10ⁿ with one n for the whole axis (sci set) when the axis is
 * very large or very small; a real minus sign. */
static void tick_label(double v, int decimals, int sci, int e, char *buf, size_t size)
{
    buf[0] = '\0';
    if (v == 0) {
        snprintf(buf, size, "0");
        return;
    }
    if (v < 0)
        snprintf(buf, size, "−");
    char num[48];
    snprintf(num, sizeof num, "%.*f", decimals, sci ? fabs(v) / pow(10, e) : fabs(v));
    if (!sci || strcmp(num, "1") != 0) {
        strncat(buf, num, size - strlen(buf) - 1);
        if (sci)
            strncat(buf, "×", size - strlen(buf) - 1);
    }
    if (sci)
        append_power(buf, size, e);
}

/* Decimals needed to write multiples of step exactly (up to 10). */
static int decimals_of(double step)
{
    for (int d = 0; d < 10; d++) {
        double s = step * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * s)
            return d;
    }
    return 10;
}

static double nice_step(double span, int target)
{
    double raw = span / (target > 1 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    static const double mult[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (mult[i] * mag >= raw * 0.999)
            return mult[i] * mag;
    return 10 * mag;
}

/* Linear ticks over [lo, hi] in data units, at about one per spacing pixels of length. */
static void linear_ticks(axis *a, double lo, double hi, double length, double spacing, int as_log)
{
    int target = (int)(length / spacing);
    if (target < 2)
        target = 2;
    if (target > 10)
        target = 10;
    double step = nice_step(hi - lo, target);
    double maxabs = fmax(fabs(lo), fabs(hi));
    int sci = maxabs >= 1e5 || maxabs < 1e-3;
    int e = sci ? (int)floor(log10(maxabs)) : 0;
    int decimals = decimals_of(sci ? step / pow(10, e) : step);
    if (sci && decimals > 3)
        decimals = 3;
    a->nticks = 0;
    double first = ceil(lo / step - 1e-9);
    for (int k = 0; k < MAX_TICKS && a->nticks < MAX_TICKS; k++) {
        double t = (first + k) * step;
        if (!(t <= hi + step * 1e-9))
            break;
        double v = fabs(t) < step * 1e-9 ? 0 : t;
        a->ticks[a->nticks] = as_log ? log10(v) : v;
        if (as_log && !(v > 0))
            continue;
        tick_label(v, decimals, sci, e, a->labels[a->nticks], sizeof a->labels[0]);
        a->nticks++;
    }
    a->nminor = 0;
}

/* Ticks of an axis whose range [a->lo, a->hi] is set; length in pixels, spacing the pixels wanted
 * between ticks. */
static void make_ticks(axis *a, double length, double spacing)
{
    if (!a->log || a->hi - a->lo < 1) {
        if (a->log)
            linear_ticks(a, pow(10, a->lo), pow(10, a->hi), length, spacing, 1);
        else
            linear_ticks(a, a->lo, a->hi, length, spacing, 0);
    } else if (a->hi - a->lo < 2.5) { /* a decade or two: ticks at 1, 2 and 5 times powers of ten */
        a->nticks = a->nminor = 0;
        for (int e = (int)floor(a->lo) - 1; e <= (int)ceil(a->hi); e++)
            for (int m = 1; m <= 9; m++) {
                double t = e + log10(m);
                if (t < a->lo - 1e-9 || t > a->hi + 1e-9)
                    continue;
                if ((m == 1 || m == 2 || m == 5) && a->nticks < MAX_TICKS) {
                    double v = m * pow(10, e);
                    a->ticks[a->nticks] = t;
                    snprintf(a->labels[a->nticks], sizeof a->labels[0], "%.*f", e < 0 ? -e : 0, v);
                    a->nticks++;
                } else if (a->nminor < MAX_TICKS * 9) {
                    a->minor[a->nminor++] = t;
                }
            }
    } else {
        int first = (int)ceil(a->lo - 1e-9), last = (int)floor(a->hi + 1e-9);
        int fit = (int)(length / (spacing * 0.8));
        int every = 1;
        while ((last - first) / every + 1 > (fit > 2 ? fit : 2))
            every++;
        a->nticks = 0;
        for (int e = first; e <= last && a->nticks < MAX_TICKS; e++) {
            if (((e % every) + every) % every != 0)
                continue;
            a->ticks[a->nticks] = e;
            char *lab = a->labels[a->nticks];
            lab[0] = '\0';
            if (e >= -3 && e <= 4)
                snprintf(lab, sizeof a->labels[0], "%.*f", e < 0 ? -e : 0, pow(10, e));
            else
                append_power(lab, sizeof a->labels[0], e);
            a->nticks++;
        }
        a->nminor = 0;
        if (every == 1)
            for (int e = first - 1; e <= last; e++)
                for (int m = 2; m <= 9 && a->nminor < MAX_TICKS * 9; m++) {
                    double t = e + log10(m);
                    if (t > a->lo && t < a->hi)
                        a->minor[a->nminor++] = t;
                }
    }
    a->label_width = 0;
    for (int i = 0; i < a->nticks; i++) {
        double w = text_width(a->labels[i], CAP_TICK, 0);
        if (w > a->label_width)
            a->label_width = w;
    }
}

/* ---- panels ---- */

typedef struct entry {
    char label[256]; /* cut to fit the panel */
    int32_t color;
    int line, fill, outline; /* what the sample shows */
    plot_style style;
    double width, alpha;
    plot_marker marker;
} entry;

typedef struct layout {
    const plot_panel *p;
    prep *preps;
    axis ax, ay;
    double cx0, cy0, cx1, cy1; /* the cell of the panel */
    double x0, y0, x1, y1;     /* the plot area */
    int nentries;
    entry *entries;
    double lw, lh;             /* legend box size */
    double lx, ly;             /* legend box lower-left corner */
    int legend_shown, legend_out;
    double *note_x, *note_y; /* where each annotation's text goes (its left end, its middle) */
} layout;

static double px(const layout *l, double v) /* data → page x */
{
    return l->x0 + (tr(&l->ax, v) - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
}

static double py(const layout *l, double v)
{
    return l->y0 + (tr(&l->ay, v) - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
}

typedef struct extent {
    double lo, hi;
} extent;

static void grow(extent *e, double v)
{
    if (isnan(v))
        return;
    if (v < e->lo)
        e->lo = v;
    if (v > e->hi)
        e->hi = v;
}

static int continuous(plot_kind k)
{
    return k == PLOT_LINE || k == PLOT_STEP || k == PLOT_BAND || k == PLOT_DENSITY || k == PLOT_HIST;
}

/* Sets the axis ranges from the limits given or from everything the panel draws. */
static void set_ranges(layout *l)
{
    const plot_panel *p = l->p;
    l->ax.log = p->xlog;
    l->ay.log = p->ylog;
    extent ex = {INFINITY, -INFINITY}, ey = {INFINITY, -INFINITY};
    int pad_x = 0, hist_only_y = 1;
    int xfixed = !isnan(p->xlim[0]);
    double xlo = xfixed ? tr(&l->ax, p->xlim[0]) : 0, xhi = xfixed ? tr(&l->ax, p->xlim[1]) : 0;
#define IN_X(xv) (!xfixed || (tr(&l->ax, xv) >= xlo && tr(&l->ax, xv) <= xhi))
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        if (!continuous(s->kind) || q->marker != PLOT_MARKER_NONE)
            pad_x = 1;
        if (s->kind != PLOT_HIST)
            hist_only_y = 0;
        if (s->kind == PLOT_HIST) {
            for (int b = 0; b <= q->nb; b++)
                grow(&ex, tr(&l->ax, q->edges[b]));
            for (int b = 0; b < q->nb; b++)
                if (IN_X(q->edges[b]) || IN_X(q->edges[b + 1]))
                    grow(&ey, tr(&l->ay, q->heights[b]));
            if (!p->ylog)
                grow(&ey, 0);
        } else if (s->kind == PLOT_BAND) {
            for (int i = 0; i < s->n; i++) {
                grow(&ex, tr(&l->ax, s->x[i]));
                if (IN_X(s->x[i]))
                    grow(&ey, tr(&l->ay, s->lo[i])), grow(&ey, tr(&l->ay, s->hi[i]));
            }
        } else {
            const double *x, *y;
            int n;
            curve_of(q, &x, &y, &n);
            for (int i = 0; i < n; i++) {
                grow(&ex, tr(&l->ax, x[i]));
                if (IN_X(x[i])) {
                    grow(&ey, tr(&l->ay, y[i]));
                    if (s->lo && s->hi)
                        grow(&ey, tr(&l->ay, s->lo[i])), grow(&ey, tr(&l->ay, s->hi[i]));
                }
            }
            if (q->has_qqline)
                for (int i = 0; i < 2; i++)
                    grow(&ey, tr(&l->ay, q->qy[i]));
        }
    }
    for (int k = 0; k < p->nlines; k++)
        grow(p->lines[k].vertical ? &ex : &ey, tr(p->lines[k].vertical ? &l->ax : &l->ay, p->lines[k].at));
    for (int k = 0; k < p->nnotes; k++) {
        grow(&ex, tr(&l->ax, p->notes[k].x));
        if (IN_X(p->notes[k].x))
            grow(&ey, tr(&l->ay, p->notes[k].y));
        pad_x = 1;
    }
#undef IN_X
    axis *axes[2] = {&l->ax, &l->ay};
    extent *ext[2] = {&ex, &ey};
    const double *lims[2] = {p->xlim, p->ylim};
    for (int d = 0; d < 2; d++) {
        axis *a = axes[d];
        extent *e = ext[d];
        if (!isnan(lims[d][0])) {
            a->lo = tr(a, lims[d][0]);
            a->hi = tr(a, lims[d][1]);
            continue;
        }
        if (!(e->lo <= e->hi)) { /* nothing drawn */
            e->lo = 0;
            e->hi = 1;
        }
        if (e->hi - e->lo < 1e-12 * fmax(1, fabs(e->lo))) {
            double d0 = a->log ? 0.5 : (e->lo != 0 ? fabs(e->lo) * 0.1 : 0.5);
            e->lo -= d0, e->hi += d0;
        }
        double span = e->hi - e->lo;
        double pad = d == 0 ? (pad_x ? 0.04 : 0) : 0.05;
        a->lo = e->lo - pad * span;
        a->hi = e->hi + pad * span;
        if (d == 1 && hist_only_y && !a->log && e->lo == 0)
            a->lo = 0; /* bars stand on the axis */
    }
}

static void legend_entries(layout *l)
{
    const plot_panel *p = l->p;
    l->nentries = 0;
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        if (!s->label || !*s->label)
            continue;
        entry *e = &l->entries[l->nentries++];
        memset(e, 0, sizeof *e);
        copy_text(e->label, sizeof e->label, s->label);
        e->color = q->color;
        e->style = s->style;
        e->width = q->width;
        e->marker = q->marker;
        switch (s->kind) {
        case PLOT_BAND:
            e->fill = 1, e->alpha = BAND_ALPHA * 1.4;
            break;
        case PLOT_HIST:
            e->fill = 1, e->outline = 1, e->alpha = HIST_ALPHA;
            break;
        case PLOT_SCATTER:
        case PLOT_QQ:
            e->line = s->kind == PLOT_SCATTER && s->lo != NULL;
            e->width = 1.5;
            break;
        default:
            e->line = 1;
        }
    }
    for (int k = 0; k < p->nlines; k++) {
        const plot_refline *r = &p->lines[k];
        if (!r->label || !*r->label)
            continue;
        entry *e = &l->entries[l->nentries++];
        memset(e, 0, sizeof *e);
        copy_text(e->label, sizeof e->label, r->label);
        e->color = r->color == PLOT_AUTO_COLOR ? REFLINE_RGB : r->color;
        e->line = 1;
        e->style = r->style;
        e->width = 1.6;
        e->marker = PLOT_MARKER_NONE;
    }
    double tw = 0, maxw = 0.8 * (l->cx1 - l->cx0) - 56; /* the legend never outgrows the panel */
    for (int i = 0; i < l->nentries; i++) {
        fit_text(l->entries[i].label, sizeof l->entries[i].label, CAP_LEGEND, maxw);
        double w = text_width(l->entries[i].label, CAP_LEGEND, 0);
        if (w > tw)
            tw = w;
    }
    l->lw = 8 + 30 + 8 + tw + 10;
    l->lh = 6 + l->nentries * CAP_LEGEND * 2.0 + 4;
}

/* The plot area's bottom and top inside the cell, from the title and the x label. */
static void area_vertical(layout *l)
{
    const plot_panel *p = l->p;
    double top = p->title ? 10 + CAP_TITLE + 12 : 14;
    double bottom = TICK_LEN + 7 + CAP_TICK + (p->xlabel ? 12 + CAP_LABEL : 0) + 12;
    l->y0 = l->cy0 + bottom;
    l->y1 = l->cy1 - top;
}

/* x ticks at a spacing that leaves room for their labels. */
static void x_ticks(layout *l)
{
    for (int pass = 0; pass < 2; pass++) {
        double spacing = pass == 0 ? 90 : fmax(90, l->ax.label_width * 1.6 + 20);
        make_ticks(&l->ax, l->x1 - l->x0, spacing);
        if (l->ax.label_width * 1.6 + 20 <= 90)
            break;
    }
}

/* The plot area's left and right, from the y tick labels, the y label and an outside legend
 * (legend_right); y0 and y1 are set. */
static void area_horizontal(layout *l, int legend_right)
{
    const plot_panel *p = l->p;
    make_ticks(&l->ay, l->y1 - l->y0, 55);
    double left = 10 + (p->ylabel ? CAP_LABEL + 12 : 0) + l->ay.label_width + 6 + TICK_LEN;
    double right = legend_right ? l->lw + 22 : 18;
    l->x0 = l->cx0 + left;
    l->x1 = l->cx1 - right;
    x_ticks(l);
    /* the last x tick label may hang out by half its width */
    if (!legend_right && l->ax.nticks > 0) {
        double last = l->x0 + (l->ax.ticks[l->ax.nticks - 1] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        double over = last + text_width(l->ax.labels[l->ax.nticks - 1], CAP_TICK, 0) / 2 + 10 - l->cx1;
        if (over > 0) {
            l->x1 -= over;
            x_ticks(l);
        }
    }
}

/* ---- occupancy of the plot area, to keep the legend off the data ---- */

typedef struct occ {
    int w, h;
    unsigned char *cell;
} occ;

static void occ_mark(occ *o, double x, double y, const layout *l)
{
    int i = (int)floor((x - l->x0) / GRID_CELL), j = (int)floor((y - l->y0) / GRID_CELL);
    if (i >= 0 && i < o->w && j >= 0 && j < o->h)
        o->cell[(size_t)j * o->w + i] = 1;
}

static void occ_segment(occ *o, double xa, double ya, double xb, double yb, const layout *l)
{
    if (!isfinite(xa) || !isfinite(ya) || !isfinite(xb) || !isfinite(yb))
        return;
    double len = hypot(xb - xa, yb - ya);
    int steps = (int)(len / 2) + 1;
    if (steps > 100000)
        steps = 100000;
    for (int k = 0; k <= steps; k++) {
        double t = (double)k / steps;
        occ_mark(o, xa + t * (xb - xa), ya + t * (yb - ya), l);
    }
}

static void occ_box(occ *o, double xa, double ya, double xb, double yb, const layout *l)
{
    if (!isfinite(xa) || !isfinite(ya) || !isfinite(xb) || !isfinite(yb))
        return;
    if (xa > xb) {
        double t = xa;
        xa = xb, xb = t;
    }
    if (ya > yb) {
        double t = ya;
        ya = yb, yb = t;
    }
    for (double y = ya; y <= yb + GRID_CELL; y += GRID_CELL)
        for (double x = xa; x <= xb + GRID_CELL; x += GRID_CELL)
            occ_mark(o, fmin(x, xb), fmin(y, yb), l);
}

static void occ_fill(occ *o, const layout *l, int with_notes)
{
    const plot_panel *p = l->p;
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        if (s->kind == PLOT_HIST) {
            double base = p->ylog ? l->y0 : py(l, 0);
            for (int b = 0; b < q->nb; b++)
                if (q->heights[b] > 0)
                    occ_box(o, px(l, q->edges[b]), base, px(l, q->edges[b + 1]), py(l, q->heights[b]), l);
        } else if (s->kind == PLOT_BAND) {
            for (int i = 0; i + 1 < s->n; i++) {
                double xa = px(l, s->x[i]), xb = px(l, s->x[i + 1]);
                int steps = (int)(fabs(xb - xa) / GRID_CELL) + 1;
                for (int t = 0; t <= steps && isfinite(xa) && isfinite(xb); t++) {
                    double u = (double)t / steps;
                    double lo = (1 - u) * py(l, s->lo[i]) + u * py(l, s->lo[i + 1]);
                    double hi = (1 - u) * py(l, s->hi[i]) + u * py(l, s->hi[i + 1]);
                    double x = xa + u * (xb - xa);
                    occ_box(o, x, lo, x, hi, l);
                }
            }
        } else {
            const double *x, *y;
            int n;
            curve_of(q, &x, &y, &n);
            int points = s->kind == PLOT_SCATTER || s->kind == PLOT_QQ || q->marker != PLOT_MARKER_NONE;
            for (int i = 0; i < n; i++) {
                double xa = px(l, x[i]), ya = py(l, y[i]);
                if (points)
                    occ_box(o, xa - 5, ya - 5, xa + 5, ya + 5, l);
                if (s->lo && s->hi)
                    occ_segment(o, xa, py(l, s->lo[i]), xa, py(l, s->hi[i]), l);
                if (i + 1 < n && s->kind != PLOT_SCATTER && s->kind != PLOT_QQ) {
                    double xb = px(l, x[i + 1]), yb = py(l, y[i + 1]);
                    if (s->kind == PLOT_STEP) {
                        occ_segment(o, xa, ya, xb, ya, l);
                        occ_segment(o, xb, ya, xb, yb, l);
                    } else {
                        occ_segment(o, xa, ya, xb, yb, l);
                    }
                }
            }
            if (q->has_qqline)
                occ_segment(o, px(l, q->qx[0]), py(l, q->qy[0]), px(l, q->qx[1]), py(l, q->qy[1]), l);
        }
    }
    for (int k = 0; k < p->nlines; k++) {
        const plot_refline *r = &p->lines[k];
        if (r->vertical)
            occ_segment(o, px(l, r->at), l->y0, px(l, r->at), l->y1, l);
        else
            occ_segment(o, l->x0, py(l, r->at), l->x1, py(l, r->at), l);
    }
    for (int k = 0; k < p->nnotes; k++) {
        double x = px(l, p->notes[k].x), y = py(l, p->notes[k].y);
        double w = text_width(p->notes[k].text ? p->notes[k].text : "", CAP_NOTE, 0);
        occ_box(o, x - 8, y - 8, x + 8, y + 8, l);
        if (with_notes)
            occ_box(o, x - 14 - w, y - 14 - CAP_NOTE, x + 14 + w, y + 14 + CAP_NOTE, l);
    }
}

static int occ_count(const occ *o, double xa, double ya, double xb, double yb, const layout *l)
{
    int i0 = (int)floor((xa - l->x0) / GRID_CELL), i1 = (int)floor((xb - l->x0) / GRID_CELL);
    int j0 = (int)floor((ya - l->y0) / GRID_CELL), j1 = (int)floor((yb - l->y0) / GRID_CELL);
    int count = 0;
    for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < o->h; j++)
        for (int i = i0 < 0 ? 0 : i0; i <= i1 && i < o->w; i++)
            count += o->cell[(size_t)j * o->w + i];
    return count;
}

/* The inside corner of the legend: the one asked for, or the one that covers the fewest data
 * (-1 when every corner covers some, or the legend does not fit inside). */
static int legend_corner(layout *l, double *lx, double *ly, int *covered, int force)
{
    const double m = 8; /* from the frame */
    double xs[4] = {l->x1 - m - l->lw, l->x0 + m, l->x0 + m, l->x1 - m - l->lw};
    double ys[4] = {l->y1 - m - l->lh, l->y1 - m - l->lh, l->y0 + m, l->y0 + m};
    for (int c = 0; c < 4 && force; c++) { /* larger than the plot: from its left or top edge */
        xs[c] = fmax(xs[c], l->x0 + 4);
        ys[c] = fmin(ys[c], l->y1 - 4 - l->lh);
    }
    plot_legend where = l->p->legend;
    *covered = 0;
    if (where != PLOT_LEGEND_AUTO) {
        int c = where == PLOT_LEGEND_UPPER_RIGHT ? 0 : where == PLOT_LEGEND_UPPER_LEFT ? 1
              : where == PLOT_LEGEND_LOWER_LEFT ? 2 : 3;
        *lx = xs[c], *ly = ys[c];
        return c;
    }
    if (!force && (l->lw + 2 * m > l->x1 - l->x0 || l->lh + 2 * m > l->y1 - l->y0))
        return -1;
    occ o;
    o.w = (int)ceil((l->x1 - l->x0) / GRID_CELL) + 1;
    o.h = (int)ceil((l->y1 - l->y0) / GRID_CELL) + 1;
    o.cell = calloc((size_t)o.w * o.h, 1);
    *lx = xs[0], *ly = ys[0];
    if (!o.cell)
        return -1;
    occ_fill(&o, l, 1);
    int best = -1, best_count = 0;
    for (int c = 0; c < 4; c++) {
        int count = occ_count(&o, xs[c] - 3, ys[c] - 3, xs[c] + l->lw + 3, ys[c] + l->lh + 3, l);
        if (best < 0 || count < best_count)
            best = c, best_count = count;
    }
    free(o.cell);
    *lx = xs[best], *ly = ys[best];
    *covered = best_count;
    return best;
}

/* Whether the legend goes outside, and the plot area that follows from it. */
static void decide_legend(layout *l)
{
    plot_legend where = l->p->legend;
    l->legend_shown = l->nentries > 0 && where != PLOT_LEGEND_NONE;
    l->legend_out = l->legend_shown && where == PLOT_LEGEND_OUTSIDE;
    area_horizontal(l, l->legend_out);
    if (l->legend_shown && where == PLOT_LEGEND_AUTO) {
        double lx, ly;
        int covered;
        if (legend_corner(l, &lx, &ly, &covered, 0) < 0 || covered > 0) {
            l->legend_out = 1;
            area_horizontal(l, 1);
            if (l->x1 - l->x0 < 0.5 * (l->cx1 - l->cx0)) { /* a narrow panel keeps its room: least covered corner */
                l->legend_out = 0;
                area_horizontal(l, 0);
            }
        }
    }
}

/* The text of each annotation goes on the side of its point (upper or lower, right or left) that
 * covers the fewest data, inside the plot area. */
static int place_notes(layout *l)
{
    const plot_panel *p = l->p;
    if (p->nnotes == 0)
        return 0;
    l->note_x = malloc(sizeof(double) * (size_t)p->nnotes);
    l->note_y = malloc(sizeof(double) * (size_t)p->nnotes);
    occ o;
    o.w = (int)ceil((l->x1 - l->x0) / GRID_CELL) + 1;
    o.h = (int)ceil((l->y1 - l->y0) / GRID_CELL) + 1;
    o.cell = calloc((size_t)o.w * o.h, 1);
    if (!l->note_x || !l->note_y || !o.cell) {
        free(o.cell);
        return err_set("out of memory");
    }
    occ_fill(&o, l, 0);
    if (l->legend_shown && !l->legend_out)
        occ_box(&o, l->lx, l->ly, l->lx + l->lw, l->ly + l->lh, l);
    const double h = CAP_NOTE / 2 + 4, gap = 11;
    for (int k = 0; k < p->nnotes; k++) {
        double X = px(l, p->notes[k].x), Y = py(l, p->notes[k].y);
        double w = text_width(p->notes[k].text ? p->notes[k].text : "", CAP_NOTE, 0);
        double tx[4] = {X + gap, X - gap - w, X + gap, X - gap - w};
        double ty[4] = {Y + gap + CAP_NOTE / 2, Y + gap + CAP_NOTE / 2, Y - gap - CAP_NOTE / 2, Y - gap - CAP_NOTE / 2};
        int best = 0;
        double best_cost = INFINITY;
        for (int c = 0; c < 4; c++) {
            double x0 = tx[c] - 3, x1 = tx[c] + w + 3, y0 = ty[c] - h, y1 = ty[c] + h;
            int outside = x0 < l->x0 || x1 > l->x1 || y0 < l->y0 || y1 > l->y1;
            double cost = occ_count(&o, x0, y0, x1, y1, l) + (outside ? 1e6 : 0);
            if (cost < best_cost)
                best = c, best_cost = cost;
        }
        l->note_x[k] = tx[best];
        l->note_y[k] = ty[best];
        occ_box(&o, tx[best] - 3, ty[best] - h, tx[best] + w + 3, ty[best] + h, l);
    }
    free(o.cell);
    return 0;
}

/* Final position of the legend once the plot area is settled. */
static void place_legend(layout *l)
{
    if (!l->legend_shown)
        return;
    int covered;
    if (!l->legend_out && legend_corner(l, &l->lx, &l->ly, &covered, 0) >= 0)
        return;
    if (l->x1 + 14 + l->lw <= l->cx1 + 1) {
        l->lx = l->x1 + 14;
        l->ly = l->y1 - l->lh;
        return;
    }
    legend_corner(l, &l->lx, &l->ly, &covered, 1); /* room nowhere: over the plot, least covered */
}

/* ---- drawing a panel ---- */

static void draw_polyline(const layout *l, const double *x, const double *y, int n, int step)
{
    PLFLT *xs = malloc(sizeof(PLFLT) * (size_t)(2 * n + 1)), *ys = malloc(sizeof(PLFLT) * (size_t)(2 * n + 1));
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return;
    }
    int m = 0;
    for (int i = 0; i <= n; i++) {
        double X = i < n ? px(l, x[i]) : NAN, Y = i < n ? py(l, y[i]) : NAN;
        if (!isfinite(X) || !isfinite(Y)) { /* a gap: draw what came before it */
            if (m >= 2)
                plline(m, xs, ys);
            else if (m == 1 && !step)
                plline(1, xs, ys);
            m = 0;
            continue;
        }
        if (step && m > 0) {
            xs[m] = X, ys[m] = ys[m - 1];
            m++;
        }
        xs[m] = X, ys[m] = Y;
        m++;
    }
    free(xs);
    free(ys);
}

static void draw_legend(const canvas *c, const layout *l)
{
    page_window(c);
    set_color(0xffffff, 0.92);
    fill_rect(l->lx, l->ly, l->lx + l->lw, l->ly + l->lh);
    set_color(0xc8c8c8, 1.0);
    set_style(PLOT_SOLID, 1.0);
    stroke_rect(l->lx, l->ly, l->lx + l->lw, l->ly + l->lh);
    double row = CAP_LEGEND * 2.0;
    for (int i = 0; i < l->nentries; i++) {
        const entry *e = &l->entries[i];
        double y = l->ly + l->lh - 6 - row * (i + 0.5) + 1;
        double sx0 = l->lx + 8, sx1 = sx0 + 30;
        if (e->fill) {
            set_color(e->color, e->alpha);
            fill_rect(sx0, y - 6, sx1, y + 6);
            if (e->outline) {
                set_color(e->color, 1.0);
                set_style(PLOT_SOLID, 1.2);
                stroke_rect(sx0, y - 6, sx1, y + 6);
            }
        }
        if (e->line) {
            set_color(e->color, 1.0);
            set_style(e->style, e->width);
            draw_line2(sx0, y, sx1, y);
            set_style(PLOT_SOLID, 1.0);
        }
        plot_marker m = e->marker;
        if (m != PLOT_MARKER_NONE && m != PLOT_MARKER_AUTO)
            draw_marker(m, (sx0 + sx1) / 2, y, 4.5, e->color, 1);
        draw_text(sx1 + 8, y, 0, 0, CAP_LEGEND, 0, TEXT_RGB, e->label);
    }
}

static void draw_panel(const canvas *c, const layout *l)
{
    const plot_panel *p = l->p;
    /* grid */
    clip_window(c, l->x0, l->y0, l->x1, l->y1);
    set_style(PLOT_SOLID, 1.0);
    set_color(MINOR_GRID_RGB, 1.0);
    for (int i = 0; i < l->ax.nminor; i++) {
        double x = l->x0 + (l->ax.minor[i] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        draw_line2(x, l->y0, x, l->y1);
    }
    for (int i = 0; i < l->ay.nminor; i++) {
        double y = l->y0 + (l->ay.minor[i] - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
        draw_line2(l->x0, y, l->x1, y);
    }
    set_color(GRID_RGB, 1.0);
    for (int i = 0; i < l->ax.nticks; i++) {
        double x = l->x0 + (l->ax.ticks[i] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        draw_line2(x, l->y0, x, l->y1);
    }
    for (int i = 0; i < l->ay.nticks; i++) {
        double y = l->y0 + (l->ay.ticks[i] - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
        draw_line2(l->x0, y, l->x1, y);
    }
    /* filled things first, then reference lines, then curves, then points on top */
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        if (s->kind == PLOT_BAND && s->n >= 2) {
            /* one polygon per run of drawable points: along hi, back along lo */
            PLFLT *xs = malloc(sizeof(PLFLT) * 2 * (size_t)s->n), *ys = malloc(sizeof(PLFLT) * 2 * (size_t)s->n);
            if (!xs || !ys) {
                free(xs);
                free(ys);
                continue;
            }
            set_color(q->color, BAND_ALPHA);
            for (int i = 0; i < s->n;) {
                int j = i;
                while (j < s->n && isfinite(px(l, s->x[j])) && isfinite(py(l, s->lo[j])) && isfinite(py(l, s->hi[j])))
                    j++;
                int m = 0;
                for (int k2 = i; k2 < j; k2++, m++)
                    xs[m] = px(l, s->x[k2]), ys[m] = py(l, s->hi[k2]);
                for (int k2 = j - 1; k2 >= i; k2--, m++)
                    xs[m] = px(l, s->x[k2]), ys[m] = py(l, s->lo[k2]);
                if (j - i >= 2)
                    plfill(m, xs, ys);
                i = j + 1;
            }
            free(xs);
            free(ys);
        } else if (s->kind == PLOT_HIST) {
            double base = p->ylog ? l->y0 - 10 : py(l, 0);
            for (int b = 0; b < q->nb; b++) {
                if (q->heights[b] <= 0)
                    continue;
                double xa = px(l, q->edges[b]), xb = px(l, q->edges[b + 1]), top = py(l, q->heights[b]);
                if (!isfinite(xa) || !isfinite(xb) || !isfinite(top))
                    continue;
                set_color(q->color, HIST_ALPHA);
                fill_rect(xa, base, xb, top);
                set_color(q->color, 1.0);
                set_style(PLOT_SOLID, 1.2);
                stroke_rect(xa, base, xb, top);
            }
        }
    }
    for (int k = 0; k < p->nlines; k++) {
        const plot_refline *r = &p->lines[k];
        set_color(r->color == PLOT_AUTO_COLOR ? REFLINE_RGB : r->color, 1.0);
        set_style(r->style, 1.6);
        if (r->vertical)
            draw_line2(px(l, r->at), l->y0, px(l, r->at), l->y1);
        else
            draw_line2(l->x0, py(l, r->at), l->x1, py(l, r->at));
    }
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        const double *x, *y;
        int n;
        curve_of(q, &x, &y, &n);
        if (s->kind == PLOT_LINE || s->kind == PLOT_STEP || s->kind == PLOT_DENSITY) {
            set_color(q->color, 1.0);
            set_style(s->style, q->width);
            draw_polyline(l, x, y, n, s->kind == PLOT_STEP);
        } else if (s->kind == PLOT_QQ && q->has_qqline) {
            set_color(q->color, 0.8);
            set_style(PLOT_DASHED, 1.5);
            draw_line2(px(l, q->qx[0]), py(l, q->qy[0]), px(l, q->qx[1]), py(l, q->qy[1]));
        }
    }
    set_style(PLOT_SOLID, 1.0);
    for (int k = 0; k < p->nseries; k++) {
        const prep *q = &l->preps[k];
        const plot_series *s = q->s;
        if (q->marker == PLOT_MARKER_NONE || s->kind == PLOT_BAND || s->kind == PLOT_HIST)
            continue;
        const double *x, *y;
        int n;
        curve_of(q, &x, &y, &n);
        double r = n > 200 ? 2.8 : 4.5; /* dense clouds: small markers without edges */
        if (s->lo && s->hi) {
            set_color(q->color, 1.0);
            set_style(PLOT_SOLID, 1.4);
            for (int i = 0; i < n; i++) {
                double X = px(l, x[i]), lo = py(l, s->lo[i]), hi = py(l, s->hi[i]);
                if (!isfinite(X) || !isfinite(lo) || !isfinite(hi))
                    continue;
                draw_line2(X, lo, X, hi);
                draw_line2(X - 3, lo, X + 3, lo);
                draw_line2(X - 3, hi, X + 3, hi);
            }
        }
        for (int i = 0; i < n; i++) {
            double X = px(l, x[i]), Y = py(l, y[i]);
            if (isfinite(X) && isfinite(Y))
                draw_marker(q->marker, X, Y, r, q->color, n <= 200);
        }
    }
    for (int k = 0; k < p->nnotes; k++) {
        const plot_note *nt = &p->notes[k];
        double X = px(l, nt->x), Y = py(l, nt->y);
        if (!isfinite(X) || !isfinite(Y))
            continue;
        int32_t col = nt->color == PLOT_AUTO_COLOR ? 0x000000 : nt->color;
        PLFLT xs[33], ys[33];
        for (int v = 0; v <= 32; v++)
            xs[v] = X + 7 * cos(v * 2 * M_PI / 32), ys[v] = Y + 7 * sin(v * 2 * M_PI / 32);
        set_color(col, 1.0);
        set_style(PLOT_SOLID, 2.0);
        plline(33, xs, ys);
        draw_marker(PLOT_MARKER_CIRCLE, X, Y, 2.5, col, 0);
    }
    /* frame and ticks */
    page_window(c);
    set_color(FRAME_RGB, 1.0);
    set_style(PLOT_SOLID, 1.1);
    stroke_rect(l->x0, l->y0, l->x1, l->y1);
    for (int i = 0; i < l->ax.nticks; i++) {
        double x = l->x0 + (l->ax.ticks[i] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        draw_line2(x, l->y0, x, l->y0 - TICK_LEN);
    }
    for (int i = 0; i < l->ay.nticks; i++) {
        double y = l->y0 + (l->ay.ticks[i] - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
        draw_line2(l->x0, y, l->x0 - TICK_LEN, y);
    }
    set_style(PLOT_SOLID, 0.9);
    for (int i = 0; i < l->ax.nminor; i++) {
        double x = l->x0 + (l->ax.minor[i] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        draw_line2(x, l->y0, x, l->y0 - TICK_LEN * 0.6);
    }
    for (int i = 0; i < l->ay.nminor; i++) {
        double y = l->y0 + (l->ay.minor[i] - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
        draw_line2(l->x0, y, l->x0 - TICK_LEN * 0.6, y);
    }
    for (int i = 0; i < l->ax.nticks; i++) {
        double x = l->x0 + (l->ax.ticks[i] - l->ax.lo) / (l->ax.hi - l->ax.lo) * (l->x1 - l->x0);
        draw_text(x, l->y0 - TICK_LEN - 7 - CAP_TICK / 2, 0, 0.5, CAP_TICK, 0, TEXT_RGB, l->ax.labels[i]);
    }
    for (int i = 0; i < l->ay.nticks; i++) {
        double y = l->y0 + (l->ay.ticks[i] - l->ay.lo) / (l->ay.hi - l->ay.lo) * (l->y1 - l->y0);
        draw_text(l->x0 - TICK_LEN - 6, y, 0, 1, CAP_TICK, 0, TEXT_RGB, l->ay.labels[i]);
    }
    if (p->xlabel)
        draw_text((l->x0 + l->x1) / 2, l->y0 - TICK_LEN - 7 - CAP_TICK - 12 - CAP_LABEL / 2, 0, 0.5, CAP_LABEL, 0,
                  TEXT_RGB, p->xlabel);
    if (p->ylabel)
        draw_text(l->cx0 + 10 + CAP_LABEL / 2, (l->y0 + l->y1) / 2, 1, 0.5, CAP_LABEL, 0, TEXT_RGB, p->ylabel);
    if (p->title)
        draw_text((l->x0 + l->x1) / 2, l->y1 + 12 + CAP_TITLE / 2, 0, 0.5, CAP_TITLE, 1, TEXT_RGB, p->title);
    /* annotation texts, on a light box, beside their points */
    for (int k = 0; k < p->nnotes; k++) {
        const plot_note *nt = &p->notes[k];
        double X = px(l, nt->x), Y = py(l, nt->y);
        if (!nt->text || !*nt->text || !isfinite(X) || !isfinite(Y) || X < l->x0 || X > l->x1 || Y < l->y0 ||
            Y > l->y1)
            continue;
        double w = text_width(nt->text, CAP_NOTE, 0);
        double tx = l->note_x[k], ty = l->note_y[k];
        set_color(0xffffff, 0.85);
        fill_rect(tx - 3, ty - CAP_NOTE / 2 - 4, tx + w + 3, ty + CAP_NOTE / 2 + 4);
        draw_text(tx, ty, 0, 0, CAP_NOTE, 0, nt->color == PLOT_AUTO_COLOR ? TEXT_RGB : nt->color, nt->text);
    }
    if (l->legend_shown)
        draw_legend(c, l);
}

/* ---- checks ---- */

static int check_text(const char *s, const char *what)
{
    if (!s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return err_set("%s holds a control character", what);
    return 0;
}

static const char *kind_name(plot_kind k)
{
    static const char *const names[] = {"line", "step", "scatter", "band", "hist", "density", "qq"};
    return k >= 0 && k <= PLOT_QQ ? names[k] : "?";
}

static int check_series(const plot_series *s)
{
    if (s->kind < PLOT_LINE || s->kind > PLOT_QQ)
        return err_set("unknown kind %d", (int)s->kind);
    const char *kind = kind_name(s->kind);
    if (s->n < 0 || s->n > MAX_POINTS)
        return err_set("%d points (at most %d)", s->n, MAX_POINTS);
    int curve = s->kind == PLOT_LINE || s->kind == PLOT_STEP || s->kind == PLOT_SCATTER;
    int sample = s->kind == PLOT_HIST || s->kind == PLOT_DENSITY || s->kind == PLOT_QQ;
    if (!sample && s->values)
        return err_set("values apply to hist, density and qq; a %s takes x and y", kind);
    if (curve && s->n > 0 && (!s->x || !s->y))
        return err_set("a %s needs x and y", kind);
    if (s->kind == PLOT_BAND && (s->y || (s->n > 0 && (!s->x || !s->lo || !s->hi))))
        return err_set("a band needs x, lo and hi (and no y)");
    if (sample && (s->x || s->y || s->lo || s->hi))
        return err_set("a %s takes values, not x, y, lo or hi", kind);
    if (sample && s->n > 0 && !s->values)
        return err_set("a %s needs values", kind);
    if ((s->kind == PLOT_LINE || s->kind == PLOT_STEP) && (s->lo || s->hi))
        return err_set("lo and hi apply to bands and scatter (error bars), not to a %s", kind);
    if (s->kind == PLOT_SCATTER && (!s->lo) != (!s->hi))
        return err_set("error bars need both lo and hi");
    if (sample)
        for (int i = 0; i < s->n; i++)
            if (!isfinite(s->values[i]))
                return err_set("value %d is not finite (%g)", i + 1, s->values[i]);
    if (s->color != PLOT_AUTO_COLOR && (s->color < 0 || s->color > 0xffffff))
        return err_set("colour %d is not 0xRRGGBB", (int)s->color);
    if (s->style < PLOT_SOLID || s->style > PLOT_DOTTED)
        return err_set("unknown line style %d", (int)s->style);
    if (s->marker < PLOT_MARKER_AUTO || s->marker > PLOT_MARKER_DIAMOND)
        return err_set("unknown marker %d", (int)s->marker);
    if (!(s->width >= 0 && s->width <= 20))
        return err_set("line width %g is not from 0 to 20 pixels", s->width);
    if (s->bins < 0 || s->bins > 1000)
        return err_set("bins %d is not from 1 to 1000", s->bins);
    if (s->kind != PLOT_HIST && (s->bins || s->normalize))
        return err_set("bins and normalize apply to hist, not to a %s", kind);
    if (!(s->bandwidth >= 0 && isfinite(s->bandwidth)))
        return err_set("bandwidth %g is not a positive number", s->bandwidth);
    if (s->kind != PLOT_DENSITY && s->bandwidth != 0)
        return err_set("bandwidth applies to density, not to a %s", kind);
    return check_text(s->label, "the label");
}

static int check_limits(const double *lim, int log, const char *name)
{
    if (isnan(lim[0]) && isnan(lim[1]))
        return 0;
    if (!isfinite(lim[0]) || !isfinite(lim[1]) || !(lim[0] < lim[1]))
        return err_set("%s must be two finite numbers, the first below the second (got %g, %g)", name, lim[0],
                       lim[1]);
    if (log && lim[0] <= 0)
        return err_set("%s of a log axis must be positive (got %g)", name, lim[0]);
    return 0;
}

static int check_panel(const plot_panel *p)
{
    if (check_text(p->title, "the title") || check_text(p->xlabel, "xlabel") || check_text(p->ylabel, "ylabel"))
        return -1;
    if (check_limits(p->xlim, p->xlog, "xlim") || check_limits(p->ylim, p->ylog, "ylim"))
        return -1;
    if (p->nseries < 0 || p->nseries > MAX_SERIES || (p->nseries > 0 && !p->series))
        return err_set("%d series (at most %d)", p->nseries, MAX_SERIES);
    if (p->nlines < 0 || p->nlines > MAX_SERIES || (p->nlines > 0 && !p->lines))
        return err_set("%d reference lines (at most %d)", p->nlines, MAX_SERIES);
    if (p->nnotes < 0 || p->nnotes > MAX_SERIES || (p->nnotes > 0 && !p->notes))
        return err_set("%d annotations (at most %d)", p->nnotes, MAX_SERIES);
    if (p->legend < PLOT_LEGEND_AUTO || p->legend > PLOT_LEGEND_OUTSIDE)
        return err_set("unknown legend position %d", (int)p->legend);
    for (int k = 0; k < p->nseries; k++) {
        const plot_series *s = &p->series[k];
        if (check_series(s) != 0) {
            if (s->label)
                return err_prefix("series %d ('%s')", k + 1, s->label);
            return err_prefix("series %d", k + 1);
        }
    }
    for (int k = 0; k < p->nlines; k++) {
        const plot_refline *r = &p->lines[k];
        const char *what = r->vertical ? "vertical line" : "horizontal line";
        if (!isfinite(r->at))
            return err_set("%s %d: position %g is not finite", what, k + 1, r->at);
        if ((r->vertical ? p->xlog : p->ylog) && r->at <= 0)
            return err_set("%s %d: position %g is not positive on a log axis", what, k + 1, r->at);
        if (r->color != PLOT_AUTO_COLOR && (r->color < 0 || r->color > 0xffffff))
            return err_set("%s %d: colour %d is not 0xRRGGBB", what, k + 1, (int)r->color);
        if (r->style < PLOT_SOLID || r->style > PLOT_DOTTED)
            return err_set("%s %d: unknown line style %d", what, k + 1, (int)r->style);
        if (check_text(r->label, "the label") != 0)
            return err_prefix("%s %d", what, k + 1);
    }
    for (int k = 0; k < p->nnotes; k++) {
        const plot_note *n = &p->notes[k];
        if (!isfinite(n->x) || !isfinite(n->y))
            return err_set("annotation %d: the point (%g, %g) is not finite", k + 1, n->x, n->y);
        if (n->color != PLOT_AUTO_COLOR && (n->color < 0 || n->color > 0xffffff))
            return err_set("annotation %d: colour %d is not 0xRRGGBB", k + 1, (int)n->color);
        if (check_text(n->text, "the text") != 0)
            return err_prefix("annotation %d", k + 1);
    }
    return 0;
}

static int check_figure(const plot_figure *f, int rows)
{
    if (f->npanels < 1 || f->npanels > MAX_PANELS || !f->panels)
        return err_set("a figure needs 1 to %d panels, got %d", MAX_PANELS, f->npanels);
    if (f->columns < 0 || f->columns > f->npanels)
        return err_set("columns must be from 1 to the number of panels (%d), got %d", f->npanels, f->columns);
    if (f->width != 0 && (f->width < 100 || f->width > PLOT_MAX_SIDE))
        return err_set("width must be from 100 to %d pixels, got %d", PLOT_MAX_SIDE, f->width);
    if (f->height != 0 && (f->height < 100 || f->height > PLOT_MAX_SIDE))
        return err_set("height must be from 100 to %d pixels, got %d", PLOT_MAX_SIDE, f->height);
    if (f->heights)
        for (int r = 0; r < rows; r++)
            if (!(f->heights[r] > 0 && isfinite(f->heights[r])))
                return err_set("heights: row %d has height %g, not a positive number", r + 1, f->heights[r]);
    if (check_text(f->title, "the title") != 0)
        return -1;
    int cols = f->columns > 0 ? f->columns : 1;
    for (int i = 0; i < f->npanels; i++)
        for (int j = 0; j < i; j++) {
            const plot_panel *a = &f->panels[j], *b = &f->panels[i];
            if (f->sharex && i % cols == j % cols && a->xlog != b->xlog)
                return err_set("sharex: panels %d and %d of a column have a log and a linear x axis", j + 1, i + 1);
            if (f->sharey && i / cols == j / cols && a->ylog != b->ylog)
                return err_set("sharey: panels %d and %d of a row have a log and a linear y axis", j + 1, i + 1);
        }
    for (int i = 0; i < f->npanels; i++)
        if (check_panel(&f->panels[i]) != 0)
            return f->npanels > 1 ? err_prefix("panel %d", i + 1) : -1;
    return prov_check(f->prov, f->nprov);
}

/* ---- the figure ---- */

static int render(const plot_figure *f, layout *lays, int rows, int cols, canvas *c, uint8_t *rgba)
{
    double title_h = f->title ? FIGTITLE_H : 0;
    double footer_h = f->footer && f->nprov > 0 ? FOOTER_H : 0;
    double body = c->H - title_h - footer_h;
    double total = 0;
    for (int r = 0; r < rows; r++)
        total += f->heights ? f->heights[r] : 1;
    double cw = (double)c->W / cols, top = c->H - title_h;
    for (int i = 0; i < f->npanels; i++) {
        int r = i / cols, col = i % cols;
        double above = 0;
        for (int k = 0; k < r; k++)
            above += f->heights ? f->heights[k] : 1;
        double h = (f->heights ? f->heights[r] : 1) / total * body;
        layout *l = &lays[i];
        l->cx0 = col * cw;
        l->cx1 = (col + 1) * cw;
        l->cy1 = top - above / total * body;
        l->cy0 = l->cy1 - h;
        set_ranges(l);
        if (!isfinite(l->ax.hi - l->ax.lo) || !isfinite(l->ay.hi - l->ay.lo))
            return f->npanels > 1 ? err_set("panel %d: the data span more than a double can hold", i + 1)
                                  : err_set("the data span more than a double can hold");
    }
    for (int i = 0; i < f->npanels; i++) { /* shared ranges: the union over the column or row */
        for (int j = 0; j < f->npanels; j++) {
            if (f->sharex && i % cols == j % cols) {
                lays[i].ax.lo = fmin(lays[i].ax.lo, lays[j].ax.lo);
                lays[i].ax.hi = fmax(lays[i].ax.hi, lays[j].ax.hi);
            }
            if (f->sharey && i / cols == j / cols) {
                lays[i].ay.lo = fmin(lays[i].ay.lo, lays[j].ay.lo);
                lays[i].ay.hi = fmax(lays[i].ay.hi, lays[j].ay.hi);
            }
        }
    }
    for (int i = 0; i < f->npanels; i++) {
        layout *l = &lays[i];
        legend_entries(l);
        area_vertical(l);
        decide_legend(l);
    }
    /* panels of a row share their plot area's bottom and top, panels of a column its left and
     * right, so that stacked frames line up */
    for (int r = 0; r < rows; r++) {
        double y0 = -INFINITY, y1 = INFINITY;
        for (int i = r * cols; i < f->npanels && i < (r + 1) * cols; i++)
            y0 = fmax(y0, lays[i].y0), y1 = fmin(y1, lays[i].y1);
        for (int i = r * cols; i < f->npanels && i < (r + 1) * cols; i++) {
            lays[i].y0 = y0, lays[i].y1 = y1;
            area_horizontal(&lays[i], lays[i].legend_out);
        }
    }
    for (int col = 0; col < cols; col++) {
        double x0 = -INFINITY, x1 = INFINITY;
        for (int i = col; i < f->npanels; i += cols)
            x0 = fmax(x0, lays[i].x0 - lays[i].cx0), x1 = fmin(x1, lays[i].x1 - lays[i].cx0);
        for (int i = col; i < f->npanels; i += cols) {
            layout *l = &lays[i];
            l->x0 = l->cx0 + x0, l->x1 = l->cx0 + x1;
            x_ticks(l);
            place_legend(l);
            if (place_notes(l) != 0)
                return -1;
            if (l->x1 - l->x0 < 20 || l->y1 - l->y0 < 20)
                return err_set("panel %d has no room to draw in %.0f x %.0f pixels: make the figure larger", i + 1,
                               l->cx1 - l->cx0, l->cy1 - l->cy0);
        }
    }

    if (!have_memcairo())
        return err_set("PLplot has no memcairo device: install plplot-driver-cairo");
    plot_abort_msg[0] = '\0';
    plsabort(on_plplot_abort);
    PLINT stream;
    plmkstrm(&stream);
    if (stream < 0)
        return err_set("PLplot has no free stream");
    plsdev("memcairo");
    plscolbga(255, 255, 255, 1.0);
    plsmema(c->W, c->H, rgba);
    plinit();
    pladv(0);
    for (int i = 0; i < f->npanels; i++)
        draw_panel(c, &lays[i]);
    page_window(c);
    if (f->title)
        draw_text(c->W / 2.0, c->H - 16 - CAP_FIGTITLE / 2, 0, 0.5, CAP_FIGTITLE, 1, TEXT_RGB, f->title);
    if (footer_h > 0) {
        char line[1024];
        prov_line(f->prov, f->nprov, line, sizeof line);
        fit_text(line, sizeof line, CAP_FOOTER, c->W - 16);
        draw_text(8, FOOTER_H / 2, 0, 0, CAP_FOOTER, 0, FOOTER_RGB, line);
    }
    plend1();
    if (plot_abort_msg[0])
        return err_set("PLplot: %s", plot_abort_msg);
    return 0;
}

int plot_write(const char *path, const plot_figure *f)
{
    int cols = f->columns > 0 ? f->columns : 1;
    int rows = f->npanels > 0 ? (f->npanels + cols - 1) / cols : 0;
    if (check_figure(f, rows) != 0)
        return err_prefix("%s", path);
    canvas c;
    double extra = (f->title ? FIGTITLE_H : 0) + (f->footer && f->nprov > 0 ? FOOTER_H : 0);
    if (f->npanels == 1) {
        c.W = f->width ? f->width : PLOT_WIDTH;
        c.H = f->height ? f->height : PLOT_HEIGHT;
    } else {
        c.W = f->width ? f->width : cols * PLOT_PANEL_WIDTH;
        c.H = f->height ? f->height : (int)(rows * PLOT_PANEL_HEIGHT + extra);
        if (c.W > PLOT_MAX_SIDE || c.H > PLOT_MAX_SIDE)
            return err_set("%s: %d x %d pixels is too large (at most %d a side): give width and height", path,
                           c.W, c.H, PLOT_MAX_SIDE);
    }
    int rc = -1, palette = 0;
    layout *lays = calloc((size_t)f->npanels, sizeof *lays);
    uint8_t *rgba = malloc((size_t)c.W * c.H * 4);
    if (!lays || !rgba) {
        err_set("%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < f->npanels; i++) {
        const plot_panel *p = &f->panels[i];
        layout *l = &lays[i];
        l->p = p;
        l->preps = calloc((size_t)(p->nseries > 0 ? p->nseries : 1), sizeof *l->preps);
        l->entries = calloc((size_t)(p->nseries + p->nlines + 1), sizeof *l->entries);
        if (!l->preps || !l->entries) {
            err_set("%s: out of memory", path);
            goto done;
        }
        int shape = 0;
        palette = 0; /* every panel starts the palette anew, so that panels of a grid match */
        for (int k = 0; k < p->nseries; k++) {
            const plot_series *s = &p->series[k];
            if (prepare(&l->preps[k], s) != 0) {
                err_prefix("%s: panel %d, series %d", path, i + 1, k + 1);
                goto done;
            }
            prep *q = &l->preps[k];
            q->color = s->color != PLOT_AUTO_COLOR ? s->color : plot_colors[palette++ % PALETTE_CYCLE];
            static const plot_marker shapes[] = {PLOT_MARKER_CIRCLE, PLOT_MARKER_SQUARE, PLOT_MARKER_TRIANGLE,
                                                 PLOT_MARKER_DIAMOND};
            if (s->marker != PLOT_MARKER_AUTO)
                q->marker = s->marker;
            else if (s->kind == PLOT_SCATTER || s->kind == PLOT_QQ)
                q->marker = shapes[shape++ % 4];
            else
                q->marker = PLOT_MARKER_NONE;
        }
    }
    memset(rgba, 255, (size_t)c.W * c.H * 4);
    pthread_mutex_lock(&plot_lock);
    int drawn = render(f, lays, rows, cols, &c, rgba);
    pthread_mutex_unlock(&plot_lock);
    if (drawn != 0) {
        err_prefix("%s", path);
        goto done;
    }
    /* RGBA → RGB in place: the page is opaque */
    for (size_t i = 0, n = (size_t)c.W * c.H; i < n; i++) {
        rgba[3 * i] = rgba[4 * i];
        rgba[3 * i + 1] = rgba[4 * i + 1];
        rgba[3 * i + 2] = rgba[4 * i + 2];
    }
    raster im = {c.W, c.H, rgba};
    rc = raster_write_png(path, &im, f->prov, f->nprov);
done:
    if (lays)
        for (int i = 0; i < f->npanels; i++) {
            if (lays[i].preps)
                for (int k = 0; k < f->panels[i].nseries; k++)
                    prep_free(&lays[i].preps[k]);
            free(lays[i].preps);
            free(lays[i].entries);
            free(lays[i].note_x);
            free(lays[i].note_y);
        }
    free(lays);
    free(rgba);
    return rc;
}
