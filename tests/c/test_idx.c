/* IDX files (gz) written here with zlib and read back, the refusal of malformed ones, the real
 * Fashion-MNIST files when installed, and the Fashion-MNIST dataset's conversion to floats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "core/err.h"
#include "io/dataset.h"
#include "io/idx.h"
#include "tap.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char tmpdir[] = "/tmp/test_idx.XXXXXX";

/* Writes magic, dims and payload (n bytes) to tmpdir/name, gzip-compressed unless plain is set. */
static const char *write_idx(const char *name, uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *payload,
                             size_t n, int plain)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    uint8_t head[4 + 4 * 4];
    for (int i = 0; i < 4; i++)
        head[i] = (uint8_t)(magic >> (24 - 8 * i));
    for (int d = 0; d < ndim; d++)
        for (int i = 0; i < 4; i++)
            head[4 + 4 * d + i] = (uint8_t)(dims[d] >> (24 - 8 * i));
    size_t hn = 4 + 4 * (size_t)ndim;
    if (plain) {
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(head, 1, hn, f) != hn || (n && fwrite(payload, 1, n, f) != n))
            exit(2);
        fclose(f);
    } else {
        gzFile g = gzopen(p, "wb");
        if (!g || gzwrite(g, head, (unsigned)hn) != (int)hn || (n && gzwrite(g, payload, (unsigned)n) != (int)n))
            exit(2);
        gzclose(g);
    }
    return p;
}

static void test_round_trip(void)
{
    uint8_t px[3 * 2 * 4], lab[3] = {7, 0, 9};
    for (int i = 0; i < 24; i++)
        px[i] = (uint8_t)(i * 11 + 3);
    uint32_t di[3] = {3, 2, 4}, dl[1] = {3};
    const char *im = write_idx("im.gz", 0x803, 3, di, px, sizeof px, 0);
    const char *lb = write_idx("lb.gz", 0x801, 1, dl, lab, sizeof lab, 0);
    idx_images r;
    int rc = idx_read_images(im, lb, &r);
    tap_ok(rc == 0 && r.count == 3 && r.rows == 2 && r.cols == 4, "gz images 3x2x4 and labels read back");
    tap_ok(rc == 0 && !memcmp(r.pixels, px, sizeof px) && !memcmp(r.labels, lab, sizeof lab),
           "pixels and labels are the bytes written, in order");
    if (rc)
        tap_diag("%s", err_msg());
    idx_images_free(&r);

    const char *plain = write_idx("plain.idx", 0x803, 3, di, px, sizeof px, 1);
    idx_array a;
    rc = idx_read(plain, 3, &a);
    tap_ok(rc == 0 && a.dims[0] == 3 && a.dims[1] == 2 && a.dims[2] == 4 && a.size == 24 && !memcmp(a.data, px, 24),
           "an uncompressed IDX file reads too");
    idx_free(&a);

    uint32_t d0[1] = {0};
    const char *empty = write_idx("empty.gz", 0x801, 1, d0, NULL, 0, 0);
    rc = idx_read(empty, 1, &a);
    tap_ok(rc == 0 && a.size == 0, "an empty array is read as such");
    idx_free(&a);
}

