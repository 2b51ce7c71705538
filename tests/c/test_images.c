/* images and image-folder datasets against PIL/torchvision outputs stored by
 * scripts/gen-image-fixtures: decoding, PIL's bilinear resize, the ImageNet evaluation transform,
 * ImageFolder's class and file order; and the refusal of bad files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/dataset.h"
#include "io/images.h"
#include "io/safetensors.h"
#include "tap.h"

#define FIX "tests/fixtures/images"
#define FOLDER FIX "/folder"

static char tmpdir[] = "/tmp/test_images.XXXXXX";

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*n);
    if (fread(buf, 1, *n, f) != *n)
        exit(2);
    fclose(f);
    return buf;
}

static void test_decode(const st_file *fx, char **files, int nfiles)
{
    for (int k = 0; k < nfiles; k++) {
        char path[512], name[32];
        snprintf(path, sizeof path, FOLDER "/%s", files[k]);
        snprintf(name, sizeof name, "rgb.%d", k);
        const tensor *want = st_find(fx, name);
        img_rgb im;
        if (!tap_ok(want && img_load(path, &im) == 0, "%s decodes", files[k])) {
            tap_diag("%s", err_msg());
            continue;
        }
        int same_shape = want->ndim == 3 && want->shape[0] == im.height && want->shape[1] == im.width &&
                         want->shape[2] == 3;
        double maxdiff = 0;
        for (int64_t i = 0; same_shape && i < want->numel; i++)
            maxdiff = fmax(maxdiff, fabs(want->data[i] - im.px[i]));
        tap_ok(same_shape && maxdiff == 0, "%s: %dx%d RGB identical to PIL's convert(\"RGB\")", files[k], im.width,
               im.height);
        if (maxdiff)
            tap_diag("max difference %g", maxdiff);
        img_free(&im);
    }
}

static void test_grey_resize(const st_file *fx)
{
    img_rgb im;
    if (!tap_ok(img_load(FOLDER "/Bees/grey.png", &im) == 0, "grey PNG decodes"))
        return;
    uint8_t *grey = malloc((size_t)im.width * im.height);
    for (int64_t i = 0; i < (int64_t)im.width * im.height; i++)
        grey[i] = im.px[3 * i];
    const int sizes[3][2] = {{17, 23}, {90, 77}, {50, 70}};
    for (int s = 0; s < 3; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        char name[64];
        snprintf(name, sizeof name, "grey_resize_%dx%d", w, h);
        const tensor *want = st_find(fx, name);
        uint8_t *out = malloc((size_t)w * h);
        int rc = img_resize_crop(grey, im.width, im.height, 1, w, h, 0, 0, w, h, out);
        double maxdiff = 0;
        for (int64_t i = 0; rc == 0 && want && i < want->numel; i++)
            maxdiff = fmax(maxdiff, fabs(want->data[i] - out[i]));
        tap_ok(rc == 0 && want && want->numel == (int64_t)w * h && maxdiff == 0,
               "50x70 grey resized to %dx%d as PIL's bilinear filter", w, h);
        if (maxdiff)
            tap_diag("max difference %g", maxdiff);
        /* a window of the same resize equals the same part of the whole */
        if (w > 10 && h > 10) {
            uint8_t *win = malloc(5 * 7);
            rc = img_resize_crop(grey, im.width, im.height, 1, w, h, 3, 4, 5, 7, win);
            int same = rc == 0;
            for (int y = 0; same && y < 7; y++)
                for (int x = 0; x < 5; x++)
                    same &= win[y * 5 + x] == out[(y + 4) * w + x + 3];
            tap_ok(same, "a window of the %dx%d resize equals that part of the whole", w, h);
            free(win);
        }
        free(out);
    }
    free(grey);
    img_free(&im);
}

