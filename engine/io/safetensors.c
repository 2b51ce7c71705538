#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/atomic.h"

/* Header sizes beyond this are refused rather than allocated (the reference reader uses 100 MB). */
#define ST_MAX_HEADER (100u << 20)

typedef struct dtype_info {
    const char *name;
    int size;
} dtype_info;

static const dtype_info dtypes[] = {
    {"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1},  {"U8", 1},  {"U16", 2}, {"U32", 4},  {"U64", 8}, {"BOOL", 1},
};

static const dtype_info *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return &dtypes[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Converts n little-endian elements of dtype d at src into floats. */
static void convert(const dtype_info *d, const unsigned char *src, float *dst, int64_t n)
{
    const char *t = d->name;
    for (int64_t i = 0; i < n; i++, src += d->size) {
        float v;
        if (!strcmp(t, "F32")) {
            memcpy(&v, src, 4);
        } else if (!strcmp(t, "F64")) {
            double x;
            memcpy(&x, src, 8);
            v = (float)x;
        } else if (!strcmp(t, "F16")) {
            uint16_t h;
            memcpy(&h, src, 2);
            v = half_to_float(h);
        } else if (!strcmp(t, "BF16")) {
            uint32_t bits = (uint32_t)(src[0] | (src[1] << 8)) << 16;
            memcpy(&v, &bits, 4);
        } else if (!strcmp(t, "I64")) {
            int64_t x;
            memcpy(&x, src, 8);
            v = (float)x;
        } else if (!strcmp(t, "I32")) {
            int32_t x;
            memcpy(&x, src, 4);
            v = (float)x;
        } else if (!strcmp(t, "I16")) {
            int16_t x;
            memcpy(&x, src, 2);
            v = (float)x;
        } else if (!strcmp(t, "I8")) {
            v = (float)(int8_t)src[0];
        } else if (!strcmp(t, "U16")) {
            uint16_t x;
            memcpy(&x, src, 2);
            v = (float)x;
        } else if (!strcmp(t, "U32")) {
            uint32_t x;
            memcpy(&x, src, 4);
            v = (float)x;
        } else if (!strcmp(t, "U64")) {
            uint64_t x;
            memcpy(&x, src, 8);
            v = (float)x;
        } else { /* U8, BOOL */
            v = (float)src[0];
        }
        dst[i] = v;
    }
}

void st_file_free(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++) {
        free(f->names[i]);
        tensor_free(f->tensors[i]);
    }
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->names);
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f);
}

tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (f->tensors[i] && strcmp(f->names[i], name) == 0)
            return f->tensors[i];
    return NULL;
}

const char *st_meta_get(const st_file *f, const char *key)
{
    for (int i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

typedef struct range {
    uint64_t begin, end;
    const char *name;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Refuses a name that occurs twice in names[0..n), found by sorting a copy (headers may hold
 * millions of entries); what says whose names they are. */
static int check_unique(char *const *names, int n, const char *what)
{
    if (n < 2)
        return 0;
    char **sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted)
        return err_set("out of memory");
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            rc = err_set("%s '%s' appears twice in the header", what, sorted[i]);
    free(sorted);
    return rc;
}

static int read_metadata(st_file *f, const cJSON *meta)
{
    if (f->meta_keys) /* a second map would replace the first's arrays while the count stays */
        return err_set("header has two __metadata__ entries");
    if (!cJSON_IsObject(meta))
        return err_set("__metadata__ is not an object");
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return err_set("out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, meta)
    {
        if (f->meta_count >= n)
            break;
        if (!cJSON_IsString(item))
            return err_set("__metadata__ value of '%s' is not a string", item->string);
        f->meta_keys[f->meta_count] = strdup(item->string);
        f->meta_values[f->meta_count] = strdup(item->valuestring);
        if (!f->meta_keys[f->meta_count] || !f->meta_values[f->meta_count])
            return err_set("out of memory");
        f->meta_count++;
    }
    return check_unique(f->meta_keys, f->meta_count, "__metadata__ key");
}

/* Validates one header entry and converts its bytes; data is the byte buffer after the header. */
static int read_entry(st_file *f, const cJSON *e, const unsigned char *data, uint64_t data_size, range *r)
{
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return err_set("tensor %s: header entry needs dtype, shape and two data_offsets", name);
    const dtype_info *d = find_dtype(dt->valuestring);
    if (!d)
        return err_set("tensor %s: unknown dtype '%s'", name, dt->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TENSOR_MAX_DIM)
        return err_set("tensor %s: %d dimensions (at most %d)", name, ndim, TENSOR_MAX_DIM);
    int64_t dims[TENSOR_MAX_DIM];
    for (int i = 0; i < ndim; i++) {
        const cJSON *s = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9e15 ||
            s->valuedouble != (double)(int64_t)s->valuedouble)
            return err_set("tensor %s: shape entry %d is not a non-negative integer", name, i);
        dims[i] = (int64_t)s->valuedouble;
    }
    uint64_t o[2];
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(offs, i);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 ||
            v->valuedouble != (double)(uint64_t)v->valuedouble)
            return err_set("tensor %s: data_offsets are not non-negative integers", name);
        o[i] = (uint64_t)v->valuedouble;
    }
    int64_t numel = tensor_shape_numel(ndim, dims);
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / 8)
        return err_set("tensor %s: shape too large", name);
    if (o[1] < o[0] || o[1] - o[0] != (uint64_t)numel * (uint64_t)d->size)
        return err_set("tensor %s: data_offsets [%llu, %llu] do not hold %lld elements of %s", name,
                       (unsigned long long)o[0], (unsigned long long)o[1], (long long)numel, d->name);
    if (o[1] > data_size)
        return err_set("tensor %s: data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                       name, (unsigned long long)o[0], (unsigned long long)o[1],
                       (unsigned long long)data_size);
    tensor *t = tensor_new(ndim, dims);
    if (!t)
        return err_prefix("tensor %s", name);
    convert(d, data + o[0], t->data, numel);
    f->names[f->count] = strdup(name);
    f->tensors[f->count] = t;
    if (!f->names[f->count]) {
        tensor_free(t);
        return err_set("out of memory");
    }
    f->count++;
    r->begin = o[0];
    r->end = o[1];
    r->name = name;
    return 0;
}

