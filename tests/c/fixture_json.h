/* fixture_json: reads a JSON fixture of tests/fixtures into cJSON, and number arrays out of it. */
#ifndef BOENGINE_FIXTURE_JSON_H
#define BOENGINE_FIXTURE_JSON_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static inline cJSON *fixture_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text)
        return NULL;
    text[got] = '\0';
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

/* A newly allocated copy of the number array obj[key] (its length in *len when len is not NULL). */
static inline double *fixture_array(const cJSON *obj, const char *key, int *len)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n = cJSON_GetArraySize(a);
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valuedouble;
    if (len)
        *len = n;
    return v;
}

static inline double fixture_number(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble;
}

#endif
