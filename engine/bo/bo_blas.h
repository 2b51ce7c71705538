/* bo_blas: the GP's matrices are small (n of a few hundred at most), where waking OpenBLAS's thread
 * pool costs more than it saves; the heavy entry points of bo run BLAS and LAPACK on one thread. */
#ifndef BOENGINE_BO_BLAS_H
#define BOENGINE_BO_BLAS_H

/* Sets OpenBLAS to one thread; returns the previous count for bo_blas_serial_end. */
int bo_blas_serial_begin(void);
void bo_blas_serial_end(int previous);

#endif
