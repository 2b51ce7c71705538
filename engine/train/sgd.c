#include "train/sgd.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct nn_sgd {
    int count;
    int64_t steps;
    nn_sgd_opts o;
    tensor **params, **grads, **velocity;
};

void nn_sgd_free(nn_sgd *s)
{
    if (!s)
        return;
    for (int i = 0; s->velocity && i < s->count; i++)
        tensor_free(s->velocity[i]);
    free(s->velocity);
    free(s->params);
    free(s->grads);
    free(s);
}

nn_sgd *nn_sgd_new(int count, tensor *const *params, tensor *const *grads, const nn_sgd_opts *o)
{
    nn_sgd *s = calloc(1, sizeof *s);
    if (!s || !(s->params = malloc((size_t)(count + 1) * sizeof *s->params)) ||
        !(s->grads = malloc((size_t)(count + 1) * sizeof *s->grads)) ||
        !(s->velocity = calloc((size_t)(count + 1), sizeof *s->velocity))) {
        nn_sgd_free(s);
        err_set("out of memory");
        return NULL;
    }
    s->count = count;
    s->o = *o;
    for (int i = 0; i < count; i++) {
        if (!tensor_same_shape(params[i], grads[i])) {
            nn_sgd_free(s);
            err_set("sgd: parameter %d and its gradient differ in shape", i + 1);
            return NULL;
        }
        s->params[i] = params[i];
        s->grads[i] = grads[i];
        if (o->momentum != 0 && !(s->velocity[i] = tensor_new(params[i]->ndim, params[i]->shape))) {
            nn_sgd_free(s);
            return NULL;
        }
    }
    return s;
}

void nn_sgd_step(nn_sgd *s, double lr)
{
    const float mu = (float)s->o.momentum, wd = (float)s->o.weight_decay, rate = (float)lr;
    const int first = s->steps == 0, nesterov = s->o.nesterov;
    for (int i = 0; i < s->count; i++) {
        float *p = s->params[i]->data;
        const float *g = s->grads[i]->data;
        float *v = s->velocity[i] ? s->velocity[i]->data : NULL;
        int64_t n = s->params[i]->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            if (v) {
                v[j] = first ? d : mu * v[j] + d;
                d = nesterov ? d + mu * v[j] : v[j];
            }
            p[j] -= rate * d;
        }
    }
    s->steps++;
}

int nn_sgd_count(const nn_sgd *s) { return s->count; }
int64_t nn_sgd_steps(const nn_sgd *s) { return s->steps; }
void nn_sgd_set_steps(nn_sgd *s, int64_t steps) { s->steps = steps; }
tensor *nn_sgd_velocity(const nn_sgd *s, int i) { return s->velocity[i]; }
