#include "train/train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "train/augment.h"
#include "train/backprop.h"
#include "train/checkpoint.h"
#include "nn/edit.h"
#include "nn/exec.h"
#include "train/sgd.h"

/* Sub-streams of the seed: each epoch's shuffle and augmentation, each step's dropout. */
enum { STREAM_SHUFFLE, STREAM_AUGMENT, STREAM_DROPOUT, STREAMS_PER_EPOCH };
#define STREAM_SUBSET (UINT64_C(1) << 40)

void nn_train_defaults(nn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch = 128;
    o->momentum = 0.9;
    o->weight_decay = 5e-4;
    o->schedule.kind = NN_LR_COSINE;
    o->schedule.lr = 0.1;
    o->schedule.gamma = 0.1;
    o->seed = 1;
    o->loss = NN_LOSS_CROSS_ENTROPY;
    o->test_every = 1;
}

double nn_evaluate(nn_net *net, const dataset *d, int batch)
{
    int64_t n = ds_size(d), chw[3];
    ds_example_shape(d, chw);
    if (batch < 1)
        batch = 250;
    if (batch > n)
        batch = (int)n;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    int *labels = malloc((size_t)batch * sizeof *labels);
    tensor *x = tensor_new(4, (int64_t[]){batch, chw[0], chw[1], chw[2]});
    int64_t correct = 0, done = 0;
    if (!idx || !labels || !x)
        err_set("out of memory");
    for (int64_t first = 0; idx && labels && x && first < n; first += batch) {
        int64_t m = n - first < batch ? n - first : batch;
        if (m != x->shape[0]) { /* the last, shorter batch */
            int64_t shape[4] = {m, chw[0], chw[1], chw[2]};
            tensor_reshape(x, 4, shape);
        }
        tensor *y = NULL;
        if (ds_range(d, first, m, idx) != 0 || ds_fill(d, m, idx, x->data, labels) != 0 || !(y = nn_forward(net, x)))
            break;
        correct += nn_count_correct(y->data, labels, m, y->numel / m);
        done += m;
        tensor_free(y);
    }
    free(idx);
    free(labels);
    tensor_free(x);
    return done == n ? (double)correct / (double)n : NAN;
}

/* Checks the options against the network and the data; *steps: steps per epoch. */
static int check_opts(const nn_net *net, const dataset *train, const nn_train_opts *o, int64_t *steps)
{
    const nn_schedule *s = &o->schedule;
    *steps = 0;
    if (o->epochs < 1)
        return err_set("train: epochs must be at least 1, got %d", o->epochs);
    if (o->batch < 1)
        return err_set("train: batch must be at least 1, got %d", o->batch);
    if (!(s->lr > 0) || !(s->lr_min >= 0) || s->lr_min > s->lr)
        return err_set("train: the learning rate must be positive (and lr_min in [0, lr]), got %g", s->lr);
    if (!(o->momentum >= 0 && o->momentum < 1))
        return err_set("train: momentum must be in [0, 1), got %g", o->momentum);
    if (!(o->weight_decay >= 0))
        return err_set("train: weight decay must be non-negative, got %g", o->weight_decay);
    if (o->nesterov && o->momentum == 0)
        return err_set("train: Nesterov momentum needs a momentum above 0");
    if (!(s->warmup >= 0) || s->warmup > o->epochs)
        return err_set("train: warm-up of %g epochs is not in [0, %d]", s->warmup, o->epochs);
    if ((s->kind == NN_LR_STEP || s->kind == NN_LR_MILESTONES) && !(s->gamma > 0))
        return err_set("train: the schedule's gamma must be positive, got %g", s->gamma);
    if (s->kind == NN_LR_STEP && s->step < 1)
        return err_set("train: the step schedule needs step >= 1 epochs, got %d", s->step);
    if (o->crop < 0)
        return err_set("train: crop padding must be non-negative, got %d", o->crop);
    if (o->test_every < 1)
        return err_set("train: test_every must be at least 1, got %d", o->test_every);
    if (o->subset < 0 || o->subset > ds_size(train))
        return err_set("train: a subset of %lld examples out of %lld", (long long)o->subset,
                       (long long)ds_size(train));
    if (o->loss == NN_LOSS_DISTILL && !o->teacher && !o->loss_fn)
        return err_set("train: the distillation loss needs a teacher network");
    if (o->teacher == net)
        return err_set("train: the teacher must be another network than the one trained");
    int64_t n = o->subset ? o->subset : ds_size(train);
    *steps = n / o->batch;
    if (*steps < 1)
        return err_set("train: a batch of %d is larger than the %lld training examples", o->batch, (long long)n);
    return 0;
}

