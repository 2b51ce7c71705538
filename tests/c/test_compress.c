/* Compression families from C: graph surgery, exactness at full rank (VH, SVD, Tucker-2) on random
 * networks with random biases and batch norms, the factors against independent reconstructions,
 * parameter and MAC counts against hand formulas, channel pruning against an equivalent network
 * whose readers ignore the removed channels, magnitude pruning and quantization, the U-statistic's
 * standard error, and architecture records that rebuild the same structure. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "nn/build.h"
#include "nn/edit.h"
#include "nn/exec.h"
#include "objective/objective.h"
#include "tap.h"
#include "testutil.h"

static rng *r;

/* Random biases and batch-norm statistics too, so that every parameter's path is exercised; the
 * weights scaled by their fan-in (unlike tu_randomize_params' fixed range), so that deep networks
 * keep activations of order one. */
static void randomize_scaled(nn_net *net)
{
    for (int i = 0; i < net->count; i++) {
        nn_node *n = &net->nodes[i];
        if (n->op == NN_BATCHNORM) {
            graph_randomize_bn(n, r);
        } else if (n->weight) {
            double fan = (double)(n->weight->numel / n->weight->shape[0]);
            graph_randomize(n->weight, r, -sqrt(3.0 / fan), sqrt(3.0 / fan));
            graph_randomize(n->bias, r, -0.2, 0.2);
        }
    }
    nn_invalidate(net);
}

static nn_net *build(const char *arch, int depth, int bn, int channels, int size, double width, int small)
{
    nn_spec s;
    nn_spec_defaults(&s, arch);
    s.depth = depth;
    s.batchnorm = bn;
    s.channels = channels;
    s.classes = 10;
    s.size = size;
    s.width = width;
    s.small_stem = small;
    s.small_head = small;
    nn_net *net = nn_build(&s);
    if (net)
        randomize_scaled(net);
    return net;
}

/* θ for every layer of a family at its largest setting (full rank, everything kept). */
static double *full(const cp_family *f)
{
    double *t = malloc((size_t)f->count * sizeof *t);
    for (int i = 0; i < f->count; i++)
        t[i] = f->layers[i].hi;
    return t;
}

static cp_family *family(const char *k, nn_net *net, const char *pattern, cp_mode mode)
{
    cp_options o = {.mode = mode};
    cp_family *f = cp_family_new(k, net, 1, &pattern, &o);
    if (!f)
        tap_diag("%s", err_msg());
    return f;
}

static void test_match(void)
{
    tap_ok(nn_match("features.*", "features.10") && !nn_match("features.*", "classifier.0"), "glob: features.*");
    tap_ok(nn_match("layer3.*.conv2", "layer3.0.conv2") && nn_match("layer3.*.conv2", "layer3.12.conv2") &&
               !nn_match("layer3.*.conv2", "layer3.0.conv1") && !nn_match("layer3.*.conv2", "layer4.0.conv2"),
           "glob: layer3.*.conv2");
    tap_ok(nn_match("fc?", "fc1") && !nn_match("fc?", "fc12") && nn_match("*", "") && nn_match("a*b*c", "axxbyyc") &&
               !nn_match("a*b*c", "axxbyy"),
           "glob: ? and several stars");
}

/* The chain that replaces a node is wired by index: names of inputs must follow. */
static void test_replace(void)
{
    nn_net *net = build("resnet", 18, 0, 3, 32, 0.25, 1);
    int n0 = net->count;
    int at = nn_rewrite(net, "layer2.0.conv1", "vh", 5, 0);
    int ok = at >= 0 && net->count == n0 + 1;
    int v = nn_find(net, "layer2.0.conv1.v"), h = nn_find(net, "layer2.0.conv1.h");
    int bn = nn_find(net, "layer2.0.bn1"), add = nn_find(net, "layer2.0.add"), ds = nn_find(net, "layer2.0.downsample.1");
    int prev = nn_find(net, "layer1.1.relu"), bn2 = nn_find(net, "layer2.0.bn2");
    ok = ok && v == at && h == at + 1 && net->nodes[v].in[0] == prev && net->nodes[h].in[0] == v &&
         net->nodes[bn].in[0] == h && net->nodes[add].in[0] == bn2 && net->nodes[add].in[1] == ds &&
         net->nodes[nn_find(net, "layer2.0.downsample.0")].in[0] == prev;
    tap_ok(ok, "nn_replace rewires readers, the residual add and the downsample branch");
    tap_ok(net->nodes[v].kh == 3 && net->nodes[v].kw == 1 && net->nodes[v].sh == 2 && net->nodes[v].sw == 1 &&
               net->nodes[h].kh == 1 && net->nodes[h].kw == 3 && net->nodes[h].sh == 1 && net->nodes[h].sw == 2 &&
               net->nodes[v].ph == 1 && net->nodes[v].pw == 0 && net->nodes[h].pw == 1 && !net->nodes[v].has_bias,
           "vh chain: k×1 then 1×k, strides and padding split by axis");
    tap_ok(nn_rewrite(net, "layer9", "vh", 1, 0) < 0 && strstr(err_msg(), "no layer layer9"), "rewrite of a missing layer fails");
    nn_net_free(net);
}

