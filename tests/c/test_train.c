/* The pieces of the training loop: losses against PyTorch and finite differences, SGD against
 * torch.optim.SGD (scripts/gen-train-fixtures), learning-rate schedules, augmentation geometry. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "train/augment.h"
#include "train/loss.h"
#include "train/schedule.h"
#include "train/sgd.h"
#include "tap.h"

static double max_diff(const float *a, const float *b, int64_t n)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_cross_entropy(void)
{
    st_file *f = st_read("tests/fixtures/train/loss.safetensors");
    if (!f) {
        tap_ok(0, "loss fixture: %s", err_msg());
        return;
    }
    tensor *logits = st_find(f, "logits"), *lab = st_find(f, "labels"), *want = st_find(f, "grad");
    int64_t n = logits->shape[0], k = logits->shape[1], correct = 0;
    int labels[16];
    float grad[160];
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int)lab->data[i];
    double loss = nn_loss_cross_entropy(logits->data, labels, n, k, grad, &correct);
    tap_near(loss, st_find(f, "loss")->data[0], 1e-6, "cross-entropy equals PyTorch's (batch mean)");
    tap_ok(max_diff(grad, want->data, n * k) < 1e-7, "its gradient equals PyTorch's");
    tap_ok(correct == nn_count_correct(logits->data, labels, n, k), "it counts the correct rows");
    labels[2] = (int)k;
    tap_ok(isnan(nn_loss_cross_entropy(logits->data, labels, n, k, grad, NULL)) && strstr(err_msg(), "label 10"),
           "a label outside the outputs is an error naming it");
    /* a large logit does not overflow */
    float big[3] = {1000, 0, -1000}, g[3];
    int l0 = 0;
    tap_ok(fabs(nn_loss_cross_entropy(big, &l0, 1, 3, g, NULL)) < 1e-12 && fabs(g[0]) < 1e-12,
           "cross-entropy is stable for logits of 1000");
    st_file_free(f);
}

static void test_distill(void)
{
    rng *r = rng_new(5);
    float y[24], t[24], g[24];
    for (int i = 0; i < 24; i++) {
        y[i] = (float)rng_normal(r);
        t[i] = (float)rng_normal(r);
    }
    double want = 0;
    for (int i = 0; i < 24; i++)
        want += ((double)y[i] - t[i]) * ((double)y[i] - t[i]);
    double loss = nn_loss_distill(y, t, 4, 6, g);
    tap_near(loss, want / 4, 1e-9, "distillation loss is the batch mean of squared L2 distances");
    double worst = 0;
    for (int i = 0; i < 24; i++) {
        float keep = y[i];
        float tmp[24];
        y[i] = keep + 1e-3f;
        double lp = nn_loss_distill(y, t, 4, 6, tmp);
        y[i] = keep - 1e-3f;
        double lm = nn_loss_distill(y, t, 4, 6, tmp);
        y[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2e-3) - g[i]));
    }
    tap_ok(worst < 1e-3, "its gradient matches finite differences (worst %.2g)", worst);
    rng_free(r);
}

static void test_sgd(void)
{
    st_file *f = st_read("tests/fixtures/train/sgd.safetensors");
    if (!f) {
        tap_ok(0, "sgd fixture: %s", err_msg());
        return;
    }
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        tensor *p = tensor_clone(st_find(f, "p0")), *g = tensor_clone(p);
        nn_sgd_opts o = {0.9, 5e-4, nesterov};
        nn_sgd *s = nn_sgd_new(1, &p, &g, &o);
        double worst = 0;
        for (int step = 1; step <= 4; step++) {
            char name[32];
            snprintf(name, sizeof name, "g%d", step);
            memcpy(g->data, st_find(f, name)->data, (size_t)g->numel * sizeof(float));
            nn_sgd_step(s, st_find(f, "lr")->data[step - 1]);
            snprintf(name, sizeof name, "%s.p%d", nesterov ? "nesterov" : "plain", step);
            worst = fmax(worst, max_diff(p->data, st_find(f, name)->data, p->numel));
        }
        tap_ok(worst < 1e-6, "SGD%s with momentum and weight decay follows torch.optim.SGD over 4 steps (%.2g)",
               nesterov ? " (Nesterov)" : "", worst);
        nn_sgd_free(s);
        tensor_free(p);
        tensor_free(g);
    }
    tensor *a = tensor_new(1, (int64_t[]){3}), *b = tensor_new(1, (int64_t[]){4});
    nn_sgd_opts o = {0, 0, 0};
    tap_ok(!nn_sgd_new(1, &a, &b, &o) && strstr(err_msg(), "differ in shape"),
           "a gradient of another shape is refused");
    tensor_free(a);
    tensor_free(b);
    st_file_free(f);
}

