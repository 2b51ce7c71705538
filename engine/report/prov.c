#include "report/prov.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

int prov_check(const prov_kv *kv, int n)
{
    for (int i = 0; i < n; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        if (!k || !v)
            return err_set("provenance entry %d has no %s", i + 1, k ? "value" : "key");
        size_t len = strlen(k);
        int ok = len >= 1 && len <= 79 && ((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z'));
        for (size_t j = 0; ok && j < len; j++)
            ok = is_key_char(k[j]);
        if (!ok)
            return err_set("provenance key '%s' is not 1 to 79 letters, digits, '_', '.' or '-' "
                           "starting with a letter", k);
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return err_set("provenance value of '%s' holds a control character", k);
        for (int j = 0; j < i; j++)
            if (strcmp(kv[j].key, k) == 0)
                return err_set("provenance key '%s' given twice", k);
    }
    return 0;
}

static int is_long_hex(const char *v)
{
    size_t n = strlen(v);
    if (n <= 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", v[i]))
            return 0;
    return 1;
}

void prov_line(const prov_kv *kv, int n, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 1 < size; i++) {
        int hex = is_long_hex(kv[i].value);
        int w = snprintf(buf + used, size - used, "%s%s %.*s", i ? " · " : "", kv[i].key,
                         hex ? 12 : (int)strlen(kv[i].value), kv[i].value);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used >= size) { /* cut off a UTF-8 sequence that lost its tail */
        size_t len = strlen(buf), p = len;
        while (p > 0 && ((unsigned char)buf[p - 1] & 0xc0) == 0x80)
            p--;
        if (p > 0 && ((unsigned char)buf[p - 1] & 0x80)) {
            unsigned char lead = (unsigned char)buf[p - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (len - (p - 1) < need)
                buf[p - 1] = '\0';
        }
    }
}
