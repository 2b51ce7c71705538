/* The estimators of engine/objective against computations made here: the U-statistic's mean and
 * standard error against a long-double two-pass sum; fnorm's L^ against the squared distances of
 * logits from separate forward passes of the reference and the candidate on the estimator's own
 * sample; the samples (reproducible, fresh per evaluation, without replacement, inside the pool,
 * the same under `fixed`); risk's error rate against an argmax here, its standard error and floor;
 * the non-squared distance; batching, prepare and a heavy classifier run on all rows at once
 * changing nothing; bad options refused. The inputs are Fashion-MNIST's test split; the networks
 * small ones built here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/dataset.h"
#include "nn/edit.h"
#include "nn/exec.h"
#include "objective/objective.h"
#include "tap.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static dataset *ds;

/* mean and s/sqrt(n) (ddof 1) by a two-pass sum in long double */
static void reference_mean_se(const double *d, int64_t n, double *mean, double *se)
{
    long double m = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        m += d[i];
    m /= n;
    for (int64_t i = 0; i < n; i++)
        ss += (d[i] - m) * (d[i] - m);
    *mean = (double)m;
    *se = n > 1 ? (double)sqrtl(ss / (n - 1) / n) : 0;
}

/* net with its parameters allocated, then weights and biases uniform in [-0.5, 0.5) from seed */
static nn_net *randomized(nn_net *net, uint64_t seed)
{
    if (nn_init_params(net, seed) != 0) {
        tap_diag("init: %s", err_msg());
        nn_net_free(net);
        return NULL;
    }
    rng *r = rng_new(seed + 100);
    tu_randomize_params(net, r);
    rng_free(r);
    return net;
}

