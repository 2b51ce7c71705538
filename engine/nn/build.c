#include "nn/build.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void nn_spec_defaults(nn_spec *s, const char *arch)
{
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->depth = strcmp(arch, "resnet") == 0 ? 18 : 16;
    s->channels = 3;
    s->classes = 1000;
    s->size = 224;
    s->width = 1;
    s->dropout = 0.5f;
    s->seed = 1;
}

int nn_scale_width(int c, double width)
{
    int v = (int)floor(c * width + 0.5);
    return v < 1 ? 1 : v;
}

/* Small helpers that append one node each and return its index (or -1). */
static int add_conv(nn_net *net, const char *name, int in, int out, int k, int stride, int pad, int bias)
{
    nn_node n = {.op = NN_CONV, .name = (char *)name, .in = {in, -2}, .out = out, .kh = k, .kw = k,
                 .sh = stride, .sw = stride, .ph = pad, .pw = pad, .groups = 1, .has_bias = bias};
    return nn_add(net, &n);
}

static int add_simple(nn_net *net, nn_op op, const char *name, int in)
{
    nn_node n = {.op = op, .name = (char *)name, .in = {in, -2}, .eps = 1e-5f};
    return nn_add(net, &n);
}

static int add_pool(nn_net *net, nn_op op, const char *name, int in, int k, int stride, int pad, int ceil_mode)
{
    nn_node n = {.op = op, .name = (char *)name, .in = {in, -2}, .kh = k, .kw = k, .sh = stride,
                 .sw = stride, .ph = pad, .pw = pad, .ceil_mode = ceil_mode};
    return nn_add(net, &n);
}

static int add_adaptive(nn_net *net, const char *name, int in, int size)
{
    nn_node n = {.op = NN_ADAPTIVE_AVGPOOL, .name = (char *)name, .in = {in, -2}, .oh = size, .ow = size};
    return nn_add(net, &n);
}

static int add_linear(nn_net *net, const char *name, int in, int out)
{
    nn_node n = {.op = NN_LINEAR, .name = (char *)name, .in = {in, -2}, .out = out, .has_bias = 1};
    return nn_add(net, &n);
}

static int add_dropout(nn_net *net, const char *name, int in, float p)
{
    nn_node n = {.op = NN_DROPOUT, .name = (char *)name, .in = {in, -2}, .dropout = p};
    return nn_add(net, &n);
}

static int add_sum(nn_net *net, const char *name, int a, int b)
{
    nn_node n = {.op = NN_ADD, .name = (char *)name, .in = {a, b}};
    return nn_add(net, &n);
}

#define TRY(x)                                                                                       \
    do {                                                                                             \
        if ((last = (x)) < 0)                                                                        \
            return -1;                                                                               \
    } while (0)

