/* Every layer kind and fusion of the oneDNN execution against the naive interpreter, on random
 * small shapes and random parameters (batch-norm statistics included). */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "naive_net.h"
#include "nn/build.h"
#include "nn/exec.h"
#include "tap.h"

static rng *r;

static int rand_int(int lo, int hi) { return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1)); }

/* Random parameters everywhere, positive variances; the graph must already have its parameters. */
static void randomize_params(nn_net *net)
{
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        if (n->op == NN_BATCHNORM) {
            graph_randomize_bn(n, r);
        } else {
            graph_randomize(n->weight, r, -0.5, 0.5);
            graph_randomize(n->bias, r, -0.5, 0.5);
        }
    }
    nn_invalidate(net);
}

static tensor *random_input(int n, int c, int h, int w)
{
    tensor *x = tensor_new(4, (int64_t[]){n, c, h, w});
    graph_randomize(x, r, -1, 1);
    return x;
}

/* Runs net on x with oneDNN and naively; true when they agree to 1e-4 relative. */
static int agrees(nn_net *net, const tensor *x, const char *what)
{
    tensor *y = nn_forward(net, x);
    long count = 0;
    float *ref = naive_forward(net, x, &count);
    int ok = y && ref && y->numel == count;
    double diff = 0, scale = 1e-12;
    for (long i = 0; ok && i < count; i++) {
        diff = fmax(diff, fabs((double)y->data[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    ok = ok && diff / scale <= 1e-4;
    tap_ok(ok, "%s", what);
    if (!ok)
        tap_diag("%s; relative error %.3g", y ? "" : err_msg(), diff / scale);
    tensor_free(y);
    free(ref);
    return ok;
}

static nn_net *finish(nn_net *net)
{
    if (nn_init_params(net, 7) != 0) {
        tap_diag("init: %s", err_msg());
        nn_net_free(net);
        return NULL;
    }
    randomize_params(net);
    return net;
}

static void test_conv(void)
{
    int good = 1;
    for (int t = 0; t < 40; t++) {
        int c = rand_int(1, 9), h = rand_int(3, 13), w = rand_int(3, 13);
        int groups = (c % 2 == 0 && t % 4 == 0) ? 2 : 1;
        int kh = rand_int(1, 3 < h ? 3 : h), kw = t % 5 == 0 ? 1 : rand_int(1, 3 < w ? 5 < w ? 5 : w : w);
        nn_node conv = {.op = NN_CONV, .in = {NN_INPUT}, .out = groups * rand_int(1, 8), .kh = kh, .kw = kw,
                        .sh = rand_int(1, 3), .sw = rand_int(1, 3), .ph = rand_int(0, kh / 2),
                        .pw = rand_int(0, kw / 2), .groups = groups, .has_bias = t % 3 != 0};
        nn_net *net = nn_net_new(c, h, 1);
        int last = graph_add(net, conv);
        if (t % 2)
            last = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {last}});
        if (t % 3)
            graph_add(net, (nn_node){.op = NN_RELU, .in = {last}});
        net->size = h;
        if (!finish(net)) {
            good = 0;
            continue;
        }
        tensor *x = random_input(rand_int(1, 3), c, h, w);
        char what[160];
        snprintf(what, sizeof what, "conv %dx%d/%dx%d pad %dx%d groups %d, %d→%d, %dx%d input%s%s", kh, kw,
                 conv.sh, conv.sw, conv.ph, conv.pw, groups, c, conv.out, h, w, t % 2 ? " +bn" : "",
                 t % 3 ? " +relu" : "");
        if (!agrees(net, x, what))
            good = 0;
        tensor_free(x);
        nn_net_free(net);
    }
    (void)good;
}

/* Square input nets need h == w for nn_init_params' nominal size: build with size = h. */
static nn_net *square_net(int c, int size) { return nn_net_new(c, size, 1); }

static void test_residual(void)
{
    /* identity shortcut: the block input is read by conv_a and by the add (summed in place) */
    nn_net *net = square_net(6, 9);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    int b = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                     .pw = 1});
    b = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {b}});
    b = graph_add(net, (nn_node){.op = NN_RELU, .in = {b}});
    int cc = graph_add(net, (nn_node){.op = NN_CONV, .in = {b}, .out = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                      .pw = 1});
    cc = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {cc}});
    int s = graph_add(net, (nn_node){.op = NN_ADD, .in = {cc, a}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    if (finish(net)) {
        tensor *x = random_input(2, 6, 9, 9);
        agrees(net, x, "residual block, identity shortcut summed in place");
        tensor_free(x);
        nn_net_free(net);
    }
    /* shortcut is the network input: it must be copied, not overwritten */
    net = square_net(5, 8);
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 5, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                 .ph = 1, .pw = 1});
    s = graph_add(net, (nn_node){.op = NN_ADD, .in = {a, NN_INPUT}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    if (finish(net)) {
        tensor *x = random_input(2, 5, 8, 8), *copy = tensor_clone(x);
        agrees(net, x, "residual sum with the network input");
        tap_ok(memcmp(x->data, copy->data, (size_t)x->numel * 4) == 0, "the caller's input is left untouched");
        tensor_free(x);
        tensor_free(copy);
        nn_net_free(net);
    }
    /* downsample shortcut computed after the main path: the sum is fused into the shortcut conv */
    net = square_net(4, 10);
    int m = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 8, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                                     .ph = 1, .pw = 1});
    m = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {m}});
    int d = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 8, .kh = 1, .kw = 1, .sh = 2, .sw = 2});
    d = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {d}});
    s = graph_add(net, (nn_node){.op = NN_ADD, .in = {m, d}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    if (finish(net)) {
        tensor *x = random_input(3, 4, 10, 10);
        agrees(net, x, "residual block with a strided 1x1 downsample");
        tensor_free(x);
        nn_net_free(net);
    }
    /* the residual operand is read again after the add: it must be copied */
    net = square_net(4, 6);
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    b = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                 .pw = 1});
    s = graph_add(net, (nn_node){.op = NN_ADD, .in = {b, a}});
    graph_add(net, (nn_node){.op = NN_ADD, .in = {s, a}});
    if (finish(net)) {
        tensor *x = random_input(2, 4, 6, 6);
        agrees(net, x, "residual operand read again after the sum");
        tensor_free(x);
        nn_net_free(net);
    }
}

