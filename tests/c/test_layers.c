/* Every layer kind, fusion and residual variant of the inference plans against the naive
 * interpreter: the instances of layer_cases.h (random shapes and parameters, batch-norm statistics
 * included), whole networks from the builders, and plans reused across calls and batch sizes. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "graph.h"
#include "layer_cases.h"
#include "naive_net.h"
#include "nn/build.h"
#include "nn/exec.h"
#include "nn/exec_cache.h"
#include "tap.h"
#include "testutil.h"

static rng *r;

/* Runs net on x with oneDNN and naively; true when they agree to 1e-4 relative. */
static int agrees(nn_net *net, const tensor *x, const char *what)
{
    tensor *y = nn_forward(net, x);
    long count = 0;
    float *ref = naive_forward(net, x, &count);
    int ok = y && ref && y->numel == count;
    double e = ok ? tu_rel_error(y->data, ref, count, 1e-12) : INFINITY;
    ok = ok && e <= 1e-4;
    tap_ok(ok, "%s", what);
    if (!ok)
        tap_diag("%s; relative error %.3g", y ? "" : err_msg(), e);
    tensor_free(y);
    free(ref);
    return ok;
}

/* Every instance of every layer case; and no plan writes into the caller's input (a residual sum
 * with the input must copy it first). */
static void test_cases(void)
{
    int instances = 0, untouched = 0;
    for (int i = 0; i < LAYER_CASES; i++)
        for (int k = 0; k < layer_cases[i].count; k++) {
            lc_instance in;
            if (!lc_make(&layer_cases[i], k, r, &in)) {
                tap_ok(0, "%s: %s", in.what, err_msg());
                continue;
            }
            tensor *x = tu_random_input(r, in.n, in.c, in.h, in.w), *copy = tensor_clone(x);
            agrees(in.net, x, in.what);
            instances++;
            untouched += memcmp(x->data, copy->data, (size_t)x->numel * sizeof *x->data) == 0;
            tensor_free(x);
            tensor_free(copy);
            nn_net_free(in.net);
        }
    tap_ok(instances > 0 && untouched == instances, "the caller's input is left untouched (%d of %d instances)",
           untouched, instances);
}

/* Plans reused: the same network twice and at several batch sizes, then after its weights change. */
static void test_plan_reuse(void)
{
    nn_net *net = nn_net_new(2, 6, 1);
    int l = graph_add(net, (nn_node){.op = NN_CONV, .in = {NN_INPUT}, .out = 3, .kh = 3, .kw = 3, .sh = 1, .sw = 1});
    graph_add(net, (nn_node){.op = NN_LINEAR, .in = {l}, .out = 4, .has_bias = 1});
    if (nn_init_params(net, 7) != 0) {
        tap_ok(0, "plan reuse: %s", err_msg());
        nn_net_free(net);
        return;
    }
    tu_randomize_params(net, r);
    tensor *x = tu_random_input(r, 3, 2, 6, 6);
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
        tu_randomize_params(net, r);
        tensor *x = tu_random_input(r, 2, cases[i].channels, cases[i].size, cases[i].size);
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
    tu_randomize_params(net, r);
    tensor *x = tu_random_input(r, 3, 1, 28, 28);
    agrees(net, x, "mlp 784-40-30-10 on 1x28x28 input");
    tensor_free(x);
    nn_net_free(net);
}

int main(void)
{
    r = rng_new(2024);
    test_cases();
    test_plan_reuse();
    test_builders();
    rng_free(r);
    exec_cache_free();
    return tap_done();
}
