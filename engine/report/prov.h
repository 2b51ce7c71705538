/* prov: the provenance of an output (seed, engine version, commit, the experiment file's SHA-256
 * and whatever the caller adds) as ordered key/value pairs, written into every table and figure. */
#ifndef BOENGINE_PROV_H
#define BOENGINE_PROV_H

#include <stddef.h>

typedef struct prov_kv {
    const char *key, *value;
} prov_kv;

/* Keys are 1 to 79 characters of letters, digits, '_', '.' and '-', starting with a letter (they
 * become PNG text keywords and CSV comment lines); values have no control characters (no line
 * breaks). -1 with err_set naming the bad pair otherwise. */
int prov_check(const prov_kv *kv, int n);

/* One line for people: "key value · key value", long hexadecimal values (hashes, commits) cut to
 * 12 digits; truncated to fit size bytes. */
void prov_line(const prov_kv *kv, int n, char *buf, size_t size);

#endif
