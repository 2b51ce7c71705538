/* Helpers shared by the libFuzzer harnesses: the input as a file (the readers take paths). */
#ifndef BOENGINE_FUZZ_H
#define BOENGINE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes the input to an in-memory file and returns a path that opens it ("/proc/self/fd/N"),
 * reusing one descriptor for the whole run. */
static const char *fuzz_as_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    return path;
}

#endif
