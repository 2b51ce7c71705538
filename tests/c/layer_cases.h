/* layer_cases: the one table of small test networks around every layer kind, fusion and residual
 * variant, as ggml's test_case: test_layers runs each instance through the inference plans
 * against the naive interpreter, test_backprop through the training plans against finite
 * differences. A new layer kind is one more entry: a builder of its instances. */
#ifndef BOENGINE_LAYER_CASES_H
#define BOENGINE_LAYER_CASES_H

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "nn/net.h"
#include "testutil.h"

/* An instance: the graph and the shape of the input it runs on, described for the test's line. */
typedef struct lc_instance {
    nn_net *net;
    int n, c, h, w;
    char what[160];
} lc_instance;

/* Builds instance k (0 .. count-1) into in, shapes drawn from r where random; parameters are
 * added by lc_make. 0, or -1 with err_set. */
typedef int (*lc_build_fn)(int k, rng *r, lc_instance *in);

typedef struct layer_case {
    const char *name;
    int count;
    lc_build_fn build;
} layer_case;

static inline void lc_input(lc_instance *in, nn_net *net, int n, int c, int h, int w)
{
    in->net = net;
    in->n = n;
    in->c = c;
    in->h = h;
    in->w = w;
}

/* Convolutions of random shapes (channels, groups, kernel, strides, padding, bias), alone or with
 * a batch norm and/or a ReLU fused. A batch norm sees at least 8 values per channel, so that its
 * batch statistics are not degenerate under finite differences. */
static inline int lc_conv(int t, rng *r, lc_instance *in)
{
    int c = tu_rand_int(r, 1, 9), h = tu_rand_int(r, 3, 13), w = tu_rand_int(r, 3, 13);
    int groups = c % 2 == 0 && t % 4 == 0 ? 2 : 1;
    int kh = tu_rand_int(r, 1, h < 3 ? h : 3), kw = t % 5 == 0 ? 1 : tu_rand_int(r, 1, w < 5 ? w : 5);
    nn_node conv = {.op = NN_CONV, .in = {NN_INPUT}, .out = groups * tu_rand_int(r, 1, 8), .kh = kh, .kw = kw,
                    .sh = tu_rand_int(r, 1, 3), .sw = tu_rand_int(r, 1, 3), .ph = tu_rand_int(r, 0, kh / 2),
                    .pw = tu_rand_int(r, 0, kw / 2), .groups = groups, .has_bias = t % 3 != 0};
    int bn = t % 2, relu = t % 3 != 0;
    nn_net *net = nn_net_new(c, h > w ? h : w, 1); /* nominal size × size: large enough for the kernel */
    int last = graph_add(net, conv);
    if (bn)
        last = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {last}});
    if (relu)
        graph_add(net, (nn_node){.op = NN_RELU, .in = {last}});
    int oh = (h + 2 * conv.ph - kh) / conv.sh + 1, ow = (w + 2 * conv.pw - kw) / conv.sw + 1;
    int n = tu_rand_int(r, 1, 3);
    if (bn && n * oh * ow < 8)
        n = (8 + oh * ow - 1) / (oh * ow);
    lc_input(in, net, n, c, h, w);
    snprintf(in->what, sizeof in->what, "conv %dx%d/%dx%d pad %dx%d groups %d, %d→%d on %dx%d, batch %d%s%s%s", kh,
             kw, conv.sh, conv.sw, conv.ph, conv.pw, groups, c, conv.out, h, w, n, conv.has_bias ? " +bias" : "",
             bn ? " +bn" : "", relu ? " +relu" : "");
    return 0;
}

/* A convolution reading another: blocked layouts between them, both with fusions. */
static inline int lc_conv_chain(int k, rng *r, lc_instance *in)
{
    (void)k, (void)r;
    nn_net *net = nn_net_new(3, 7, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1, .has_bias = 1});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 20, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1,
                                 .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    lc_input(in, net, 3, 3, 7, 7);
    snprintf(in->what, sizeof in->what, "conv+relu → conv+bn+relu, 16 and 20 channels");
    return 0;
}