static void test_pools(void)
{
    static const struct {
        nn_op op;
        int k, s, p, ceil, size;
    } cases[] = {
        {NN_MAXPOOL, 2, 2, 0, 0, 9}, {NN_MAXPOOL, 2, 2, 0, 1, 7}, {NN_MAXPOOL, 3, 2, 1, 0, 8},
        {NN_MAXPOOL, 3, 2, 1, 1, 10}, {NN_MAXPOOL, 2, 2, 0, 1, 1}, {NN_AVGPOOL, 2, 2, 0, 0, 8},
        {NN_AVGPOOL, 3, 1, 1, 0, 6}, {NN_AVGPOOL, 3, 2, 0, 0, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nn_net *net = square_net(3, cases[i].size);
        graph_add(net, (nn_node){.op = cases[i].op, .in = {NN_INPUT}, .kh = cases[i].k, .kw = cases[i].k,
                                 .sh = cases[i].s,
                           .sw = cases[i].s, .ph = cases[i].p, .pw = cases[i].p, .ceil_mode = cases[i].ceil});
        if (!finish(net))
            continue;
        tensor *x = random_input(2, 3, cases[i].size, cases[i].size);
        char what[128];
        snprintf(what, sizeof what, "%s %dx%d/%d pad %d%s on %dx%d", nn_op_name(cases[i].op), cases[i].k,
                 cases[i].k, cases[i].s, cases[i].p, cases[i].ceil ? " ceil" : "", cases[i].size, cases[i].size);
        agrees(net, x, what);
        tensor_free(x);
        nn_net_free(net);
    }
    static const int adaptive[][2] = {{7, 7}, {14, 7}, {5, 3}, {1, 7}, {2, 7}, {6, 1}, {13, 4}};
    for (size_t i = 0; i < sizeof adaptive / sizeof *adaptive; i++) {
        nn_net *net = square_net(4, adaptive[i][0]);
        graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {NN_INPUT}, .oh = adaptive[i][1],
                                 .ow = adaptive[i][1]});
        graph_add(net, (nn_node){.op = NN_LINEAR, .in = {0}, .out = 5, .has_bias = 1});
        if (!finish(net))
            continue;
        tensor *x = random_input(2, 4, adaptive[i][0], adaptive[i][0]);
        char what[128];
        snprintf(what, sizeof what, "adaptive average pool %d→%d then linear", adaptive[i][0], adaptive[i][1]);
        agrees(net, x, what);
        tensor_free(x);
        nn_net_free(net);
    }
}

