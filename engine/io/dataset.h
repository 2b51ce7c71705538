/* dataset: labelled image collections behind one interface: N examples of C x H x W floats with
 * integer labels 0..K-1 and class names. Fashion-MNIST (IDX files held as bytes, converted per
 * batch) and image folders (one subfolder per class, decoded on demand). Batches of any indices
 * come out as N x C x H x W float tensors, which is what the `data` Lua module and the estimators
 * of `objective` draw on. */
#ifndef BOENGINE_DATASET_H
#define BOENGINE_DATASET_H

#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "io/images.h"

typedef struct dataset dataset;

typedef struct ds_fashion_opts {
    const char *path; /* folder of {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz */
    int train;        /* 1: the train split (60000 examples), 0: the test split (10000) */
    int normalize;    /* (x/255 - mean) / std when set, x/255 otherwise */
    float mean, std;
    int channels;     /* 1, or 3 to replicate the grey channel */
    int size;         /* output side (28: as stored) */
    int resize;       /* 0: pad to size with black pixels, centred (torchvision's Pad before
                         ToTensor); 1: resize to size x size with PIL's bilinear filter */
} ds_fashion_opts;

/* Defaults: the Debian package's folder, test split, normalized (0.2860, 0.3530), 1 x 28 x 28. */
void ds_fashion_defaults(ds_fashion_opts *o);
dataset *ds_fashion_mnist(const ds_fashion_opts *o);

/* An image folder as torchvision's ImageFolder reads it: subfolders of path in sorted order are
 * the classes, their .png/.jpg/.jpeg files (any case, subfolders included) in sorted order the
 * examples; each access decodes the file and applies the evaluation transform t. */
dataset *ds_folder(const char *path, const img_eval *t);

void ds_free(dataset *d);

/* A short description for messages ("fashion-mnist test", or the folder's path). */
const char *ds_name(const dataset *d);
int64_t ds_size(const dataset *d);
/* Channels, height and width of one example. */
void ds_example_shape(const dataset *d, int64_t chw[3]);
int ds_num_classes(const dataset *d);
const char *ds_class_name(const dataset *d, int k);
/* Label of example i, 0 <= i < ds_size (no decoding needed). */
int ds_label(const dataset *d, int64_t i);
/* The value a black pixel takes in channel c after the dataset's normalization: what padding
 * added by augmentation (a random crop) should hold, as torchvision pads before normalizing. */
float ds_black(const dataset *d, int c);
/* Files of a folder dataset that were skipped for not being .png/.jpg/.jpeg (0 otherwise). */
int64_t ds_skipped_files(const dataset *d);
/* The path of the first of them (NULL when none), so that a note can name it. */
const char *ds_first_skipped(const dataset *d);

/* Fills x (n x C x H x W floats) and labels (n ints, or NULL) with the examples idx[0..n-1];
 * -1 with err_set naming the file when an index is out of range or an image fails to decode.
 * Examples are prepared in parallel (OpenMP). */
int ds_fill(const dataset *d, int64_t n, const int64_t *idx, float *x, int *labels);
/* The same into a new n x C x H x W tensor. */
tensor *ds_batch(const dataset *d, int64_t n, const int64_t *idx, int *labels);

/* n distinct indices drawn without replacement from r; -1 when n exceeds the size. */
int ds_sample(const dataset *d, rng *r, int64_t n, int64_t *idx);
/* The indices first .. first+n-1 (0-based); -1 when the range leaves the dataset. */
int ds_range(const dataset *d, int64_t first, int64_t n, int64_t *idx);

#endif
