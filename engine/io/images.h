/* images: PNG and JPEG decoding to 8-bit RGB, and the ImageNet evaluation transform as torchvision
 * applies it to PIL images (Resize of the shorter side with PIL's antialiased bilinear filter,
 * CenterCrop, ToTensor, Normalize), so that a folder of images feeds a torchvision model the same
 * numbers it saw in PyTorch. */
#ifndef BOENGINE_IMAGES_H
#define BOENGINE_IMAGES_H

#include <stdint.h>

typedef struct img_rgb {
    int width, height;
    uint8_t *px; /* height x width x 3, interleaved RGB */
} img_rgb;

/* Decodes a PNG or JPEG file (recognized by its signature, not its name) to RGB: grey is
 * replicated, palettes expanded, alpha (and transparency) dropped without compositing, 16-bit
 * samples reduced to their high byte, as PIL's convert("RGB") does. -1 with err_set naming the
 * file on any error, including a truncated file. */
int img_load(const char *path, img_rgb *out);
/* The largest image img_load decodes, in pixels (default 2^28; <= 0 restores it): the pixels are
 * allocated on the word of the header, before the data shows they exist. A bound for tests and
 * fuzzing; not thread-safe. */
void img_set_max_pixels(int64_t n);
void img_free(img_rgb *im);

/* Resizes an interleaved 8-bit image of `channels` channels from w x h to ow x oh with PIL's
 * bilinear filter (a triangle whose support widens with the downscale factor, fixed-point
 * coefficients, 8-bit rounding after the horizontal and the vertical pass), and keeps only the
 * window of cw x ch pixels at (x0, y0) of the result: out holds ch x cw x channels bytes. */
int img_resize_crop(const uint8_t *in, int w, int h, int channels, int ow, int oh, int x0, int y0,
                    int cw, int ch, uint8_t *out);

typedef struct img_eval {
    int size;    /* side of the centre crop */
    int resize;  /* the shorter side is resized to this first */
    float mean[3], std[3];
} img_eval;

/* ImageNet defaults for a crop of size: resize = round(size * 256 / 224), the usual mean and std. */
void img_eval_default(img_eval *t, int size);

/* The size torchvision's Resize(resize) gives a w x h image: shorter side resize, the other
 * side scaled and truncated. */
void img_resized_size(int w, int h, int resize, int *ow, int *oh);

/* Applies the transform to im: out receives 3 x size x size floats, (x / 255 - mean) / std per
 * channel. -1 with err_set when resize < size or memory runs out. */
int img_eval_apply(const img_rgb *im, const img_eval *t, float *out);

#endif
