/* safetensors: round trips, the refusal (with a clear message) of every kind of malformed file,
 * conversion of other dtypes to float32 from bytes written by hand, and atomic writes. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "io/safetensors.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_safetensors.XXXXXX";

static const char *tmp_path(const char *name)
{
    static char path[4][512];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* A file made of an 8-byte length (hlen, or the header's own length when hlen < 0), the header
 * text and n data bytes. */
static const char *write_raw(const char *name, long long hlen, const char *header, const void *data, size_t n)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    unsigned long long len = hlen < 0 ? strlen(header) : (unsigned long long)hlen;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)(len >> (8 * i));
    if (!f || fwrite(prefix, 1, 8, f) != 8 || fwrite(header, 1, strlen(header), f) != strlen(header) ||
        (n && fwrite(data, 1, n, f) != n))
        exit(2);
    fclose(f);
    return p;
}

static void expect_error(const char *path, const char *part, const char *what)
{
    st_file *f = st_read(path);
    int ok = f == NULL && strstr(err_msg(), path) && strstr(err_msg(), part);
    tap_ok(ok, "%s", what);
    if (!ok)
        tap_diag("%s", f ? "the file was accepted" : err_msg());
    st_file_free(f);
}

static int same_data(const tensor *a, const tensor *b)
{
    return a && b && tensor_same_shape(a, b) && !memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel);
}

static void test_round_trip(void)
{
    int64_t s1[4] = {2, 3, 4, 5}, s2[1] = {7}, s3[2] = {0, 3}, s4[2] = {1, 1};
    tensor *t[5] = {tensor_new(4, s1), tensor_new(1, s2), tensor_new(2, s3), tensor_new(2, s4), tensor_new(0, s1)};
    for (int k = 0; k < 5; k++)
        for (int64_t i = 0; i < t[k]->numel; i++)
            t[k]->data[i] = (float)((k + 1) * 1000 + i) * (i % 2 ? -0.5f : 0.25f);
    const char *names[5] = {"features.0.weight", "classifier.bias", "empty", "one", "scalar"};
    st_meta meta[2] = {{"arch", "vgg16"}, {"note", "a \"quoted\" value"}};
    const char *p = tmp_path("round.safetensors");
    int rc = st_write(p, 5, names, (const tensor *const *)t, 2, meta);
    tap_ok(rc == 0, "st_write of 5 tensors (4-d, 1-d, empty, 1x1, scalar) and metadata");
    st_file *f = st_read(p);
    tap_ok(f && f->count == 5, "st_read finds 5 tensors");
    int all = f != NULL;
    for (int k = 0; all && k < 5; k++)
        all = same_data(st_find(f, names[k]), t[k]);
    tap_ok(all, "every tensor comes back with its shape and bits");
    tap_ok(f && f->count == 5 && !strcmp(f->names[0], "features.0.weight") && !strcmp(f->names[4], "scalar"),
           "names in the order written");
    tap_ok(f && !strcmp(st_meta_get(f, "arch"), "vgg16") && !strcmp(st_meta_get(f, "note"), "a \"quoted\" value") &&
               st_meta_get(f, "missing") == NULL,
           "metadata round trip");
    tap_ok(f && st_find(f, "nope") == NULL, "st_find of an absent name gives NULL");
    st_file_free(f);
    FILE *fp = fopen(p, "rb");
    unsigned char prefix[8];
    tap_ok(fp && fread(prefix, 1, 8, fp) == 8 && (prefix[0] % 8) == 0, "the data starts 8-byte aligned");
    if (fp)
        fclose(fp);
    for (int k = 0; k < 5; k++)
        tensor_free(t[k]);
}

