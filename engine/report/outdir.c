#include "report/outdir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"

int outdir_make_parents(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return err_set("%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) { /* in the current folder, or at the root */
        free(dir);
        return 0;
    }
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0) { /* the common case: nothing to make */
        free(dir);
        return 0;
    }
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                err_set("%s: cannot create folder %s: %s", path, dir, strerror(e));
                free(dir);
                return -1;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(dir);
    return 0;
}
