#include "report/anim.h"

#include <gif_lib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/atomic.h"
#include "report/outdir.h"
#include "report/raster.h"

#define BINS 32768 /* colours counted at 5 bits a channel, with exact sums for the means */
#define MAX_FRAMES 10000

static int bin_of(const uint8_t *p) { return (p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3); }

typedef struct histogram {
    uint64_t count[BINS], sum[BINS][3];
} histogram;

typedef struct cbin { /* an occupied bin */
    int bin;
    uint64_t count;
    double mean[3];
} cbin;

typedef struct box {
    int start, end; /* bins[start..end) */
    uint64_t count;
    int axis;
    double range;
} box;

static void measure(const cbin *bins, box *b)
{
    double lo[3] = {256, 256, 256}, hi[3] = {-1, -1, -1};
    b->count = 0;
    for (int i = b->start; i < b->end; i++) {
        b->count += bins[i].count;
        for (int c = 0; c < 3; c++) {
            lo[c] = fmin(lo[c], bins[i].mean[c]);
            hi[c] = fmax(hi[c], bins[i].mean[c]);
        }
    }
    b->axis = 0;
    for (int c = 1; c < 3; c++)
        if (hi[c] - lo[c] > hi[b->axis] - lo[b->axis])
            b->axis = c;
    b->range = hi[b->axis] - lo[b->axis];
}

#define CMP_AXIS(name, c)                                                                                     \
    static int name(const void *a, const void *b)                                                            \
    {                                                                                                        \
        double x = ((const cbin *)a)->mean[c], y = ((const cbin *)b)->mean[c];                                \
        return (x > y) - (x < y);                                                                            \
    }
CMP_AXIS(cmp_r, 0)
CMP_AXIS(cmp_g, 1)
CMP_AXIS(cmp_b, 2)

/* Median cut: split the box whose colours spread most (weighted by the square root of its pixel
 * count, so that rare anti-aliasing shades do not take entries from the line colours) at its
 * population median, until 256 boxes or every box holds one bin. Fills palette, returns its size. */
static int median_cut(const histogram *h, uint8_t palette[256][3], uint8_t *lut)
{
    int nb = 0;
    for (int i = 0; i < BINS; i++)
        nb += h->count[i] > 0;
    cbin *bins = malloc(sizeof *bins * (size_t)(nb ? nb : 1));
    box *boxes = malloc(sizeof *boxes * 256);
    if (!bins || !boxes) {
        free(bins);
        free(boxes);
        return err_set("out of memory");
    }
    nb = 0;
    for (int i = 0; i < BINS; i++)
        if (h->count[i]) {
            cbin *b = &bins[nb++];
            b->bin = i;
            b->count = h->count[i];
            for (int c = 0; c < 3; c++)
                b->mean[c] = (double)h->sum[i][c] / h->count[i];
        }
    int nboxes = 1;
    boxes[0] = (box){0, nb, 0, 0, 0};
    measure(bins, &boxes[0]);
    while (nboxes < 256) {
        int pick = -1;
        double best = 0;
        for (int k = 0; k < nboxes; k++) {
            double score = boxes[k].range * sqrt((double)boxes[k].count);
            if (boxes[k].end - boxes[k].start >= 2 && (pick < 0 || score > best))
                pick = k, best = score;
        }
        if (pick < 0)
            break;
        box *b = &boxes[pick];
        int (*cmp)(const void *, const void *) = b->axis == 0 ? cmp_r : b->axis == 1 ? cmp_g : cmp_b;
        qsort(bins + b->start, (size_t)(b->end - b->start), sizeof *bins, cmp);
        uint64_t half = b->count / 2, acc = 0;
        int m = b->start;
        while (m < b->end - 1 && acc + bins[m].count <= half)
            acc += bins[m++].count;
        if (m == b->start)
            m++; /* both halves keep at least one bin */
        boxes[nboxes] = (box){m, b->end, 0, 0, 0};
        b->end = m;
        measure(bins, b);
        measure(bins, &boxes[nboxes]);
        nboxes++;
    }
    for (int k = 0; k < nboxes; k++) {
        double sum[3] = {0, 0, 0};
        uint64_t count = 0;
        for (int i = boxes[k].start; i < boxes[k].end; i++) {
            for (int c = 0; c < 3; c++)
                sum[c] += (double)h->sum[bins[i].bin][c];
            count += bins[i].count;
        }
        for (int c = 0; c < 3; c++)
            palette[k][c] = (uint8_t)lround(sum[c] / (double)(count ? count : 1));
    }
    /* every occupied bin maps to the palette entry nearest its mean */
    for (int i = 0; i < nb; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < nboxes; k++) {
            double d = 0;
            for (int c = 0; c < 3; c++) {
                double e = bins[i].mean[c] - palette[k][c];
                d += e * e;
            }
            if (d < bd)
                bd = d, best = k;
        }
        lut[bins[i].bin] = (uint8_t)best;
    }
    free(bins);
    free(boxes);
    return nboxes;
}

