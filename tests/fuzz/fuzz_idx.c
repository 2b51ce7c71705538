/* libFuzzer harness: the IDX reader (gzip or plain) on any bytes, as images (3 dimensions) and as
 * labels (1). A header may announce gigabytes; what is allocated must follow the data. */
#include <stdint.h>

#include "fuzz.h"
#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file(data, size);
    idx_array a;
    for (int ndim = 1; ndim <= 3; ndim += 2)
        if (idx_read(path, ndim, &a) == 0)
            idx_free(&a);
    return 0;
}
