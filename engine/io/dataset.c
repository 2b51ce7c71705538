#include "io/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/err.h"
#include "io/idx.h"

enum { DS_FASHION, DS_FOLDER };

struct dataset {
    int kind;
    char *name;
    int64_t n;
    int c, h, w;
    int nclasses;
    char **classes;
    int *labels;
    /* Fashion-MNIST */
    idx_images fm;
    float lut[256];     /* byte value -> output value */
    int pad_top, pad_left, resize;
    /* folder */
    char **files;
    img_eval eval;
    int64_t skipped;
    char *first_skipped; /* path of the first skipped entry, to name it */
};

static const char *const fashion_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

void ds_fashion_defaults(ds_fashion_opts *o)
{
    o->path = "/usr/share/datasets/fashion-mnist";
    o->train = 0;
    o->normalize = 1;
    o->mean = 0.2860f;
    o->std = 0.3530f;
    o->channels = 1;
    o->size = 28;
    o->resize = 0;
}

void ds_free(dataset *d)
{
    if (!d)
        return;
    for (int k = 0; d->classes && k < d->nclasses; k++)
        free(d->classes[k]);
    for (int64_t i = 0; d->files && i < d->n; i++)
        free(d->files[i]);
    free(d->classes);
    free(d->files);
    free(d->first_skipped);
    free(d->labels);
    free(d->name);
    idx_images_free(&d->fm);
    free(d);
}

static dataset *ds_alloc(int kind, const char *name)
{
    dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->name = strdup(name))) {
        free(d);
        err_set("out of memory");
        return NULL;
    }
    d->kind = kind;
    return d;
}

dataset *ds_fashion_mnist(const ds_fashion_opts *o)
{
    if (o->channels != 1 && o->channels != 3) {
        err_set("fashion-mnist: channels must be 1 or 3, got %d", o->channels);
        return NULL;
    }
    if (o->size < 1 || o->size > 4096 || (!o->resize && o->size < 28)) {
        err_set("fashion-mnist: size %d %s", o->size,
                o->resize ? "is out of range 1..4096" : "is smaller than 28 (resize to shrink)");
        return NULL;
    }
    if (o->normalize && !(o->std > 0)) {
        err_set("fashion-mnist: std must be positive");
        return NULL;
    }
    const char *split = o->train ? "train" : "t10k";
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", o->path, split);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", o->path, split);
    dataset *d = ds_alloc(DS_FASHION, o->train ? "fashion-mnist train" : "fashion-mnist test");
    if (!d)
        return NULL;
    if (idx_read_images(images, labels, &d->fm) != 0)
        goto fail;
    if (d->fm.count == 0) {
        err_set("%s: no images", images);
        goto fail;
    }
    d->n = d->fm.count;
    d->c = o->channels;
    d->h = d->w = o->size;
    d->resize = o->resize;
    if (!o->resize && (d->fm.rows > o->size || d->fm.cols > o->size)) {
        err_set("%s: images of %dx%d do not fit in %dx%d", images, d->fm.rows, d->fm.cols, o->size, o->size);
        goto fail;
    }
    d->pad_top = (o->size - d->fm.rows) / 2;
    d->pad_left = (o->size - d->fm.cols) / 2;
    d->nclasses = 10;
    d->classes = calloc(10, sizeof *d->classes);
    d->labels = malloc(sizeof *d->labels * (size_t)d->n);
    if (!d->classes || !d->labels) {
        err_set("out of memory");
        goto fail;
    }
    for (int k = 0; k < 10; k++)
        if (!(d->classes[k] = strdup(fashion_classes[k]))) {
            err_set("out of memory");
            goto fail;
        }
    for (int64_t i = 0; i < d->n; i++) {
        if (d->fm.labels[i] >= 10) {
            err_set("%s: label %d of image %lld is not in 0..9", labels, d->fm.labels[i], (long long)i + 1);
            goto fail;
        }
        d->labels[i] = d->fm.labels[i];
    }
    /* the same float arithmetic as torchvision's ToTensor then Normalize */
    for (int v = 0; v < 256; v++) {
        float x = (float)v / 255.0f;
        d->lut[v] = o->normalize ? (x - o->mean) / o->std : x;
    }
    return d;
fail:
    ds_free(d);
    return NULL;
}

/* ---- image folders ---- */

typedef struct file_entry {
    char *dir, *name; /* sorted by directory, then by name, as torchvision walks a class */
} file_entry;

typedef struct file_list {
    file_entry *items;
    int64_t count, cap, skipped;
    char *first_skipped;
} file_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b)
{
    const file_entry *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The entry names of a directory (without . and ..), sorted; -1 with err_set on failure. */
static int list_dir(const char *path, char ***names, int64_t *count)
{
    *names = NULL;
    *count = 0;
    DIR *dir = opendir(path);
    if (!dir)
        return err_set("%s: cannot open folder: %s", path, strerror(errno));
    int64_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*names, sizeof **names * (size_t)cap);
            if (!grown)
                goto oom;
            *names = grown;
        }
        if (!((*names)[*count] = strdup(e->d_name)))
            goto oom;
        (*count)++;
    }
    closedir(dir);
    if (*count > 1)
        qsort(*names, (size_t)*count, sizeof **names, cmp_str);
    return 0;