st_file *st_parse(const void *bytes, uint64_t size)
{
    const unsigned char *buf = bytes;
    if (size < 8) {
        err_set("truncated file: %llu bytes, shorter than the 8-byte header length",
                (unsigned long long)size);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER || hlen > size - 8) {
        err_set("truncated file: header of %llu bytes announced, %llu bytes follow",
                (unsigned long long)hlen, (unsigned long long)(size - 8));
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        err_set("header is not a JSON object");
        return NULL;
    }
    int n = cJSON_GetArraySize(root);
    st_file *f = calloc(1, sizeof *f);
    range *ranges = calloc((size_t)n + 1, sizeof *ranges);
    if (!f || !ranges || !(f->names = calloc((size_t)n + 1, sizeof *f->names)) ||
        !(f->tensors = calloc((size_t)n + 1, sizeof *f->tensors))) {
        err_set("out of memory");
        goto fail;
    }
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    int nr = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (read_metadata(f, e) != 0)
                goto fail;
        } else if (read_entry(f, e, data, data_size, &ranges[nr++]) != 0) {
            goto fail;
        }
    }
    if (check_unique(f->names, f->count, "tensor") != 0) /* readers would disagree on the copy meant */
        goto fail;
    /* byte ranges must tile the data buffer without overlap, as the format requires */
    qsort(ranges, (size_t)nr, sizeof *ranges, cmp_range);
    uint64_t pos = 0;
    for (int i = 0; i < nr; i++) {
        if (ranges[i].begin < pos) {
            err_set("tensor %s: data_offsets overlap tensor %s", ranges[i].name, ranges[i - 1].name);
            goto fail;
        }
        if (ranges[i].begin > pos) {
            err_set("tensor %s: gap of %llu bytes before its data", ranges[i].name,
                    (unsigned long long)(ranges[i].begin - pos));
            goto fail;
        }
        pos = ranges[i].end;
    }
    if (pos != data_size) {
        err_set("%llu trailing bytes after the last tensor", (unsigned long long)(data_size - pos));
        goto fail;
    }
    free(ranges);
    cJSON_Delete(root);
    return f;
fail:
    free(ranges);
    cJSON_Delete(root);
    st_file_free(f);
    return NULL;
}

st_file *st_read(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        err_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        err_set("%s: not a regular file", path);
        return NULL;
    }
    uint64_t size = (uint64_t)sb.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (size && map == MAP_FAILED) {
        err_set("%s: cannot map: %s", path, strerror(errno));
        return NULL;
    }
    st_file *f = st_parse(map, size);
    if (map)
        munmap(map, size);
    if (!f)
        err_prefix("%s", path);
    return f;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int st_write(const char *path, int count, const char *const *names, const tensor *const *tensors,
             int meta_count, const st_meta *meta)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return err_set("%s: out of memory", path);
    if (meta_count > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < meta_count; i++)
            cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
    }
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddStringToObject(e, "dtype", "F32");
        for (int d = 0; d < tensors[i]->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)tensors[i]->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        offset += (uint64_t)tensors[i]->numel * sizeof(float);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
    }
    char *header = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!header)
        return err_set("%s: out of memory", path);
    /* pad the header with spaces so that the data starts 8-byte aligned, as the reference writer does */
    size_t hlen = strlen(header), padded = (hlen + 8 + 7) / 8 * 8 - 8;
    unsigned char prefix[8];
    put_u64(prefix, padded);
    atomic_file a;
    if (atomic_open(&a, path) != 0) {
        free(header);
        return -1;
    }
    int ok = fwrite(prefix, 1, 8, a.f) == 8 && fwrite(header, 1, hlen, a.f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc(' ', a.f) != EOF;
    for (int i = 0; ok && i < count; i++) /* little-endian float32, as on every supported host */
        ok = fwrite(tensors[i]->data, sizeof(float), (size_t)tensors[i]->numel, a.f) ==
             (size_t)tensors[i]->numel;
    free(header);
    if (!ok)
        err_set("%s: write failed: %s", path, strerror(errno));
    return atomic_close(&a, ok);
}