static int write_out(GifFileType *g, const GifByteType *buf, int n)
{
    return (int)fwrite(buf, 1, (size_t)n, (FILE *)g->UserData);
}

static int check_spec(const anim_spec *a)
{
    if (a->nframes < 1 || a->nframes > MAX_FRAMES || !a->frames)
        return err_set("an animation needs 1 to %d frames, got %d", MAX_FRAMES, a->nframes);
    if (!(a->delay >= 0.02 && a->delay <= 655.35))
        return err_set("delay must be from 0.02 to 655.35 seconds, got %g", a->delay);
    if (!(a->last_delay == 0 || (a->last_delay >= 0.02 && a->last_delay <= 655.35)))
        return err_set("last_delay must be from 0.02 to 655.35 seconds, got %g", a->last_delay);
    if (a->loops < -1 || a->loops > 65535)
        return err_set("loops must be from -1 to 65535, got %d", a->loops);
    return prov_check(a->prov, a->nprov);
}

/* Reads frame i and checks its size against the first. */
static int load_frame(const anim_spec *a, int i, raster *im, int w, int h)
{
    if (raster_read_png(a->frames[i], im) != 0)
        return err_prefix("frame %d", i + 1);
    if (i > 0 && (im->width != w || im->height != h)) {
        err_set("frame %d (%s) is %d x %d pixels, the first is %d x %d", i + 1, a->frames[i], im->width,
                im->height, w, h);
        free(im->rgb);
        im->rgb = NULL;
        return -1;
    }
    return 0;
}

static int put_delay(GifFileType *gif, double seconds)
{
    GraphicsControlBlock gcb = {DISPOSE_DO_NOT, false, (int)lround(seconds * 100), NO_TRANSPARENT_COLOR};
    GifByteType ext[4];
    size_t n = EGifGCBToExtension(&gcb, ext);
    return EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, (int)n, ext);
}

static int put_loops(GifFileType *gif, int loops)
{
    GifByteType count[3] = {1, (GifByteType)(loops & 0xff), (GifByteType)(loops >> 8)};
    if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) != GIF_OK ||
        EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") != GIF_OK || EGifPutExtensionBlock(gif, 3, count) != GIF_OK ||
        EGifPutExtensionTrailer(gif) != GIF_OK)
        return GIF_ERROR;
    return GIF_OK;
}

static int put_comment(GifFileType *gif, const prov_kv *prov, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(prov[i].key) + strlen(prov[i].value) + 3;
    char *s = malloc(len), *o = s;
    if (!s)
        return GIF_ERROR;
    for (int i = 0; i < n; i++)
        o += sprintf(o, "%s: %s\n", prov[i].key, prov[i].value);
    *o = '\0';
    int rc = EGifPutComment(gif, s);
    free(s);
    return rc;
}

