/* fma_peak: the machine's FP32 multiply-add peak, measured: T threads (OpenMP) each run independent
 * chains of vector fused multiply-adds on registers (AVX-512 when the CPU has it, else AVX2+FMA,
 * else plain C), with no memory traffic. The physical floor of scripts/bench-search divides the
 * candidates' multiply-adds by this rate.
 *
 *   build/bench/fma_peak [THREADS [SECONDS [RUNS]]]   (defaults: all cores, 0.3 s, 5 runs)
 *
 * Prints one line per run and then `peak_gmacs BEST MEDIAN threads T isa NAME cpu_gmacs BEST_CPU`:
 * the best and the median run in 10^9 multiply-adds per second of wall time (one FMA lane = one
 * multiply-add), and the best rate per second of the process's CPU time (per core: what a thread
 * gets while it runs, whatever else shares the machine). A benchmark, not a test: on a shared
 * machine the best run is the closest to the hardware's rate. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timer.h"

#define CHAINS 16 /* independent accumulators: enough to cover FMA latency x ports */
#define INNER 1024

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

/* Each kernel runs `outer` x INNER x CHAINS vector FMAs and returns a value that depends on all
 * of them (so that nothing is optimized away); *lanes receives the floats per vector. */
__attribute__((target("avx512f,fma"))) static float kernel512(int64_t outer, float seed, int *lanes)
{
    v16 acc[CHAINS], m, a;
    for (int k = 0; k < 16; k++) {
        m[k] = 0.999999f;
        a[k] = 1e-7f * (float)(k + 1);
    }
    for (int c = 0; c < CHAINS; c++)
        for (int k = 0; k < 16; k++)
            acc[c][k] = seed + (float)c;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < INNER; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++)
                acc[c] = acc[c] * m + a;
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        for (int k = 0; k < 16; k++)
            s += acc[c][k];
    *lanes = 16;
    return s;
}

__attribute__((target("avx2,fma"))) static float kernel256(int64_t outer, float seed, int *lanes)
{
    v8 acc[CHAINS], m, a;
    for (int k = 0; k < 8; k++) {
        m[k] = 0.999999f;
        a[k] = 1e-7f * (float)(k + 1);
    }
    for (int c = 0; c < CHAINS; c++)
        for (int k = 0; k < 8; k++)
            acc[c][k] = seed + (float)c;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < INNER; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++)
                acc[c] = acc[c] * m + a;
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        for (int k = 0; k < 8; k++)
            s += acc[c][k];
    *lanes = 8;
    return s;
}

static float kernel_scalar(int64_t outer, float seed, int *lanes)
{
    float acc[CHAINS];
    for (int c = 0; c < CHAINS; c++)
        acc[c] = seed + (float)c;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < INNER; i++)
            for (int c = 0; c < CHAINS; c++)
                acc[c] = acc[c] * 0.999999f + 1e-7f;
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += acc[c];
    *lanes = 1;
    return s;
}

typedef float (*kernel_fn)(int64_t, float, int *);

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    double seconds = argc > 2 ? atof(argv[2]) : 0.3;
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || threads > 1024 || !(seconds > 0 && seconds <= 60) || runs < 1 || runs > 1000) {
        fprintf(stderr, "fma_peak: usage: fma_peak [THREADS (1-1024) [SECONDS (0-60] [RUNS (1-1000)]]]\n");
        return 2;
    }
    __builtin_cpu_init();
    kernel_fn kernel = kernel_scalar;
    const char *isa = "scalar";
    if (__builtin_cpu_supports("avx512f")) {
        kernel = kernel512;
        isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        kernel = kernel256;
        isa = "avx2";
    }
    /* calibrate one thread's outer count to about `seconds` */
    int lanes = 1;
    int64_t outer = 16;
    volatile float sink = 0;
    for (;;) {
        double t = timer_now();
        sink += kernel(outer, 1.0f, &lanes);
        double dt = timer_now() - t;
        if (dt > seconds / 4 || outer > ((int64_t)1 << 40))
            break;
        outer *= 2;
    }
    outer = (int64_t)((double)outer * 4);
    double *rate = malloc((size_t)runs * sizeof *rate), best_cpu = 0;
    if (!rate)
        return 1;
    for (int r = 0; r < runs; r++) {
        double t = timer_now(), c = cpu_now();
        float part[1024];
#pragma omp parallel num_threads(threads)
        {
            int l;
            part[omp_get_thread_num()] = kernel(outer, (float)omp_get_thread_num(), &l);
        }
        double dt = timer_now() - t, dc = cpu_now() - c;
        for (int k = 0; k < threads; k++)
            sink += part[k];
        double macs = (double)outer * INNER * CHAINS * lanes * threads;
        rate[r] = macs / dt / 1e9;
        if (macs / dc / 1e9 > best_cpu)
            best_cpu = macs / dc / 1e9;
        printf("run %d: %.1f GMAC/s (%.3f s), %.1f GMAC per CPU second\n", r + 1, rate[r], dt, macs / dc / 1e9);
    }
    qsort(rate, (size_t)runs, sizeof *rate, cmp_double);
    printf("peak_gmacs %.2f %.2f threads %d isa %s cpu_gmacs %.2f\n", rate[runs - 1], rate[runs / 2], threads, isa,
           best_cpu);
    free(rate);
    return sink == 12345.678f; /* never: keeps the kernels' results alive */
}