/* Tiny planes with blocked channel counts, as deep in a VGG on 28×28. */
static inline int lc_conv_tiny(int k, rng *r, lc_instance *in)
{
    (void)r;
    static const int tiny[][3] = {{2, 32, 32}, {1, 32, 32}, {3, 16, 32}, {2, 8, 8}}; /* size, in, out channels */
    int hw = tiny[k][0], ci = tiny[k][1], co = tiny[k][2];
    nn_net *net = nn_net_new(ci, hw, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = co, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    lc_input(in, net, 4, ci, hw, hw);
    snprintf(in->what, sizeof in->what, "conv 3x3 pad 1 on %dx%d, %d→%d channels", hw, hw, ci, co);
    return 0;
}

/* The shapes compression produces: k×1 then 1×k (VH), 1×1, k×k, 1×1 (Tucker-2), two linear layers. */
static inline int lc_factored(int k, rng *r, lc_instance *in)
{
    (void)k, (void)r;
    nn_net *net = nn_net_new(8, 12, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 5, .kh = 3, .kw = 1, .sh = 1, .sw = 1,
                                     .ph = 1});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 16, .kh = 1, .kw = 3, .sh = 1, .sw = 1, .pw = 1,
                                 .has_bias = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1,
                                 .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 16, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                                 .has_bias = 1});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 7});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 10, .has_bias = 1});
    lc_input(in, net, 2, 8, 12, 12);
    snprintf(in->what, sizeof in->what, "VH pair (3x1, 1x3), Tucker-2 triple (1x1, 3x3/2, 1x1), two linear layers");
    return 0;
}

/* Max and average pools with PyTorch's ceil mode and padding rules, on the input (plain layout)
 * or after a 1×1 convolution (a layout oneDNN chose). */
static inline int lc_pool(int k, rng *r, lc_instance *in)
{
    (void)r;
    static const struct {
        nn_op op;
        int k, s, p, ceil, size, after_conv;
    } cases[] = {
        {NN_MAXPOOL, 2, 2, 0, 0, 9, 0},  {NN_MAXPOOL, 2, 2, 0, 1, 7, 0}, {NN_MAXPOOL, 3, 2, 1, 0, 8, 0},
        {NN_MAXPOOL, 3, 2, 1, 1, 10, 0}, {NN_MAXPOOL, 2, 2, 0, 1, 1, 0}, {NN_AVGPOOL, 2, 2, 0, 0, 8, 0},
        {NN_AVGPOOL, 3, 1, 1, 0, 6, 0},  {NN_AVGPOOL, 3, 2, 0, 0, 9, 0},  {NN_MAXPOOL, 2, 2, 0, 0, 8, 1},
        {NN_MAXPOOL, 2, 2, 0, 1, 7, 1},  {NN_MAXPOOL, 3, 2, 1, 0, 8, 1},  {NN_AVGPOOL, 2, 2, 0, 0, 6, 1},
        {NN_AVGPOOL, 3, 1, 1, 0, 5, 1},  {NN_AVGPOOL, 3, 2, 0, 1, 8, 1},
    };
    if (k >= (int)(sizeof cases / sizeof *cases))
        return err_set("pool case %d is not in the table", k);
    nn_net *net = nn_net_new(3, cases[k].size, 1);
    int src = NN_INPUT;
    if (cases[k].after_conv)
        src = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    graph_add(net, (nn_node){.op = cases[k].op, .in = {src}, .kh = cases[k].k, .kw = cases[k].k, .sh = cases[k].s,
                             .sw = cases[k].s, .ph = cases[k].p, .pw = cases[k].p, .ceil_mode = cases[k].ceil});
    lc_input(in, net, 2, 3, cases[k].size, cases[k].size);
    snprintf(in->what, sizeof in->what, "%s%s %dx%d/%d pad %d%s on %dx%d", cases[k].after_conv ? "conv → " : "",
             nn_op_name(cases[k].op), cases[k].k, cases[k].k, cases[k].s, cases[k].p, cases[k].ceil ? " ceil" : "",
             cases[k].size, cases[k].size);
    return 0;
}

