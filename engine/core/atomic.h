/* atomic: atomic output files (write to a temporary beside the target, fsync, rename). */
#ifndef BOENGINE_ATOMIC_H
#define BOENGINE_ATOMIC_H

#include <stdio.h>

typedef struct atomic_file {
    FILE *f;
    char *path, *tmp_path;
} atomic_file;

/* Opens a temporary file in the target's directory (TARGET.tmp.PID.XXXXXX), first removing the
 * temporaries of the same target left by writers that were killed; -1 with err_set on failure. */
int atomic_open(atomic_file *a, const char *path);
/* Flushes, fsyncs and renames over the target; on any earlier error, or when ok is 0, the
 * temporary is removed and the target is left untouched. */
int atomic_close(atomic_file *a, int ok);

/* Writes a whole buffer atomically. */
int atomic_write_file(const char *path, const void *data, size_t size);

#endif
