#include "nn/adaptive_pool.h"

#include <string.h>

/* Bin [lo, hi) of output index i out of o over n inputs, as PyTorch's adaptive pools. */
static void bin(int i, int o, int n, int *lo, int *hi)
{
    *lo = i * n / o;
    *hi = ((i + 1) * n + o - 1) / o;
}

/* One plane, forward (y from x) or backward (x from y). */
static void plane(float *x, float *y, int h, int w, int oh, int ow, int back)
{
    if (back)
        memset(x, 0, (size_t)h * w * sizeof *x);
    for (int i = 0; i < oh; i++) {
        int h0, h1;
        bin(i, oh, h, &h0, &h1);
        for (int j = 0; j < ow; j++) {
            int w0, w1;
            bin(j, ow, w, &w0, &w1);
            double area = (double)(h1 - h0) * (w1 - w0), acc = 0;
            for (int u = h0; u < h1; u++)
                for (int v = w0; v < w1; v++) {
                    if (back)
                        x[u * w + v] += (float)(y[i * ow + j] / area);
                    else
                        acc += x[u * w + v];
                }
            if (!back)
                y[i * ow + j] = (float)(acc / area);
        }
    }
}

void nn_adaptive_pool_forward(const float *x, float *y, int64_t planes, int h, int w, int oh, int ow)
{
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++)
        plane((float *)x + p * h * w, y + p * oh * ow, h, w, oh, ow, 0);
}

void nn_adaptive_pool_backward(float *dx, const float *dy, int64_t planes, int h, int w, int oh, int ow)
{
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++)
        plane(dx + p * h * w, (float *)dy + p * oh * ow, h, w, oh, ow, 1);
}