/* Adaptive average pools over even bins (an ordinary pool), uneven or overlapping ones (C loops)
 * and to the same size (an identity), then a linear layer. */
static inline int lc_adaptive(int k, rng *r, lc_instance *in)
{
    (void)r;
    static const int cases[][4] = {/* size, output size, channels, batch */
                                   {7, 7, 4, 2}, {14, 7, 4, 2}, {5, 3, 4, 2}, {1, 7, 4, 2}, {2, 7, 4, 2}, {6, 1, 4, 2},
                                   {13, 4, 4, 2}, {6, 1, 3, 3}, {6, 3, 3, 3}, {5, 3, 3, 3}, {4, 4, 3, 3}};
    if (k >= (int)(sizeof cases / sizeof *cases))
        return err_set("adaptive pool case %d is not in the table", k);
    int size = cases[k][0], out = cases[k][1], c = cases[k][2];
    nn_net *net = nn_net_new(c, size, 1);
    int a = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {NN_INPUT}, .oh = out, .ow = out});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 5, .has_bias = 1});
    lc_input(in, net, cases[k][3], c, size, size);
    snprintf(in->what, sizeof in->what, "adaptive average pool %d→%d (%d channels) then linear", size, out, c);
    return 0;
}

/* Linear layers on a 4-D input, with a ReLU fused, dropout and a softmax; without bias. */
static inline int lc_linear(int k, rng *r, lc_instance *in)
{
    (void)r;
    int size = k == 0 ? 5 : 4;
    nn_net *net = nn_net_new(3, size, 1);
    int l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {NN_INPUT}, .out = k == 0 ? 17 : 9, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    l = graph_add(net, (nn_node){.op = NN_DROPOUT, .in = {l}, .dropout = k == 0 ? 0.5f : 0.3f});
    l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 6, .has_bias = k == 0});
    graph_add(net, (nn_node){.op = NN_SOFTMAX, .in = {l}});
    lc_input(in, net, 4, 3, size, size);
    snprintf(in->what, sizeof in->what, "linear on 3x%dx%d + relu + dropout %.1f + linear%s + softmax", size, size,
             k == 0 ? 0.5 : 0.3, k == 0 ? "" : " without bias");
    return 0;
}

/* A batch norm over the features of a linear layer (2-D activations). */
static inline int lc_linear_bn(int k, rng *r, lc_instance *in)
{
    (void)k, (void)r;
    nn_net *net = nn_net_new(20, 1, 1);
    int l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {NN_INPUT}, .out = 33, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {l}});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 7, .has_bias = 1});
    lc_input(in, net, 5, 20, 1, 1);
    snprintf(in->what, sizeof in->what, "linear on 20 features + batch norm + linear");
    return 0;
}

