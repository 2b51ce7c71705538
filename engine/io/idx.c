#include "io/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/err.h"

/* Payloads beyond this are refused before allocating (Fashion-MNIST's largest is 47 MB). */
#define IDX_MAX_PAYLOAD ((int64_t)1 << 32)

#define IDX_U8 0x08

/* Reads exactly n bytes unless the stream ends; returns the count read, -1 on a gzip error. */
static int64_t read_full(gzFile g, uint8_t *buf, int64_t n)
{
    int64_t done = 0;
    while (done < n) {
        int64_t chunk = n - done < (1 << 30) ? n - done : (1 << 30);
        int got = gzread(g, buf + done, (unsigned)chunk);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        done += got;
    }
    return done;
}

/* The gzip layer's message, or "" when it has none (a clean end of file). */
static const char *gz_problem(gzFile g)
{
    int code;
    const char *m = gzerror(g, &code);
    if (code == Z_OK || code == Z_STREAM_END || !m)
        return "";
    const char *sep = strstr(m, ": "); /* zlib prefixes its name for the stream, "<fd:3>" */
    return sep ? sep + 2 : m;
}

/* Records the failure: a broken gzip stream (a bad checksum, garbage after a gzip header) is named
 * as such rather than as the IDX symptom it caused, which would mislead ("no IDX header"). */
static int fail(gzFile g, idx_array *out, const char *path, const char *what, const char *detail)
{
    const char *gz = gz_problem(g);
    if (strcmp(gz, "unexpected end of file") == 0)
        err_set("%s: truncated file: the gzip stream ends early", path);
    else if (*gz)
        err_set("%s: corrupt gzip data (%s)", path, gz);
    else
        err_set("%s: %s%s", path, what, detail);
    gzclose(g);
    idx_free(out);
    return -1;
}

int idx_read(const char *path, int ndim, idx_array *out)
{
    memset(out, 0, sizeof *out);
    if (ndim < 1 || ndim > IDX_MAX_DIM)
        return err_set("%s: cannot read IDX data of %d dimensions", path, ndim);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set("%s: cannot open: %s", path, strerror(errno));
    gzFile g = gzdopen(fd, "rb"); /* reads plain files too */
    if (!g) {
        close(fd);
        return err_set("%s: out of memory opening a gzip stream", path);
    }
    gzbuffer(g, 1 << 17);
    uint8_t head[4 + 4 * IDX_MAX_DIM];
    char detail[160];
    int64_t got = read_full(g, head, 4);
    if (got != 4)
        return fail(g, out, path, "truncated file: no IDX header", "");
    if (head[0] != 0 || head[1] != 0 || head[2] != IDX_U8 || head[3] != ndim) {
        snprintf(detail, sizeof detail, " 0x%02x%02x%02x%02x, expected 0x000008%02x (unsigned bytes, %d dimensions)",
                 head[0], head[1], head[2], head[3], ndim, ndim);
        return fail(g, out, path, "bad IDX magic", detail);
    }
    if (read_full(g, head + 4, 4 * ndim) != 4 * ndim)
        return fail(g, out, path, "truncated file: header ends before its dimensions", "");
    out->ndim = ndim;
    out->size = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        out->dims[i] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        if (out->dims[i] && out->size > IDX_MAX_PAYLOAD / out->dims[i]) {
            snprintf(detail, sizeof detail, " (at most %lld bytes)", (long long)IDX_MAX_PAYLOAD);
            return fail(g, out, path, "payload too large", detail);
        }
        out->size *= out->dims[i];
    }
    /* the buffer grows with the data that actually arrives, so that a header announcing gigabytes
       in a file of a few bytes allocates nothing of the kind */
    int64_t cap = 0;
    got = 0;
    do {
        int64_t next = cap == 0 ? (out->size < (1 << 20) ? out->size : (1 << 20)) : 2 * cap;
        if (next > out->size)
            next = out->size;
        uint8_t *grown = realloc(out->data, (size_t)(next ? next : 1));
        if (!grown)
            return fail(g, out, path, "out of memory", "");
        out->data = grown;
        cap = next;
        int64_t n = read_full(g, out->data + got, cap - got);
        if (n < 0)
            return fail(g, out, path, "corrupt data", "");
        got += n;
    } while (got == cap && cap < out->size);
    if (got != out->size) {
        snprintf(detail, sizeof detail, ": %lld bytes of data where the header announces %lld",
                 (long long)got, (long long)out->size);
        return fail(g, out, path, "truncated file", detail);
    }
    uint8_t extra;
    got = read_full(g, &extra, 1);
    if (got != 0)
        return fail(g, out, path, got < 0 ? "corrupt data" : "trailing bytes after the announced data", "");
    gzclose(g);
    return 0;
}

void idx_free(idx_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

int idx_read_images(const char *images_path, const char *labels_path, idx_images *out)
{
    memset(out, 0, sizeof *out);
    idx_array im, lab;
    if (idx_read(images_path, 3, &im) != 0)
        return -1;
    if (im.dims[1] == 0 || im.dims[2] == 0 || im.dims[1] > 65535 || im.dims[2] > 65535) {
        err_set("%s: images of %lldx%lld pixels", images_path, (long long)im.dims[1], (long long)im.dims[2]);
        idx_free(&im);
        return -1;
    }
    if (idx_read(labels_path, 1, &lab) != 0) {
        idx_free(&im);
        return -1;
    }
    if (lab.dims[0] != im.dims[0]) {
        err_set("%s: %lld labels for the %lld images of %s", labels_path, (long long)lab.dims[0],
                (long long)im.dims[0], images_path);
        idx_free(&im);
        idx_free(&lab);
        return -1;
    }
    out->count = im.dims[0];
    out->rows = (int)im.dims[1];
    out->cols = (int)im.dims[2];
    out->pixels = im.data;
    out->labels = lab.data;
    return 0;
}

void idx_images_free(idx_images *im)
{
    free(im->pixels);
    free(im->labels);
    memset(im, 0, sizeof *im);
}