/* Full rank reproduces the network; the candidate shares untouched tensors with the reference. */
static void exact(nn_net *net, const char *k, const char *pattern, cp_mode mode, const tensor *x, const char *what)
{
    cp_family *f = family(k, net, pattern, mode);
    tensor *y = nn_forward(net, x);
    double *t = f ? full(f) : NULL;
    cp_stats st;
    nn_net *c = f ? cp_apply(net, 1, &f, cp_dim(1, &f), t, &st) : NULL;
    tensor *yc = c ? nn_forward(c, x) : NULL;
    double e = tu_tensor_rel_error(yc, y);
    tap_ok(e <= 1e-4, "%s at full rank reproduces the outputs (relative error %.2g)", what, e);
    if (!c)
        tap_diag("%s", err_msg());
    int shared = 0;
    for (int i = 0; c && i < c->count; i++)
        shared += c->nodes[i].shared;
    if (c && f->count < net->count - 8)
        tap_ok(shared > 0, "%s: untouched layers share the reference's tensors (%d)", what,
               shared);
    if (c)
        cp_stats_free(&st);
    tensor_free(y);
    tensor_free(yc);
    nn_net_free(c);
    free(t);
    cp_family_free(f);
}

static void test_exact(void)
{
    nn_net *vgg = build("vgg", 11, 0, 3, 32, 0.25, 1);
    nn_net *res = build("resnet", 18, 0, 3, 64, 0.25, 0); /* 7×7/2 stem, strided 3×3 and 1×1 convs */
    tensor *xv = tu_random_input(r, 3, 3, 32, 32), *xr = tu_random_input(r, 2, 3, 64, 64);
    exact(vgg, "vh", "features.*", CP_ABSOLUTE, xv, "vh (vgg)");
    exact(res, "vh", "*", CP_ABSOLUTE, xr, "vh (resnet, 7×7/2 stem, stride 2)");
    exact(vgg, "svd", "*", CP_ABSOLUTE, xv, "svd of convolutions and linear layers (vgg)");
    exact(res, "svd", "*", CP_ABSOLUTE, xr, "svd (resnet, batch norms folded after the split)");
    exact(vgg, "tucker2", "features.*", CP_FRACTION, xv, "tucker2 (vgg)");
    exact(res, "tucker2", "layer*", CP_FRACTION, xr, "tucker2 (resnet)");
    cp_options dense = {.mode = CP_ABSOLUTE, .dense = 1};
    const char *all = "*";
    cp_family *f = cp_family_new("svd", res, 1, &all, &dense);
    double *t = full(f);
    nn_net *c = cp_apply(res, 1, &f, cp_dim(1, &f), t, NULL);
    tensor *y = nn_forward(res, xr), *yc = c ? nn_forward(c, xr) : NULL;
    tap_ok(tu_tensor_rel_error(yc, y) <= 1e-4 && c->count == res->count, "dense svd at full rank: same graph, same outputs");
    tensor_free(y);
    tensor_free(yc);
    nn_net_free(c);
    free(t);
    cp_family_free(f);

    /* a hand-made conv with a 3×5 kernel, strides (2, 1), padding (1, 2) */
    nn_net *odd = nn_net_new(4, 13, 6);
    nn_node conv = {.op = NN_CONV, .name = "odd", .in = {NN_INPUT, -2}, .out = 6, .kh = 3, .kw = 5, .sh = 2,
                    .sw = 1, .ph = 1, .pw = 2, .groups = 1, .has_bias = 1};
    nn_add(odd, &conv);
    nn_init_params(odd, 3);
    randomize_scaled(odd);
    tensor *xo = tu_random_input(r, 2, 4, 13, 11);
    exact(odd, "vh", "odd", CP_ABSOLUTE, xo, "vh of a 3×5 kernel with strides (2, 1) and padding (1, 2)");
    exact(odd, "tucker2", "odd", CP_FRACTION, xo, "tucker2 of the same");
    tensor_free(xo);
    nn_net_free(odd);
    tensor_free(xv);
    tensor_free(xr);
    nn_net_free(vgg);
    nn_net_free(res);
}

