/* plot: figures of numbers (lines, steps, scatter with error bars, filled bands, histograms,
 * kernel densities, normal Q-Q plots, reference lines, annotations) in one or several panels,
 * drawn by PLplot's cairo renderer and written as PNG with the provenance in text chunks and in a
 * footer line, atomically.
 *
 * The look is fixed so that every figure of the project reads the same at 100% size: pixel sizes
 * for fonts and lines, light grid, the Okabe-Ito colour-blind-safe palette, markers that differ by
 * shape as well as colour, and a legend placed where it covers the fewest data (outside the plot
 * when every corner is taken).
 *
 * PLplot keeps process-global state: plot_write serializes its callers with a mutex and draws
 * every figure in a stream of its own (PLplot's memcairo device, the same cairo rendering as
 * pngcairo, into memory), so it can be called any number of times and from any thread, one figure
 * at a time. Nothing else in the process may use PLplot concurrently. */
#ifndef BOENGINE_PLOT_H
#define BOENGINE_PLOT_H

#include <stdint.h>

#include "report/prov.h"

typedef enum plot_kind {
    PLOT_LINE,    /* x, y; NaN breaks the line */
    PLOT_STEP,    /* x, y as a staircase: y[i] holds from x[i] to x[i+1] (best-so-far curves) */
    PLOT_SCATTER, /* x, y markers; with lo and hi, vertical error bars from lo to hi */
    PLOT_BAND,    /* x, lo, hi: the region between two curves, filled translucent */
    PLOT_HIST,    /* values: a histogram of counts (or a density with normalize) */
    PLOT_DENSITY, /* values: a Gaussian kernel density estimate */
    PLOT_QQ,      /* values against normal quantiles, with the line through the quartiles */
} plot_kind;

typedef enum plot_style { PLOT_SOLID, PLOT_DASHED, PLOT_DOTTED } plot_style;

typedef enum plot_marker {
    PLOT_MARKER_AUTO, /* scatter and Q-Q: a shape per series in turn; lines: none */
    PLOT_MARKER_NONE,
    PLOT_MARKER_CIRCLE,
    PLOT_MARKER_SQUARE,
    PLOT_MARKER_TRIANGLE,
    PLOT_MARKER_DIAMOND,
} plot_marker;

/* Colours are 0xRRGGBB, or PLOT_AUTO_COLOR for the next colour of the palette. */
#define PLOT_AUTO_COLOR (-1)

typedef struct plot_series {
    plot_kind kind;
    int n;                       /* number of points or values */
    const double *x, *y, *lo, *hi;
    const double *values;        /* hist, density, qq */
    const char *label;           /* legend text; NULL: not in the legend */
    int32_t color;
    plot_style style;            /* lines, steps, densities */
    plot_marker marker;          /* also draws markers on the points of a line or step */
    double width;                /* line width in pixels; 0 for the default */
    int bins;                    /* hist: 0 chooses (Freedman-Diaconis, 5 to 50 bins) */
    int normalize;               /* hist: density (area 1) instead of counts */
    double bandwidth;            /* density: 0 for Silverman's rule */
} plot_series;

typedef struct plot_refline {
    int vertical; /* a vertical line at x = at, else a horizontal one at y = at */
    double at;
    int32_t color; /* PLOT_AUTO_COLOR: dark grey */
    plot_style style;
    const char *label; /* legend text; NULL: not in the legend */
} plot_refline;

typedef struct plot_note {
    double x, y; /* a marked point, with its text beside it */
    const char *text;
    int32_t color; /* PLOT_AUTO_COLOR: black */
} plot_note;

typedef enum plot_legend {
    PLOT_LEGEND_AUTO, /* the inside corner that covers the fewest data, else outside */
    PLOT_LEGEND_NONE,
    PLOT_LEGEND_UPPER_RIGHT,
    PLOT_LEGEND_UPPER_LEFT,
    PLOT_LEGEND_LOWER_LEFT,
    PLOT_LEGEND_LOWER_RIGHT,
    PLOT_LEGEND_OUTSIDE, /* right of the plot area */
} plot_legend;

typedef struct plot_panel {
    const char *title, *xlabel, *ylabel; /* UTF-8, shown as written ('#' included) */
    int xlog, ylog;                      /* base-10 axes; values <= 0 are left out */
    double xlim[2], ylim[2];             /* NaN: from the data */
    const plot_series *series;
    int nseries;
    const plot_refline *lines;
    int nlines;
    const plot_note *notes;
    int nnotes;
    plot_legend legend;
} plot_panel;

typedef struct plot_figure {
    const char *title; /* above all panels; NULL for none */
    const plot_panel *panels;
    int npanels;
    int columns;            /* panels per row; 0 for 1 */
    const double *heights;  /* relative height of each row; NULL for equal rows */
    int width, height;      /* pixels of the whole PNG; 0 for the default */
    int sharex, sharey;     /* panels of a column share one x range, panels of a row one y range */
    int footer;             /* the provenance line along the bottom */
    const prov_kv *prov;    /* also stored as PNG text chunks */
    int nprov;
} plot_figure;

/* Default sizes: one panel 800 x 560 pixels; several, 560 x 420 per panel. */
#define PLOT_WIDTH 800
#define PLOT_HEIGHT 560
#define PLOT_PANEL_WIDTH 560
#define PLOT_PANEL_HEIGHT 420
#define PLOT_MAX_SIDE 8192

/* Defaults: a line series, a panel with automatic limits and legend, a figure with a footer. */
void plot_series_init(plot_series *s, plot_kind kind);
void plot_panel_init(plot_panel *p);
void plot_figure_init(plot_figure *f);

/* Draws the figure and writes it to path (a PNG, 8-bit RGB), creating missing folders. -1 with
 * err_set naming the file, the panel and the series at fault (nothing is written then). */
int plot_write(const char *path, const plot_figure *f);

/* Reads "blue", "#0072b2" or another palette name (plot_color_names) into 0xRRGGBB. */
int plot_parse_color(const char *s, int32_t *rgb);

/* The palette: names and colours, in the order series take them; NULL-terminated names. */
extern const char *const plot_color_names[];
extern const int32_t plot_colors[];

#endif
