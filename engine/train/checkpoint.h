/* checkpoint: a training run's state after an epoch, in one safetensors file written atomically:
 * every parameter of the network (running statistics included) under its own name, the optimizer's
 * velocities, the number of epochs done, their statistics and a fingerprint of the run's options.
 * A run resumed from it continues as the uninterrupted run would (bit for bit on the same machine
 * and thread count): each epoch's shuffling, augmentation and dropout are drawn from streams of the
 * seed and the epoch, not from a generator's running state. */
#ifndef BOENGINE_CHECKPOINT_H
#define BOENGINE_CHECKPOINT_H

#include "nn/net.h"
#include "train/sgd.h"
#include "train/train.h"

/* Writes the state after epochs_done epochs, whose statistics are stats[0 .. epochs_done-1]. */
int nn_checkpoint_save(const char *path, const nn_net *net, const nn_sgd *sgd, const char *fingerprint,
                       int epochs_done, const nn_epoch_stats *stats);

/* Restores net and sgd from path and fills *epochs_done and stats[0 .. *epochs_done-1] (at most
 * max_epochs). 1 when restored, 0 when path does not exist (nothing changed), -1 with err_set
 * naming the file when it belongs to another run (fingerprint), does not fit the network or is
 * malformed (nothing changed either). */
int nn_checkpoint_load(const char *path, nn_net *net, nn_sgd *sgd, const char *fingerprint, int max_epochs,
                       int *epochs_done, nn_epoch_stats *stats);

#endif
