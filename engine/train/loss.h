/* loss: training objectives on a batch of outputs, with their gradients: softmax cross-entropy
 * against integer labels (the batch mean, as PyTorch's cross_entropy) and the squared L2 distance
 * to a teacher network's outputs (knowledge distillation). */
#ifndef BOENGINE_LOSS_H
#define BOENGINE_LOSS_H

#include <stdint.h>

typedef enum nn_loss_kind {
    NN_LOSS_CROSS_ENTROPY,
    NN_LOSS_DISTILL,
} nn_loss_kind;

/* (1/n) Σ_i −log softmax(y_i)[labels_i] over n rows of k outputs; grad (n × k) receives the
 * gradient (softmax − one-hot)/n. Labels outside 0..k-1 are an error (-1 with err_set, returned
 * as NaN). correct (optional) is increased by the rows whose first maximum is the label. */
double nn_loss_cross_entropy(const float *y, const int *labels, int64_t n, int64_t k, float *grad,
                             int64_t *correct);

/* (1/n) Σ_i ||y_i − teacher_i||² over n rows of k outputs; grad receives 2(y − teacher)/n. */
double nn_loss_distill(const float *y, const float *teacher, int64_t n, int64_t k, float *grad);

/* Rows of y (n × k) whose first maximum equals the label. */
int64_t nn_count_correct(const float *y, const int *labels, int64_t n, int64_t k);

#endif