static void test_linear_and_others(void)
{
    /* linear on a 4-D input, ReLU fused, dropout, linear, softmax */
    nn_net *net = square_net(3, 5);
    int l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {NN_INPUT}, .out = 17, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    l = graph_add(net, (nn_node){.op = NN_DROPOUT, .in = {l}, .dropout = 0.5f});
    l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 6, .has_bias = 1});
    graph_add(net, (nn_node){.op = NN_SOFTMAX, .in = {l}});
    if (finish(net)) {
        tensor *x = random_input(4, 3, 5, 5);
        agrees(net, x, "linear on 4-D input + relu + dropout + linear + softmax");
        tensor_free(x);
        nn_net_free(net);
    }
    /* stand-alone batch norm and ReLU (after a pool), stand-alone add of two branches */
    net = square_net(5, 8);
    int p = graph_add(net, (nn_node){.op = NN_MAXPOOL, .in = {NN_INPUT}, .kh = 2, .kw = 2, .sh = 2, .sw = 2});
    int bn = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {p}});
    int q = graph_add(net, (nn_node){.op = NN_AVGPOOL, .in = {NN_INPUT}, .kh = 2, .kw = 2, .sh = 2, .sw = 2});
    int rl = graph_add(net, (nn_node){.op = NN_RELU, .in = {q}});
    int s = graph_add(net, (nn_node){.op = NN_ADD, .in = {bn, rl}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    if (finish(net)) {
        tensor *x = random_input(2, 5, 8, 8);
        agrees(net, x, "stand-alone batch norm, relu and add");
        tensor_free(x);
        nn_net_free(net);
    }
    /* the same network twice and at several batch sizes: plans are reused and independent */
    net = square_net(2, 6);
    l = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 3, .kh = 3, .kw = 3, .sh = 1, .sw = 1});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 4, .has_bias = 1});
    if (finish(net)) {
        tensor *x = random_input(3, 2, 6, 6);
        tensor *y1 = nn_forward(net, x), *y2 = nn_forward(net, x);
        tensor *one = tensor_new(4, (int64_t[]){1, 2, 6, 6});
        memcpy(one->data, x->data + 2 * 72, 72 * sizeof(float));
        tensor *y3 = nn_forward(net, one);
        tap_ok(y1 && y2 && memcmp(y1->data, y2->data, 12 * sizeof(float)) == 0, "a plan run twice gives the same result");
        /* new weights in place: cached layouts must not be reused */
        graph_randomize(net->nodes[0].weight, r, -0.5, 0.5);
        nn_invalidate(net);
        agrees(net, x, "after the weights change in place and the network is invalidated");
        tap_ok(y3 && fabs(y3->data[0] - y1->data[8]) < 1e-5 && fabs(y3->data[3] - y1->data[11]) < 1e-5,
               "batch of one agrees with the same sample in a batch of three");
        tensor_free(x);
        tensor_free(one);
        tensor_free(y1);
        tensor_free(y2);
        tensor_free(y3);
        nn_net_free(net);
    }
}

/* The shapes compression produces: k×1 then 1×k (VH), 1×1, k×k, 1×1 (Tucker-2), two linear layers. */
static void test_factored(void)
{
    nn_net *net = square_net(8, 12);
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
    if (finish(net)) {
        tensor *x = random_input(2, 8, 12, 12);
        agrees(net, x, "VH pair (3x1, 1x3), Tucker-2 triple (1x1, 3x3/2, 1x1), two linear layers");
        tensor_free(x);
        nn_net_free(net);
    }
}

static void test_builders(void)
{
    static const struct {
        const char *arch;
        int depth, bn, channels, size, small;
        double width;
    } cases[] = {
        {"vgg", 11, 1, 1, 28, 1, 0.125}, {"vgg", 16, 0, 3, 32, 0, 0.0625}, {"resnet", 18, 0, 1, 28, 1, 0.125},
        {"resnet", 34, 0, 3, 32, 0, 0.0625}, {"resnet", 50, 0, 3, 40, 0, 0.0625},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nn_spec s;
        nn_spec_defaults(&s, cases[i].arch);
        s.depth = cases[i].depth;
        s.batchnorm = cases[i].bn;
        s.channels = cases[i].channels;
        s.size = cases[i].size;
        s.classes = 7;
        s.width = cases[i].width;
        s.small_stem = s.small_head = cases[i].small;
        nn_net *net = nn_build(&s);
        if (!net) {
            tap_ok(0, "build %s%d: %s", cases[i].arch, cases[i].depth, err_msg());
            continue;
        }
        randomize_params(net);
        tensor *x = random_input(2, cases[i].channels, cases[i].size, cases[i].size);
        char what[128];
        snprintf(what, sizeof what, "%s-%d%s width %g on %dx%d%s", cases[i].arch, cases[i].depth,
                 cases[i].bn ? "-bn" : "", cases[i].width, cases[i].size, cases[i].size,
                 cases[i].small ? " (small stem/head)" : "");
        agrees(net, x, what);
        tensor_free(x);
        nn_net_free(net);
    }
    nn_spec s;
    nn_spec_defaults(&s, "mlp");
    int widths[] = {784, 40, 30, 10};
    memcpy(s.widths, widths, sizeof widths);
    s.nwidths = 4;
    nn_net *net = nn_build(&s);
    randomize_params(net);
    tensor *x = random_input(3, 1, 28, 28);
    agrees(net, x, "mlp 784-40-30-10 on 1x28x28 input");
    tensor_free(x);
    nn_net_free(net);
}

int main(void)
{
    r = rng_new(2024);
    test_conv();
    test_residual();
    test_pools();
    test_linear_and_others();
    test_factored();
    test_builders();
    rng_free(r);
    return tap_done();
}