int anim_write_gif(const char *path, const anim_spec *a)
{
    if (check_spec(a) != 0)
        return err_prefix("%s", path);
    histogram *h = calloc(1, sizeof *h);
    uint8_t *lut = calloc(BINS, 1), (*palette)[3] = calloc(256, 3);
    uint8_t *cur = NULL, *prev = NULL, *rect = NULL;
    raster im = {0, 0, NULL};
    int w = 0, hgt = 0, rc = -1;
    atomic_file out;
    int opened = 0, error = 0;
    GifFileType *gif = NULL;
    ColorMapObject *map = NULL;
    if (!h || !lut || !palette) {
        err_set("%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < a->nframes; i++) { /* pass 1: the colours of every frame */
        if (load_frame(a, i, &im, w, hgt) != 0) {
            err_prefix("%s", path);
            goto done;
        }
        w = im.width, hgt = im.height;
        for (size_t p = 0, n = (size_t)w * hgt; p < n; p++) {
            const uint8_t *px = im.rgb + 3 * p;
            int b = bin_of(px);
            h->count[b]++;
            for (int c = 0; c < 3; c++)
                h->sum[b][c] += px[c];
        }
        free(im.rgb);
        im.rgb = NULL;
    }
    int ncolors = median_cut(h, palette, lut);
    if (ncolors < 0) {
        err_prefix("%s", path);
        goto done;
    }
    int bits = 1;
    while ((1 << bits) < ncolors)
        bits++;
    map = GifMakeMapObject(1 << bits, NULL);
    cur = malloc((size_t)w * hgt);
    prev = malloc((size_t)w * hgt);
    rect = malloc((size_t)w * hgt);
    if (!map || !cur || !prev || !rect) {
        err_set("%s: out of memory", path);
        goto done;
    }
    for (int k = 0; k < (1 << bits); k++) {
        map->Colors[k].Red = k < ncolors ? palette[k][0] : 0;
        map->Colors[k].Green = k < ncolors ? palette[k][1] : 0;
        map->Colors[k].Blue = k < ncolors ? palette[k][2] : 0;
    }
    if (outdir_make_parents(path) != 0 || atomic_open(&out, path) != 0)
        goto done;
    opened = 1;
    gif = EGifOpen(out.f, write_out, &error);
    if (!gif) {
        err_set("%s: %s", path, GifErrorString(error));
        goto done;
    }
    EGifSetGifVersion(gif, true);
    uint8_t white[3] = {255, 255, 255};
    if (EGifPutScreenDesc(gif, w, hgt, 8, lut[bin_of(white)], map) != GIF_OK ||
        (a->loops >= 0 && put_loops(gif, a->loops) != GIF_OK) ||
        (a->nprov > 0 && put_comment(gif, a->prov, a->nprov) != GIF_OK))
        goto gif_error;
    for (int i = 0; i < a->nframes; i++) { /* pass 2: index, crop to what changed, encode */
        if (load_frame(a, i, &im, w, hgt) != 0) {
            err_prefix("%s", path);
            goto done;
        }
        for (size_t p = 0, n = (size_t)w * hgt; p < n; p++)
            cur[p] = lut[bin_of(im.rgb + 3 * p)];
        free(im.rgb);
        im.rgb = NULL;
        int x0 = 0, y0 = 0, x1 = w - 1, y1 = hgt - 1;
        if (i > 0) {
            x0 = w, y0 = hgt, x1 = -1, y1 = -1;
            for (int y = 0; y < hgt; y++)
                for (int x = 0; x < w; x++)
                    if (cur[(size_t)y * w + x] != prev[(size_t)y * w + x]) {
                        x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                        y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                    }
            if (x1 < 0) /* the same picture again: one pixel, to keep the frame's delay */
                x0 = y0 = x1 = y1 = 0;
        }
        int rw = x1 - x0 + 1, rh = y1 - y0 + 1;
        for (int y = 0; y < rh; y++)
            memcpy(rect + (size_t)y * rw, cur + (size_t)(y0 + y) * w + x0, (size_t)rw);
        double delay = i == a->nframes - 1 && a->last_delay > 0 ? a->last_delay : a->delay;
        if (put_delay(gif, delay) != GIF_OK || EGifPutImageDesc(gif, x0, y0, rw, rh, false, NULL) != GIF_OK ||
            EGifPutLine(gif, rect, rw * rh) != GIF_OK)
            goto gif_error;
        uint8_t *t = prev;
        prev = cur;
        cur = t;
    }
    if (EGifCloseFile(gif, &error) != GIF_OK) {
        gif = NULL;
        err_set("%s: GIF encoding failed: %s", path, GifErrorString(error));
        goto done;
    }
    gif = NULL;
    opened = 0;
    rc = atomic_close(&out, 1);
    goto done;
gif_error:
    err_set("%s: GIF encoding failed: %s", path, GifErrorString(gif->Error));
done:
    if (gif)
        EGifCloseFile(gif, &error);
    if (opened)
        atomic_close(&out, 0);
    GifFreeMapObject(map);
    free(im.rgb);
    free(h);
    free(lut);
    free(palette);
    free(cur);
    free(prev);
    free(rect);
    return rc;
}
