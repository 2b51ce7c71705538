/* augment: the usual training augmentation of small images, in place on a batch: a random crop
 * of the image padded on every side (torchvision's RandomCrop(size, padding), the padding filled
 * with the normalized value of black) then a random horizontal flip, drawn from a seeded generator. */
#ifndef BOENGINE_AUGMENT_H
#define BOENGINE_AUGMENT_H

#include <stdint.h>

#include "core/rng.h"

typedef struct nn_augment {
    int crop;          /* padding of the random crop, 0 for none */
    int flip;          /* flip horizontally with probability 1/2 */
    const float *fill; /* per channel: the value padding takes */
} nn_augment;

/* Augments the n images of x (n × c × h × w) in place; draws, per image in order, the crop offsets
 * (row, then column) and the flip from r. Returns -1 with err_set when out of memory. */
int nn_augment_batch(const nn_augment *a, float *x, int64_t n, int c, int h, int w, rng *r);

#endif