static void test_rejections(void)
{
    float data[8] = {0};
    const char *p = write_raw("tiny.safetensors", 0, "", NULL, 0);
    FILE *f = fopen(p, "wb");
    fwrite("\x10\0\0", 1, 3, f);
    fclose(f);
    expect_error(p, "truncated file: 3 bytes, shorter than the 8-byte header length", "a file of 3 bytes");
    p = write_raw("hlen.safetensors", 1000, "{}", NULL, 0);
    expect_error(p, "truncated file: header of 1000 bytes announced, 2 bytes follow", "a header length beyond the file");

    /* a good file cut short: its data ends before the last offset */
    int64_t shape[1] = {8};
    tensor *t = tensor_new(1, shape);
    const char *name = "w";
    const tensor *ts[1] = {t};
    p = tmp_path("cut.safetensors");
    st_write(p, 1, &name, ts, 0, NULL);
    tensor_free(t);
    FILE *fp = fopen(p, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fp = fopen(p, "wb");
    fwrite(buf, 1, n - 5, fp);
    fclose(fp);
    expect_error(p, "run past the end of the data (27 bytes)", "data shorter than the offsets (a cut file)");

    p = write_raw("past.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", data, 24);
    expect_error(p, "tensor a: data_offsets [16, 32] run past the end of the data (24 bytes)", "offsets beyond the end");
    p = write_raw("over.safetensors", -1,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                  data, 24);
    expect_error(p, "tensor b: data_offsets overlap tensor a", "overlapping offsets");
    p = write_raw("gap.safetensors", -1,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                  data, 20);
    expect_error(p, "tensor b: gap of 4 bytes before its data", "a gap between tensors");
    p = write_raw("trail.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 12);
    expect_error(p, "4 trailing bytes after the last tensor", "trailing bytes");
    p = write_raw("dtype.safetensors", -1, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", data, 2);
    expect_error(p, "tensor a: unknown dtype 'F8_E4M3'", "an unknown dtype");
    p = write_raw("json.safetensors", -1, "{\"a\": {\"dtype\": ", data, 0);
    expect_error(p, "header is not a JSON object", "a header that is not JSON");
    p = write_raw("array.safetensors", -1, "[1, 2, 3]", data, 0);
    expect_error(p, "header is not a JSON object", "a JSON header that is not an object");
    p = write_raw("size.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", data, 20);
    expect_error(p, "tensor a: data_offsets [0, 20] do not hold 6 elements of F32", "a shape that does not fit its offsets");
    p = write_raw("entry.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", data, 8);
    expect_error(p, "tensor a: header entry needs dtype, shape and two data_offsets", "an entry without offsets");
    p = write_raw("meta.safetensors", -1, "{\"__metadata__\":{\"k\":1}}", data, 0);
    expect_error(p, "__metadata__ value of 'k' is not a string", "a metadata value that is not a string");
    expect_error(tmp_path("absent.safetensors"), "cannot open", "a missing file");

    /* two metadata maps once overflowed the heap: the second reallocated the arrays, the count stayed */
    p = write_raw("meta2.safetensors", -1,
                  "{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"},\"__metadata__\":{\"d\":\"4\"}}", data, 0);
    expect_error(p, "header has two __metadata__ entries", "a header with two __metadata__ maps");
    p = write_raw("metakey.safetensors", -1, "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", data, 0);
    expect_error(p, "__metadata__ key 'a' appears twice in the header", "a metadata key given twice");
    p = write_raw("twice.safetensors", -1,
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
                  "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                  data, 20);
    expect_error(p, "tensor 'w' appears twice in the header", "a tensor name given twice");
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void test_conversions(void)
{
    /* F16: 1, -2, 0.5, 65504 (largest), 2^-24 (smallest subnormal), 2^-14 (smallest normal), -0, inf */
    static const unsigned f16[8] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00};
    static const float f16_want[8] = {1, -2, 0.5f, 65504, 5.9604645e-8f, 6.1035156e-5f, -0.0f, 1.0f / 0.0f};
    /* BF16: 1, -3.5, 3.140625, 2^-126 */
    static const unsigned bf16[4] = {0x3f80, 0xc060, 0x4049, 0x0080};
    static const float bf16_want[4] = {1, -3.5f, 3.140625f, 1.1754944e-38f};
    static const double f64[3] = {1.5, -1e-3, 1e10};
    static const long long i64[3] = {-5, 123456789, 0};
    unsigned char data[16 + 8 + 24 + 24];
    for (int i = 0; i < 8; i++)
        put16(data + 2 * i, f16[i]);
    for (int i = 0; i < 4; i++)
        put16(data + 16 + 2 * i, bf16[i]);
    for (int i = 0; i < 3; i++) { /* little-endian hosts only, as the format */
        memcpy(data + 24 + 8 * i, &f64[i], 8);
        memcpy(data + 48 + 8 * i, &i64[i], 8);
    }
    const char *p = write_raw("dtypes.safetensors", -1,
                              "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
                              "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]},"
                              "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[24,48]},"
                              "\"i\":{\"dtype\":\"I64\",\"shape\":[3,1],\"data_offsets\":[48,72]}}",
                              data, sizeof data);
    st_file *f = st_read(p);
    if (!tap_ok(f != NULL, "a file of F16, BF16, F64 and I64 tensors reads")) {
        tap_diag("%s", err_msg());
        return;
    }
    const tensor *h = st_find(f, "h"), *b = st_find(f, "b"), *d = st_find(f, "d"), *i = st_find(f, "i");
    int ok = h && h->ndim == 2 && h->shape[0] == 2 && h->shape[1] == 4;
    for (int k = 0; ok && k < 8; k++)
        ok = h->data[k] == f16_want[k];
    tap_ok(ok && signbit(h->data[6]), "F16 to float32: normal, largest, subnormal, -0 and inf values");
    ok = b && b->numel == 4;
    for (int k = 0; ok && k < 4; k++)
        ok = b->data[k] == bf16_want[k];
    tap_ok(ok, "BF16 to float32");
    ok = d && d->numel == 3;
    for (int k = 0; ok && k < 3; k++)
        ok = d->data[k] == (float)f64[k];
    tap_ok(ok, "F64 to float32 (rounded)");
    ok = i && i->ndim == 2 && i->shape[0] == 3 && i->shape[1] == 1;
    for (int k = 0; ok && k < 3; k++)
        ok = i->data[k] == (float)i64[k];
    tap_ok(ok, "I64 to float32");
    st_file_free(f);
}

/* Number of entries in tmpdir whose name starts with prefix. */
static int count_entries(const char *prefix)
{
    DIR *dir = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (dir)
        closedir(dir);
    return n;
}

static void test_atomic_write(void)
{
    int64_t small[1] = {4}, large[1] = {100000};
    tensor *a = tensor_new(1, small), *big = tensor_new(1, large);
    a->data[0] = 42;
    const char *name = "w";
    const tensor *ta[1] = {a}, *tb[1] = {big};

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/w.safetensors", tmpdir);
    int rc = st_write(missing, 1, &name, ta, 0, NULL);
    tap_ok(rc != 0 && strstr(err_msg(), missing) && strstr(err_msg(), "cannot create"),
           "writing into a missing directory fails, naming the path");
    tap_ok(access(missing, F_OK) != 0, "and leaves no file behind");

    const char *p = tmp_path("atomic.safetensors");
    st_write(p, 1, &name, ta, 0, NULL);
    /* a write that fails half-way: the file size limit stops the data (SIGXFSZ ignored: EFBIG) */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    rc = st_write(p, 1, &name, tb, 0, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    tap_ok(rc != 0 && strstr(err_msg(), p) && strstr(err_msg(), "write failed"), "a write that fails half-way reports it");
    if (rc == 0)
        tap_diag("the write succeeded despite the size limit");
    st_file *f = st_read(p);
    tap_ok(f && same_data(st_find(f, "w"), a), "the existing target is left untouched");
    st_file_free(f);
    tap_ok(count_entries("atomic.safetensors") == 1, "no temporary file is left behind");
    rc = st_write(p, 1, &name, tb, 0, NULL);
    f = st_read(p);
    tap_ok(rc == 0 && f && same_data(st_find(f, "w"), big), "a successful write replaces the target");
    st_file_free(f);

    /* temporaries of writers killed mid-write are removed by the next write; a live one stays */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0); /* a pid whose process is gone */
    char dead[700], live[700], other[700];
    snprintf(dead, sizeof dead, "%s.tmp.%ld.abcdef", p, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld.ghijkl", p, (long)getpid());
    snprintf(other, sizeof other, "%s/other.safetensors.tmp.%ld.mnopqr", tmpdir, (long)child);
    FILE *fp;
    const char *fakes[3] = {dead, live, other};
    for (int k = 0; k < 3; k++)
        if ((fp = fopen(fakes[k], "w")))
            fclose(fp);
    rc = st_write(p, 1, &name, ta, 0, NULL);
    tap_ok(rc == 0 && access(dead, F_OK) != 0, "a temporary left by a killed writer is removed by the next write");
    tap_ok(access(live, F_OK) == 0, "a temporary of a running writer is kept");
    tap_ok(access(other, F_OK) == 0, "a temporary of another target is kept");
    unlink(live);
    unlink(other);
    tensor_free(a);
    tensor_free(big);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_rejections();
    test_conversions();
    test_atomic_write();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