static void test_schedules(void)
{
    nn_schedule s = {.kind = NN_LR_COSINE, .lr = 0.1, .lr_min = 0.001};
    tap_near(nn_schedule_lr(&s, 10, 100, 0), 0.1, 1e-12, "cosine starts at lr");
    tap_near(nn_schedule_lr(&s, 10, 100, 500), 0.0505, 1e-12, "cosine is halfway at mid-run");
    tap_near(nn_schedule_lr(&s, 10, 100, 999), 0.001 + 0.099 * 0.5 * (1 + cos(M_PI * 999 / 1000)), 1e-12,
             "cosine ends near lr_min");
    s.warmup = 2;
    tap_near(nn_schedule_lr(&s, 10, 100, 0), 0.1 / 200, 1e-12, "warm-up starts at lr / warm-up steps");
    tap_near(nn_schedule_lr(&s, 10, 100, 99), 0.05, 1e-12, "warm-up is linear");
    tap_near(nn_schedule_lr(&s, 10, 100, 200), 0.1, 1e-12, "cosine starts after the warm-up");
    tap_near(nn_schedule_lr(&s, 10, 100, 600), 0.0505, 1e-12, "and is halfway through the remaining steps");
    nn_schedule st = {.kind = NN_LR_STEP, .lr = 0.1, .gamma = 0.5, .step = 3};
    tap_near(nn_schedule_lr(&st, 10, 10, 29), 0.1, 1e-12, "step: lr during the first 3 epochs");
    tap_near(nn_schedule_lr(&st, 10, 10, 30), 0.05, 1e-12, "step: ×gamma from epoch 4");
    tap_near(nn_schedule_lr(&st, 10, 10, 95), 0.0125, 1e-12, "step: ×gamma³ in epoch 10");
    nn_schedule ms = {.kind = NN_LR_MILESTONES, .lr = 1, .gamma = 0.1, .nmilestones = 2, .milestones = {2, 5}};
    tap_near(nn_schedule_lr(&ms, 8, 4, 7), 1, 1e-12, "milestones: lr before the first");
    tap_near(nn_schedule_lr(&ms, 8, 4, 8), 0.1, 1e-12, "milestones: ×gamma at epoch index 2");
    tap_near(nn_schedule_lr(&ms, 8, 4, 20), 0.01, 1e-12, "milestones: ×gamma² from epoch index 5");
    nn_schedule c = {.kind = NN_LR_CONSTANT, .lr = 0.3};
    tap_near(nn_schedule_lr(&c, 5, 7, 30), 0.3, 1e-12, "constant");
}

/* Images whose pixels name their position come back shifted by one offset within the padding
 * (fill outside), mirrored or not, and every offset and both flips occur. */
static void test_augment(void)
{
    enum { N = 400, C = 2, H = 6, W = 5, PAD = 2 };
    float *x = malloc(sizeof(float) * N * C * H * W);
    for (int i = 0; i < N * C * H * W; i++)
        x[i] = (float)(i % (C * H * W)) + 1;
    float fill[C] = {-7, -9};
    nn_augment a = {PAD, 1, fill};
    rng *r = rng_new(3);
    int consistent = 1, seen[2 * PAD + 1][2 * PAD + 1][2] = {{{0}}};
    tap_ok(nn_augment_batch(&a, x, N, C, H, W, r) == 0, "augmenting a batch");
    for (int img = 0; img < N; img++) {
        int found = 0;
        for (int dy = -PAD; dy <= PAD && !found; dy++)
            for (int dx = -PAD; dx <= PAD && !found; dx++)
                for (int flip = 0; flip < 2 && !found; flip++) {
                    int match = 1;
                    for (int c = 0; c < C && match; c++)
                        for (int row = 0; row < H && match; row++)
                            for (int col = 0; col < W && match; col++) {
                                int sr = row + dy, sc = (flip ? W - 1 - col : col) + dx;
                                int inside = sr >= 0 && sr < H && sc >= 0 && sc < W;
                                float want = inside ? (float)(c * H * W + sr * W + sc) + 1 : fill[c];
                                match = x[((img * C + c) * H + row) * W + col] == want;
                            }
                    if (match) {
                        found = 1;
                        seen[dy + PAD][dx + PAD][flip]++;
                    }
                }
        consistent &= found;
    }
    int all = 1;
    for (int i = 0; i < 2 * PAD + 1; i++)
        for (int j = 0; j < 2 * PAD + 1; j++)
            all &= seen[i][j][0] > 0 && seen[i][j][1] > 0;
    tap_ok(consistent, "each image is a crop of the padded image (fill in the padding), mirrored or not");
    tap_ok(all, "all 25 offsets occur with and without a flip in 400 images");
    rng_free(r);
    /* the same seed gives the same batch; no augmentation leaves it alone */
    float *y = malloc(sizeof(float) * N * C * H * W), *z = malloc(sizeof(float) * N * C * H * W);
    for (int i = 0; i < N * C * H * W; i++)
        y[i] = z[i] = (float)i;
    rng *r1 = rng_new(9), *r2 = rng_new(9);
    nn_augment_batch(&a, y, N, C, H, W, r1);
    nn_augment_batch(&a, z, N, C, H, W, r2);
    tap_ok(memcmp(y, z, sizeof(float) * N * C * H * W) == 0, "the same seed augments the same way");
    nn_augment none = {0, 0, fill};
    memcpy(z, y, sizeof(float) * N * C * H * W);
    nn_augment_batch(&none, z, N, C, H, W, r1);
    tap_ok(memcmp(y, z, sizeof(float) * N * C * H * W) == 0, "no crop and no flip leave the batch unchanged");
    rng_free(r1);
    rng_free(r2);
    free(x);
    free(y);
    free(z);
}

int main(void)
{
    test_cross_entropy();
    test_distill();
    test_sgd();
    test_schedules();
    test_augment();
    return tap_done();
}