static void test_errors(void)
{
    uint8_t px[24] = {0}, lab[4] = {0};
    uint32_t di[3] = {3, 2, 4}, dl[1] = {3}, dl4[1] = {4};
    idx_array a;
    idx_images r;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.gz", tmpdir);
    tap_error(idx_read(missing, 3, &a) != 0, missing, "cannot open", "a missing file is named");

    const char *p = write_idx("magic.gz", 0x903, 3, di, px, 24, 0);
    tap_error(idx_read(p, 3, &a) != 0, p, "bad IDX magic 0x00000903, expected 0x00000803", "a signed-byte dtype is refused");
    p = write_idx("rank.gz", 0x801, 1, dl, lab, 3, 0);
    tap_error(idx_read(p, 3, &a) != 0, p, "bad IDX magic 0x00000801, expected 0x00000803",
                "a label file where images are expected is refused");
    p = write_idx("junk.gz", 0x12340803, 3, di, px, 24, 0);
    tap_error(idx_read(p, 3, &a) != 0, p, "bad IDX magic 0x12340803", "non-zero leading magic bytes are refused");

    p = write_idx("short.gz", 0x803, 3, di, px, 20, 0);
    tap_error(idx_read(p, 3, &a) != 0, p, "truncated file: 20 bytes of data where the header announces 24",
                "a truncated payload is refused");
    p = write_idx("head.gz", 0x803, 1, di, NULL, 0, 0); /* magic says 3 dims, one size follows */
    tap_error(idx_read(p, 3, &a) != 0, p, "header ends before its dimensions", "a truncated header is refused");
    p = write_idx("long.gz", 0x803, 3, di, px, 24, 0);
    {
        gzFile g = gzopen(p, "ab"); /* a second gzip member: zlib reads on into it */
        gzputc(g, 1);
        gzclose(g);
    }
    tap_error(idx_read(p, 3, &a) != 0, p, "trailing bytes", "trailing bytes are refused");
    p = write_idx("long.idx", 0x803, 3, di, px, 24, 1);
    {
        FILE *f = fopen(p, "ab");
        fputc(0, f);
        fclose(f);
    }
    tap_error(idx_read(p, 3, &a) != 0, p, "trailing bytes", "trailing bytes of a plain file are refused");

    /* a gzip stream cut in the middle */
    uint8_t big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7919 % 251);
    uint32_t db[3] = {4, 32, 32};
    p = write_idx("cut.gz", 0x803, 3, db, big, sizeof big, 0);
    FILE *f = fopen(p, "rb");
    uint8_t buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(p, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    tap_error(idx_read(p, 3, &a) != 0, p, "truncated file", "a cut gzip stream is refused");

    /* a wrong checksum in the gzip trailer, and garbage after a gzip header: named as gzip damage */
    p = write_idx("crc.gz", 0x803, 3, db, big, sizeof big, 0);
    f = fopen(p, "rb");
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    buf[n - 8] ^= 0xff; /* the CRC-32 of the trailer */
    f = fopen(p, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    tap_error(idx_read(p, 3, &a) != 0, p, "corrupt gzip data (incorrect data check)", "a bad gzip checksum is named");
    static const uint8_t garbage[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03,
                                      0x04, 0x05, 0x06, 0x07, 0x08};
    char garbage_path[512];
    snprintf(garbage_path, sizeof garbage_path, "%s/garbage.gz", tmpdir);
    p = garbage_path;
    f = fopen(p, "wb");
    fwrite(garbage, 1, sizeof garbage, f);
    fclose(f);
    tap_error(idx_read(p, 3, &a) != 0, p, "corrupt gzip data", "garbage after a gzip header is named as such");

    /* a header announcing 4 GB in a file of a few bytes: nothing of that size is allocated (the
       address space is limited to 1 GB around the call, except under AddressSanitizer) */
    uint32_t dhuge[3] = {4000, 1000, 1000};
    p = write_idx("huge.gz", 0x803, 3, dhuge, px, 24, 0);
    struct rlimit old_as, small_as;
    getrlimit(RLIMIT_AS, &old_as);
    small_as = old_as;
    small_as.rlim_cur = (rlim_t)1 << 30;
#ifndef __SANITIZE_ADDRESS__
    setrlimit(RLIMIT_AS, &small_as);
#endif
    tap_error(idx_read(p, 3, &a) != 0, p, "truncated file: 24 bytes of data where the header announces 4000000000",
              "a header announcing 4 GB allocates only what the file holds");
    setrlimit(RLIMIT_AS, &old_as);

    const char *im = write_idx("im3.gz", 0x803, 3, di, px, 24, 0);
    const char *lb = write_idx("lb4.gz", 0x801, 1, dl4, lab, 4, 0);
    tap_error(idx_read_images(im, lb, &r) != 0, lb, "4 labels for the 3 images", "a count mismatch is refused");
    uint32_t dz[3] = {3, 0, 4};
    im = write_idx("zero.gz", 0x803, 3, dz, NULL, 0, 0);
    tap_error(idx_read_images(im, lb, &r) != 0, im, "images of 0x4 pixels", "images without pixels are refused");
}

static void test_fashion(void)
{
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        tap_ok(1, "# SKIP Fashion-MNIST is not installed (dataset-fashion-mnist)");
        return;
    }
    idx_images r;
    int rc = idx_read_images(FMNIST "/t10k-images-idx3-ubyte.gz", FMNIST "/t10k-labels-idx1-ubyte.gz", &r);
    tap_ok(rc == 0 && r.count == 10000 && r.rows == 28 && r.cols == 28, "Fashion-MNIST test: 10000 images of 28x28");
    int per[10] = {0}, bad = 0;
    for (int64_t i = 0; rc == 0 && i < r.count; i++) {
        if (r.labels[i] > 9)
            bad++;
        else
            per[r.labels[i]]++;
    }
    int balanced = bad == 0;
    for (int k = 0; k < 10; k++)
        balanced &= per[k] == 1000;
    tap_ok(rc == 0 && balanced, "labels 0..9, 1000 of each");
    tap_ok(rc == 0 && r.labels[0] == 9, "the first test image is an ankle boot (9)");

    /* the dataset's float view against a naive conversion of the same bytes */
    ds_fashion_opts o;
    ds_fashion_defaults(&o);
    o.channels = 3;
    o.size = 32;
    dataset *d = ds_fashion_mnist(&o);
    int64_t idx[2] = {1234, 0};
    int labels[2];
    tensor *x = d ? ds_batch(d, 2, idx, labels) : NULL;
    tap_ok(x && x->shape[0] == 2 && x->shape[1] == 3 && x->shape[2] == 32 && x->shape[3] == 32,
           "3 channels at 32x32: a 2x3x32x32 batch");
    double maxdiff = 0;
    for (int j = 0; x && j < 2; j++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int xx = 0; xx < 32; xx++) {
                    int inside = y >= 2 && y < 30 && xx >= 2 && xx < 30;
                    int v = inside ? r.pixels[idx[j] * 784 + (y - 2) * 28 + (xx - 2)] : 0;
                    double want = ((double)v / 255.0 - 0.2860) / 0.3530;
                    double got = x->data[((j * 3 + c) * 32 + y) * 32 + xx];
                    maxdiff = fmax(maxdiff, fabs(got - want));
                }
    tap_ok(x && maxdiff < 1e-5 && labels[0] == r.labels[1234] && labels[1] == 9,
           "padded by 2 black pixels, normalized (x/255 - 0.2860)/0.3530, grey replicated, labels kept");
    if (maxdiff >= 1e-5)
        tap_diag("max difference %g", maxdiff);
    tensor_free(x);
    ds_free(d);

    ds_fashion_defaults(&o);
    o.normalize = 0;
    d = ds_fashion_mnist(&o);
    x = d ? ds_batch(d, 1, idx, labels) : NULL;
    int raw = x != NULL;
    for (int i = 0; raw && i < 784; i++)
        raw = x->data[i] == (float)r.pixels[1234 * 784 + i] / 255.0f;
    tap_ok(raw, "normalize = false gives x/255 at 1x28x28");
    tensor_free(x);
    ds_free(d);
    idx_images_free(&r);

    ds_fashion_defaults(&o);
    o.path = tmpdir;
    tap_error(ds_fashion_mnist(&o) == NULL, "t10k-images-idx3-ubyte.gz: cannot open", tmpdir,
                "a folder without the files is named");
    ds_fashion_defaults(&o);
    o.train = 1;
    d = ds_fashion_mnist(&o);
    int per_train[10] = {0};
    for (int64_t i = 0; d && i < ds_size(d); i++)
        per_train[ds_label(d, i)]++;
    balanced = d && ds_size(d) == 60000;
    for (int k = 0; k < 10; k++)
        balanced &= per_train[k] == 6000;
    tap_ok(balanced, "Fashion-MNIST train: 60000 examples, 6000 of each class");
    ds_free(d);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_errors();
    test_fashion();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