/* A run: what it trains on, and everything it allocates, freed in one place. */
typedef struct run {
    nn_net *net;
    const dataset *train;
    const nn_train_opts *o;
    int c, h, w;                /* an example's shape */
    int64_t n, batch, steps, k; /* examples per epoch, batch, steps per epoch, outputs per example */
    int first;                  /* the first epoch trained (after those a checkpoint restored) */
    double seconds;             /* training time of the epochs so far */
    char fingerprint[512];      /* the options that make two runs the same run (checkpoints) */
    progress bar;
    nn_backprop *bp;
    nn_sgd *sgd;
    tensor *x, **params, **grads;
    int64_t *pool, *order, *idx; /* the examples drawn from, an epoch's order of them, a batch's */
    int *labels;
    float *grad, *fill;
    nn_augment aug;
    rng *shuffle, *augment;
    nn_epoch_stats *stats;       /* of every epoch so far, for the checkpoint */
} run;

static void run_free(run *r)
{
    nn_backprop_free(r->bp);
    nn_sgd_free(r->sgd);
    tensor_free(r->x);
    free(r->params);
    free(r->grads);
    free(r->pool);
    free(r->order);
    free(r->idx);
    free(r->labels);
    free(r->grad);
    free(r->fill);
    rng_free(r->shuffle);
    rng_free(r->augment);
    free(r->stats);
}

/* What makes two runs the same run: a checkpoint resumes only the run that wrote it (the network
 * itself is checked against the checkpoint's tensors). */
static void fingerprint(const dataset *train, const nn_train_opts *o, char *buf, size_t size)
{
    const nn_schedule *s = &o->schedule;
    int len = snprintf(buf, size,
                       "seed %" PRIu64 ", %d epochs of %d from %lld examples (subset %lld), lr %g "
                       "(min %g, schedule %d, step %d, gamma %g, warm-up %g, milestones",
                       o->seed, o->epochs, o->batch, (long long)ds_size(train), (long long)o->subset, s->lr,
                       s->lr_min, (int)s->kind, s->step, s->gamma, s->warmup);
    for (int i = 0; i < s->nmilestones && len > 0 && (size_t)len < size; i++)
        len += snprintf(buf + len, size - (size_t)len, " %d", s->milestones[i]);
    if (len > 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, "), momentum %g%s, weight decay %g, crop %d, flip %d, loss %s",
                 o->momentum, o->nesterov ? " nesterov" : "", o->weight_decay, o->crop, o->flip,
                 o->loss_fn ? "custom" : o->loss == NN_LOSS_DISTILL ? "distill" : "cross-entropy");
}

/* The optimizer over every parameter that has a gradient (running statistics excluded). */
static int make_sgd(run *r)
{
    nn_net *net = r->net;
    int count = 0;
    r->params = malloc((size_t)(2 * net->count + 1) * sizeof *r->params);
    r->grads = malloc((size_t)(2 * net->count + 1) * sizeof *r->grads);
    if (!r->params || !r->grads)
        return err_set("out of memory");
    for (int i = 0; i < net->count; i++)
        for (int slot = 0; slot < 2; slot++) {
            tensor *g = nn_backprop_grad(r->bp, i, slot);
            if (g) {
                r->params[count] = slot ? net->nodes[i].bias : net->nodes[i].weight;
                r->grads[count++] = g;
            }
        }
    nn_sgd_opts so = {r->o->momentum, r->o->weight_decay, r->o->nesterov};
    return (r->sgd = nn_sgd_new(count, r->params, r->grads, &so)) ? 0 : -1;
}

/* The examples the run draws its epochs from: all, or a fixed random subset. */
static int choose_examples(run *r)
{
    if (!r->o->subset) {
        for (int64_t i = 0; i < r->n; i++)
            r->pool[i] = i;
        return 0;
    }
    rng *s = rng_new(rng_derive_seed(r->o->seed, STREAM_SUBSET));
    int rc = !s || ds_sample(r->train, s, r->n, r->pool) != 0 ? -1 : 0;
    rng_free(s);
    return rc;
}

