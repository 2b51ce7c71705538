/* Training plans: every backward primitive (and fusion) against finite differences of the forward
 * pass in training mode, on small random shapes; whole builder networks against their PyTorch twins
 * (float64 fixtures); the training-mode forward against naive batch statistics; running statistics
 * as PyTorch updates them; dropout masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "io/safetensors.h"
#include "train/backprop.h"
#include "nn/build.h"
#include "nn/exec.h"
#include "tap.h"

static rng *r;

static int rand_int(int lo, int hi) { return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1)); }

static void randomize(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* Parameters drawn at random (batch-norm scales away from zero), the graph's shapes from size. */
static nn_net *finish(nn_net *net)
{
    if (nn_init_params(net, 11) != 0) {
        tap_diag("init: %s", err_msg());
        nn_net_free(net);
        return NULL;
    }
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        if (n->op == NN_BATCHNORM) {
            randomize(n->weight->data, n->weight->numel, 0.5, 1.5);
            randomize(n->bias->data, n->bias->numel, -0.5, 0.5);
        } else if (n->weight) {
            randomize(n->weight->data, n->weight->numel, -0.5, 0.5);
            if (n->bias)
                randomize(n->bias->data, n->bias->numel, -0.5, 0.5);
        }
    }
    return net;
}

#define SEED 99

static char worst_at[160];

/* L = sum(proj · outputs) of a training-mode forward pass, accumulated in double. */
static double loss_of(nn_backprop *bp, const float *x, const float *proj, int64_t m)
{
    const float *y = nn_backprop_forward(bp, x, SEED);
    double l = 0;
    for (int64_t i = 0; y && i < m; i++)
        l += (double)proj[i] * y[i];
    return l;
}

/* Finite differences of L at up to `probes` random entries of data, against the analytic gradient.
 * ReLU and max pooling make L piecewise smooth: where a kink lies within eps of the point, one of
 * the one-sided differences or a central one over eps/10 is still exact, so the best of those is
 * taken. The allowed error is 1% of the gradient's scale plus the float32 rounding of L over the
 * step. Returns the worst ratio of error to allowed error (pass: <= 1). */
static double probe(nn_backprop *bp, const float *x, const float *proj, int64_t m, float *data, const float *grad,
                    int64_t count, int probes, double eps)
{
    double scale = 0, worst = 0, l0 = loss_of(bp, x, proj, m), mag = 0;
    const float *y = nn_backprop_forward(bp, x, SEED);
    for (int64_t i = 0; y && i < m; i++)
        mag += fabs((double)proj[i] * y[i]);
    double noise = 2e-6 * mag / eps;
    for (int64_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(grad[i]));
    for (int k = 0; k < probes; k++) {
        int64_t i = count <= probes ? k : (int64_t)rng_below(r, (uint64_t)count);
        if (i >= count)
            break;
        float keep = data[i];
        double lp[2], lm[2];
        for (int j = 0; j < 2; j++) { /* eps, then eps / 10 */
            double e = j ? eps / 10 : eps;
            data[i] = (float)(keep + e);
            lp[j] = loss_of(bp, x, proj, m);
            data[i] = (float)(keep - e);
            lm[j] = loss_of(bp, x, proj, m);
        }
        data[i] = keep;
        double fd[4] = {(lp[0] - lm[0]) / (2 * eps), (lp[0] - l0) / eps, (l0 - lm[0]) / eps,
                        (lp[1] - lm[1]) / (2 * eps / 10)};
        double ratio = INFINITY;
        for (int j = 0; j < 4; j++)
            ratio = fmin(ratio, fabs(fd[j] - grad[i]) / (1e-2 * scale + noise * (j == 3 ? 10 : 1)));
        if (ratio > worst) {
            worst = ratio;
            snprintf(worst_at, sizeof worst_at, "entry %lld: finite differences %.6g (left %.6g, right %.6g), backward %.6g, scale %.3g, noise %.2g",
                     (long long)i, fd[0], fd[2], fd[1], grad[i], scale, noise);
        }
    }
    return worst;
}

static void check_grads(nn_net *net, int n, int c, int h, int w, const char *what);

/* Every parameter gradient and the input gradient of net on a random batch n×c×h×w agree with
 * finite differences to 1% of the gradient's scale. */
