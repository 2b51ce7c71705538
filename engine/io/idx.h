/* idx: reader for the IDX format of MNIST and Fashion-MNIST (gzip-compressed or plain): a
 * big-endian header (two zero bytes, a dtype byte, the number of dimensions, one 32-bit size per
 * dimension) followed by exactly the payload those sizes announce. Only unsigned bytes are read. */
#ifndef BOENGINE_IDX_H
#define BOENGINE_IDX_H

#include <stdint.h>

#define IDX_MAX_DIM 4

typedef struct idx_array {
    int ndim;
    int64_t dims[IDX_MAX_DIM];
    int64_t size;  /* product of dims: the payload in bytes */
    uint8_t *data; /* row-major */
} idx_array;

/* Reads a whole u8 IDX file of ndim dimensions; -1 with err_set naming the file and the problem
 * (bad magic, wrong dtype or rank, truncated payload, trailing bytes, gzip error). */
int idx_read(const char *path, int ndim, idx_array *out);
void idx_free(idx_array *a);

/* An image file (magic 0x00000803: count x rows x cols) and its label file (magic 0x00000801:
 * count) read together; the counts must agree. */
typedef struct idx_images {
    int64_t count;
    int rows, cols;
    uint8_t *pixels; /* count x rows x cols */
    uint8_t *labels; /* count */
} idx_images;

int idx_read_images(const char *images_path, const char *labels_path, idx_images *out);
void idx_images_free(idx_images *im);

#endif