/* Batch norm, ReLU and add standing alone (nothing to fuse them into): after pools, on the input. */
static inline int lc_standalone(int k, rng *r, lc_instance *in)
{
    (void)r;
    nn_net *net;
    int bn, rl;
    if (k == 0) {
        net = nn_net_new(5, 8, 1);
        int p = graph_add(net, (nn_node){.op = NN_MAXPOOL, .in = {NN_INPUT}, .kh = 2, .kw = 2, .sh = 2, .sw = 2});
        bn = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {p}});
        int q = graph_add(net, (nn_node){.op = NN_AVGPOOL, .in = {NN_INPUT}, .kh = 2, .kw = 2, .sh = 2, .sw = 2});
        rl = graph_add(net, (nn_node){.op = NN_RELU, .in = {q}});
        lc_input(in, net, 2, 5, 8, 8);
    } else {
        net = nn_net_new(4, 6, 1);
        bn = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {NN_INPUT}});
        int q = graph_add(net, (nn_node){.op = NN_AVGPOOL, .in = {NN_INPUT}, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                         .ph = 1, .pw = 1});
        rl = graph_add(net, (nn_node){.op = NN_RELU, .in = {q}});
        lc_input(in, net, 3, 4, 6, 6);
    }
    int s = graph_add(net, (nn_node){.op = NN_ADD, .in = {bn, rl}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    snprintf(in->what, sizeof in->what, "%s, pool → relu, add + relu",
             k == 0 ? "max pool → batch norm" : "batch norm on the input");
    return 0;
}

/* x + x, an output read by three consumers, a sum with the network's input. */
static inline int lc_add(int k, rng *r, lc_instance *in)
{
    (void)k, (void)r;
    nn_net *net = nn_net_new(2, 5, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    int d = graph_add(net, (nn_node){.op = NN_ADD, .in = {a, a}});
    int e = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 2, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    int f = graph_add(net, (nn_node){.op = NN_ADD, .in = {d, e}});
    graph_add(net, (nn_node){.op = NN_ADD, .in = {f, NN_INPUT}});
    lc_input(in, net, 2, 2, 5, 5);
    snprintf(in->what, sizeof in->what, "x + x, a value read three times, a sum with the input");
    return 0;
}

static inline int lc_conv3(nn_net *net, int src, int out, int stride)
{
    return graph_add(net, (nn_node){.op = NN_CONV, .in = {src}, .out = out, .kh = 3, .kw = 3, .sh = stride,
                                    .sw = stride, .ph = 1, .pw = 1});
}

static inline int lc_conv1(nn_net *net, int src, int out, int stride)
{
    return graph_add(net, (nn_node){.op = NN_CONV, .in = {src}, .out = out, .kh = 1, .kw = 1, .sh = stride,
                                    .sw = stride});
}

static inline int lc_bn(nn_net *net, int src) { return graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {src}}); }
static inline int lc_relu(nn_net *net, int src) { return graph_add(net, (nn_node){.op = NN_RELU, .in = {src}}); }
static inline int lc_sum(nn_net *net, int a, int b) { return graph_add(net, (nn_node){.op = NN_ADD, .in = {a, b}}); }

/* A bottleneck block on a 3×3 stem; variant 0 without its 3×3, 1 without its expansion and
 * shortcut, 2 whole (1×1, 3×3, 1×1 to 16 channels, projected shortcut); pooled, then linear. */
static inline nn_net *lc_bottleneck(int variant)
{
    nn_net *net = nn_net_new(1, 6, 1);
    int x = lc_relu(net, lc_bn(net, lc_conv3(net, NN_INPUT, 4, 1)));
    int a = lc_relu(net, lc_bn(net, lc_conv1(net, x, 4, 1)));
    if (variant > 0)
        a = lc_relu(net, lc_bn(net, lc_conv3(net, a, 4, 1)));
    if (variant > 1) {
        a = lc_bn(net, lc_conv1(net, a, 16, 1));
        int d = lc_bn(net, lc_conv1(net, x, 16, 1));
        a = lc_relu(net, lc_sum(net, a, d));
    }
    a = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {a}, .oh = 1, .ow = 1});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 5, .has_bias = 1});
    return net;
}

/* Residual blocks: the sum fused into a convolution in place (identity shortcut), with the
 * network's input (copied, not overwritten), into a downsample computed after the main path, with
 * an operand read again after the sum; two blocks in a row; bottlenecks. */