/* 784 -> hidden -> 10 with ReLU, randomized */
static nn_net *mlp(int hidden, uint64_t seed)
{
    nn_net *net = nn_net_new(1, 28, 10);
    int l = graph_add(net, (nn_node){.op = NN_LINEAR, .name = "fc1", .in = {NN_INPUT}, .out = hidden, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    graph_add(net, (nn_node){.op = NN_LINEAR, .name = "fc2", .in = {l}, .out = 10, .has_bias = 1});
    return randomized(net, seed);
}

/* conv 1 -> 2 (3×3) -> ReLU -> linear 1568 -> 10,752 -> ReLU -> linear -> 10: a classifier of 67 MB,
 * heavy enough that the estimator runs it on all rows at once after the convolution's batches */
static nn_net *heavy_classifier(uint64_t seed)
{
    nn_net *net = nn_net_new(1, 28, 10);
    int l = graph_add(net, (nn_node){.op = NN_CONV, .name = "conv", .in = {NN_INPUT}, .out = 2, .kh = 3, .kw = 3,
                                     .sh = 1, .sw = 1, .ph = 1, .pw = 1, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    l = graph_add(net, (nn_node){.op = NN_LINEAR, .name = "fc1", .in = {l}, .out = 10752, .has_bias = 1});
    l = graph_add(net, (nn_node){.op = NN_RELU, .in = {l}});
    graph_add(net, (nn_node){.op = NN_LINEAR, .name = "fc2", .in = {l}, .out = 10, .has_bias = 1});
    return randomized(net, seed);
}

/* A network that answers class c whatever the input: zero weights, bias 1 at c. */
static nn_net *constant(int c)
{
    nn_net *net = nn_net_new(1, 28, 10);
    graph_add(net, (nn_node){.op = NN_LINEAR, .name = "fc", .in = {NN_INPUT}, .out = 10, .has_bias = 1});
    if (nn_init_params(net, 1) != 0) {
        nn_net_free(net);
        return NULL;
    }
    memset(net->nodes[0].weight->data, 0, (size_t)net->nodes[0].weight->numel * sizeof(float));
    memset(net->nodes[0].bias->data, 0, 10 * sizeof(float));
    net->nodes[0].bias->data[c] = 1;
    nn_invalidate(net);
    return net;
}

static ob_options options(int64_t samples, uint64_t seed, int64_t pool)
{
    ob_options o;
    ob_defaults(&o);
    o.samples = samples;
    o.seed = seed;
    o.pool = pool;
    return o;
}

static void test_mean_se(void)
{
    rng *r = rng_new(5);
    int good = 1;
    for (int t = 0; t < 50 && good; t++) {
        int64_t n = tu_rand_int(r, 1, 300);
        double offset = t % 3 == 0 ? 1e6 : 0, scale = pow(10, (double)rng_below(r, 7) - 3), *d = malloc((size_t)n * sizeof *d);
        for (int64_t i = 0; i < n; i++) /* skewed values, as squared distances are */
            d[i] = offset + scale * pow(rng_normal(r), 2);
        double m, s, mr, sr;
        ob_mean_se(d, n, &m, &s);
        reference_mean_se(d, n, &mr, &sr);
        good = fabs(m - mr) <= 1e-12 * fabs(mr) && fabs(s - sr) <= 1e-7 * sr;
        if (!good)
            tap_diag("n %lld: mean %.17g vs %.17g, se %.17g vs %.17g", (long long)n, m, mr, s, sr);
        free(d);
    }
    tap_ok(good, "mean and SE agree with a long-double two-pass sum (50 random sets, offsets to 1e6)");
    double hand[4] = {1, 2, 3, 4}, m, s;
    ob_mean_se(hand, 4, &m, &s);
    tap_ok(m == 2.5 && fabs(s - sqrt(5.0 / 3) / 2) < 1e-15, "{1, 2, 3, 4}: mean 2.5, SE sqrt(5/3)/2");
    ob_mean_se(hand, 0, &m, &s);
    tap_ok(m == 0 && s == 0, "no values: mean 0, SE 0");
    rng_free(r);
}

/* The sample of evaluation k, its inputs and labels, and both networks' logits there. */
typedef struct direct {
    int64_t n, *idx;
    int *labels;
    tensor *x, *ya, *yb;
} direct;

static int direct_run(const ob_estimator *e, int64_t k, nn_net *a, nn_net *b, direct *out)
{
    memset(out, 0, sizeof *out);
    out->n = ob_get_options(e)->samples;
    out->idx = malloc((size_t)out->n * sizeof *out->idx);
    out->labels = malloc((size_t)out->n * sizeof *out->labels);
    if (ob_sample_indices(e, k, out->idx) != 0 || !(out->x = ds_batch(ds, out->n, out->idx, out->labels)))
        return -1;
    out->ya = a ? nn_forward(a, out->x) : NULL;
    out->yb = b ? nn_forward(b, out->x) : NULL;
    return (a && !out->ya) || (b && !out->yb) ? -1 : 0;
}

static void direct_free(direct *d)
{
    free(d->idx);
    free(d->labels);
    tensor_free(d->x);
    tensor_free(d->ya);
    tensor_free(d->yb);
}

/* L^ and SE from logits computed here: mean of ||a - b||² (or of ||a - b||) per row. */
static void direct_fnorm(const direct *d, int squared, double *mean, double *se)
{
    double *v = malloc((size_t)d->n * sizeof *v);
    int64_t k = d->ya->numel / d->n;
    for (int64_t i = 0; i < d->n; i++) {
        double s = 0;
        for (int64_t c = 0; c < k; c++) {
            double diff = (double)d->ya->data[i * k + c] - d->yb->data[i * k + c];
            s += diff * diff;
        }
        v[i] = squared ? s : sqrt(s);
    }
    reference_mean_se(v, d->n, mean, se);
    free(v);
}

static void test_fnorm(nn_net *ref, nn_net *cand)
{
    ob_options o = options(30, 7, 500);
    ob_estimator *e = ob_new(OB_FNORM, ref, ds, &o);
    int good = 1;
    for (int64_t k = 1; k <= 5 && good; k++) {
        direct d;
        ob_result r;
        double m, s;
        good = direct_run(e, k, cand, ref, &d) == 0 && ob_evaluate(e, cand, k, &r) == 0;
        if (good) {
            direct_fnorm(&d, 1, &m, &s);
            good = fabs(r.value - m) <= 1e-6 * m && fabs(r.se - s) <= 1e-6 * s && r.n == 30 && r.index == k && m > 0.1;
            if (!good)
                tap_diag("sample %lld: L %.9g vs %.9g, SE %.9g vs %.9g", (long long)k, r.value, m, r.se, s);
        } else
            tap_diag("%s", err_msg());
        direct_free(&d);
    }
    tap_ok(good, "fnorm: L^ and SE are the mean and s/sqrt(n) of ||f~(x) - f*(x)||² over the sample's inputs");

    /* the same estimate with prepare() first (reference logits in chunks), in batches of 7 (a padded
     * last batch), and evaluated out of order */
    ob_result r1, r2, r3;
    ob_options ob = o;
    ob.batch = 7;
    ob_estimator *eb = ob_new(OB_FNORM, ref, ds, &ob);
    int ok = eb && ob_prepare(eb) == 0 && ob_evaluate(eb, cand, 3, &r1) == 0 && ob_evaluate(e, cand, 3, &r2) == 0;
    tap_ok(ok && fabs(r1.value - r2.value) <= 1e-6 * r2.value && fabs(r1.se - r2.se) <= 1e-6 * r2.se,
           "prepare() and batches of 7 give the same L^ and SE");
    tap_ok(ob_evaluate(eb, cand, 0, &r3) == 0 && r3.index == 4 && ob_count(eb) == 4,
           "index 0 evaluates the sample after the highest drawn so far");
    ob_free(eb);

    /* the norm itself */
    ob_options on = o;
    on.squared = 0;
    ob_estimator *en = ob_new(OB_FNORM, ref, ds, &on);
    direct d;
    double m, s;
    ok = en && direct_run(en, 2, cand, ref, &d) == 0 && ob_evaluate(en, cand, 2, &r1) == 0;
    if (ok)
        direct_fnorm(&d, 0, &m, &s);
    tap_ok(ok && fabs(r1.value - m) <= 1e-6 * m && fabs(r1.se - s) <= 1e-6 * s && ob_evaluate(e, cand, 2, &r2) == 0 &&
               r1.value * r1.value < r2.value,
           "squared = 0: the mean of ||f~(x) - f*(x)|| and its SE (its square below the mean of squares)");
    direct_free(&d);
    ob_free(en);

    /* the reference against itself */
    tap_ok(ob_evaluate(e, ref, 1, &r1) == 0 && r1.value == 0 && r1.se == 0, "the reference is at distance 0");

    /* a candidate of another output width */
    nn_net *wide = nn_net_new(1, 28, 12);
    graph_add(wide, (nn_node){.op = NN_LINEAR, .name = "fc", .in = {NN_INPUT}, .out = 12, .has_bias = 1});
    nn_init_params(wide, 3);
    tap_error(ob_evaluate(e, wide, 1, &r1) != 0, "candidate gives 12 outputs", "reference 10",
              "a candidate of another width is refused");
    nn_net_free(wide);
    ob_free(e);
}

static int contains(const int64_t *sorted, int64_t n, int64_t v)
{
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (sorted[mid] == v)
            return 1;
        if (sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_samples(nn_net *ref)
{
    enum { N = 30, P = 500, DRAWS = 400 };
    ob_options o = options(N, 11, P);
    ob_estimator *e = ob_new(OB_FNORM, ref, ds, &o), *again = ob_new(OB_FNORM, ref, ds, &o);
    /* the pool: an estimator of the same seed and pool whose one sample is the whole pool */
    ob_options op = options(P, 11, P);
    op.fixed = 1;
    ob_estimator *whole = ob_new(OB_FNORM, ref, ds, &op);
    int64_t pool[P], a[N], b[N], first[N];
    tap_ok(e && again && whole && ob_pool_size(e) == P && ob_sample_indices(whole, 1, pool) == 0,
           "estimators over a pool of 500");
    qsort(pool, P, sizeof *pool, cmp_i64);
    int distinct_pool = 1;
    for (int i = 1; i < P; i++)
        distinct_pool &= pool[i] > pool[i - 1];
    tap_ok(distinct_pool && pool[0] >= 0 && pool[P - 1] < ds_size(ds), "the pool is 500 distinct dataset indices");

    int repro = 1, inside = 1, distinct = 1, fresh = 1;
    int *hits = calloc((size_t)ds_size(ds), sizeof *hits);
    for (int64_t k = 1; k <= DRAWS; k++) {
        ob_sample_indices(e, k, a);
        ob_sample_indices(again, k, b);
        repro &= memcmp(a, b, sizeof a) == 0;
        if (k == 1)
            memcpy(first, a, sizeof a);
        else
            fresh &= memcmp(a, first, sizeof a) != 0;
        int64_t s[N];
        memcpy(s, a, sizeof s);
        qsort(s, N, sizeof *s, cmp_i64);
        for (int i = 0; i < N; i++) {
            inside &= contains(pool, P, s[i]);
            distinct &= i == 0 || s[i] > s[i - 1];
            hits[s[i]]++;
        }
    }
    tap_ok(repro, "the sample of evaluation k is the same in a second estimator of the same seed");
    tap_ok(fresh, "each evaluation draws another sample");
    tap_ok(distinct, "a sample has no repeated example (drawn without replacement)");
    tap_ok(inside, "every sample lies in the pool");
    /* 12000 draws over 500 examples: each expected 24 times; chi-square with 499 degrees of freedom
     * (mean 499, sd 31.6) far below 700 for uniform draws */
    double chi2 = 0, expect = (double)N * DRAWS / P;
    int covered = 0;
    for (int i = 0; i < P; i++) {
        chi2 += (hits[pool[i]] - expect) * (hits[pool[i]] - expect) / expect;
        covered += hits[pool[i]] > 0;
    }
    tap_ok(covered == P && chi2 < 700, "400 samples cover the pool evenly (chi-square %.1f on 499 df)", chi2);
    free(hits);

    /* a different seed: another pool, other samples */
    ob_options o2 = options(N, 12, P);
    ob_estimator *other = ob_new(OB_FNORM, ref, ds, &o2);
    ob_sample_indices(e, 1, a);
    ob_sample_indices(other, 1, b);
    tap_ok(memcmp(a, b, sizeof a) != 0, "another seed draws another sample");
    ob_free(other);

    /* fixed: every evaluation uses the sample of evaluation 1 */
    ob_options of = o;
    of.fixed = 1;
    ob_estimator *fx = ob_new(OB_FNORM, ref, ds, &of);
    int same = 1;
    for (int64_t k = 1; k <= 5; k++) {
        ob_sample_indices(fx, k, b);
        same &= memcmp(b, first, sizeof b) == 0;
    }
    tap_ok(same, "fixed: every evaluation's sample is that of evaluation 1");
    ob_free(fx);

    /* no pool: the whole dataset */
    ob_options o0 = options(N, 11, 0);
    ob_estimator *all = ob_new(OB_FNORM, ref, ds, &o0);
    tap_ok(all && ob_pool_size(all) == ds_size(ds), "pool 0 is the whole dataset");
    tap_error(ob_sample_indices(e, 0, a) != 0, "numbered from 1", NULL, "sample 0 is refused");
    ob_free(all);
    ob_free(whole);
    ob_free(again);
    ob_free(e);
}

static void test_risk(nn_net *net)
{
    enum { N = 40 };
    ob_options o = options(N, 3, 0);
    ob_estimator *e = ob_new(OB_RISK, NULL, ds, &o);
    int good = 1;
    for (int64_t k = 1; k <= 5 && good; k++) {
        direct d;
        ob_result r;
        good = direct_run(e, k, net, NULL, &d) == 0 && ob_evaluate(e, net, k, &r) == 0;
        if (good) {
            int wrong = 0;
            for (int i = 0; i < N; i++) {
                const float *y = d.ya->data + i * 10;
                int best = 0;
                for (int c = 1; c < 10; c++)
                    best = y[c] > y[best] ? c : best;
                wrong += best != d.labels[i];
            }
            double p = (double)wrong / N;
            good = r.value == p && fabs(r.se - sqrt(p * (1 - p) / N)) < 1e-12 && p > 0 && p < 1;
            if (!good)
                tap_diag("sample %lld: error %g vs %g, SE %g", (long long)k, r.value, p, r.se);
        }
        direct_free(&d);
    }
    tap_ok(good, "risk: the top-1 error of the sample (argmax here against the labels), SE sqrt(p(1-p)/n)");

    /* a network that always answers class 0 is wrong on every example of a sample without class 0
     * (one in 0.9^40 ~ 1.5% of samples): its SE is the floor sqrt(p0(1-p0)/n), p0 = 1/(2n) */
    nn_net *c0 = constant(0);
    ob_result r;
    int found = 0;
    for (int64_t k = 1; k <= 2000 && !found; k++) {
        direct d;
        if (direct_run(e, k, NULL, NULL, &d) == 0) {
            int zero = 0;
            for (int i = 0; i < N; i++)
                zero += d.labels[i] == 0;
            if (!zero && ob_evaluate(e, c0, k, &r) == 0) {
                double p0 = 0.5 / N;
                found = 1;
                tap_ok(r.value == 1 && fabs(r.se - sqrt(p0 * (1 - p0) / N)) < 1e-15,
                       "an error rate of 1 gets the floor SE sqrt(p0(1-p0)/n), p0 = 1/(2n) (sample %lld)", (long long)k);
            }
        }
        direct_free(&d);
    }
    if (!found)
        tap_ok(0, "a sample without class 0 among 2000");
    ob_options of = o;
    of.se_floor = 0.25;
    ob_estimator *ef = ob_new(OB_RISK, NULL, ds, &of);
    ob_result rf;
    tap_ok(ef && ob_evaluate(ef, net, 1, &rf) == 0 && ob_evaluate(e, net, 1, &r) == 0 && rf.value == r.value &&
               rf.se == fmax(r.se, 0.25) && rf.se == 0.25,
           "se_floor = 0.25 replaces the floor (the same error rate)");
    ob_free(ef);
    nn_net_free(c0);
    ob_free(e);
}

static void test_options(nn_net *ref)
{
    ob_options o = options(50, 1, 20);
    tap_error(ob_new(OB_FNORM, ref, ds, &o) == NULL, "samples = 50", "pool size 20", "more samples than the pool is refused");
    o = options(5, 1, 20000);
    tap_error(ob_new(OB_FNORM, ref, ds, &o) == NULL, "pool of 20000", "has only 10000", "a pool larger than the data is refused");
    o = options(5, 1, 0);
    tap_error(ob_new(OB_FNORM, NULL, ds, &o) == NULL, "needs a reference", NULL, "fnorm without a reference is refused");
    o.batch = -1;
    tap_error(ob_new(OB_FNORM, ref, ds, &o) == NULL, "batch = -1", NULL, "a negative batch is refused");
    o = options(0, 1, 0);
    tap_error(ob_new(OB_RISK, NULL, ds, &o) == NULL, "samples = 0", NULL, "no samples is refused");
    o = options(1, 1, 0);
    tap_error(ob_new(OB_FNORM, ref, ds, &o) == NULL, "samples = 1 gives no standard error", NULL,
              "fnorm refuses one sample (no spread, no SE)");
    ob_estimator *one = ob_new(OB_RISK, NULL, ds, &o);
    ob_result r;
    nn_net *c0 = constant(0);
    tap_ok(one && ob_evaluate(one, c0, 1, &r) == 0 && (r.value == 0 || r.value == 1) && r.se == 0.5,
           "risk on one sample: an error rate of 0 or 1 with the floor SE 0.5");
    nn_net_free(c0);
    ob_free(one);
}

/* The dense tail (nn_dense_tail) and the estimator's use of it: a heavy classifier runs once on
 * all rows after the convolutions ran in batches of 7, with the L^ and SE of whole passes. */
static void test_heavy_tail(void)
{
    nn_net *ref = heavy_classifier(3), *cand = heavy_classifier(4), *mlp16 = mlp(16, 5);
    nn_dims dims[5];
    int from = -2, none = -2;
    nn_net *tail = ref && nn_infer(ref, 1, 28, 28, dims) == 0 ? nn_dense_tail(ref, dims, &from) : NULL;
    nn_net *all = mlp16 ? nn_dense_tail(mlp16, dims, &none) : NULL;
    tap_ok(tail && from == 1 && tail->count == 3 && tail->channels == 2 * 28 * 28 && tail->nodes[0].in[0] == NN_INPUT &&
               tail->nodes[2].in[0] == 1 && tail->nodes[0].weight == ref->nodes[2].weight && tail->nodes[0].shared &&
               !all && none == -1,
           "the dense tail: the 3 nodes after the convolution's ReLU, reading its 1,568 features, sharing the "
           "tensors; an all-dense network has none");
    nn_net_free(tail);
    ob_options o = options(30, 9, 500);
    o.batch = 7;
    ob_estimator *e = ref && cand ? ob_new(OB_FNORM, ref, ds, &o) : NULL;
    direct d;
    ob_result r;
    double m = 0, s = 0;
    int ok = e && direct_run(e, 1, cand, ref, &d) == 0 && ob_evaluate(e, cand, 1, &r) == 0;
    if (ok)
        direct_fnorm(&d, 1, &m, &s);
    else
        tap_diag("%s", err_msg());
    tap_ok(ok && m > 0 && fabs(r.value - m) <= 1e-5 * m && fabs(r.se - s) <= 1e-5 * s,
           "a 67 MB classifier on all 30 rows after batches of 7: L^ %.6g and SE %.3g as whole passes give (%.6g, %.3g)",
           ok ? r.value : 0, ok ? r.se : 0, m, s);
    if (ok)
        direct_free(&d);
    ob_free(e);
    nn_net_free(ref);
    nn_net_free(cand);
    nn_net_free(mlp16);
}

int main(void)
{
    test_mean_se();
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        tap_ok(1, "# SKIP Fashion-MNIST is not installed (dataset-fashion-mnist)");
        return tap_done();
    }
    ds_fashion_opts fo;
    ds_fashion_defaults(&fo);
    ds = ds_fashion_mnist(&fo);
    nn_net *ref = mlp(16, 1), *cand = mlp(16, 2);
    if (!tap_ok(ds && ref && cand, "Fashion-MNIST's test split and two small networks"))
        return tap_done();
    test_fnorm(ref, cand);
    test_samples(ref);
    test_risk(cand);
    test_options(ref);
    test_heavy_tail();
    nn_net_free(ref);
    nn_net_free(cand);
    ds_free(ds);
    return tap_done();
}
