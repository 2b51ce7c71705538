#include "core/fileutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

int atomic_open(atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    size_t n = strlen(path);
    a->path = strdup(path);
    a->tmp_path = malloc(n + 16);
    if (!a->path || !a->tmp_path) {
        free(a->path);
        free(a->tmp_path);
        return err_set("%s: out of memory", path);
    }
    snprintf(a->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp_path);
    if (fd >= 0) { /* mkstemp makes the file private; outputs get the usual umask-based mode */
        mode_t mask = umask(0);
        umask(mask);
        fchmod(fd, 0666 & ~mask);
    }
    if (fd < 0 || !(a->f = fdopen(fd, "wb"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        free(a->path);
        free(a->tmp_path);
        return err_set("%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int atomic_close(atomic_file *a, int ok)
{
    int rc = 0;
    if (ok && (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0)) {
        rc = err_set("%s: write failed: %s", a->path, strerror(errno));
        ok = 0;
    }
    if (fclose(a->f) != 0 && ok) {
        rc = err_set("%s: write failed: %s", a->path, strerror(errno));
        ok = 0;
    }
    if (ok && rename(a->tmp_path, a->path) != 0) {
        rc = err_set("%s: cannot rename into place: %s", a->path, strerror(errno));
        ok = 0;
    }
    if (!ok)
        unlink(a->tmp_path);
    free(a->path);
    free(a->tmp_path);
    return ok ? 0 : (rc ? rc : -1);
}

int atomic_write_file(const char *path, const void *data, size_t size)
{
    atomic_file a;
    if (atomic_open(&a, path) != 0)
        return -1;
    int ok = fwrite(data, 1, size, a.f) == size;
    if (!ok)
        err_set("%s: write failed: %s", path, strerror(errno));
    return atomic_close(&a, ok);
}