static void check_grads_eps(nn_net *net, int n, int c, int h, int w, double eps, const char *what)
{
    if (!net)
        return;
    nn_backprop *bp = nn_backprop_new(net, n, c, h, w, NN_BACKPROP_INPUT_GRAD | NN_BACKPROP_KEEP_STATS);
    if (!bp) {
        tap_ok(0, "%s: %s", what, err_msg());
        nn_net_free(net);
        return;
    }
    int64_t xn = (int64_t)n * c * h * w, m = n * nn_backprop_outputs(bp);
    float *x = malloc((size_t)xn * sizeof *x), *proj = malloc((size_t)m * sizeof *proj);
    randomize(x, xn, -1, 1);
    randomize(proj, m, -1, 1);
    int ok = nn_backprop_forward(bp, x, SEED) && nn_backprop_backward(bp, proj) == 0;
    double worst = 0;
    char where[256] = "input";
    if (ok) {
        float *dx = malloc((size_t)xn * sizeof *dx);
        memcpy(dx, nn_backprop_input_grad(bp), (size_t)xn * sizeof *dx);
        worst = probe(bp, x, proj, m, x, dx, xn, 12, eps);
        snprintf(where, sizeof where, "input %s", worst_at);
        free(dx);
        for (int i = 0; i < net->count; i++) {
            nn_node *nd = &net->nodes[i];
            tensor *params[2] = {nd->weight, nd->bias};
            for (int s = 0; s < 2; s++) {
                tensor *g = nn_backprop_grad(bp, i, s);
                if (!params[s] || !g)
                    continue;
                tensor *copy = tensor_clone(g);
                double e = probe(bp, x, proj, m, params[s]->data, copy->data, copy->numel, 8, eps);
                if (e > worst) {
                    worst = e;
                    snprintf(where, sizeof where, "layer %d (%s) %s %s", i + 1, nd->name, s ? "bias" : "weight", worst_at);
                }
                tensor_free(copy);
            }
        }
    }
    tap_ok(ok && worst <= 1, "%s: gradients match finite differences", what);
    if (!ok)
        tap_diag("%s", err_msg());
    else if (worst > 1)
        tap_diag("error %.3g times the allowed at %s", worst, where);
    free(x);
    free(proj);
    nn_backprop_free(bp);
    nn_net_free(net);
}

static void check_grads(nn_net *net, int n, int c, int h, int w, const char *what)
{
    check_grads_eps(net, n, c, h, w, 1e-3, what);
}

static void test_conv(void)
{
    for (int t = 0; t < 16; t++) {
        int c = rand_int(1, 6), h = rand_int(4, 9), w = rand_int(4, 9);
        int groups = c % 2 == 0 && t % 4 == 1 ? 2 : 1;
        int k = rand_int(1, 3);
        nn_node conv = {.op = NN_CONV, .in = {NN_INPUT}, .out = groups * rand_int(1, 5), .kh = k, .kw = rand_int(1, 3),
                        .sh = rand_int(1, 2), .sw = rand_int(1, 2), .ph = rand_int(0, k / 2), .groups = groups,
                        .has_bias = t % 3 != 0};
        nn_net *net = nn_net_new(c, h, 1);
        int last = graph_add(net, conv);
        int bn = t % 4 >= 2, relu = t % 2;
        if (bn)
            last = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {last}});
        if (relu)
            last = graph_add(net, (nn_node){.op = NN_RELU, .in = {last}});
        char what[160];
        snprintf(what, sizeof what, "conv %dx%d/%dx%d pad %d groups %d, %d→%d on %dx%d%s%s%s", conv.kh, conv.kw,
                 conv.sh, conv.sw, conv.ph, groups, c, conv.out, h, w, conv.has_bias ? " +bias" : "",
                 bn ? " +bn" : "", relu ? " +relu" : "");
        check_grads(finish(net), rand_int(2, 4), c, h, w, what);
    }
    /* a convolution reading another one: backward data in the blocked layouts between them */
    nn_net *net = nn_net_new(3, 7, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                               .ph = 1, .pw = 1, .has_bias = 1});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 20, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1,
                                 .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    check_grads(finish(net), 3, 3, 7, 7, "conv+relu → conv+bn+relu, 16 and 20 channels");
    /* tiny spatial sizes with blocked channels, as deep in a VGG on 28x28 */
    static const int tiny[][3] = {{2, 32, 32}, {1, 32, 32}, {3, 16, 32}, {2, 8, 8}};
    for (size_t t = 0; t < sizeof tiny / sizeof *tiny; t++) {
        int hw = tiny[t][0], ci = tiny[t][1], co = tiny[t][2];
        net = nn_net_new(ci, hw, 1);
        a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = co, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
        graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
        char what[96];
        snprintf(what, sizeof what, "conv 3x3 pad 1 on %dx%d, %d→%d channels", hw, hw, ci, co);
        check_grads(finish(net), 4, ci, hw, hw, what);
    }
}

