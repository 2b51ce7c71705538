/* libFuzzer harness: the PNG and JPEG decoders on any bytes, then the evaluation transform
 * (resize and centre crop) on what decodes. Images are capped at 2^22 pixels here: a header can
 * announce any size, and the pixels are allocated before the data shows they exist. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "io/images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    img_set_max_pixels((int64_t)1 << 22);
    img_rgb im;
    if (img_load(fuzz_as_file(data, size), &im) != 0)
        return 0;
    img_eval t;
    img_eval_default(&t, 16);
    float *out = malloc(sizeof *out * 3 * 16 * 16);
    if (out)
        img_eval_apply(&im, &t, out);
    free(out);
    img_free(&im);
    return 0;
}
