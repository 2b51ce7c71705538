#include "train/train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
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

static int check_opts(const nn_net *net, const dataset *train, const nn_train_opts *o, int64_t *steps)
{
    const nn_schedule *s = &o->schedule;
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

/* Everything a run allocates, freed in one place. */
typedef struct run {
    nn_backprop *bp;
    nn_sgd *sgd;
    tensor *x, **params, **grads;
    int64_t *pool, *order, *idx;
    int *labels;
    float *grad, *fill;
    rng *shuffle, *augment;
    nn_epoch_stats *stats; /* of every epoch so far, for the checkpoint */
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
static int make_sgd(nn_net *net, run *r, const nn_train_opts *o)
{
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
    nn_sgd_opts so = {o->momentum, o->weight_decay, o->nesterov};
    return (r->sgd = nn_sgd_new(count, r->params, r->grads, &so)) ? 0 : -1;
}

/* The loss of one batch and its gradient into r->grad; NaN with err_set on failure (outputs that
 * are no longer finite included). */
static double batch_loss(run *r, const nn_train_opts *o, const float *y, int64_t k, int64_t *correct)
{
    int64_t n = o->batch;
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

int nn_train(nn_net *net, const dataset *train, const nn_train_opts *o)
{
    int64_t steps, chw[3];
    if (check_opts(net, train, o, &steps) != 0 || nn_own(net) != 0) /* shared tensors stay their owner's */
        return -1;
    ds_example_shape(train, chw);
    int c = (int)chw[0], h = (int)chw[1], w = (int)chw[2];
    int64_t n = o->subset ? o->subset : ds_size(train), batch = o->batch;
    run r = {0};
    int rc = -1;
    if (!(r.bp = nn_backprop_new(net, batch, c, h, w, 0))) {
        err_prefix("train");
        goto done;
    }
    int64_t k = nn_backprop_outputs(r.bp);
    if (o->loss == NN_LOSS_CROSS_ENTROPY && !o->loss_fn && k < ds_num_classes(train)) {
        err_set("train: the network has %lld outputs for %d classes", (long long)k, ds_num_classes(train));
        goto done;
    }
    r.x = tensor_new(4, (int64_t[]){batch, c, h, w});
    r.pool = malloc((size_t)n * sizeof *r.pool);
    r.order = malloc((size_t)n * sizeof *r.order);
    r.idx = malloc((size_t)batch * sizeof *r.idx);
    r.labels = malloc((size_t)batch * sizeof *r.labels);
    r.grad = malloc((size_t)(batch * k) * sizeof *r.grad);
    r.fill = malloc((size_t)c * sizeof *r.fill);
    if (!r.x || !r.pool || !r.order || !r.idx || !r.labels || !r.grad || !r.fill) {
        err_set("out of memory");
        goto done;
    }
    if (make_sgd(net, &r, o) != 0)
        goto done;
    for (int ch = 0; ch < c; ch++)
        r.fill[ch] = ds_black(train, ch);
    if (o->subset) {
        rng *s = rng_new(rng_derive_seed(o->seed, STREAM_SUBSET));
        int bad = !s || ds_sample(train, s, n, r.pool) != 0;
        rng_free(s);
        if (bad)
            goto done;
    } else {
        for (int64_t i = 0; i < n; i++)
            r.pool[i] = i;
    }
    int first = 1, stopped = 0;
    double total_seconds = 0;
    char print[512];
    if (!(r.stats = calloc((size_t)o->epochs, sizeof *r.stats))) {
        err_set("out of memory");
        goto done;
    }
    if (o->checkpoint) {
        int got, restored = 0;
        fingerprint(train, o, print, sizeof print);
        if ((got = nn_checkpoint_load(o->checkpoint, net, r.sgd, print, o->epochs, &restored, r.stats)) < 0) {
            err_prefix("train");
            goto done;
        }
        if (got)
            log_info("train: resuming from %s after epoch %d of %d", o->checkpoint, restored, o->epochs);
        for (int e = 0; e < restored && !stopped; e++) { /* the caller sees every epoch, as in one run */
            total_seconds += r.stats[e].seconds;
            if (o->on_epoch && (stopped = o->on_epoch(o->ctx, &r.stats[e])) < 0)
                goto done;
        }
        first = restored + 1;
    }
    nn_augment aug = {o->crop, o->flip, r.fill};
    progress p;
    progress_start(&p, "train", (int64_t)(o->epochs - first + 1) * steps);
    for (int epoch = first; epoch <= o->epochs && !stopped; epoch++) {
        uint64_t base = (uint64_t)(epoch - 1) * STREAMS_PER_EPOCH;
        rng_free(r.shuffle);
        rng_free(r.augment);
        r.shuffle = rng_new(rng_derive_seed(o->seed, base + STREAM_SHUFFLE));
        r.augment = rng_new(rng_derive_seed(o->seed, base + STREAM_AUGMENT));
        if (!r.shuffle || !r.augment)
            goto done;
        rng_permutation(r.shuffle, n, r.order);
        double start = now_seconds(), loss_sum = 0, lr = 0;
        int64_t correct = 0;
        for (int64_t step = 0; step < steps; step++) {
            for (int64_t j = 0; j < batch; j++)
                r.idx[j] = r.pool[r.order[step * batch + j]];
            if (ds_fill(train, batch, r.idx, r.x->data, r.labels) != 0 ||
                nn_augment_batch(&aug, r.x->data, batch, c, h, w, r.augment) != 0)
                goto done;
            uint64_t global = (uint64_t)(epoch - 1) * (uint64_t)steps + (uint64_t)step;
            const float *y = nn_backprop_forward(r.bp, r.x->data,
                                                 rng_derive_seed(o->seed, base + STREAM_DROPOUT) ^ global);
            if (!y)
                goto done;
            double loss = batch_loss(&r, o, y, k, &correct);
            if (!isfinite(loss)) {
                if (!isnan(loss))
                    err_set("the loss is %g: training diverged; lower the learning rate", loss);
                err_prefix("train: epoch %d, step %lld", epoch, (long long)step + 1);
                goto done;
            }
            loss_sum += loss;
            if (nn_backprop_backward(r.bp, r.grad) != 0)
                goto done;
            lr = nn_schedule_lr(&o->schedule, o->epochs, steps, (int64_t)global);
            nn_sgd_step(r.sgd, lr);
            double elapsed = now_seconds() - start;
            char extra[160];
            snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f acc %.4f %.0f img/s", epoch, o->epochs,
                     loss_sum / (double)(step + 1), (double)correct / (double)((step + 1) * batch),
                     elapsed > 0 ? (double)((step + 1) * batch) / elapsed : 0.0);
            progress_update(&p, (int64_t)global + 1 - (int64_t)(first - 1) * steps, extra);
        }
        nn_epoch_stats s = {.epoch = epoch, .steps = steps, .lr = lr, .test_accuracy = NAN};
        s.seconds = now_seconds() - start;
        total_seconds += s.seconds;
        s.loss = loss_sum / (double)steps;
        s.accuracy = (double)correct / (double)(steps * batch);
        s.images_per_second = s.seconds > 0 ? (double)(steps * batch) / s.seconds : 0;
        nn_invalidate(net); /* inference plans hold weights folded before this epoch */
        if (o->test && (epoch % o->test_every == 0 || epoch == o->epochs)) {
            s.test_accuracy = nn_evaluate(net, o->test, 250);
            if (isnan(s.test_accuracy)) {
                err_prefix("train: evaluating %s", ds_name(o->test));
                goto done;
            }
        }
        r.stats[epoch - 1] = s;
        if (o->checkpoint && nn_checkpoint_save(o->checkpoint, net, r.sgd, print, epoch, r.stats) != 0) {
            err_prefix("train: checkpoint");
            goto done;
        }
        char test[48] = "";
        if (!isnan(s.test_accuracy))
            snprintf(test, sizeof test, ", test accuracy %.4f", s.test_accuracy);
        log_info("epoch %d/%d: loss %.4f, train accuracy %.4f%s, lr %.4g, %.0f img/s, %.0f s (ETA %.0f s)", epoch,
                 o->epochs, s.loss, s.accuracy, test, s.lr, s.images_per_second, s.seconds,
                 total_seconds / epoch * (o->epochs - epoch));
        if (o->on_epoch) {
            int stop = o->on_epoch(o->ctx, &s);
            if (stop < 0)
                goto done;
            if (stop > 0)
                break;
        }
    }
    rc = 0;
done:
    nn_invalidate(net);
    run_free(&r);
    return rc;
}
