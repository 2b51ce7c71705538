#include "train/augment.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int nn_augment_batch(const nn_augment *a, float *x, int64_t n, int c, int h, int w, rng *r)
{
    if (a->crop <= 0 && !a->flip)
        return 0;
    int *draw = malloc((size_t)(n > 0 ? n : 1) * 3 * sizeof *draw);
    if (!draw)
        return err_set("out of memory");
    for (int64_t i = 0; i < n; i++) { /* sequential draws: the same seed, the same batch */
        draw[3 * i] = a->crop > 0 ? (int)rng_below(r, (uint64_t)(2 * a->crop + 1)) - a->crop : 0;
        draw[3 * i + 1] = a->crop > 0 ? (int)rng_below(r, (uint64_t)(2 * a->crop + 1)) - a->crop : 0;
        draw[3 * i + 2] = a->flip ? (int)rng_below(r, 2) : 0;
    }
    int failed = 0;
#pragma omp parallel
    {
        float *plane = malloc((size_t)h * w * sizeof *plane);
        if (!plane) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n * c; i++) {
            if (!plane)
                continue;
            int64_t img = i / c;
            int dy = draw[3 * img], dx = draw[3 * img + 1], flip = draw[3 * img + 2];
            if (!dy && !dx && !flip)
                continue;
            float *p = x + i * h * w, fill = a->fill ? a->fill[i % c] : 0.0f;
            memcpy(plane, p, (size_t)h * w * sizeof *plane);
            /* output (row, col) reads the padded image at (row + crop + dy, ...), i.e. the
             * original at (row + dy, col + dx); the flip mirrors the crop's columns */
            for (int row = 0; row < h; row++) {
                int sr = row + dy;
                for (int col = 0; col < w; col++) {
                    int sc = (flip ? w - 1 - col : col) + dx;
                    p[row * w + col] = sr >= 0 && sr < h && sc >= 0 && sc < w ? plane[sr * w + sc] : fill;
                }
            }
        }
        free(plane);
    }
    free(draw);
    return failed ? err_set("out of memory") : 0;
}
