/* exec_cache: what inference plans (exec.c) keep beyond their own lifetime, process-wide.
 * Weights, biases and batch-norm vectors in the layouts primitives chose, keyed by the ids of the
 * tensors they were made from: plans of other batch sizes, and candidates that share a layer
 * with their reference, reuse them. And the activation buffers of freed plans: a candidate
 * evaluated after another starts on memory already mapped instead of page-faulting it in again.
 * exec_cache_free releases both (main.c calls it at exit, so that leak checkers see nothing). */
#ifndef BOENGINE_EXEC_CACHE_H
#define BOENGINE_EXEC_CACHE_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>
#include <stdint.h>

/* A key: the slot (what the memory holds for its primitive) then up to six tensor ids (the
 * weight, bias, and a folded batch norm's gamma, beta, mean and variance), zeros for none. */
#define EXEC_CACHE_KEY 7

typedef struct exec_cache_entry exec_cache_entry;

/* The entry for key whose memory has layout want, with one more reference; NULL when none. */
exec_cache_entry *exec_cache_find(const uint64_t *key, const dnnl_memory_desc_t *want);

/* A new entry for key holding m, made by dn_reordered_memory (taken over: its data is freed after
 * it is destroyed), with one reference. NULL when m is NULL, or (m and its data freed, err_set)
 * when out of memory. */
exec_cache_entry *exec_cache_keep(const uint64_t *key, dnnl_memory_t m);

dnnl_memory_t exec_cache_memory(const exec_cache_entry *e);

/* Drops a reference to each of count entries (a plan's, when it is freed). Entries that no plan
 * holds stay for later plans until they pass a limit of bytes or of entries, the least recently
 * used going first (the count bounds the lookups: a search leaves behind the entries of every
 * candidate it has freed, which never match again). */
void exec_cache_release(exec_cache_entry *const *entries, int count);

/* A buffer of at least bytes (its size in *got): a pooled one not much larger, or a new one.
 * NULL when out of memory. */
void *exec_cache_take_buffer(size_t bytes, size_t *got);

/* Hands a buffer of bytes to the pool, which keeps the largest few and frees the others. */
void exec_cache_give_buffer(void *data, size_t bytes);

/* Frees the pooled buffers and every entry no plan holds (all of them once every network is freed). */
void exec_cache_free(void);

#endif