static void test_pools(void)
{
    static const struct {
        nn_op op;
        int k, s, p, ceil, size;
    } cases[] = {
        {NN_MAXPOOL, 2, 2, 0, 0, 8}, {NN_MAXPOOL, 2, 2, 0, 1, 7}, {NN_MAXPOOL, 3, 2, 1, 0, 8},
        {NN_AVGPOOL, 2, 2, 0, 0, 6}, {NN_AVGPOOL, 3, 1, 1, 0, 5}, {NN_AVGPOOL, 3, 2, 0, 1, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nn_net *net = nn_net_new(3, cases[i].size, 1);
        int c = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 4, .kh = 1, .kw = 1, .sh = 1,
                                         .sw = 1});
        graph_add(net, (nn_node){.op = cases[i].op, .in = {c}, .kh = cases[i].k, .kw = cases[i].k, .sh = cases[i].s,
                           .sw = cases[i].s, .ph = cases[i].p, .pw = cases[i].p, .ceil_mode = cases[i].ceil});
        char what[128];
        snprintf(what, sizeof what, "conv → %s %dx%d/%d pad %d%s on %dx%d", nn_op_name(cases[i].op), cases[i].k,
                 cases[i].k, cases[i].s, cases[i].p, cases[i].ceil ? " ceil" : "", cases[i].size, cases[i].size);
        check_grads(finish(net), 2, 3, cases[i].size, cases[i].size, what);
    }
    static const int adaptive[][2] = {{6, 1}, {6, 3}, {5, 3}, {4, 4}};
    for (size_t i = 0; i < sizeof adaptive / sizeof *adaptive; i++) {
        nn_net *net = nn_net_new(3, adaptive[i][0], 1);
        int a = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {NN_INPUT}, .oh = adaptive[i][1],
                                   .ow = adaptive[i][1]});
        graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 5, .has_bias = 1});
        char what[128];
        snprintf(what, sizeof what, "adaptive average pool %d→%d → linear", adaptive[i][0], adaptive[i][1]);
        check_grads(finish(net), 3, 3, adaptive[i][0], adaptive[i][0], what);
    }
}

static void test_linear_and_others(void)
{
    nn_net *net = nn_net_new(3, 4, 1);
    int l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {NN_INPUT}, .out = 9, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    l = graph_add(net, (nn_node){.op = NN_DROPOUT, .in = {l}, .dropout = 0.3f});
    l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 6});
    graph_add(net, (nn_node){.op = NN_SOFTMAX, .in = {l}});
    check_grads(finish(net), 4, 3, 4, 4, "linear (4-D input) + relu + dropout + linear without bias + softmax");

    net = nn_net_new(20, 1, 1);
    l = graph_add(net, (nn_node){.op = NN_LINEAR, .in = {NN_INPUT}, .out = 33, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {l}});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 7, .has_bias = 1});
    check_grads(finish(net), 5, 20, 1, 1, "linear (2-D input) + batch norm on features + linear");

    /* stand-alone batch norm on the input, stand-alone relu after a pool, add of two branches + relu */
    net = nn_net_new(4, 6, 1);
    int bn = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {NN_INPUT}});
    int q = graph_add(net, (nn_node){.op = NN_AVGPOOL, .in = {NN_INPUT}, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                     .pw = 1});
    int rl = graph_add(net, (nn_node){.op = NN_RELU, .in = {q}});
    int s = graph_add(net, (nn_node){.op = NN_ADD, .in = {bn, rl}});
    graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    check_grads(finish(net), 3, 4, 6, 6, "batch norm on the input, pool → relu, add + relu");

    /* x + x and an output read by three consumers */
    net = nn_net_new(2, 5, 1);
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    int d = graph_add(net, (nn_node){.op = NN_ADD, .in = {a, a}});
    int e = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 2, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    int f = graph_add(net, (nn_node){.op = NN_ADD, .in = {d, e}});
    graph_add(net, (nn_node){.op = NN_ADD, .in = {f, NN_INPUT}});
    check_grads(finish(net), 2, 2, 5, 5, "x + x, a value read three times, a sum with the input");
    (void)f;
}