static void test_transform_sizes(void)
{
    int ow, oh;
    img_resized_size(40, 30, 28, &ow, &oh);
    tap_ok(ow == 37 && oh == 28, "Resize(28) of 40x30 gives 37x28 (long side truncated)");
    img_resized_size(33, 61, 28, &ow, &oh);
    tap_ok(ow == 28 && oh == 51, "Resize(28) of 33x61 gives 28x51");
    img_resized_size(50, 50, 256, &ow, &oh);
    tap_ok(ow == 256 && oh == 256, "a square stays square");
    img_eval t;
    img_eval_default(&t, 224);
    tap_ok(t.resize == 256 && fabsf(t.mean[0] - 0.485f) < 1e-7f && fabsf(t.std[2] - 0.225f) < 1e-7f,
           "ImageNet defaults: 224 from 256, mean and std");
    img_eval_default(&t, 24);
    tap_ok(t.resize == 27, "default resize of 24 is round(24 * 256 / 224) = 27");
    img_rgb im = {4, 4, calloc(48, 1)};
    t.resize = 20;
    t.size = 24;
    float out[3 * 24 * 24];
    tap_error(img_eval_apply(&im, &t, out) != 0, "resize 20 must be at least the crop size 24", NULL,
                "a resize below the crop size is refused");
    img_free(&im);
}

static void test_folder(const st_file *fx, char **files, int nfiles)
{
    img_eval t;
    img_eval_default(&t, 24);
    t.resize = 28;
    dataset *d = ds_folder(FOLDER, &t);
    if (!tap_ok(d != NULL, "the fixture folder opens")) {
        tap_diag("%s", err_msg());
        return;
    }
    tap_ok(ds_size(d) == nfiles, "%lld examples (ImageFolder: %d)", (long long)ds_size(d), nfiles);
    tap_ok(ds_num_classes(d) == 2 && !strcmp(ds_class_name(d, 0), "Bees") && !strcmp(ds_class_name(d, 1), "ants"),
           "classes in bytewise sorted order: Bees, ants");
    tap_ok(ds_skipped_files(d) == 1, "the text file is skipped");
    const char *skipped = ds_first_skipped(d);
    tap_ok(skipped && strlen(skipped) > 9 && !strcmp(skipped + strlen(skipped) - 9, "notes.txt"),
           "and named (%s)", skipped ? skipped : "none");
    int64_t chw[3];
    ds_example_shape(d, chw);
    tap_ok(chw[0] == 3 && chw[1] == 24 && chw[2] == 24, "examples are 3x24x24");
    const tensor *want = st_find(fx, "x"), *want_labels = st_find(fx, "labels");
    int64_t *idx = malloc(sizeof *idx * (size_t)nfiles);
    int *labels = malloc(sizeof *labels * (size_t)nfiles);
    ds_range(d, 0, nfiles, idx);
    tensor *x = ds_batch(d, nfiles, idx, labels);
    if (!tap_ok(x && want && want_labels && x->numel == want->numel, "the whole folder as one batch")) {
        tap_diag("%s", err_msg());
    } else {
        int same_labels = 1;
        for (int k = 0; k < nfiles; k++)
            same_labels &= labels[k] == (int)want_labels->data[k] && ds_label(d, k) == labels[k];
        tap_ok(same_labels, "labels as ImageFolder's targets");
        /* differences measured in pixel units before Normalize: |a - b| * std */
        const float std[3] = {0.229f, 0.224f, 0.225f};
        double maxdiff = 0, maxnorm = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            int c = (int)(i / (24 * 24) % 3);
            double dn = fabs((double)x->data[i] - want->data[i]);
            maxnorm = fmax(maxnorm, dn);
            maxdiff = fmax(maxdiff, dn * std[c] * 255);
        }
        tap_ok(maxdiff <= 1e-3, "Resize(28)+CenterCrop(24)+ToTensor+Normalize matches torchvision");
        tap_diag("max difference %.3g/255 before Normalize, %.3g after", maxdiff, maxnorm);
        /* the same examples in another order and one at a time */
        int64_t pick[3] = {nfiles - 1, 0, 4};
        int lab[3];
        tensor *y = ds_batch(d, 3, pick, lab);
        int same = y != NULL;
        for (int j = 0; same && j < 3; j++)
            same = !memcmp(y->data + j * 3 * 24 * 24, x->data + pick[j] * 3 * 24 * 24, 3 * 24 * 24 * sizeof(float)) &&
                   lab[j] == labels[pick[j]];
        tap_ok(same, "a batch of chosen indices holds those examples");
        tensor_free(y);
    }
    tensor_free(x);
    int64_t bad = nfiles;
    tap_error(ds_batch(d, 1, &bad, NULL) == NULL, "out of range", FOLDER, "an index past the end is refused");
    tap_error(ds_range(d, 5, nfiles, idx) != 0, "out of range", NULL, "a range past the end is refused");
    tap_error(ds_range(d, 0, nfiles, idx) == 0 ? 1 : 0, "", NULL, "the whole range is accepted");
    rng *r = rng_new(7);
    tap_error(ds_sample(d, r, nfiles + 1, idx) != 0, "cannot sample 10 distinct examples out of 9", NULL,
                "sampling more than the size is refused");
    rng_free(r);
    (void)files;
    free(idx);
    free(labels);
    ds_free(d);
}