/* Sets up a run of net on train: the training plan, the batch buffers, the optimizer, the examples. */
static int run_open(run *r, nn_net *net, const dataset *train, const nn_train_opts *o)
{
    int64_t chw[3];
    ds_example_shape(train, chw);
    r->net = net;
    r->train = train;
    r->o = o;
    r->c = (int)chw[0];
    r->h = (int)chw[1];
    r->w = (int)chw[2];
    r->n = o->subset ? o->subset : ds_size(train);
    r->batch = o->batch;
    r->first = 1;
    if (!(r->bp = nn_backprop_new(net, r->batch, r->c, r->h, r->w, 0)))
        return err_prefix("train");
    r->k = nn_backprop_outputs(r->bp);
    if (o->loss == NN_LOSS_CROSS_ENTROPY && !o->loss_fn && r->k < ds_num_classes(train))
        return err_set("train: the network has %lld outputs for %d classes", (long long)r->k, ds_num_classes(train));
    r->x = tensor_new(4, (int64_t[]){r->batch, r->c, r->h, r->w});
    r->pool = malloc((size_t)r->n * sizeof *r->pool);
    r->order = malloc((size_t)r->n * sizeof *r->order);
    r->idx = malloc((size_t)r->batch * sizeof *r->idx);
    r->labels = malloc((size_t)r->batch * sizeof *r->labels);
    r->grad = malloc((size_t)(r->batch * r->k) * sizeof *r->grad);
    r->fill = malloc((size_t)r->c * sizeof *r->fill);
    r->stats = calloc((size_t)o->epochs, sizeof *r->stats);
    if (!r->x || !r->pool || !r->order || !r->idx || !r->labels || !r->grad || !r->fill || !r->stats)
        return err_set("out of memory");
    if (make_sgd(r) != 0)
        return -1;
    for (int ch = 0; ch < r->c; ch++)
        r->fill[ch] = ds_black(train, ch);
    r->aug = (nn_augment){o->crop, o->flip, r->fill};
    if (o->checkpoint)
        fingerprint(train, o, r->fingerprint, sizeof r->fingerprint);
    return choose_examples(r);
}

/* Restores the state a checkpoint holds, if any, and hands the restored epochs to the callback as
 * in one run. 1 when the callback stopped the run, 0 to go on, -1 on error. */
static int resume(run *r)
{
    const nn_train_opts *o = r->o;
    int got, restored = 0, stop = 0;
    if ((got = nn_checkpoint_load(o->checkpoint, r->net, r->sgd, r->fingerprint, o->epochs, &restored, r->stats)) < 0)
        return err_prefix("train");
    if (got)
        log_info("train: resuming from %s after epoch %d of %d", o->checkpoint, restored, o->epochs);
    for (int e = 0; e < restored && !stop; e++) {
        r->seconds += r->stats[e].seconds;
        if (o->on_epoch && (stop = o->on_epoch(o->ctx, &r->stats[e])) < 0)
            return -1;
    }
    r->first = restored + 1;
    return stop ? 1 : 0;
}

/* The loss of one batch and its gradient into r->grad; NaN with err_set on failure (outputs that
 * are no longer finite included). */
static double batch_loss(run *r, const float *y, int64_t *correct)
{
    const nn_train_opts *o = r->o;
    int64_t n = r->batch, k = r->k;
    for (int64_t i = 0; i < n * k; i++)
        if (!isfinite(y[i])) {
            err_set("the outputs are no longer finite: training diverged; lower the learning rate");
            return NAN;
        }
    tensor *t = NULL;
    if (o->teacher && !(t = nn_forward(o->teacher, r->x))) {
        err_prefix("teacher");
        return NAN;
    }
    if (t && t->numel != n * k) {
        err_set("the teacher has %lld outputs per example, the network %lld", (long long)(t->numel / n), (long long)k);
        tensor_free(t);
        return NAN;
    }
    double loss;
    if (o->loss_fn)
        loss = o->loss_fn(o->loss_ctx, y, r->labels, t ? t->data : NULL, n, k, r->grad);
    else if (o->loss == NN_LOSS_DISTILL)
        loss = nn_loss_distill(y, t->data, n, k, r->grad);
    else
        loss = nn_loss_cross_entropy(y, r->labels, n, k, r->grad, NULL);
    if (!isnan(loss))
        *correct += nn_count_correct(y, r->labels, n, k);
    tensor_free(t);
    return loss;
}

/* One step: the batch (augmented), forward, loss, backward, SGD at the schedule's learning rate.
 * global counts the steps of the run from 0. Adds the loss and the correct rows to the sums. */
static int train_step(run *r, int epoch, int64_t step, uint64_t global, double *loss_sum, int64_t *correct,
                      double *lr)
{
    const nn_train_opts *o = r->o;
    uint64_t base = (uint64_t)(epoch - 1) * STREAMS_PER_EPOCH;
    for (int64_t j = 0; j < r->batch; j++)
        r->idx[j] = r->pool[r->order[step * r->batch + j]];
    if (ds_fill(r->train, r->batch, r->idx, r->x->data, r->labels) != 0 ||
        nn_augment_batch(&r->aug, r->x->data, r->batch, r->c, r->h, r->w, r->augment) != 0)
        return -1;
    const float *y = nn_backprop_forward(r->bp, r->x->data, rng_derive_seed(o->seed, base + STREAM_DROPOUT) ^ global);
    if (!y)
        return -1;
    double loss = batch_loss(r, y, correct);
    if (!isfinite(loss)) {
        if (!isnan(loss))
            err_set("the loss is %g: training diverged; lower the learning rate", loss);
        return err_prefix("train: epoch %d, step %lld", epoch, (long long)step + 1);
    }
    *loss_sum += loss;
    if (nn_backprop_backward(r->bp, r->grad) != 0)
        return -1;
    *lr = nn_schedule_lr(&o->schedule, o->epochs, r->steps, (int64_t)global);
    nn_sgd_step(r->sgd, *lr);
    return 0;
}