static void test_residual(void)
{
    /* basic block with identity shortcut, then one with a strided 1x1 downsample */
    nn_net *net = nn_net_new(4, 6, 1);
    int x = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    x = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {x}});
    x = graph_add(net, (nn_node){.op = NN_RELU, .in = {x}});
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {x}, .out = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                     .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                 .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    int s = graph_add(net, (nn_node){.op = NN_ADD, .in = {a, x}});
    x = graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    int m = graph_add(net, (nn_node){.op = NN_CONV, .in = {x}, .out = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1,
                                     .pw = 1});
    m = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {m}});
    int d = graph_add(net, (nn_node){.op = NN_CONV, .in = {x}, .out = 16, .kh = 1, .kw = 1, .sh = 2, .sw = 2});
    d = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {d}});
    s = graph_add(net, (nn_node){.op = NN_ADD, .in = {m, d}});
    s = graph_add(net, (nn_node){.op = NN_RELU, .in = {s}});
    s = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {s}, .oh = 1, .ow = 1});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {s}, .out = 5, .has_bias = 1});
    check_grads(finish(net), 3, 4, 6, 6, "residual blocks (identity and downsample shortcuts)");
}

static void test_bottleneck(int variant)
{
    nn_net *net = nn_net_new(1, 6, 1);
    int x = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                     .ph = 1, .pw = 1});
    x = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {x}});
    x = graph_add(net, (nn_node){.op = NN_RELU, .in = {x}});
    int a = graph_add(net, (nn_node){.op = NN_CONV, .in = {x}, .out = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    if (variant > 0) {
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                                 .pw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    }
    if (variant > 1) {
    a = graph_add(net, (nn_node){.op = NN_CONV, .in = {a}, .out = 16, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    a = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {a}});
    int d = graph_add(net, (nn_node){.op = NN_CONV, .in = {x}, .out = 16, .kh = 1, .kw = 1, .sh = 1, .sw = 1});
    d = graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {d}});
    a = graph_add(net, (nn_node){.op = NN_ADD, .in = {a, d}});
    a = graph_add(net, (nn_node){.op = NN_RELU, .in = {a}});
    }
    a = graph_add(net, (nn_node){.op = NN_ADAPTIVE_AVGPOOL, .in = {a}, .oh = 1, .ow = 1});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {a}, .out = 5, .has_bias = 1});
    char what[64];
    snprintf(what, sizeof what, "bottleneck variant %d", variant);
    check_grads(finish(net), 3, 1, 6, 6, what);
}

/* The max over a tensor of |got - want|, relative to max(|want|, floor). */
static double rel_diff(const float *got, const tensor *want, double floor)
{
    double d = 0, scale = floor;
    for (int64_t i = 0; i < want->numel; i++) {
        d = fmax(d, fabs((double)got[i] - want->data[i]));
        scale = fmax(scale, fabs(want->data[i]));
    }
    return d / scale;
}

/* Whole networks from the builders against their PyTorch twins computed in float64
 * (scripts/gen-train-fixtures): outputs, every gradient, the input gradient and the running
 * statistics after one training step. Finite differences are too coarse through a dozen batch
 * norms over a batch of four, so these use an exact reference instead. */
