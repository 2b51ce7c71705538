/* Training plans: every backward primitive (and fusion) against finite differences of the forward
 * pass in training mode, on the instances of layer_cases.h (the graphs test_layers runs against
 * the naive interpreter); whole builder networks against their PyTorch twins (float64 fixtures);
 * the training-mode forward against naive batch statistics; running statistics as PyTorch updates
 * them; dropout masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "io/safetensors.h"
#include "layer_cases.h"
#include "nn/build.h"
#include "nn/exec.h"
#include "nn/exec_cache.h"
#include "tap.h"
#include "testutil.h"
#include "train/backprop.h"

static rng *r;

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
            snprintf(worst_at, sizeof worst_at,
                     "entry %lld: finite differences %.6g (left %.6g, right %.6g), backward %.6g, scale %.3g, "
                     "noise %.2g",
                     (long long)i, fd[0], fd[2], fd[1], grad[i], scale, noise);
        }
    }
    return worst;
}

/* Every parameter gradient and the input gradient of net on a random batch n×c×h×w agree with
 * finite differences (steps of eps) to 1% of the gradient's scale. Frees net. */
static void check_grads(nn_net *net, int n, int c, int h, int w, double eps, const char *what)
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
    tu_uniform(x, xn, r, -1, 1);
    tu_uniform(proj, m, r, -1, 1);
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
                    snprintf(where, sizeof where, "layer %d (%s) %s %s", i + 1, nd->name, s ? "bias" : "weight",
                             worst_at);
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

/* Every instance of every layer case (parameters from lc_make, running statistics kept). */
static void test_cases(void)
{
    for (int i = 0; i < LAYER_CASES; i++)
        for (int k = 0; k < layer_cases[i].count; k++) {
            lc_instance in;
            if (!lc_make(&layer_cases[i], k, r, &in))
                tap_ok(0, "%s: %s", in.what, err_msg());
            else
                check_grads(in.net, in.n, in.c, in.h, in.w, 1e-3, in.what);
        }
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
        double dy = ok ? tu_rel_error(out, y->data, y->numel, 1e-2) : 1;
        double dg = ok ? tu_rel_error(nn_backprop_input_grad(bp), gx->data, gx->numel, 1e-2) : 1;
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
                double d = tu_rel_error(mine->data, want->data, want->numel, 1e-2);
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
            tap_diag("%s; relative differences: outputs %.3g, input gradient %.3g, parameter gradients %.3g "
                     "(worst %s), running statistics %.3g", ok ? "" : err_msg(), dy, dg, dp, worst, ds);
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
    if (nn_init_params(net, 11) != 0) {
        tap_ok(0, "batch statistics: %s", err_msg());
        nn_net_free(net);
        return;
    }
    tu_randomize_params(net, r);
    nn_node *bn = &net->nodes[1];
    tu_uniform(bn->mean->data, c, r, -0.5, 0.5);
    tu_uniform(bn->var->data, c, r, 0.5, 2);
    tensor *mean0 = tensor_clone(bn->mean), *var0 = tensor_clone(bn->var);
    tensor *x = tensor_new(4, (int64_t[]){n, 2, hw, hw});
    tu_uniform(x->data, x->numel, r, -1, 1);
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
    tu_uniform(x, m, r, 1, 2);
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
    test_cases();
    test_torch_twins();
    test_batch_statistics();
    test_dropout();
    rng_free(r);
    exec_cache_free();
    return tap_done();
}