oom:
    closedir(dir);
    for (int64_t i = 0; i < *count; i++)
        free((*names)[i]);
    free(*names);
    *names = NULL;
    *count = 0;
    return err_set("%s: out of memory listing the folder", path);
}

static void free_names(char **names, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* Collects the image files under dir, recursing into subfolders (bounded depth: no symlink loops). */
static int collect(const char *dir, int depth, file_list *out)
{
    if (depth > 32)
        return err_set("%s: folders nested too deeply", dir);
    char **names;
    int64_t n;
    if (list_dir(dir, &names, &n) != 0)
        return -1;
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        char *path = join(dir, names[i]);
        if (!path) {
            rc = err_set("out of memory");
            break;
        }
        if (is_dir(path)) {
            rc = collect(path, depth + 1, out);
        } else if (has_image_ext(names[i])) {
            if (out->count == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 256;
                file_entry *grown = realloc(out->items, sizeof *grown * (size_t)out->cap);
                if (!grown) {
                    free(path);
                    rc = err_set("out of memory");
                    break;
                }
                out->items = grown;
            }
            file_entry *e = &out->items[out->count];
            e->dir = strdup(dir);
            e->name = names[i];
            names[i] = NULL;
            if (!e->dir) {
                free(e->name);
                rc = err_set("out of memory");
            } else {
                out->count++;
            }
        } else {
            if (out->skipped++ == 0)
                out->first_skipped = strdup(path);
        }
        free(path);
    }
    free_names(names, n);
    return rc;
}

dataset *ds_folder(const char *path, const img_eval *t)
{
    if (t->size < 1 || t->size > 4096 || t->resize < t->size || t->resize > 65535) {
        err_set("%s: bad transform: size %d, resize %d (need 1 <= size <= resize)", path, t->size, t->resize);
        return NULL;
    }
    for (int c = 0; c < 3; c++)
        if (!(t->std[c] > 0)) {
            err_set("%s: std must be positive", path);
            return NULL;
        }
    dataset *d = ds_alloc(DS_FOLDER, path);
    char **names = NULL;
    int64_t nnames = 0;
    if (!d || list_dir(path, &names, &nnames) != 0)
        goto fail;
    d->classes = calloc((size_t)nnames + 1, sizeof *d->classes);
    if (!d->classes) {
        err_set("out of memory");
        goto fail;
    }
    int64_t cap = 0;
    for (int64_t i = 0; i < nnames; i++) {
        char *sub = join(path, names[i]);
        if (!sub) {
            err_set("out of memory");
            goto fail;
        }
        if (!is_dir(sub)) {
            if (d->skipped++ == 0)
                d->first_skipped = sub;
            else
                free(sub);
            continue;
        }
        int k = d->nclasses++;
        d->classes[k] = names[i];
        names[i] = NULL;
        file_list fl = {0};
        int rc = collect(sub, 0, &fl);
        if (rc == 0 && fl.count == 0)
            rc = err_set("%s: class folder has no .png, .jpg or .jpeg file", sub);
        free(sub);
        if (rc == 0 && d->n + fl.count > cap) {
            cap = 2 * (d->n + fl.count);
            char **files = realloc(d->files, sizeof *files * (size_t)cap);
            int *labels = realloc(d->labels, sizeof *labels * (size_t)cap);
            if (files)
                d->files = files;
            if (labels)
                d->labels = labels;
            if (!files || !labels)
                rc = err_set("out of memory");
        }
        if (rc == 0 && fl.count > 1)
            qsort(fl.items, (size_t)fl.count, sizeof *fl.items, cmp_entry);
        for (int64_t j = 0; j < fl.count; j++) {
            char *file = rc == 0 ? join(fl.items[j].dir, fl.items[j].name) : NULL;
            if (rc == 0 && !file)
                rc = err_set("out of memory");
            if (rc == 0) {
                d->files[d->n] = file;
                d->labels[d->n++] = k;
            }
            free(fl.items[j].dir);
            free(fl.items[j].name);
        }
        if (d->skipped == 0 && fl.skipped)
            d->first_skipped = fl.first_skipped;
        else
            free(fl.first_skipped);
        d->skipped += fl.skipped;
        free(fl.items);
        if (rc != 0)
            goto fail;
    }
    if (d->nclasses == 0) {
        err_set("%s: no class subfolders", path);
        goto fail;
    }
    free_names(names, nnames);
    d->c = 3;
    d->h = d->w = t->size;
    d->eval = *t;
    return d;
fail:
    free_names(names, nnames);
    ds_free(d);
    return NULL;
}