static void test_torch_twins(void)
{
    static const char *const names[] = {"vgg11_bn", "resnet18", "resnet50", "mlp"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/train/%s.safetensors", names[k]);
        st_file *f = st_read(path);
        nn_spec spec;
        nn_net *net = NULL;
        if (!f || nn_spec_from_json(&spec, st_meta_get(f, "arch") ? st_meta_get(f, "arch") : "") ||
            !(net = nn_build(&spec))) {
            tap_ok(0, "%s: %s", path, err_msg());
            st_file_free(f);
            continue;
        }
        int count = nn_param_list(net, NULL, NULL), missing = 0;
        char **pnames = calloc((size_t)count, sizeof *pnames);
        tensor **params = calloc((size_t)count, sizeof *params);
        nn_param_list(net, pnames, params);
        for (int i = 0; i < count; i++) {
            tensor *t = st_find(f, pnames[i]);
            if (t && t->numel == params[i]->numel)
                memcpy(params[i]->data, t->data, (size_t)t->numel * sizeof(float));
            else
                missing++;
        }
        tensor *x = st_find(f, "x"), *proj = st_find(f, "proj"), *y = st_find(f, "y"), *gx = st_find(f, "grad.x");
        nn_backprop *bp = nn_backprop_new(net, x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                                          NN_BACKPROP_INPUT_GRAD);
        const float *out = bp ? nn_backprop_forward(bp, x->data, 1) : NULL;
        int ok = out && nn_backprop_backward(bp, proj->data) == 0 && !missing;
        double dy = ok ? rel_diff(out, y, 1e-2) : 1, dg = ok ? rel_diff(nn_backprop_input_grad(bp), gx, 1e-2) : 1;
        double dp = 0, ds = 0;
        const char *worst = "-";
        for (int i = 0; ok && i < net->count; i++) {
            nn_node *n = &net->nodes[i];
            for (int slot = 0; slot < 4; slot++) {
                static const char *const suffix[] = {"weight", "bias", "running_mean", "running_var"};
                char key[160];
                tensor *mine = slot < 2 ? nn_backprop_grad(bp, i, slot) : slot == 2 ? n->mean : n->var;
                if (!mine)
                    continue;
                snprintf(key, sizeof key, "%s%s.%s", slot < 2 ? "grad." : "after.", n->name, suffix[slot]);
                tensor *want = st_find(f, key);
                if (!want || want->numel != mine->numel) {
                    ok = 0;
                    worst = n->name;
                    break;
                }
                double d = rel_diff(mine->data, want, 1e-2);
                if (slot < 2 && d > dp) {
                    dp = d;
                    worst = n->name;
                }
                if (slot >= 2)
                    ds = fmax(ds, d);
            }
        }
        tap_ok(ok && dy < 1e-4 && dg < 1e-4 && dp < 1e-4 && ds < 1e-5,
               "%s: outputs, gradients and running statistics match PyTorch's", names[k]);
        if (!ok || dy >= 1e-4 || dg >= 1e-4 || dp >= 1e-4 || ds >= 1e-5)
            tap_diag("%s; relative differences: outputs %.3g, input gradient %.3g, parameter gradients %.3g (worst %s), "
                     "running statistics %.3g", ok ? "" : err_msg(), dy, dg, dp, worst, ds);
        for (int i = 0; i < count; i++)
            free(pnames[i]);
        free(pnames);
        free(params);
        nn_backprop_free(bp);
        nn_net_free(net);
        st_file_free(f);
    }
}

/* The training-mode forward of conv → batch norm normalizes with the batch's mean and biased
 * variance, and moves the running statistics by 0.1 towards the mean and the unbiased variance. */
