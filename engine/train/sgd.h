/* sgd: stochastic gradient descent with momentum, weight decay and optional Nesterov momentum on
 * plain parameter tensors, with PyTorch's update rule (torch.optim.SGD, no dampening):
 * d = g + wd·p; v = μ·v + d (v = d at the first step); p −= lr·(nesterov ? d + μ·v : v). */
#ifndef BOENGINE_SGD_H
#define BOENGINE_SGD_H

#include "core/tensor.h"

typedef struct nn_sgd nn_sgd;

typedef struct nn_sgd_opts {
    double momentum, weight_decay;
    int nesterov;
} nn_sgd_opts;

/* An optimizer for count parameters and their gradients (same shapes; the tensors stay the
 * caller's). NULL with err_set on a shape mismatch or out of memory. */
nn_sgd *nn_sgd_new(int count, tensor *const *params, tensor *const *grads, const nn_sgd_opts *o);
void nn_sgd_free(nn_sgd *s);

/* One update of every parameter from its gradient, with learning rate lr. */
void nn_sgd_step(nn_sgd *s, double lr);

/* The state a checkpoint keeps: the number of parameters, the steps taken, and the velocity of
 * parameter i (NULL without momentum), which the caller may overwrite. */
int nn_sgd_count(const nn_sgd *s);
int64_t nn_sgd_steps(const nn_sgd *s);
void nn_sgd_set_steps(nn_sgd *s, int64_t steps);
tensor *nn_sgd_velocity(const nn_sgd *s, int i);

#endif