/* ---- access ---- */

const char *ds_name(const dataset *d) { return d->name; }
int64_t ds_size(const dataset *d) { return d->n; }
int ds_num_classes(const dataset *d) { return d->nclasses; }
float ds_black(const dataset *d, int c)
{
    if (d->kind == DS_FASHION)
        return d->lut[0];
    return c >= 0 && c < 3 ? -d->eval.mean[c] / d->eval.std[c] : 0.0f;
}

int64_t ds_skipped_files(const dataset *d) { return d->skipped; }
const char *ds_first_skipped(const dataset *d) { return d->first_skipped; }

void ds_example_shape(const dataset *d, int64_t chw[3])
{
    chw[0] = d->c;
    chw[1] = d->h;
    chw[2] = d->w;
}

const char *ds_class_name(const dataset *d, int k)
{
    return k >= 0 && k < d->nclasses ? d->classes[k] : NULL;
}

int ds_label(const dataset *d, int64_t i) { return d->labels[i]; }

/* One Fashion-MNIST example into C x H x W floats. */
static int fashion_example(const dataset *d, int64_t i, float *x)
{
    int rows = d->fm.rows, cols = d->fm.cols, s = d->h;
    const uint8_t *src = d->fm.pixels + i * rows * cols;
    if (d->resize) {
        uint8_t *tmp = malloc((size_t)s * s);
        if (!tmp || img_resize_crop(src, cols, rows, 1, s, s, 0, 0, s, s, tmp) != 0) {
            free(tmp);
            return err_set("out of memory");
        }
        for (int64_t p = 0; p < (int64_t)s * s; p++)
            x[p] = d->lut[tmp[p]];
        free(tmp);
    } else {
        for (int64_t p = 0; p < (int64_t)s * s; p++)
            x[p] = d->lut[0];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                x[(int64_t)(r + d->pad_top) * s + c + d->pad_left] = d->lut[src[r * cols + c]];
    }
    for (int c = 1; c < d->c; c++)
        memcpy(x + (int64_t)c * s * s, x, sizeof *x * (size_t)s * s);
    return 0;
}

static int folder_example(const dataset *d, int64_t i, float *x)
{
    img_rgb im;
    if (img_load(d->files[i], &im) != 0)
        return -1;
    int rc = img_eval_apply(&im, &d->eval, x);
    img_free(&im);
    if (rc != 0)
        err_prefix("%s", d->files[i]);
    return rc;
}

static int example(const dataset *d, int64_t i, float *x)
{
    return d->kind == DS_FASHION ? fashion_example(d, i, x) : folder_example(d, i, x);
}

int ds_fill(const dataset *d, int64_t n, const int64_t *idx, float *x, int *labels)
{
    for (int64_t j = 0; j < n; j++)
        if (idx[j] < 0 || idx[j] >= d->n)
            return err_set("%s: index %lld out of range (%lld examples)", d->name, (long long)idx[j],
                           (long long)d->n);
    int64_t per = (int64_t)d->c * d->h * d->w, failed = -1;
    /* messages live in thread-local storage: a failed example is redone below to record its own */
#pragma omp parallel for schedule(dynamic, 4) if (d->kind == DS_FOLDER && n > 1)
    for (int64_t j = 0; j < n; j++) {
        if (example(d, idx[j], x + j * per) != 0) {
#pragma omp critical(ds_fill_failed)
            if (failed < 0 || j < failed)
                failed = j;
        }
    }
    if (failed >= 0) {
        example(d, idx[failed], x + failed * per);
        return -1;
    }
    for (int64_t j = 0; labels && j < n; j++)
        labels[j] = d->labels[idx[j]];
    return 0;
}

tensor *ds_batch(const dataset *d, int64_t n, const int64_t *idx, int *labels)
{
    int64_t shape[4] = {n, d->c, d->h, d->w};
    tensor *t = tensor_new(4, shape);
    if (!t)
        return NULL;
    if (ds_fill(d, n, idx, t->data, labels) != 0) {
        tensor_free(t);
        return NULL;
    }
    return t;
}

int ds_sample(const dataset *d, rng *r, int64_t n, int64_t *idx)
{
    if (n < 0 || n > d->n)
        return err_set("%s: cannot sample %lld distinct examples out of %lld", d->name, (long long)n,
                       (long long)d->n);
    return rng_sample(r, d->n, n, idx);
}

int ds_range(const dataset *d, int64_t first, int64_t n, int64_t *idx)
{
    if (first < 0 || n < 0 || first > d->n || n > d->n - first)
        return err_set("%s: examples %lld..%lld out of range (%lld examples)", d->name, (long long)first + 1,
                       (long long)(first + n), (long long)d->n);
    for (int64_t j = 0; j < n; j++)
        idx[j] = first + j;
    return 0;
}
