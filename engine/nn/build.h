/* build: the network families boengine knows, with torchvision's layer names, and the
 * architecture record (JSON) that lets a saved network be rebuilt from its file alone. */
#ifndef BOENGINE_BUILD_H
#define BOENGINE_BUILD_H

#include <stdint.h>

#include "nn/net.h"

typedef struct nn_spec {
    const char *arch;       /* "vgg", "resnet" or "mlp" */
    int depth;              /* vgg 11/13/16/19, resnet 18/34/50/101/152 */
    int batchnorm;          /* vgg */
    int channels, classes, size;
    double width;           /* multiplies every channel count (vgg, resnet) */
    int small_stem;         /* resnet: 3×3/1 conv and no max pool; vgg: max pools in ceil mode */
    int small_head;         /* vgg: global average pool and a 512-512-classes classifier */
    float dropout;          /* vgg classifier dropout probability */
    int nwidths;            /* mlp: widths[0] inputs ... widths[nwidths-1] classes */
    int widths[32];
    uint64_t seed;          /* initialization of the parameters */
} nn_spec;

/* Defaults of torchvision's ImageNet models. */
void nn_spec_defaults(nn_spec *s, const char *arch);

/* Builds and initializes a network; NULL with err_set on an invalid spec. */
nn_net *nn_build(const nn_spec *s);
/* The same graph without parameters (nn_init_params or nn_load_file gives them). */
nn_net *nn_build_graph(const nn_spec *s);

/* The spec as JSON (malloc'ed), and back. */
char *nn_spec_to_json(const nn_spec *s);
int nn_spec_from_json(nn_spec *s, const char *json);

/* Rounds a channel count scaled by width, as every builder does: max(1, floor(c·width + 0.5)). */
int nn_scale_width(int c, double width);

#endif