static void test_bad_files(void)
{
    char path[1024], dir[512], sub[600];
    img_rgb im;
    snprintf(path, sizeof path, "%s/missing.png", tmpdir);
    tap_error(img_load(path, &im) != 0, path, "cannot open", "a missing file is named");

    snprintf(path, sizeof path, "%s/text.png", tmpdir);
    write_bytes(path, "hello, world\n", 13);
    tap_error(img_load(path, &im) != 0, path, "not a PNG or JPEG file", "a text file named .png is refused");

    size_t n;
    unsigned char *png = slurp(FOLDER "/Bees/rgb.png", &n);
    snprintf(path, sizeof path, "%s/half.png", tmpdir);
    write_bytes(path, png, n / 2);
    tap_error(img_load(path, &im) != 0, path, "bad PNG", "a truncated PNG is refused");
    png[n / 2] ^= 0x55; /* a flipped byte in the image data breaks its CRC */
    snprintf(path, sizeof path, "%s/crc.png", tmpdir);
    write_bytes(path, png, n);
    tap_error(img_load(path, &im) != 0, path, "bad PNG", "a PNG with a corrupt chunk is refused");
    free(png);

    unsigned char *jpg = slurp(FOLDER "/Bees/photo.JPG", &n);
    snprintf(path, sizeof path, "%s/half.jpg", tmpdir);
    write_bytes(path, jpg, n / 2);
    tap_error(img_load(path, &im) != 0, path, "bad JPEG", "a truncated JPEG is refused");
    write_bytes(path, jpg, 40);
    tap_error(img_load(path, &im) != 0, path, "bad JPEG", "a JPEG cut inside its header is refused");
    free(jpg);

    img_eval t;
    img_eval_default(&t, 24);
    snprintf(dir, sizeof dir, "%s/nofolder", tmpdir);
    tap_error(ds_folder(dir, &t) == NULL, dir, "cannot open folder", "a missing folder is named");
    snprintf(dir, sizeof dir, "%s/flat", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/a.png", dir);
    write_bytes(path, "x", 1);
    tap_error(ds_folder(dir, &t) == NULL, dir, "no class subfolders", "a folder without class subfolders is refused");
    snprintf(sub, sizeof sub, "%s/empty", dir);
    mkdir(sub, 0755);
    tap_error(ds_folder(dir, &t) == NULL, sub, "no .png, .jpg or .jpeg file", "an empty class folder is refused");
    /* a folder whose only image is corrupt opens (files are decoded on access) and fails on access */
    snprintf(path, sizeof path, "%s/b.PNG", sub);
    write_bytes(path, "not really", 10);
    dataset *d = ds_folder(dir, &t);
    int64_t i0 = 0;
    tap_ok(d && ds_size(d) == 1, "files are listed without decoding them");
    if (d)
        tap_error(ds_batch(d, 1, &i0, NULL) == NULL, path, "not a PNG or JPEG", "decoding errors name the file");
    ds_free(d);
    t.resize = 10;
    tap_error(ds_folder(FOLDER, &t) == NULL, "bad transform", NULL, "resize below size is refused");
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    st_file *fx = st_read(FIX "/expected.safetensors");
    if (!tap_ok(fx != NULL, "fixtures load (run scripts/gen-image-fixtures to make them)")) {
        tap_diag("%s", err_msg());
        return tap_done();
    }
    char *list = strdup(st_meta_get(fx, "files")), *files[64];
    int nfiles = 0;
    for (char *s = strtok(list, ","); s && nfiles < 64; s = strtok(NULL, ","))
        files[nfiles++] = s;
    test_decode(fx, files, nfiles);
    test_grey_resize(fx);
    test_transform_sizes();
    test_folder(fx, files, nfiles);
    test_bad_files();
    free(list);
    st_file_free(fx);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
