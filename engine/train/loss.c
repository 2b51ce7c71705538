#include "train/loss.h"

#include <math.h>

#include "core/err.h"

int64_t nn_count_correct(const float *y, const int *labels, int64_t n, int64_t k)
{
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = y + i * k;
        int64_t best = 0; /* the first of equal maxima, as torch.argmax */
        for (int64_t c = 1; c < k; c++)
            if (row[c] > row[best])
                best = c;
        correct += best == labels[i];
    }
    return correct;
}

double nn_loss_cross_entropy(const float *y, const int *labels, int64_t n, int64_t k, float *grad,
                             int64_t *correct)
{
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            err_set("label %d of example %lld is not a class of a network with %lld outputs", labels[i],
                    (long long)i + 1, (long long)k);
            return NAN;
        }
        const float *row = y + i * k;
        float *g = grad + i * k;
        double max = row[0], sum = 0;
        for (int64_t c = 1; c < k; c++)
            max = fmax(max, row[c]);
        for (int64_t c = 0; c < k; c++)
            sum += exp(row[c] - max);
        double log_sum = log(sum) + max;
        total += log_sum - row[labels[i]];
        for (int64_t c = 0; c < k; c++)
            g[c] = (float)((exp(row[c] - log_sum) - (c == labels[i])) / (double)n);
    }
    if (correct)
        *correct += nn_count_correct(y, labels, n, k);
    return total / (double)n;
}

double nn_loss_distill(const float *y, const float *teacher, int64_t n, int64_t k, float *grad)
{
    double total = 0;
    for (int64_t i = 0; i < n * k; i++) {
        double d = (double)y[i] - teacher[i];
        total += d * d;
        grad[i] = (float)(2 * d / (double)n);
    }
    return total / (double)n;
}