static void test_batch_statistics(void)
{
    int n = 3, c = 5, hw = 4;
    nn_net *net = nn_net_new(2, hw, 1);
    graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = c, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                             .pw = 1});
    graph_add(net, (nn_node){.op = NN_BATCHNORM, .in = {0}});
    net = finish(net);
    if (!net)
        return;
    nn_node *bn = &net->nodes[1];
    randomize(bn->mean->data, c, -0.5, 0.5);
    randomize(bn->var->data, c, 0.5, 2);
    tensor *mean0 = tensor_clone(bn->mean), *var0 = tensor_clone(bn->var);
    tensor *x = tensor_new(4, (int64_t[]){n, 2, hw, hw});
    randomize(x->data, x->numel, -1, 1);
    tensor *conv = nn_forward_to(net, x, 0); /* the inference path, tested against naive loops */
    nn_backprop *bp = nn_backprop_new(net, n, 2, hw, hw, 0);
    const float *y = bp ? nn_backprop_forward(bp, x->data, 1) : NULL;
    double worst_y = 0, worst_stats = 0;
    for (int ch = 0; y && conv && ch < c; ch++) {
        double s = 0, ss = 0, m = n * hw * hw;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw * hw; k++)
                s += conv->data[(i * c + ch) * hw * hw + k];
        double mu = s / m;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw * hw; k++)
                ss += pow(conv->data[(i * c + ch) * hw * hw + k] - mu, 2);
        double var = ss / m;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw * hw; k++) {
                int64_t at = (i * c + ch) * hw * hw + k;
                double want = (conv->data[at] - mu) / sqrt(var + bn->eps) * bn->weight->data[ch] + bn->bias->data[ch];
                worst_y = fmax(worst_y, fabs(y[at] - want));
            }
        worst_stats = fmax(worst_stats, fabs(bn->mean->data[ch] - (0.9 * mean0->data[ch] + 0.1 * mu)));
        worst_stats = fmax(worst_stats, fabs(bn->var->data[ch] - (0.9 * var0->data[ch] + 0.1 * ss / (m - 1))));
    }
    tap_ok(y && conv && worst_y < 1e-4, "training-mode batch norm normalizes with the batch's statistics");
    tap_ok(y && conv && worst_stats < 1e-6, "running mean and (unbiased) variance move by momentum 0.1");
    if (!y || !conv)
        tap_diag("%s", err_msg());
    nn_backprop *keep = nn_backprop_new(net, n, 2, hw, hw, NN_BACKPROP_KEEP_STATS);
    tensor *mean1 = tensor_clone(bn->mean);
    tap_ok(keep && nn_backprop_forward(keep, x->data, 1) && memcmp(mean1->data, bn->mean->data, c * 4) == 0,
           "NN_BACKPROP_KEEP_STATS leaves the running statistics alone");
    nn_backprop_free(keep);
    nn_backprop_free(bp);
    tensor_free(mean0);
    tensor_free(var0);
    tensor_free(mean1);
    tensor_free(x);
    tensor_free(conv);
    nn_net_free(net);
}

/* Dropout zeroes about p of its inputs, scales the others by 1/(1-p), and draws from the seed. */
static void test_dropout(void)
{
    nn_net *net = nn_net_new(400, 1, 1);
    graph_add(net, (nn_node){.op = NN_DROPOUT, .in = {NN_INPUT}, .dropout = 0.25f});
    nn_backprop *bp = nn_backprop_new(net, 50, 400, 1, 1, 0);
    int64_t m = 50 * 400;
    float *x = malloc((size_t)m * sizeof *x), *y1 = malloc((size_t)m * sizeof *y1);
    randomize(x, m, 1, 2);
    const float *y = bp ? nn_backprop_forward(bp, x, 5) : NULL;
    int64_t zeros = 0, scaled = 0;
    for (int64_t i = 0; y && i < m; i++) {
        zeros += y[i] == 0;
        scaled += fabsf(y[i] - x[i] / 0.75f) < 1e-6f;
    }
    tap_ok(y && zeros + scaled == m && fabs((double)zeros / m - 0.25) < 0.01,
           "dropout 0.25 zeroes %.4f of 20000 inputs and scales the rest by 4/3", (double)zeros / m);
    if (y)
        memcpy(y1, y, (size_t)m * sizeof *y1);
    y = bp ? nn_backprop_forward(bp, x, 5) : NULL;
    tap_ok(y && memcmp(y, y1, (size_t)m * sizeof *y1) == 0, "the same seed draws the same mask");
    y = bp ? nn_backprop_forward(bp, x, 6) : NULL;
    tap_ok(y && memcmp(y, y1, (size_t)m * sizeof *y1) != 0, "another seed draws another mask");
    free(x);
    free(y1);
    nn_backprop_free(bp);
    nn_net_free(net);
}

int main(void)
{
    r = rng_new(4242);
    test_conv();
    test_pools();
    test_linear_and_others();
    test_residual();
    test_bottleneck(0);
    test_bottleneck(1);
    test_bottleneck(2);
    test_torch_twins();
    test_batch_statistics();
    test_dropout();
    rng_free(r);
    return tap_done();
}
