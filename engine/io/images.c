#include "io/images.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "core/err.h"

/* Larger images are refused rather than allocated. */
#define IMG_MAX_SIDE 65535
static int64_t max_pixels = (int64_t)1 << 28;

void img_set_max_pixels(int64_t n) { max_pixels = n > 0 ? n : (int64_t)1 << 28; }

void img_free(img_rgb *im)
{
    free(im->px);
    memset(im, 0, sizeof *im);
}

static int check_dims(const char *path, int64_t w, int64_t h)
{
    if (w < 1 || h < 1 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || w * h > max_pixels)
        return err_set("%s: unsupported image size %lldx%lld", path, (long long)w, (long long)h);
    return 0;
}

/* Copies rows of 1 to 4 channels (grey, grey+alpha, RGB, RGBA) to RGB, dropping alpha. */
static void to_rgb(const uint8_t *src, int channels, int64_t n, uint8_t *dst)
{
    for (int64_t i = 0; i < n; i++, src += channels, dst += 3) {
        if (channels < 3) {
            dst[0] = dst[1] = dst[2] = src[0];
        } else {
            dst[0] = src[0];
            dst[1] = src[1];
            dst[2] = src[2];
        }
    }
}

/* ---- PNG (libpng reports errors by longjmp through png_jmpbuf) ---- */

typedef struct png_ctx {
    char msg[200];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* benign (e.g. a bad ancillary chunk): the pixels are still right */
}

static int load_png(FILE *f, const char *path, img_rgb *out)
{
    png_ctx ctx = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return err_set("%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        img_free(out);
        return err_set("%s: bad PNG: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (check_dims(path, w, h) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (png_get_bit_depth(png, info) != 8 || channels < 1 || channels > 4 || rowbytes != (size_t)w * channels)
        png_error(png, "unexpected pixel layout after expansion");
    raw = malloc(rowbytes * h);
    rows = malloc(sizeof *rows * h);
    out->px = malloc((size_t)w * h * 3);
    if (!raw || !rows || !out->px)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* checks the CRC of the last data chunk: a truncated file fails here */
    out->width = (int)w;
    out->height = (int)h;
    to_rgb(raw, channels, (int64_t)w * h, out->px);
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    return 0;
}

/* ---- JPEG (libjpeg reports errors through error_exit, which must not return) ---- */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    c->mgr.format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

/* Warnings are ignored except a premature end of data, which PIL also refuses. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (level < 0 && c->mgr.msg_code == JWRN_JPEG_EOF)
        jpeg_on_error(cinfo);
}

static int load_jpeg(FILE *f, const char *path, img_rgb *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    cinfo.err = jpeg_std_error(&ctx.mgr);
    ctx.mgr.error_exit = jpeg_on_error;
    ctx.mgr.emit_message = jpeg_on_message;
    ctx.msg[0] = '\0';
    if (setjmp(ctx.jump)) {
        jpeg_destroy_decompress(&cinfo);
        img_free(out);
        return err_set("%s: bad JPEG: %s", path, ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return err_set("%s: CMYK JPEG images are not supported", path);
    }
    if (check_dims(path, cinfo.image_width, cinfo.image_height) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    cinfo.out_color_space = JCS_RGB; /* libjpeg-turbo's default DCT and upsampling, as PIL uses */
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        snprintf(ctx.msg, sizeof ctx.msg, "%d output components", cinfo.output_components);
        longjmp(ctx.jump, 1);
    }
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    out->px = malloc((size_t)w * h * 3);
    if (!out->px) {
        snprintf(ctx.msg, sizeof ctx.msg, "out of memory");
        longjmp(ctx.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->px + (size_t)cinfo.output_scanline * w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    out->width = w;
    out->height = h;
    return 0;
}

int img_load(const char *path, img_rgb *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set("%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, sizeof sig, f);
    rewind(f);
    int rc;
    if (n == 8 && png_sig_cmp(sig, 0, 8) == 0)
        rc = load_png(f, path, out);
    else if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff)
        rc = load_jpeg(f, path, out);
    else
        rc = err_set("%s: not a PNG or JPEG file", path);
    fclose(f);
    return rc;
}

/* ---- resampling, the way PIL's ImagingResample does it for 8-bit images ---- */

/* Fixed-point coefficients: 32 bits less 8 for the sample and 2 of headroom for the sum. */
#define PRECISION_BITS 22

typedef struct coeffs {
    int ksize;     /* coefficients stored per output pixel */
    int *first;    /* first input pixel of each output pixel */
    int *count;    /* number of input pixels it reads */
    int32_t *k;    /* count fixed-point weights, ksize apart */
} coeffs;

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights of output pixels out0 .. out0+n-1 of a resize from in_size to out_size pixels. */
static int coeffs_init(coeffs *c, int in_size, int out_size, int out0, int n)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the triangle's support of 1 widened when shrinking */
    c->ksize = (int)ceil(support) * 2 + 1;
    c->first = malloc(sizeof *c->first * (size_t)n);
    c->count = malloc(sizeof *c->count * (size_t)n);
    c->k = malloc(sizeof *c->k * (size_t)n * (size_t)c->ksize);
    double *w = malloc(sizeof *w * (size_t)c->ksize);
    if (!c->first || !c->count || !c->k || !w) {
        free(w);
        return err_set("out of memory resizing an image");
    }
    for (int i = 0; i < n; i++) {
        double center = (out0 + i + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        double sum = 0;
        for (int x = lo; x < hi; x++)
            sum += w[x - lo] = triangle((x - center + 0.5) / filterscale);
        for (int x = lo; x < hi; x++) {
            double v = sum != 0.0 ? w[x - lo] / sum : w[x - lo];
            c->k[(size_t)i * c->ksize + (x - lo)] = (int32_t)(v < 0 ? v * (1 << PRECISION_BITS) - 0.5
                                                                  : v * (1 << PRECISION_BITS) + 0.5);
        }
        c->first[i] = lo;
        c->count[i] = hi - lo;
    }
    free(w);
    return 0;
}

static void coeffs_free(coeffs *c)
{
    free(c->first);
    free(c->count);
    free(c->k);
}

static uint8_t round8(int64_t acc)
{
    acc = (acc + ((int64_t)1 << (PRECISION_BITS - 1))) >> PRECISION_BITS;
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

int img_resize_crop(const uint8_t *in, int w, int h, int channels, int ow, int oh, int x0, int y0,
                    int cw, int ch, uint8_t *out)
{
    if (ow < 1 || oh < 1 || x0 < 0 || y0 < 0 || cw < 1 || ch < 1 || x0 + cw > ow || y0 + ch > oh)
        return err_set("bad resize window %dx%d at (%d, %d) of %dx%d", cw, ch, x0, y0, ow, oh);
    coeffs hc = {0}, vc = {0};
    uint8_t *tmp = NULL;
    int rc = -1;
    if (coeffs_init(&hc, w, ow, x0, cw) != 0 || coeffs_init(&vc, h, oh, y0, ch) != 0)
        goto done;
    /* horizontal pass over the input rows the vertical pass will read */
    int row0 = vc.first[0], rows = vc.first[ch - 1] + vc.count[ch - 1] - row0;
    tmp = malloc((size_t)rows * cw * channels);
    if (!tmp) {
        err_set("out of memory resizing an image");
        goto done;
    }
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)(row0 + y) * w * channels;
        uint8_t *dst = tmp + (size_t)y * cw * channels;
        if (ow == w) { /* PIL skips a pass that keeps the size */
            memcpy(dst, src + (size_t)x0 * channels, (size_t)cw * channels);
            continue;
        }
        for (int x = 0; x < cw; x++) {
            const int32_t *k = hc.k + (size_t)x * hc.ksize;
            for (int c = 0; c < channels; c++) {
                int64_t acc = 0;
                for (int j = 0; j < hc.count[x]; j++)
                    acc += (int64_t)src[(size_t)(hc.first[x] + j) * channels + c] * k[j];
                dst[(size_t)x * channels + c] = round8(acc);
            }
        }
    }
    /* vertical pass */
    for (int y = 0; y < ch; y++) {
        const int32_t *k = vc.k + (size_t)y * vc.ksize;
        uint8_t *dst = out + (size_t)y * cw * channels;
        if (oh == h) {
            memcpy(dst, tmp + (size_t)(y0 + y - row0) * cw * channels, (size_t)cw * channels);
            continue;
        }
        for (int i = 0; i < cw * channels; i++) {
            int64_t acc = 0;
            for (int j = 0; j < vc.count[y]; j++)
                acc += (int64_t)tmp[(size_t)(vc.first[y] - row0 + j) * cw * channels + i] * k[j];
            dst[i] = round8(acc);
        }
    }
    rc = 0;
done:
    coeffs_free(&hc);
    coeffs_free(&vc);
    free(tmp);
    return rc;
}

void img_eval_default(img_eval *t, int size)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    t->size = size;
    t->resize = (int)lround(size * 256.0 / 224.0);
    memcpy(t->mean, mean, sizeof mean);
    memcpy(t->std, std, sizeof std);
}

