#include "nn/exec_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/tensor.h"
#include "nn/dnnl_util.h"

/* ---- weights -------------------------------------------------------------------------------- */

#define IDLE_BYTES ((size_t)1 << 30)
#define IDLE_ENTRIES 256

struct exec_cache_entry {
    uint64_t key[EXEC_CACHE_KEY];
    dnnl_memory_t mem;
    size_t bytes;
    int refs;      /* plans holding it */
    uint64_t used; /* clock of its last use, for least recently used first */
};

static exec_cache_entry **entries;
static int nentries;
static uint64_t clock_now;

exec_cache_entry *exec_cache_find(const uint64_t *key, const dnnl_memory_desc_t *want)
{
    for (int i = 0; i < nentries; i++) {
        exec_cache_entry *e = entries[i];
        const dnnl_memory_desc_t *md;
        if (memcmp(e->key, key, sizeof e->key) == 0 && dnnl_memory_get_memory_desc(e->mem, &md) == dnnl_success &&
            dnnl_memory_desc_equal(md, want)) {
            e->refs++;
            e->used = ++clock_now;
            return e;
        }
    }
    return NULL;
}

/* Destroys m and frees its data, which dn_reordered_memory allocated. */
static void destroy(dnnl_memory_t m)
{
    void *data = NULL;
    dnnl_memory_get_data_handle(m, &data);
    dnnl_memory_destroy(m);
    free(data);
}

exec_cache_entry *exec_cache_keep(const uint64_t *key, dnnl_memory_t m)
{
    if (!m)
        return NULL;
    exec_cache_entry *e = calloc(1, sizeof *e);
    if (!e || dn_grow((void **)&entries, nentries, sizeof *entries)) {
        destroy(m);
        free(e);
        err_set("out of memory");
        return NULL;
    }
    const dnnl_memory_desc_t *md;
    memcpy(e->key, key, sizeof e->key);
    e->mem = m;
    e->bytes = dnnl_memory_get_memory_desc(m, &md) == dnnl_success ? dnnl_memory_desc_get_size(md) : 0;
    e->refs = 1;
    e->used = ++clock_now;
    entries[nentries++] = e;
    return e;
}

dnnl_memory_t exec_cache_memory(const exec_cache_entry *e) { return e->mem; }

static void drop(int i)
{
    destroy(entries[i]->mem);
    free(entries[i]);
    entries[i] = entries[--nentries];
}

/* Drops the least recently used entries no plan holds until those left fit the idle limits. */
static void trim(size_t max_bytes, int max_entries)
{
    for (;;) {
        size_t idle = 0;
        int oldest = -1, nidle = 0;
        for (int i = 0; i < nentries; i++)
            if (entries[i]->refs == 0) {
                idle += entries[i]->bytes;
                nidle++;
                if (oldest < 0 || entries[i]->used < entries[oldest]->used)
                    oldest = i;
            }
        if (idle <= max_bytes && nidle <= max_entries)
            return;
        drop(oldest);
    }
}

void exec_cache_release(exec_cache_entry *const *held, int count)
{
    for (int i = 0; i < count; i++)
        held[i]->refs--;
    trim(IDLE_BYTES, IDLE_ENTRIES);
}

/* ---- activation buffers --------------------------------------------------------------------- */

#define POOL_SIZE 16

static struct {
    void *data;
    size_t bytes;
} pool[POOL_SIZE];

void *exec_cache_take_buffer(size_t bytes, size_t *got)
{
    int best = -1;
    for (int i = 0; i < POOL_SIZE; i++)
        if (pool[i].data && pool[i].bytes >= bytes && (best < 0 || pool[i].bytes < pool[best].bytes))
            best = i;
    if (best < 0 || pool[best].bytes > 2 * bytes + (1 << 20)) { /* much larger ones stay for others */
        *got = bytes;
        return tensor_alloc_floats((int64_t)((bytes + 3) / 4));
    }
    void *data = pool[best].data;
    *got = pool[best].bytes;
    pool[best].data = NULL;
    return data;
}

void exec_cache_give_buffer(void *data, size_t bytes)
{
    int slot = 0;
    for (int i = 0; i < POOL_SIZE; i++) /* an empty slot, else the smallest buffer makes room */
        if (!pool[i].data || (pool[slot].data && pool[i].bytes < pool[slot].bytes))
            slot = i;
    if (pool[slot].data && pool[slot].bytes >= bytes) {
        free(data);
        return;
    }
    free(pool[slot].data);
    pool[slot].data = data;
    pool[slot].bytes = bytes;
}

/* ---- teardown ------------------------------------------------------------------------------- */

void exec_cache_free(void)
{
    for (int i = 0; i < POOL_SIZE; i++) {
        free(pool[i].data);
        pool[i].data = NULL;
        pool[i].bytes = 0;
    }
    trim(0, 0);
    if (nentries == 0) {
        free(entries);
        entries = NULL;
    }
}