static inline int lc_residual(int k, rng *r, lc_instance *in)
{
    (void)r;
    nn_net *net = NULL;
    if (k == 0) {
        net = nn_net_new(6, 9, 1);
        int a = lc_relu(net, lc_bn(net, lc_conv3(net, NN_INPUT, 6, 1)));
        int b = lc_relu(net, lc_bn(net, lc_conv3(net, a, 6, 1)));
        int c = lc_bn(net, lc_conv3(net, b, 6, 1));
        lc_relu(net, lc_sum(net, c, a));
        lc_input(in, net, 2, 6, 9, 9);
        snprintf(in->what, sizeof in->what, "residual block, identity shortcut summed in place");
    } else if (k == 1) {
        net = nn_net_new(5, 8, 1);
        lc_relu(net, lc_sum(net, lc_conv3(net, NN_INPUT, 5, 1), NN_INPUT));
        lc_input(in, net, 2, 5, 8, 8);
        snprintf(in->what, sizeof in->what, "residual sum with the network input");
    } else if (k == 2) {
        net = nn_net_new(4, 10, 1);
        int m = lc_bn(net, lc_conv3(net, NN_INPUT, 8, 2));
        int d = lc_bn(net, lc_conv1(net, NN_INPUT, 8, 2));
        lc_relu(net, lc_sum(net, m, d));
        lc_input(in, net, 3, 4, 10, 10);
        snprintf(in->what, sizeof in->what, "residual block with a strided 1x1 downsample");
    } else if (k == 3) {
        net = nn_net_new(4, 6, 1);
        int a = lc_conv1(net, NN_INPUT, 4, 1);
        int s = lc_sum(net, lc_conv3(net, a, 4, 1), a);
        lc_sum(net, s, a);
        lc_input(in, net, 2, 4, 6, 6);
        snprintf(in->what, sizeof in->what, "residual operand read again after the sum");
    } else if (k == 4) {
        net = nn_net_new(4, 6, 1);
        int x = lc_relu(net, lc_bn(net, lc_conv3(net, NN_INPUT, 8, 1)));
        int a = lc_relu(net, lc_bn(net, lc_conv3(net, x, 8, 1)));
        a = lc_bn(net, lc_conv3(net, a, 8, 1));
        x = lc_relu(net, lc_sum(net, a, x));
        int m = lc_bn(net, lc_conv3(net, x, 16, 2));
        int d = lc_bn(net, lc_conv1(net, x, 16, 2));
        int s = lc_relu(net, lc_sum(net, m, d));
        s = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {s}, .oh = 1, .ow = 1});
        graph_add(net, (nn_node){.op = NN_LINEAR, .in = {s}, .out = 5, .has_bias = 1});
        lc_input(in, net, 3, 4, 6, 6);
        snprintf(in->what, sizeof in->what, "residual blocks (identity and downsample shortcuts), pooled, linear");
    } else if (k <= 7) {
        net = lc_bottleneck(k - 5);
        lc_input(in, net, 3, 1, 6, 6);
        snprintf(in->what, sizeof in->what, "bottleneck variant %d", k - 5);
    } else {
        return err_set("residual case %d is not in the table", k);
    }
    return 0;
}

static const layer_case layer_cases[] = {
    {"conv", 56, lc_conv},
    {"conv chain", 1, lc_conv_chain},
    {"conv tiny", 4, lc_conv_tiny},
    {"factored", 1, lc_factored},
    {"pool", 14, lc_pool},
    {"adaptive pool", 11, lc_adaptive},
    {"linear", 2, lc_linear},
    {"linear + batch norm", 1, lc_linear_bn},
    {"stand-alone batch norm, relu, add", 2, lc_standalone},
    {"add", 1, lc_add},
    {"residual", 8, lc_residual},
};

#define LAYER_CASES ((int)(sizeof layer_cases / sizeof *layer_cases))

/* Instance k of case c with its parameters drawn at random (tu_randomize_params); NULL with
 * err_set (and in->what naming the case) when it cannot be built. */
static inline nn_net *lc_make(const layer_case *c, int k, rng *r, lc_instance *in)
{
    memset(in, 0, sizeof *in);
    snprintf(in->what, sizeof in->what, "%s #%d", c->name, k + 1);
    if (c->build(k, r, in) != 0 || !in->net)
        return NULL;
    if (nn_init_params(in->net, 7) != 0) {
        nn_net_free(in->net);
        return in->net = NULL;
    }
    tu_randomize_params(in->net, r);
    return in->net;
}

#endif