/* Singular values of the VH matrix M[(c,y),(n,x)] = W[n,c,y,x], computed here in double. */
static double *vh_singular_values(const tensor *w, int *rank)
{
    int N = (int)w->shape[0], C = (int)w->shape[1], kh = (int)w->shape[2], kw = (int)w->shape[3];
    int m = C * kh, n = N * kw, k = m < n ? m : n;
    double *a = malloc(sizeof(double) * m * n), *s = malloc(sizeof(double) * k), *sup = malloc(sizeof(double) * k);
    for (int o = 0; o < N; o++)
        for (int i = 0; i < C; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    a[(i * kh + y) * n + o * kw + x] = w->data[((o * C + i) * kh + y) * kw + x];
    LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', m, n, a, n, s, NULL, 1, NULL, 1, sup);
    free(a);
    free(sup);
    *rank = k;
    return s;
}

/* The VH factors of a rank-K candidate, multiplied back by naive loops, against Eckart–Young:
 * the squared error is the sum of the squared singular values left out. */
static void test_vh_factors(void)
{
    nn_net *net = build("vgg", 11, 0, 3, 32, 0.25, 1);
    cp_family *f = family("vh", net, "features.6", CP_ABSOLUTE);
    const tensor *w = net->nodes[f->layers[0].node].weight;
    int N = (int)w->shape[0], C = (int)w->shape[1], k = 3, rank;
    double *s = vh_singular_values(w, &rank);
    int ok = 1;
    for (int K = 1; K <= rank; K += 7) {
        double th = K;
        nn_net *c = cp_apply(net, 1, &f, cp_dim(1, &f), &th, NULL);
        const tensor *v = c->nodes[nn_find(c, "features.6.v")].weight, *h = c->nodes[nn_find(c, "features.6.h")].weight;
        double err = 0, tail = 0;
        for (int o = 0; o < N; o++)
            for (int i = 0; i < C; i++)
                for (int y = 0; y < k; y++)
                    for (int x = 0; x < k; x++) {
                        double sum = 0;
                        for (int q = 0; q < K; q++)
                            sum += (double)v->data[(q * C + i) * k + y] * h->data[(o * K + q) * k + x];
                        double d = sum - w->data[((o * C + i) * k + y) * k + x];
                        err += d * d;
                    }
        for (int q = K; q < rank; q++)
            tail += s[q] * s[q];
        ok = ok && v->shape[0] == K && h->shape[1] == K && fabs(err - tail) <= 1e-4 * (s[0] * s[0]);
        if (!ok)
            tap_diag("K = %d: error %g, tail %g", K, err, tail);
        nn_net_free(c);
    }
    tap_ok(ok, "vh factors at rank K leave exactly the tail of the singular values (Eckart–Young)");
    free(s);
    cp_family_free(f);
    nn_net_free(net);
}

/* Weights and MACs of VH at fraction θ against k·K·(C + N) and the per-layer sums. */
static void test_counts(void)
{
    /* VGG16 as torchvision builds it: the 13 convolutions and their break-even ranks */
    nn_spec s;
    nn_spec_defaults(&s, "vgg");
    s.small_head = 1; /* the same 13 convolutions without the 120M-weight classifier */
    nn_net *big = nn_build(&s);
    cp_family *f = family("vh", big, "features.*", CP_FRACTION); /* factors are computed lazily */
    static const int be[13] = {8, 96, 128, 192, 256, 384, 384, 512, 768, 768, 768, 768, 768};
    int64_t weights = 0;
    int ok = f && f->count == 13;
    for (int i = 0; ok && i < 13; i++) {
        ok = f->layers[i].break_even == be[i];
        weights += big->nodes[f->layers[i].node].weight->numel;
    }
    tap_ok(ok, "vgg16: 13 convolutions with the follow-up's break-even ranks floor(k·C·N/(C+N))");
    tap_ok(weights == 14710464, "vgg16: the 13 convolutions hold 14,710,464 weights (%lld)", (long long)weights);
    cp_family_free(f);
    nn_net_free(big);

    nn_spec_defaults(&s, "vgg");
    s.width = 0.25;
    s.size = 32;
    nn_net *net = nn_build(&s);
    f = family("vh", net, "features.*", CP_FRACTION);
    double th[13];
    int64_t want = 0, want_ref = 0, want_macs = 0, want_macs_ref = 0;
    int hw[13] = {32, 32, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 2};
    for (int i = 0; i < 13; i++) {
        th[i] = 0.2 + 0.05 * i;
        const tensor *w = net->nodes[f->layers[i].node].weight;
        int64_t N = w->shape[0], C = w->shape[1], K = (int64_t)floor(th[i] * (3 * C * N / (C + N)));
        if (K < 1)
            K = 1;
        want += 3 * K * (C + N);
        want_ref += 9 * C * N;
        want_macs += (int64_t)hw[i] * hw[i] * (K * C * 3 + N * K * 3);
        want_macs_ref += (int64_t)hw[i] * hw[i] * N * C * 9;
    }
    cp_stats st;
    nn_net *c = cp_apply(net, 1, &f, cp_dim(1, &f), th, &st);
    tap_ok(c && st.weights == want && st.weights_ref == want_ref,
           "vh weights: sum of k·K·(C+N) over the layers (%lld vs %lld), of k²·C·N before", (long long)st.weights,
           (long long)want);
    tap_ok(c && st.layer_macs == want_macs && st.layer_macs_ref == want_macs_ref,
           "vh MACs of the compressed layers: K·C·k + N·K·k per output pixel");
    tap_ok(c && st.params_ref == nn_param_count(net) && st.params == nn_param_count(c) &&
               st.params_ref - st.params == want_ref - want,
           "whole-network parameters change by the weights saved");
    cp_stats_free(&st);
    nn_net_free(c);
    cp_family_free(f);

    /* svd of a linear layer: K·(m + n) weights, the bias kept */
    nn_spec ms;
    nn_spec_defaults(&ms, "mlp");
    ms.nwidths = 3;
    ms.widths[0] = 50, ms.widths[1] = 30, ms.widths[2] = 10;
    nn_net *mlp = nn_build(&ms);
    f = family("svd", mlp, "fc1", CP_ABSOLUTE);
    double k7 = 7;
    c = cp_apply(mlp, 1, &f, cp_dim(1, &f), &k7, &st);
    tap_ok(c && st.weights == 7 * (50 + 30) && st.weights_ref == 50 * 30 && st.params == nn_param_count(c) &&
               nn_param_count(c) == nn_param_count(mlp) - 50 * 30 + 7 * 80,
           "svd of a 30×50 linear layer at rank 7: 7·(30 + 50) weights, the bias kept");
    tap_ok(c && st.macs == 7 * 50 + 30 * 7 + 30 * 10 && st.macs_ref == 30 * 50 + 30 * 10, "svd MACs: K·(m + n)");
    cp_stats_free(&st);
    nn_net_free(c);
    cp_family_free(f);
    nn_net_free(mlp);
    nn_net_free(net);
}

/* The L1 order of output channels, computed here. */
static int *l1_top(const tensor *w, int keep)
{
    int N = (int)w->shape[0];
    int64_t per = w->numel / N;
    double *norm = malloc(sizeof(double) * N);
    int *kept = calloc((size_t)N, sizeof *kept);
    for (int c = 0; c < N; c++) {
        norm[c] = 0;
        for (int64_t j = 0; j < per; j++)
            norm[c] += fabs(w->data[c * per + j]);
    }
    for (int k = 0; k < keep; k++) { /* the largest not yet taken */
        int best = -1;
        for (int c = 0; c < N; c++)
            if (!kept[c] && (best < 0 || norm[c] > norm[best]))
                best = c;
        kept[best] = 1;
    }
    free(norm);
    return kept;
}

/* Removing channels equals zeroing what the readers take from them (before any bias or
 * nonlinearity downstream): an equivalent network built by hand. */
static void pruned_equals_zeroed(nn_net *net, const char *layer, const char *reader, double frac, const tensor *x,
                                 const char *what)
{
    cp_family *f = family("prune_channels", net, layer, CP_FRACTION);
    cp_stats st;
    nn_net *c = f ? cp_apply(net, 1, &f, cp_dim(1, &f), &frac, &st) : NULL;
    nn_net *z = nn_clone(net, 0);
    int at = nn_find(net, layer), rd = nn_find(z, reader);
    const tensor *w = net->nodes[at].weight;
    int N = (int)w->shape[0], keep = (int)llround(frac * N);
    int *kept = l1_top(w, keep);
    tensor *rw = z->nodes[rd].weight;
    int64_t O = rw->shape[0], block = rw->numel / O / N;
    for (int64_t o = 0; o < O; o++)
        for (int ch = 0; ch < N; ch++)
            if (!kept[ch])
                memset(rw->data + (o * N + ch) * block, 0, (size_t)block * sizeof(float));
    nn_invalidate(z);
    tensor *yc = c ? nn_forward(c, x) : NULL, *yz = nn_forward(z, x);
    double e = tu_tensor_rel_error(yc, yz);
    int64_t before = (int64_t)N * (w->numel / N) + rw->numel, after = (int64_t)keep * (w->numel / N) + rw->numel / N * keep;
    tap_ok(e <= 1e-5 && c && c->nodes[nn_find(c, layer)].out == keep, "%s: equals the reference with the readers' "
           "inputs zeroed (%.2g)", what, e);
    tap_ok(c && st.weights_ref == before && st.weights == after, "%s: weights of the layer and its reader %lld -> %lld",
           what, (long long)before, (long long)after);
    if (c)
        cp_stats_free(&st);
    free(kept);
    tensor_free(yc);
    tensor_free(yz);
    nn_net_free(c);
    nn_net_free(z);
    cp_family_free(f);
}

static void test_prune_channels(void)
{
    nn_net *vgg = build("vgg", 11, 1, 3, 32, 0.25, 1);
    /* a convolution read by a linear layer through a flatten of 4×4 maps */
    nn_net *head = nn_net_new(3, 4, 5);
    nn_node c1 = {.op = NN_CONV, .name = "c1", .in = {NN_INPUT, -2}, .out = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                  .ph = 1, .pw = 1, .groups = 1, .has_bias = 1};
    nn_node relu = {.op = NN_RELU, .name = "relu", .in = {0, -2}};
    nn_node c2 = c1, fc = {.op = NN_LINEAR, .name = "fc", .in = {3, -2}, .out = 5, .has_bias = 1};
    c2.name = "c2";
    c2.in[0] = 1;
    c2.out = 6;
    nn_add(head, &c1);
    nn_add(head, &relu);
    nn_add(head, &c2);
    relu.in[0] = 2;
    relu.name = "relu2";
    nn_add(head, &relu);
    nn_add(head, &fc);
    nn_init_params(head, 5);
    randomize_scaled(head);
    tensor *x4 = tu_random_input(r, 3, 3, 4, 4);
    nn_net *res = build("resnet", 18, 0, 3, 32, 0.25, 1);
    tensor *x = tu_random_input(r, 2, 3, 32, 32);
    pruned_equals_zeroed(vgg, "features.0", "features.4", 0.5, x, "vgg_bn features.0 (through bn, relu, pool)");
    pruned_equals_zeroed(head, "c2", "fc", 0.5, x4, "a conv read by a linear layer through a flatten");
    tensor_free(x4);
    pruned_equals_zeroed(res, "layer2.1.conv1", "layer2.1.conv2", 0.4, x, "resnet inner channels of a block");

    cp_family *f = family("prune_channels", res, "layer*.conv1", CP_FRACTION);
    tap_ok(f && f->count == 8, "resnet18: layer*.conv1 selects the 8 inner convolutions");
    double one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    nn_net *c = f ? cp_apply(res, 1, &f, cp_dim(1, &f), one, NULL) : NULL;
    tensor *y = nn_forward(res, x), *yc = c ? nn_forward(c, x) : NULL;
    tap_ok(tu_tensor_rel_error(yc, y) == 0, "channel pruning at ratio 1 changes nothing");
    tensor_free(yc);
    nn_net_free(c);
    cp_family_free(f);
    err_set("%s", "");
    const char *conv2 = "layer1.0.conv2";
    cp_options o = {0};
    tap_ok(!cp_family_new("prune_channels", res, 1, &conv2, &o) && strstr(err_msg(), "residual add"),
           "a block's output convolution is refused: %s", err_msg());
    f = family("prune_channels", res, "layer1.*", CP_FRACTION);
    tap_ok(f && f->count == 2, "a pattern skips the convolutions whose channels reach an add");
    cp_family_free(f);
    tensor_free(y);

    /* bottlenecks: both inner convolutions of every block pruned at once */
    nn_net *deep = build("resnet", 50, 0, 3, 32, 0.125, 1);
    const char *inner[2] = {"layer*.conv1", "layer*.conv2"};
    cp_options fo = {0};
    f = cp_family_new("prune_channels", deep, 2, inner, &fo);
    double *half = f ? full(f) : NULL;
    for (int i = 0; f && i < f->count; i++)
        half[i] = 0.5;
    cp_stats st;
    c = f ? cp_apply(deep, 1, &f, cp_dim(1, &f), half, &st) : NULL;
    nn_dims *dims = c ? malloc((size_t)c->count * sizeof *dims) : NULL;
    yc = c ? nn_forward(c, x) : NULL;
    tap_ok(f && f->count == 32 && c && nn_infer(c, 3, 32, 32, dims) == 0 && yc && yc->shape[1] == 10 &&
               st.params < nn_param_count(deep) * 0.75,
           "resnet50: 32 inner convolutions at half their channels, shapes consistent (%lld of %lld parameters)",
           c ? (long long)st.params : 0LL, (long long)nn_param_count(deep));
    for (int i = 0; f && i < f->count; i++)
        half[i] = 1;
    nn_net *same = f ? cp_apply(deep, 1, &f, cp_dim(1, &f), half, NULL) : NULL;
    tensor *ys = same ? nn_forward(same, x) : NULL, *yd = nn_forward(deep, x);
    tap_ok(tu_tensor_rel_error(ys, yd) == 0, "resnet50: ratio 1 changes nothing");
    if (c)
        cp_stats_free(&st);
    free(dims);
    free(half);
    tensor_free(yc);
    tensor_free(ys);
    tensor_free(yd);
    nn_net_free(c);
    nn_net_free(same);
    cp_family_free(f);
    nn_net_free(deep);
    tensor_free(x);
    nn_net_free(vgg);
    nn_net_free(head);
    nn_net_free(res);
}

static void test_weights_values(void)
{
    nn_node n = {.op = NN_LINEAR};
    n.weight = tensor_new(2, (int64_t[]){4, 5});
    float vals[20] = {0.5f, -0.5f, 0.5f, 0.1f, -0.9f, 0.2f, 0.5f, 0.3f, -0.05f, 0.0f,
                      1.0f, -2.0f, 0.5f, 0.7f, -0.7f, 0.01f, 0.02f, -0.5f, 0.5f, 0.6f};
    memcpy(n.weight->data, vals, sizeof vals);
    int64_t nz;
    cp_prune_weights(&n, 0.4, &nz); /* 8 kept: 2, 1, 0.9, 0.7, 0.7, 0.6, then two of the seven 0.5s */
    int kept = 0, halves = 0;
    for (int i = 0; i < 20; i++) {
        kept += n.weight->data[i] != 0;
        halves += fabsf(n.weight->data[i]) == 0.5f;
        if (n.weight->data[i] != 0 && n.weight->data[i] != vals[i])
            kept = -100;
    }
    tap_ok(kept == 8 && nz == 8 && halves == 2 && n.weight->data[0] == 0.5f && n.weight->data[1] == -0.5f,
           "magnitude pruning keeps exactly 40%% (ties in index order), values untouched");
    memcpy(n.weight->data, vals, sizeof vals);
    cp_quantize(&n, 3); /* levels: k·(2/3), k = -3..3 */
    int ok = 1;
    for (int i = 0; i < 20; i++) {
        double q = n.weight->data[i] / (2.0 / 3.0);
        ok = ok && fabs(q - nearbyint(q)) < 1e-5 && fabs(n.weight->data[i] - vals[i]) <= 1.0 / 3.0 + 1e-6;
    }
    tap_ok(ok && n.weight->data[11] == -2.0f, "3-bit quantization: multiples of max/3, within half a step");
    tensor_free(n.weight);
}

/* The record of each family rebuilds the candidate's exact structure. */
static void test_records(void)
{
    nn_net *net = build("resnet", 18, 0, 3, 32, 0.25, 1);
    const char *pats[] = {"layer1.*.conv1", "layer2.0.conv2", "layer3.*.conv2", "fc", "layer4.*.conv1", "conv1"};
    cp_options o = {.mode = CP_FRACTION}, od = {.mode = CP_ENERGY, .dense = 1}, oa = {.mode = CP_ABSOLUTE};
    cp_family *fs[6] = {cp_family_new("vh", net, 1, &pats[0], &o), cp_family_new("tucker2", net, 1, &pats[1], &o),
                        cp_family_new("svd", net, 1, &pats[2], &od), cp_family_new("svd", net, 1, &pats[3], &oa),
                        cp_family_new("prune_channels", net, 1, &pats[4], &o),
                        cp_family_new("quantize", net, 1, &pats[5], &o)};
    double th[9] = {0.3, 0.6, 0.5, 0.8, 0.9, 4, 0.5, 0.25, 4};
    int dim = cp_dim(6, fs);
    nn_net *c = dim == 9 ? cp_apply(net, 6, fs, cp_dim(6, fs), th, NULL) : NULL;
    nn_net *back = c ? nn_from_arch(c->arch) : NULL;
    int ok = back && back->count == c->count;
    for (int i = 0; ok && i < c->count; i++) {
        const nn_node *a = &c->nodes[i], *b = &back->nodes[i];
        ok = strcmp(a->name, b->name) == 0 && a->out == b->out && (!a->weight) == (!b->weight) &&
             (!a->weight || tensor_same_shape(a->weight, b->weight));
    }
    tap_ok(ok, "nn_from_arch rebuilds the candidate's structure from its record (dim %d)", dim);
    if (!ok)
        tap_diag("%s", err_msg());
    tap_ok(!nn_from_arch("{\"arch\":\"resnet\",\"rewrites\":[{\"layer\":\"nope\",\"op\":\"vh\",\"rank\":3}]}") &&
               strstr(err_msg(), "no layer nope"),
           "a record naming a missing layer is refused: %s", err_msg());
    double bad[9];
    memcpy(bad, th, sizeof bad);
    bad[0] = 1.7;
    tap_ok(!cp_apply(net, 6, fs, cp_dim(6, fs), bad, NULL) && strstr(err_msg(), "outside its bounds"),
           "θ outside its bounds: %s", err_msg());
    cp_family *twice[2] = {fs[0], fs[0]};
    double t2[4] = {0.3, 0.3, 0.3, 0.3};
    tap_ok(!cp_apply(net, 2, twice, cp_dim(2, twice), t2, NULL) && strstr(err_msg(), "two families"),
           "one layer in two families: %s", err_msg());
    nn_net_free(back);
    nn_net_free(c);
    for (int i = 0; i < 6; i++)
        cp_family_free(fs[i]);
    nn_net_free(net);
}

static void test_hooi(void)
{
    nn_net *net = build("vgg", 11, 0, 3, 32, 0.25, 1);
    tensor *x = tu_random_input(r, 4, 3, 32, 32), *y = nn_forward(net, x);
    const char *p = "features.8";
    cp_options a = {.mode = CP_FRACTION}, b = {.mode = CP_FRACTION, .hooi = 3};
    cp_family *f0 = cp_family_new("tucker2", net, 1, &p, &a), *f3 = cp_family_new("tucker2", net, 1, &p, &b);
    double th = 0.3;
    nn_net *c0 = cp_apply(net, 1, &f0, 1, &th, NULL), *c3 = cp_apply(net, 1, &f3, 1, &th, NULL);
    /* HOOI never loses to the HOSVD on the fit of the kernel */
    const tensor *w = net->nodes[nn_find(net, p)].weight;
    double err[2];
    nn_net *cs[2] = {c0, c3};
    for (int k = 0; k < 2; k++) {
        const tensor *u = cs[k]->nodes[nn_find(cs[k], "features.8.first")].weight;
        const tensor *g = cs[k]->nodes[nn_find(cs[k], "features.8.core")].weight;
        const tensor *v = cs[k]->nodes[nn_find(cs[k], "features.8.last")].weight;
        int N = (int)w->shape[0], C = (int)w->shape[1], R3 = (int)u->shape[0], R4 = (int)g->shape[0];
        err[k] = 0;
        for (int o = 0; o < N; o++)
            for (int i = 0; i < C; i++)
                for (int q = 0; q < 9; q++) {
                    double s = 0;
                    for (int a4 = 0; a4 < R4; a4++)
                        for (int b3 = 0; b3 < R3; b3++)
                            s += (double)v->data[o * R4 + a4] * g->data[(a4 * R3 + b3) * 9 + q] * u->data[b3 * C + i];
                    double d = s - w->data[(o * C + i) * 9 + q];
                    err[k] += d * d;
                }
    }
    tap_ok(err[1] <= err[0] * (1 + 1e-5) && err[0] > 0, "tucker2: 3 HOOI iterations fit the kernel no worse than the "
           "HOSVD (%.6g vs %.6g)", err[1], err[0]);
    tensor_free(x);
    tensor_free(y);
    nn_net_free(c0);
    nn_net_free(c3);
    cp_family_free(f0);
    cp_family_free(f3);
    nn_net_free(net);
}

/* A network of one layer "l" (C → N; a k×k convolution, or a linear layer when k is 0) with
 * zero weights, and the family on it; enough to map θ to settings. */
static cp_family *one_layer(const char *family, int C, int N, int k, nn_net **net)
{
    *net = nn_net_new(C, 8, N);
    nn_node n = {.op = k ? NN_CONV : NN_LINEAR, .name = "l", .in = {NN_INPUT, -2}, .out = N, .kh = k, .kw = k,
                 .sh = 1, .sw = 1, .groups = 1};
    nn_add(*net, &n);
    (*net)->nodes[0].weight = k ? tensor_new(4, (int64_t[]){N, C, k, k}) : tensor_new(2, (int64_t[]){N, C});
    const char *name = "l";
    cp_family *f = cp_family_new(family, *net, 1, &name, NULL);
    if (f)
        cp_family_set_bounds(f, -1, f->layers[0].min, f->layers[0].max);
    return f;
}

/* θ = K/b gives rank K, and the top of the fraction range the full rank, for every shape, against
 * integer arithmetic: floor(θ·b) in floating point lost one at the top of the range for about 4%
 * of the shapes (a 33→33 3×3 convolution got 98 of 99). */
static void test_fraction_ranks(void)
{
    const char *families[2] = {"vh", "svd"};
    const int sizes[2] = {96, 160}, ks[2] = {3, 0};
    for (int fi = 0; fi < 2; fi++) {
        int shapes = 0, top = 0, ladder = 0, described = 0;
        for (int C = 1; C <= sizes[fi]; C++)
            for (int N = 1; N <= sizes[fi]; N++) {
                int k = ks[fi], kh = k ? k : 1;
                nn_net *net;
                cp_family *f = one_layer(families[fi], C, N, k, &net);
                /* vh factors the (C·kh) × (N·kw) matrix, svd the N × (C·kh·kw) one */
                int64_t m = k ? (int64_t)C * kh : N, n = k ? (int64_t)N * kh : (int64_t)C * kh * kh;
                int64_t full = m < n ? m : n, b = k ? (int64_t)kh * kh * C * N / (kh * C + kh * N) : m * n / (m + n);
                if (!f) {
                    tap_diag("%s %d→%d: %s", families[fi], C, N, err_msg());
                    nn_net_free(net);
                    continue;
                }
                const cp_layer *l = &f->layers[0];
                shapes++;
                described += l->max_rank == full && l->break_even == b;
                cp_choice c;
                double theta = l->max;
                int ok = b > 0 && cp_choose(1, &f, 1, &theta, &c) == 0 && c.rank == full;
                if (b > 0 && !ok && top++ < 3)
                    tap_diag("%s %d→%d: θ = %.17g (the top) gives rank %d, not %lld", families[fi], C, N, theta,
                             c.rank, (long long)full);
                for (int64_t K = 1; K <= full && C <= 48 && N <= 48 && b > 0; K++) {
                    theta = (double)K / (double)b;
                    if (cp_choose(1, &f, 1, &theta, &c) != 0 || c.rank != K)
                        ladder++;
                }
                cp_family_free(f);
                nn_net_free(net);
            }
        tap_ok(described == shapes && shapes == sizes[fi] * sizes[fi],
               "%s: full and break-even ranks of all %d shapes up to %d→%d as integer arithmetic has them",
               families[fi], shapes, sizes[fi], sizes[fi]);
        tap_ok(top == 0, "%s: the top of the fraction range gives the full rank for every shape up to %d→%d "
               "(%d do not)", families[fi], sizes[fi], sizes[fi], top);
        tap_ok(ladder == 0, "%s: θ = K/b gives rank K for every K and every shape up to 48→48 (%d do not)",
               families[fi], ladder);
    }
    nn_net *net;
    cp_family *f = one_layer("vh", 33, 33, 3, &net);
    cp_choice c = {0};
    double theta = f->layers[0].max;
    int chosen = cp_choose(1, &f, 1, &theta, &c);
    tap_ok(chosen == 0 && c.rank == 99 && f->layers[0].break_even == 49,
           "vh 33→33 3×3: θ = 99/49 gives rank 99 (%d)", c.rank);
    cp_family_free(f);
    nn_net_free(net);
}

/* A split layer that is also quantized and pruned by magnitude: the values-only records find the
 * layer's chain when nn_from_arch replays them, whichever order the families come in. */
static void test_split_and_values(void)
{
    nn_net *net = build("vgg", 11, 0, 3, 32, 0.25, 1);
    tensor *x = tu_random_input(r, 2, 3, 32, 32);
    const char *layers[] = {"features.0", "features.3", "features.6", "classifier.0"};
    const char *split[3] = {"vh", "svd", "tucker2"};
    for (int s = 0; s < 3; s++)
        for (int order = 0; order < 2; order++) {
            const char *layer = layers[s];
            cp_options dense = {0};
            cp_family *fs[3] = {cp_family_new(split[s], net, 1, &layer, &dense),
                                cp_family_new("quantize", net, 1, &layer, NULL),
                                cp_family_new("prune_weights", net, 1, &layer, NULL)};
            double th[3] = {0.5, 5, 0.6};
            if (order) { /* values first in θ (and in the record) */
                cp_family *t = fs[0];
                fs[0] = fs[1], fs[1] = fs[2], fs[2] = t;
                double a = th[0];
                th[0] = th[1], th[1] = th[2], th[2] = a;
            }
            nn_net *c = fs[0] && fs[1] && fs[2] ? cp_apply(net, 3, fs, 3, th, NULL) : NULL;
            nn_net *back = c ? nn_from_arch(c->arch) : NULL;
            int ok = back && back->count == c->count;
            for (int i = 0; ok && i < c->count; i++) {
                ok = strcmp(c->nodes[i].name, back->nodes[i].name) == 0 &&
                     (!c->nodes[i].weight || tensor_same_shape(c->nodes[i].weight, back->nodes[i].weight));
                if (ok && c->nodes[i].weight) /* the weights, as nn_load would fill them */
                    memcpy(back->nodes[i].weight->data, c->nodes[i].weight->data,
                           (size_t)c->nodes[i].weight->numel * sizeof(float));
                if (ok && c->nodes[i].bias)
                    memcpy(back->nodes[i].bias->data, c->nodes[i].bias->data,
                           (size_t)c->nodes[i].bias->numel * sizeof(float));
            }
            if (back)
                nn_invalidate(back);
            tensor *yc = ok ? nn_forward(c, x) : NULL, *yb = ok ? nn_forward(back, x) : NULL;
            tap_ok(ok && tu_tensor_rel_error(yb, yc) == 0, "%s of %s, quantized and pruned (%s first): the record rebuilds it",
                   split[s], layer, order ? "values" : "split");
            if (!ok)
                tap_diag("%s", err_msg());
            tensor_free(yc);
            tensor_free(yb);
            nn_net_free(back);
            nn_net_free(c);
            for (int i = 0; i < 3; i++)
                cp_family_free(fs[i]);
        }
    tap_ok(!nn_from_arch("{\"arch\":\"vgg\",\"depth\":11,\"rewrites\":[{\"layer\":\"nope\",\"op\":\"quantize\","
                         "\"bits\":4}]}") &&
               strstr(err_msg(), "no layer nope"),
           "a values-only record of a missing layer is still refused: %s", err_msg());
    tensor_free(x);
    nn_net_free(net);
}

/* What the library reports per layer and in total: the ratios of its counts, each layer's own
 * parameters and MACs against hand formulas, the settings by name, the search box. */
static void test_report(void)
{
    nn_spec ms;
    nn_spec_defaults(&ms, "mlp");
    ms.nwidths = 4;
    ms.widths[0] = 50, ms.widths[1] = 30, ms.widths[2] = 20, ms.widths[3] = 10;
    nn_net *mlp = nn_build(&ms);
    const char *fc1 = "fc1", *fc2 = "fc2";
    cp_options abs = {.mode = CP_ABSOLUTE};
    cp_family *fs[2] = {cp_family_new("svd", mlp, 1, &fc1, &abs), cp_family_new("quantize", mlp, 1, &fc2, NULL)};
    double th[2] = {7, 4};
    cp_stats st;
    nn_net *c = cp_apply(mlp, 2, fs, 2, th, &st);
    const cp_choice *a = &st.choices[0], *q = &st.choices[1];
    tap_ok(c && a->rank == 7 && a->weights == 7 * 80 && a->weights_ref == 1500 && a->params == 7 * 80 + 30 &&
               a->params_ref == 1530 && a->macs == 7 * 80 && a->macs_ref == 1500,
           "svd of fc1 (50→30) at rank 7: weights 560 of 1500, parameters with the bias, MACs K·(m + n)");
    tap_ok(c && q->bits == 4 && q->weights == 600 && q->params == 620 && q->macs == 600 && q->macs_ref == 600,
           "quantized fc2: same counts, 4 bits");
    double v;
    tap_ok(c && st.ratio.params == (double)st.weights / st.weights_ref &&
               st.ratio.params_net == (double)st.params / st.params_ref &&
               st.ratio.bits == st.bits / st.bits_ref && st.ratio.flops == (double)st.macs / st.macs_ref &&
               st.ratio.bits == (560 * 32.0 + 600 * 4.0) / (2100 * 32.0) && cp_ratio_get(&st.ratio, "bits", &v) == 0 &&
               v == st.ratio.bits && cp_ratio_get(&st.ratio, "size", &v) != 0,
           "ratios in the library: params, params_net, bits (%.4f), flops; by name", st.ratio.bits);
    char buf[64], buf2[64];
    cp_setting set;
    cp_choice_setting(fs[1], q, &set);
    cp_choice_format(fs[0], a, buf, sizeof buf);
    cp_choice_format(fs[1], q, buf2, sizeof buf2);
    tap_ok(strcmp(set.key, "bits") == 0 && set.value[0] == 4 && strcmp(buf, "rank 7") == 0 &&
               strcmp(buf2, "bits 4") == 0,
           "settings by name: \"%s\", \"%s\"", buf, buf2);
    double lo[2], hi[2];
    int integer[2];
    cp_box(2, fs, lo, hi, integer);
    tap_ok(lo[0] == 1 && hi[0] == 30 && integer[0] && lo[1] == 2 && hi[1] == 8 && integer[1] &&
               cp_theta_name(2, fs, 1, buf, sizeof buf) > 0 && strcmp(buf, "quantize:fc2") == 0 &&
               cp_theta_name(2, fs, 2, buf, sizeof buf) < 0,
           "the search box and the labels of θ");
    tap_ok(!cp_apply(mlp, 2, fs, 1, th, NULL) && strstr(err_msg(), "theta has 1 entries, the families have 2"),
           "θ of the wrong length: %s", err_msg());
    cp_stats_free(&st);
    nn_net_free(c);
    for (int i = 0; i < 2; i++)
        cp_family_free(fs[i]);

    /* options and bounds are checked once, in the library */
    cp_options bad[] = {{.mode = CP_ENERGY}, {.hooi = 101}, {.multiple = 5000}, {.dense = 1}};
    const char *fam[] = {"tucker2", "tucker2", "vh", "vh"}, *want[] = {"'rank' must be", "'hooi' must be between",
                                                                     "'multiple' must be between", "no option 'dense'"};
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        ok = ok && !cp_family_new(fam[i], mlp, 1, &fc1, &bad[i]) && strstr(err_msg(), want[i]);
        if (!ok)
            tap_diag("%s", err_msg());
    }
    tap_ok(ok && !cp_family_new("lowrank", mlp, 1, &fc1, NULL) && strstr(err_msg(), "known: vh, svd"),
           "bad options and unknown families are refused: %s", err_msg());
    cp_mode m;
    tap_ok(cp_mode_parse(cp_family_find("svd"), "energy", &m) == 0 && m == CP_ENERGY &&
               cp_mode_parse(cp_family_find("vh"), "energy", &m) != 0 &&
               strstr(err_msg(), "\"fraction\" or \"absolute\""),
           "modes by name, per family: %s", err_msg());
    const char *both[2] = {"fc1", "fc2"};
    cp_family *f = cp_family_new("svd", mlp, 2, both, NULL);
    double blo[2] = {0.1, 0.2}, bhi[2] = {0.5, 0.9};
    tap_ok(f && cp_family_set_bounds_list(f, 2, blo, bhi) == 0 && f->layers[1].lo == 0.2 && f->layers[1].hi == 0.9 &&
               cp_family_set_bounds_list(f, 1, blo, bhi) != 0 && strstr(err_msg(), "for 2 layers"),
           "per-layer bounds, and a list of another length refused: %s", err_msg());
    cp_family_free(f);
    nn_net_free(mlp);
}

static void test_mean_se(void)
{
    double d[6] = {1, 2, 3, 4, 10, -2}, mean, se;
    ob_mean_se(d, 6, &mean, &se);
    /* mean 3, squared deviations 4+1+0+1+49+25 = 80, s² = 80/5 = 16, se = 4/sqrt(6) */
    tap_ok(fabs(mean - 3) < 1e-12 && fabs(se - 4 / sqrt(6.0)) < 1e-12, "U-statistic: mean and s/sqrt(n), ddof 1");
    ob_mean_se(d, 1, &mean, &se);
    tap_ok(mean == 1 && se == 0, "one sample: no standard error");
}

int main(void)
{
    r = rng_new(42);
    test_match();
    test_replace();
    test_exact();
    test_vh_factors();
    test_counts();
    test_prune_channels();
    test_weights_values();
    test_records();
    test_hooi();
    test_fraction_ranks();
    test_split_and_values();
    test_report();
    test_mean_se();
    rng_free(r);
    return tap_done();
}
