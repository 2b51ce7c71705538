/* blas_serial: OpenBLAS on one thread around calls whose matrices are small or whose work is mostly
 * level-2 (the GP's factorizations, the SVDs of compression). Waking OpenBLAS's thread pool costs
 * more than it saves there, and on a busy machine its spinning threads turn every level-2 call
 * into a scheduler round trip (an SVD that takes 0.3 s alone took 19 s beside a training run). */
#ifndef BOENGINE_CORE_BLAS_SERIAL_H
#define BOENGINE_CORE_BLAS_SERIAL_H

/* Sets OpenBLAS to one thread; returns the previous count for blas_serial_end. */
int blas_serial_begin(void);
void blas_serial_end(int previous);

#endif
