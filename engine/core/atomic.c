#include "core/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

/* Removes the temporaries of path that a killed writer left: TARGET.tmp.PID.XXXXXX whose process is
 * gone. A live writer's temporary is left alone (its rename must still find it). */
static void remove_stale_temporaries(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 1, blen = strlen(base);
    char *dir = slash ? strndup(path, dlen ? dlen : 1) : strdup(".");
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0)
            continue;
        char *end;
        long pid = strtol(name + blen + 5, &end, 10);
        if (end == name + blen + 5 || *end != '.' || strlen(end + 1) != 6 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char *stale = malloc(strlen(dir) + strlen(name) + 2);
            if (stale) {
                sprintf(stale, "%s/%s", dir, name);
                unlink(stale);
                free(stale);
            }
        }
    }
    if (d)
        closedir(d);
    free(dir);
}

int atomic_open(atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 40;
    a->path = strdup(path);
    a->tmp_path = malloc(n);
    if (!a->path || !a->tmp_path) {
        free(a->path);
        free(a->tmp_path);
        return err_set("%s: out of memory", path);
    }
    remove_stale_temporaries(path);
    /* the writer's pid in the name tells a later writer whether the temporary is abandoned */
    snprintf(a->tmp_path, n, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
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
