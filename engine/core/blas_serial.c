#include "core/blas_serial.h"

#include <cblas.h>

int blas_serial_begin(void)
{
    int previous = openblas_get_num_threads();
    if (previous != 1)
        openblas_set_num_threads(1);
    return previous;
}

void blas_serial_end(int previous)
{
    if (previous != 1)
        openblas_set_num_threads(previous);
}