void img_resized_size(int w, int h, int resize, int *ow, int *oh)
{
    if (w <= h) {
        *ow = resize;
        *oh = (int)((double)((int64_t)resize * h) / w);
    } else {
        *oh = resize;
        *ow = (int)((double)((int64_t)resize * w) / h);
    }
}

/* Python's round(d / 2.0): halves go to the even neighbour, as torchvision's CenterCrop rounds. */
static int half_even(int d)
{
    int k = d / 2;
    return d % 2 && k % 2 ? k + 1 : k;
}

int img_eval_apply(const img_rgb *im, const img_eval *t, float *out)
{
    if (t->size < 1 || t->resize < t->size)
        return err_set("image transform: resize %d must be at least the crop size %d", t->resize, t->size);
    int ow, oh, s = t->size;
    img_resized_size(im->width, im->height, t->resize, &ow, &oh);
    uint8_t *crop = malloc((size_t)s * s * 3);
    if (!crop)
        return err_set("out of memory");
    if (img_resize_crop(im->px, im->width, im->height, 3, ow, oh, half_even(ow - s), half_even(oh - s), s, s,
                        crop) != 0) {
        free(crop);
        return -1;
    }
    for (int c = 0; c < 3; c++) {
        float *dst = out + (size_t)c * s * s;
        for (int64_t i = 0; i < (int64_t)s * s; i++)
            dst[i] = ((float)crop[i * 3 + c] / 255.0f - t->mean[c]) / t->std[c];
    }
    free(crop);
    return 0;
}
