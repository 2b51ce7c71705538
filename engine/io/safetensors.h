/* safetensors: the weights format of the Hugging Face ecosystem: an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
 * Every tensor is read as float32 (other numeric dtypes are converted); writes are atomic. */
#ifndef BOENGINE_SAFETENSORS_H
#define BOENGINE_SAFETENSORS_H

#include "core/tensor.h"

typedef struct st_meta {
    const char *key, *value;
} st_meta;

typedef struct st_file {
    int count;
    char **names;       /* in the order of the header */
    tensor **tensors;
    int meta_count;     /* the header's "__metadata__" string map */
    char **meta_keys, **meta_values;
} st_file;

/* Reads and validates a whole file; NULL with err_set naming the file and the problem. */
st_file *st_read(const char *path);
/* The same from the bytes of a file in memory; the message names no file. */
st_file *st_parse(const void *data, uint64_t size);
void st_file_free(st_file *f);

/* The tensor of that name, or NULL (no error recorded). */
tensor *st_find(const st_file *f, const char *name);
/* The metadata value of that key, or NULL. */
const char *st_meta_get(const st_file *f, const char *key);

/* Writes count float32 tensors and optional metadata to a temporary file beside path, then
 * renames it over path: a reader never sees a half-written file. */
int st_write(const char *path, int count, const char *const *names, const tensor *const *tensors,
             int meta_count, const st_meta *meta);

#endif
