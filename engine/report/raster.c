#include "report/raster.h"

#include <errno.h>
#include <gif_lib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/atomic.h"
#include "report/outdir.h"

#define MAX_SIDE 16384

/* libpng reports errors by longjmp through png_jmpbuf; the message is kept for err_set. */
typedef struct png_err {
    char msg[200];
} png_err;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

int raster_write_png(const char *path, const raster *im, const prov_kv *prov, int nprov)
{
    if (im->width < 1 || im->height < 1 || im->width > MAX_SIDE || im->height > MAX_SIDE || !im->rgb)
        return err_set("%s: cannot write an image of %d x %d pixels", path, im->width, im->height);
    if (prov_check(prov, nprov) != 0)
        return err_prefix("%s", path);
    atomic_file a;
    if (outdir_make_parents(path) != 0 || atomic_open(&a, path) != 0)
        return -1;
    png_err e = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_text *text = calloc((size_t)(nprov > 0 ? nprov : 1), sizeof *text);
    if (!png || !info || !text) {
        png_destroy_write_struct(&png, &info);
        free(text);
        atomic_close(&a, 0);
        return err_set("%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(text);
        atomic_close(&a, 0);
        return err_set("%s: PNG encoding failed: %s", path, e.msg);
    }
    png_init_io(png, a.f);
    png_set_IHDR(png, info, (png_uint_32)im->width, (png_uint_32)im->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < nprov; i++) {
        int ascii = is_ascii(prov[i].value);
        text[i].compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        text[i].key = (png_charp)prov[i].key;
        text[i].text = (png_charp)prov[i].value;
        text[i].text_length = ascii ? strlen(prov[i].value) : 0;
        text[i].itxt_length = ascii ? 0 : strlen(prov[i].value);
    }
    if (nprov > 0)
        png_set_text(png, info, text, nprov);
    png_write_info(png, info);
    for (int y = 0; y < im->height; y++)
        png_write_row(png, im->rgb + (size_t)y * im->width * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(text);
    return atomic_close(&a, 1);
}

/* Reads a PNG to RGB, and its text chunks when keys is given. */
static int read_png(const char *path, raster *out, char ***keys, char ***values, int *ntext)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set("%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return err_set("%s: not a PNG file", path);
    }
    png_err e = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_infop end = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info || !end) {
        png_destroy_read_struct(&png, &info, &end);
        fclose(f);
        return err_set("%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, &end);
        fclose(f);
        free(px);
        free(rows);
        return err_set("%s: %s", path, e.msg[0] ? e.msg : "corrupt PNG");
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
        png_error(png, "image size out of range");
    int ct = png_get_color_type(png, info);
    png_set_expand(png);
    png_set_strip_16(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_color_16 white = {0, 255, 255, 255, 255};
    png_set_background(png, &white, PNG_BACKGROUND_GAMMA_SCREEN, 0, 1.0);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected pixel layout");
    px = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, end);
    if (keys) {
        png_textp t1 = NULL, t2 = NULL;
        int n1 = png_get_text(png, info, &t1, NULL), n2 = png_get_text(png, end, &t2, NULL);
        *ntext = 0;
        *keys = calloc((size_t)(n1 + n2 + 1), sizeof **keys);
        *values = calloc((size_t)(n1 + n2 + 1), sizeof **values);
        if (!*keys || !*values)
            png_error(png, "out of memory");
        for (int i = 0; i < n1 + n2; i++) {
            png_textp t = i < n1 ? &t1[i] : &t2[i - n1];
            (*keys)[*ntext] = strdup(t->key);
            (*values)[*ntext] = strdup(t->text ? t->text : "");
            (*ntext)++;
        }
    }
    png_destroy_read_struct(&png, &info, &end);
    fclose(f);
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = px;
    return 0;
}

int raster_read_png(const char *path, raster *out) { return read_png(path, out, NULL, NULL, NULL); }

int raster_montage(const char *path, const char *const *images, int n, int columns, const prov_kv *prov,
                   int nprov)
{
    if (n < 1 || !images)
        return err_set("%s: a montage needs at least one image", path);
    if (columns < 1 || columns > n)
        return err_set("%s: columns must be from 1 to the number of images (%d), got %d", path, n, columns);
    raster *ims = calloc((size_t)n, sizeof *ims);
    if (!ims)
        return err_set("%s: out of memory", path);
    int rc = -1, cw = 0, ch = 0, rows = (n + columns - 1) / columns;
    raster out = {0, 0, NULL};
    for (int i = 0; i < n; i++) {
        if (read_png(images[i], &ims[i], NULL, NULL, NULL) != 0) {
            err_prefix("%s: image %d", path, i + 1);
            goto done;
        }
        cw = ims[i].width > cw ? ims[i].width : cw;
        ch = ims[i].height > ch ? ims[i].height : ch;
    }
    if ((long)cw * columns > MAX_SIDE || (long)ch * rows > MAX_SIDE) {
        err_set("%s: a montage of %d x %d pixels is too large", path, cw * columns, ch * rows);
        goto done;
    }
    out.width = cw * columns;
    out.height = ch * rows;
    out.rgb = malloc((size_t)out.width * out.height * 3);
    if (!out.rgb) {
        err_set("%s: out of memory", path);
        goto done;
    }
    memset(out.rgb, 255, (size_t)out.width * out.height * 3);
    for (int i = 0; i < n; i++) {
        int x0 = (i % columns) * cw + (cw - ims[i].width) / 2, y0 = (i / columns) * ch + (ch - ims[i].height) / 2;
        for (int y = 0; y < ims[i].height; y++)
            memcpy(out.rgb + ((size_t)(y0 + y) * out.width + x0) * 3, ims[i].rgb + (size_t)y * ims[i].width * 3,
                   (size_t)ims[i].width * 3);
    }
    rc = raster_write_png(path, &out, prov, nprov);
done:
    for (int i = 0; i < n; i++)
        free(ims[i].rgb);
    free(ims);
    free(out.rgb);
    return rc;
}

/* ---- inspection ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Distinct colours and the share of pixels that differ from the most common one. */
static int count_colors(const uint8_t *rgb, size_t n, raster_info *info)
{
    uint32_t *v = malloc(sizeof *v * (n ? n : 1));
    if (!v)
        return err_set("out of memory");
    for (size_t i = 0; i < n; i++)
        v[i] = (uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2];
    qsort(v, n, sizeof *v, cmp_u32);
    size_t best = 0, run = 0;
    info->colors = 0;
    for (size_t i = 0; i < n; i++) {
        run = i > 0 && v[i] == v[i - 1] ? run + 1 : 1;
        if (run == 1)
            info->colors++;
        if (run > best)
            best = run;
    }
    info->ink = n ? (double)(n - best) / n : 0;
    free(v);
    return 0;
}

static int add_text(raster_info *info, const char *key, size_t klen, const char *value, size_t vlen)
{
    char **k = realloc(info->keys, sizeof *k * (size_t)(info->ntext + 1));
    if (k)
        info->keys = k;
    char **v = realloc(info->values, sizeof *v * (size_t)(info->ntext + 1));
    if (v)
        info->values = v;
    if (!k || !v)
        return err_set("out of memory");
    info->keys[info->ntext] = strndup(key, klen);
    info->values[info->ntext] = strndup(value, vlen);
    info->ntext++;
    return 0;
}

/* "key: value" lines of a GIF comment. */
static int comment_lines(raster_info *info, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\n')
            j++;
        const char *colon = memchr(s + i, ':', j - i);
        if (colon) {
            size_t klen = (size_t)(colon - (s + i));
            const char *val = colon + 1;
            while (val < s + j && *val == ' ')
                val++;
            if (add_text(info, s + i, klen, val, (size_t)(s + j - val)) != 0)
                return -1;
        }
        i = j + 1;
    }
    return 0;
}

static int inspect_gif(const char *path, raster_info *info)
{
    int error = 0;
    GifFileType *gif = DGifOpenFileName(path, &error);
    if (!gif)
        return err_set("%s: %s", path, GifErrorString(error));
    if (DGifSlurp(gif) != GIF_OK || gif->ImageCount < 1) {
        const char *m = gif->ImageCount < 1 ? "no frames" : GifErrorString(gif->Error);
        DGifCloseFile(gif, &error);
        return err_set("%s: %s", path, m);
    }
    info->format = "gif";
    info->width = gif->SWidth;
    info->height = gif->SHeight;
    info->frames = gif->ImageCount;
    info->loops = -1;
    GraphicsControlBlock gcb;
    if (DGifSavedExtensionToGCB(gif, 0, &gcb) == GIF_OK)
        info->delay = gcb.DelayTime / 100.0;
    int rc = 0;
    /* extensions before the first frame, and after the last */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        int count = pass ? gif->ExtensionBlockCount : gif->SavedImages[0].ExtensionBlockCount;
        ExtensionBlock *b = pass ? gif->ExtensionBlocks : gif->SavedImages[0].ExtensionBlocks;
        for (int i = 0; i < count && rc == 0; i++) {
            if (b[i].Function == APPLICATION_EXT_FUNC_CODE && b[i].ByteCount == 11 &&
                memcmp(b[i].Bytes, "NETSCAPE2.0", 11) == 0 && i + 1 < count && b[i + 1].ByteCount >= 3)
                info->loops = b[i + 1].Bytes[1] | b[i + 1].Bytes[2] << 8;
            if (b[i].Function == COMMENT_EXT_FUNC_CODE)
                rc = comment_lines(info, (const char *)b[i].Bytes, (size_t)b[i].ByteCount);
        }
    }
    /* the first frame on the canvas */
    SavedImage *im = &gif->SavedImages[0];
    ColorMapObject *map = im->ImageDesc.ColorMap ? im->ImageDesc.ColorMap : gif->SColorMap;
    size_t n = (size_t)gif->SWidth * gif->SHeight;
    uint8_t *rgb = calloc(n ? n * 3 : 1, 1);
    if (rc == 0 && (!rgb || !map)) {
        rc = err_set("%s: %s", path, rgb ? "no colour map" : "out of memory");
    }
    if (rc == 0) {
        const GifImageDesc *d = &im->ImageDesc;
        for (int y = 0; y < d->Height; y++)
            for (int x = 0; x < d->Width; x++) {
                int cx = d->Left + x, cy = d->Top + y;
                if (cx >= gif->SWidth || cy >= gif->SHeight)
                    continue;
                int idx = im->RasterBits[(size_t)y * d->Width + x];
                if (idx >= map->ColorCount)
                    continue;
                uint8_t *o = rgb + ((size_t)cy * gif->SWidth + cx) * 3;
                o[0] = map->Colors[idx].Red, o[1] = map->Colors[idx].Green, o[2] = map->Colors[idx].Blue;
            }
        rc = count_colors(rgb, n, info);
    }
    free(rgb);
    DGifCloseFile(gif, &error);
    return rc;
}

int raster_inspect(const char *path, raster_info *info)
{
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set("%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[6] = {0};
    size_t got = fread(sig, 1, 6, f);
    fclose(f);
    if (got == 6 && (memcmp(sig, "GIF87a", 6) == 0 || memcmp(sig, "GIF89a", 6) == 0)) {
        if (inspect_gif(path, info) != 0) {
            raster_info_free(info);
            return -1;
        }
        return 0;
    }
    raster im;
    if (read_png(path, &im, &info->keys, &info->values, &info->ntext) != 0) {
        raster_info_free(info);
        return -1;
    }
    info->format = "png";
    info->width = im.width;
    info->height = im.height;
    info->frames = 1;
    info->loops = -1;
    int rc = count_colors(im.rgb, (size_t)im.width * im.height, info);
    free(im.rgb);
    if (rc != 0) {
        raster_info_free(info);
        return err_prefix("%s", path);
    }
    return 0;
}

void raster_info_free(raster_info *info)
{
    for (int i = 0; i < info->ntext; i++) {
        free(info->keys[i]);
        free(info->values[i]);
    }
    free(info->keys);
    free(info->values);
    info->keys = info->values = NULL;
    info->ntext = 0;
}
