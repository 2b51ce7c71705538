/* train: the training loop. Mini-batches of a dataset shuffled by seed, augmented, run through a
 * training plan (backprop.h) of the network itself, a loss (cross-entropy, distillation towards a
 * teacher network's outputs, or the caller's function), SGD with a learning-rate schedule; per-epoch
 * statistics, test accuracy and a progress bar with ETA. The network's parameters are updated in
 * place, so inference, compression and saving see the trained weights. The same seed gives the same
 * run on the same machine and thread count. */
#ifndef BOENGINE_TRAIN_H
#define BOENGINE_TRAIN_H

#include <stdint.h>

#include "io/dataset.h"
#include "train/loss.h"
#include "nn/net.h"
#include "train/schedule.h"

typedef struct nn_epoch_stats {
    int epoch;                /* 1-based */
    double loss;              /* mean training loss over the epoch's batches */
    double accuracy;          /* training accuracy on the augmented batches (NaN without labels' loss) */
    double test_accuracy;     /* NaN when the epoch was not evaluated */
    double lr;                /* learning rate of the epoch's last step */
    double seconds;           /* training time of the epoch (evaluation excluded) */
    double images_per_second;
    int64_t steps;
} nn_epoch_stats;

/* A loss written by the caller: fills grad (n × k) with dLoss/dy and returns the loss, or NaN with
 * err_set to stop. teacher is the teacher's outputs when a teacher is set, else NULL. */
typedef double (*nn_loss_fn)(void *ctx, const float *y, const int *labels, const float *teacher, int64_t n,
                             int64_t k, float *grad);

/* Called after every epoch: 0 continues, 1 stops early, -1 stops with the error recorded. */
typedef int (*nn_epoch_fn)(void *ctx, const nn_epoch_stats *s);

typedef struct nn_train_opts {
    int epochs;
    int batch;               /* examples per step; the last partial batch of an epoch is dropped */
    double momentum, weight_decay;
    int nesterov;
    nn_schedule schedule;    /* the learning rate (schedule.lr) over the run */
    int crop, flip;          /* augmentation: random-crop padding, horizontal flips */
    uint64_t seed;           /* shuffling, augmentation, dropout, subset */
    int64_t subset;          /* train on a fixed random subset of that many examples (0: all) */
    nn_loss_kind loss;
    nn_net *teacher;         /* its outputs for NN_LOSS_DISTILL or a loss_fn */
    nn_loss_fn loss_fn;      /* overrides loss when set */
    void *loss_ctx;
    const dataset *test;     /* evaluated every test_every epochs and after the last */
    int test_every;
    nn_epoch_fn on_epoch;
    void *ctx;
    const char *checkpoint;  /* saved after every epoch, resumed from when it exists (checkpoint.h) */
} nn_train_opts;

/* 10 epochs of 128, SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine schedule, no augmentation,
 * seed 1, cross-entropy, test every epoch. */
void nn_train_defaults(nn_train_opts *o);

/* Trains net on train; the statistics of each epoch go to o->on_epoch (those of the epochs a
 * checkpoint restored first). Parameters net shares with another network are copied first, so
 * that training a compressed candidate leaves its reference alone. -1 with err_set on bad
 * options, a network that does not fit the data, a checkpoint of another run, or a failing
 * callback. */
int nn_train(nn_net *net, const dataset *train, const nn_train_opts *o);

/* Top-1 accuracy of net (inference plans) on the whole dataset, batch examples at a time. NaN with
 * err_set on failure. */
double nn_evaluate(nn_net *net, const dataset *d, int batch);

#endif