static int build_vgg(nn_net *net, const nn_spec *s)
{
    static const int cfg11[] = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
    static const int cfg13[] = {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
    static const int cfg16[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0,
                                512, 512, 512, 0, -1};
    static const int cfg19[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0,
                                512, 512, 512, 512, 0, -1};
    const int *cfg = s->depth == 11 ? cfg11 : s->depth == 13 ? cfg13 : s->depth == 16 ? cfg16
                   : s->depth == 19 ? cfg19 : NULL;
    if (!cfg)
        return err_set("depth %d is not one of 11, 13, 16, 19 (vgg)", s->depth);
    char name[64];
    int last = NN_INPUT, idx = 0, ch = s->channels;
    for (; *cfg >= 0; cfg++) {
        if (*cfg == 0) { /* 'M': 2×2 max pool */
            snprintf(name, sizeof name, "features.%d", idx++);
            TRY(add_pool(net, NN_MAXPOOL, name, last, 2, 2, 0, s->small_stem));
            continue;
        }
        ch = nn_scale_width(*cfg, s->width);
        snprintf(name, sizeof name, "features.%d", idx++);
        TRY(add_conv(net, name, last, ch, 3, 1, 1, 1));
        if (s->batchnorm) {
            snprintf(name, sizeof name, "features.%d", idx++);
            TRY(add_simple(net, NN_BATCHNORM, name, last));
        }
        snprintf(name, sizeof name, "features.%d", idx++);
        TRY(add_simple(net, NN_RELU, name, last));
    }
    TRY(add_adaptive(net, "avgpool", last, s->small_head ? 1 : 7));
    int hidden = s->small_head ? nn_scale_width(512, s->width) : 4096;
    TRY(add_linear(net, "classifier.0", last, hidden));
    TRY(add_simple(net, NN_RELU, "classifier.1", last));
    TRY(add_dropout(net, "classifier.2", last, s->dropout));
    TRY(add_linear(net, "classifier.3", last, hidden));
    TRY(add_simple(net, NN_RELU, "classifier.4", last));
    TRY(add_dropout(net, "classifier.5", last, s->dropout));
    TRY(add_linear(net, "classifier.6", last, s->classes));
    (void)ch;
    return 0;
}

/* One residual block (basic when expansion is 1, bottleneck when 4); returns its output node. */
static int resnet_block(nn_net *net, const char *prefix, int x, int inplanes, int planes, int stride,
                        int expansion)
{
    char name[96];
    int last = x;
    int convs = expansion == 1 ? 2 : 3;
    for (int c = 1; c <= convs; c++) {
        int out = c == convs ? planes * expansion : planes;
        int k = expansion == 1 || c == 2 ? 3 : 1;
        int s = (expansion == 1 ? c == 1 : c == 2) ? stride : 1; /* v1.5: stride on the 3×3 */
        snprintf(name, sizeof name, "%s.conv%d", prefix, c);
        TRY(add_conv(net, name, last, out, k, s, k / 2, 0));
        snprintf(name, sizeof name, "%s.bn%d", prefix, c);
        TRY(add_simple(net, NN_BATCHNORM, name, last));
        if (c < convs) {
            snprintf(name, sizeof name, "%s.relu%d", prefix, c);
            TRY(add_simple(net, NN_RELU, name, last));
        }
    }
    int main_path = last, shortcut = x;
    if (stride != 1 || inplanes != planes * expansion) {
        snprintf(name, sizeof name, "%s.downsample.0", prefix);
        TRY(add_conv(net, name, x, planes * expansion, 1, stride, 0, 0));
        snprintf(name, sizeof name, "%s.downsample.1", prefix);
        TRY(add_simple(net, NN_BATCHNORM, name, last));
        shortcut = last;
    }
    snprintf(name, sizeof name, "%s.add", prefix);
    TRY(add_sum(net, name, main_path, shortcut));
    snprintf(name, sizeof name, "%s.relu", prefix);
    TRY(add_simple(net, NN_RELU, name, last));
    return last;
}

static int build_resnet(nn_net *net, const nn_spec *s)
{
    static const int blocks[5][4] = {{2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}, {3, 4, 23, 3}, {3, 8, 36, 3}};
    int which = s->depth == 18 ? 0 : s->depth == 34 ? 1 : s->depth == 50 ? 2 : s->depth == 101 ? 3
              : s->depth == 152 ? 4 : -1;
    if (which < 0)
        return err_set("depth %d is not one of 18, 34, 50, 101, 152 (resnet)", s->depth);
    int expansion = s->depth >= 50 ? 4 : 1;
    int last, inplanes = nn_scale_width(64, s->width);
    if (s->small_stem) {
        TRY(add_conv(net, "conv1", NN_INPUT, inplanes, 3, 1, 1, 0));
        TRY(add_simple(net, NN_BATCHNORM, "bn1", last));
        TRY(add_simple(net, NN_RELU, "relu", last));
    } else {
        TRY(add_conv(net, "conv1", NN_INPUT, inplanes, 7, 2, 3, 0));
        TRY(add_simple(net, NN_BATCHNORM, "bn1", last));
        TRY(add_simple(net, NN_RELU, "relu", last));
        TRY(add_pool(net, NN_MAXPOOL, "maxpool", last, 3, 2, 1, 0));
    }
    for (int stage = 0; stage < 4; stage++) {
        int planes = nn_scale_width(64 << stage, s->width);
        for (int b = 0; b < blocks[which][stage]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            TRY(resnet_block(net, prefix, last, inplanes, planes, b == 0 && stage > 0 ? 2 : 1, expansion));
            inplanes = planes * expansion;
        }
    }
    TRY(add_adaptive(net, "avgpool", last, 1));
    TRY(add_linear(net, "fc", last, s->classes));
    return 0;
}

static int build_mlp(nn_net *net, const nn_spec *s)
{
    int last = NN_INPUT;
    for (int i = 1; i < s->nwidths; i++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d", i);
        TRY(add_linear(net, name, last, s->widths[i]));
        if (i + 1 < s->nwidths) {
            snprintf(name, sizeof name, "relu%d", i);
            TRY(add_simple(net, NN_RELU, name, last));
        }
    }
    return 0;
}

/* Upper bounds that keep every shape computation inside int and every request plausible; a
 * record read from a file is checked against the file's tensors before anything is allocated. */
#define SPEC_MAX_WIDTH (1 << 28)  /* mlp layer widths */
#define SPEC_MAX_CHANNELS 65536
#define SPEC_MAX_CLASSES (1 << 24)
#define SPEC_MAX_SIZE 16384

static int check_spec(const nn_spec *s)
{
    if (strcmp(s->arch, "mlp") == 0) {
        if (s->nwidths < 2)
            return err_set("an mlp needs at least two widths (inputs and classes)");
        for (int i = 0; i < s->nwidths; i++)
            if (s->widths[i] < 1 || s->widths[i] > SPEC_MAX_WIDTH)
                return err_set("width %d is %d, must be in [1, %d]", i + 1, s->widths[i], SPEC_MAX_WIDTH);
        return 0;
    }
    if (s->channels < 1 || s->channels > SPEC_MAX_CHANNELS)
        return err_set("channels %d must be in [1, %d]", s->channels, SPEC_MAX_CHANNELS);
    if (s->classes < 1 || s->classes > SPEC_MAX_CLASSES)
        return err_set("classes %d must be in [1, %d]", s->classes, SPEC_MAX_CLASSES);
    if (s->size < 1 || s->size > SPEC_MAX_SIZE)
        return err_set("size %d must be in [1, %d]", s->size, SPEC_MAX_SIZE);
    if (!(s->width > 0) || s->width > 64)
        return err_set("width %g must be in (0, 64]", s->width);
    if (s->dropout < 0 || s->dropout >= 1)
        return err_set("dropout %g must be in [0, 1)", s->dropout);
    return 0;
}

nn_net *nn_build_graph(const nn_spec *s)
{
    if (check_spec(s) != 0)
        return NULL;
    int is_mlp = strcmp(s->arch, "mlp") == 0;
    nn_net *net = is_mlp ? nn_net_new(s->widths[0], 1, s->widths[s->nwidths - 1])
                         : nn_net_new(s->channels, s->size, s->classes);
    if (!net)
        return NULL;
    int rc = strcmp(s->arch, "vgg") == 0      ? build_vgg(net, s)
             : strcmp(s->arch, "resnet") == 0 ? build_resnet(net, s)
             : is_mlp                         ? build_mlp(net, s)
                                              : err_set("unknown architecture '%s'", s->arch);
    if (rc == 0 && !(net->arch = nn_spec_to_json(s)))
        rc = err_set("out of memory");
    if (rc != 0) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}

nn_net *nn_build(const nn_spec *s)
{
    nn_net *net = nn_build_graph(s);
    if (net && nn_init_params(net, s->seed) != 0) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}

char *nn_spec_to_json(const nn_spec *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", s->arch);
    if (strcmp(s->arch, "mlp") == 0) {
        cJSON_AddItemToObject(o, "widths", cJSON_CreateIntArray(s->widths, s->nwidths));
    } else {
        cJSON_AddNumberToObject(o, "depth", s->depth);
        if (strcmp(s->arch, "vgg") == 0) {
            cJSON_AddBoolToObject(o, "batchnorm", s->batchnorm);
            cJSON_AddStringToObject(o, "head", s->small_head ? "small" : "torchvision");
            cJSON_AddNumberToObject(o, "dropout", s->dropout);
        }
        cJSON_AddNumberToObject(o, "channels", s->channels);
        cJSON_AddNumberToObject(o, "classes", s->classes);
        cJSON_AddNumberToObject(o, "size", s->size);
        cJSON_AddNumberToObject(o, "width", s->width);
        cJSON_AddStringToObject(o, "stem", s->small_stem ? "small" : "torchvision");
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* An integer member (def when absent); -1 with a message when present but not an integer in
 * [lo, hi]. */
static int json_int(const cJSON *o, const char *key, int def, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = def;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return err_set("architecture record: %s is not an integer in [%d, %d]", key, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static const char *json_str(const cJSON *o, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

int nn_spec_from_json(nn_spec *s, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    const char *arch = json_str(o, "arch", "");
    static const char *const archs[] = {"vgg", "resnet", "mlp"};
    const char *known = NULL;
    for (int i = 0; i < 3; i++)
        if (strcmp(arch, archs[i]) == 0)
            known = archs[i];
    if (!cJSON_IsObject(o) || !known) {
        cJSON_Delete(o);
        return err_set("architecture record is not a known network: %.80s", json);
    }
    nn_spec_defaults(s, known);
    int rc = json_int(o, "depth", s->depth, 0, 1000, &s->depth);
    if (rc == 0)
        rc = json_int(o, "channels", s->channels, 1, SPEC_MAX_CHANNELS, &s->channels);
    if (rc == 0)
        rc = json_int(o, "classes", s->classes, 1, SPEC_MAX_CLASSES, &s->classes);
    if (rc == 0)
        rc = json_int(o, "size", s->size, 1, SPEC_MAX_SIZE, &s->size);
    s->batchnorm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "batchnorm"));
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "width");
    if (cJSON_IsNumber(w))
        s->width = w->valuedouble;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    if (cJSON_IsNumber(d))
        s->dropout = (float)d->valuedouble;
    s->small_stem = strcmp(json_str(o, "stem", ""), "small") == 0;
    s->small_head = strcmp(json_str(o, "head", ""), "small") == 0;
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(o, "widths"), *e;
    int max = (int)(sizeof s->widths / sizeof *s->widths);
    if (rc == 0 && ws && (!cJSON_IsArray(ws) || cJSON_GetArraySize(ws) > max))
        rc = err_set("architecture record: widths is not a list of at most %d integers", max);
    cJSON_ArrayForEach(e, ws)
    {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (rc == 0 && (v != floor(v) || v < 1 || v > SPEC_MAX_WIDTH))
            rc = err_set("architecture record: width %d is not an integer in [1, %d]", s->nwidths + 1,
                         SPEC_MAX_WIDTH);
        if (rc == 0)
            s->widths[s->nwidths++] = (int)v;
    }
    cJSON_Delete(o);
    return rc;
}
