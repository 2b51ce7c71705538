/* schedule: the learning rate over a training run, evaluated at every step: constant, step decay
 * (×gamma every few epochs, or at listed epochs) or cosine annealing (per step, to lr_min), each
 * after an optional linear warm-up. */
#ifndef BOENGINE_SCHEDULE_H
#define BOENGINE_SCHEDULE_H

#include <stdint.h>

#define NN_MAX_MILESTONES 16

typedef enum nn_schedule_kind {
    NN_LR_CONSTANT,
    NN_LR_STEP,      /* lr · gamma^floor(epoch / step) */
    NN_LR_MILESTONES, /* lr · gamma^(number of milestones reached) */
    NN_LR_COSINE,    /* lr_min + (lr − lr_min)(1 + cos(π t))/2, t from 0 after warm-up to 1 at the end */
} nn_schedule_kind;

typedef struct nn_schedule {
    nn_schedule_kind kind;
    double lr, lr_min, gamma;
    int step;                           /* epochs between decays (NN_LR_STEP) */
    int nmilestones;
    int milestones[NN_MAX_MILESTONES];  /* epochs at which lr is multiplied by gamma, increasing */
    double warmup;                      /* epochs of linear warm-up from lr/steps to lr (may be fractional) */
} nn_schedule;

/* The learning rate at step (0-based) of a run of epochs × steps_per_epoch steps. */
double nn_schedule_lr(const nn_schedule *s, int epochs, int64_t steps_per_epoch, int64_t step);

#endif
