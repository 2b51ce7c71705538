/* adaptive_pool: average pooling of h×w planes to oh×ow over PyTorch's adaptive bins, which may be
 * uneven and overlap (oneDNN has no primitive for that), in plain layout, in C; the inference and
 * training plans both run it. */
#ifndef BOENGINE_ADAPTIVE_POOL_H
#define BOENGINE_ADAPTIVE_POOL_H

#include <stdint.h>

/* y (planes × oh × ow) = the mean of each bin of x (planes × h × w). */
void nn_adaptive_pool_forward(const float *x, float *y, int64_t planes, int h, int w, int oh, int ow);

/* dx (planes × h × w) = each bin's share of dy (planes × oh × ow), summed where bins overlap. */
void nn_adaptive_pool_backward(float *dx, const float *dy, int64_t planes, int h, int w, int oh, int ow);

#endif