/* The steps of one epoch, in the order its seed stream shuffles the examples; its statistics in *s
 * (test accuracy not yet measured). */
static int train_epoch(run *r, int epoch, nn_epoch_stats *s)
{
    const nn_train_opts *o = r->o;
    uint64_t base = (uint64_t)(epoch - 1) * STREAMS_PER_EPOCH;
    rng_free(r->shuffle);
    rng_free(r->augment);
    r->shuffle = rng_new(rng_derive_seed(o->seed, base + STREAM_SHUFFLE));
    r->augment = rng_new(rng_derive_seed(o->seed, base + STREAM_AUGMENT));
    if (!r->shuffle || !r->augment)
        return -1;
    rng_permutation(r->shuffle, r->n, r->order);
    double start = timer_now(), loss_sum = 0, lr = 0;
    int64_t correct = 0;
    for (int64_t step = 0; step < r->steps; step++) {
        uint64_t global = (uint64_t)(epoch - 1) * (uint64_t)r->steps + (uint64_t)step;
        if (train_step(r, epoch, step, global, &loss_sum, &correct, &lr) != 0)
            return -1;
        double elapsed = timer_now() - start;
        char extra[160];
        snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f acc %.4f %.0f img/s", epoch, o->epochs,
                 loss_sum / (double)(step + 1), (double)correct / (double)((step + 1) * r->batch),
                 elapsed > 0 ? (double)((step + 1) * r->batch) / elapsed : 0.0);
        progress_update(&r->bar, (int64_t)global + 1 - (int64_t)(r->first - 1) * r->steps, extra);
    }
    *s = (nn_epoch_stats){.epoch = epoch, .steps = r->steps, .lr = lr, .test_accuracy = NAN};
    s->seconds = timer_now() - start;
    s->loss = loss_sum / (double)r->steps;
    s->accuracy = (double)correct / (double)(r->steps * r->batch);
    s->images_per_second = s->seconds > 0 ? (double)(r->steps * r->batch) / s->seconds : 0;
    return 0;
}

/* After an epoch: the test accuracy when due, the checkpoint, the log line and the callback.
 * 1 when the callback stops the run, 0 to go on, -1 on error. */
static int end_epoch(run *r, nn_epoch_stats *s)
{
    const nn_train_opts *o = r->o;
    int epoch = s->epoch;
    r->seconds += s->seconds;
    nn_invalidate(r->net); /* inference plans hold weights folded before this epoch */
    if (o->test && (epoch % o->test_every == 0 || epoch == o->epochs)) {
        s->test_accuracy = nn_evaluate(r->net, o->test, 250);
        if (isnan(s->test_accuracy))
            return err_prefix("train: evaluating %s", ds_name(o->test));
    }
    r->stats[epoch - 1] = *s;
    if (o->checkpoint && nn_checkpoint_save(o->checkpoint, r->net, r->sgd, r->fingerprint, epoch, r->stats) != 0)
        return err_prefix("train: checkpoint");
    char test[48] = "";
    if (!isnan(s->test_accuracy))
        snprintf(test, sizeof test, ", test accuracy %.4f", s->test_accuracy);
    log_info("epoch %d/%d: loss %.4f, train accuracy %.4f%s, lr %.4g, %.0f img/s, %.0f s (ETA %.0f s)", epoch,
             o->epochs, s->loss, s->accuracy, test, s->lr, s->images_per_second, s->seconds,
             r->seconds / epoch * (o->epochs - epoch));
    if (!o->on_epoch)
        return 0;
    int stop = o->on_epoch(o->ctx, s);
    return stop < 0 ? -1 : stop > 0;
}

int nn_train(nn_net *net, const dataset *train, const nn_train_opts *o)
{
    run r = {0};
    if (check_opts(net, train, o, &r.steps) != 0 || nn_own(net) != 0) /* shared tensors stay their owner's */
        return -1;
    int rc = -1, stop = 0;
    if (run_open(&r, net, train, o) != 0 || (o->checkpoint && (stop = resume(&r)) < 0))
        goto done;
    progress_start(&r.bar, "train", (int64_t)(o->epochs - r.first + 1) * r.steps);
    for (int epoch = r.first; epoch <= o->epochs && !stop; epoch++) {
        nn_epoch_stats s;
        if (train_epoch(&r, epoch, &s) != 0 || (stop = end_epoch(&r, &s)) < 0)
            goto done;
    }
    rc = 0;
done:
    nn_invalidate(net);
    run_free(&r);
    return rc;
}
