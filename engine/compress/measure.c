/* Measurements of any network: parameters and MACs at its nominal input size, and latency. */
#include <stdlib.h>

#include "compress/compress.h"
#include "core/err.h"
#include "core/rng.h"
#include "core/timer.h"
#include "nn/exec.h"

int cp_node_macs(const nn_net *net, int64_t *macs)
{
    nn_dims *dims = malloc((size_t)(net->count ? net->count : 1) * sizeof *dims);
    if (!dims)
        return err_set("out of memory");
    int rc = nn_infer(net, net->channels, net->size, net->size, dims);
    for (int i = 0; rc == 0 && i < net->count; i++) {
        const nn_node *n = &net->nodes[i];
        nn_dims in = n->in[0] == NN_INPUT ? (nn_dims){net->channels, net->size, net->size} : dims[n->in[0]];
        macs[i] = nn_node_macs(n, &in, &dims[i]);
    }
    free(dims);
    return rc;
}

int cp_measure(const nn_net *net, int64_t *params, int64_t *macs)
{
    int64_t *m = malloc((size_t)(net->count ? net->count : 1) * sizeof *m);
    if (!m)
        return err_set("out of memory");
    int rc = cp_node_macs(net, m);
    *params = nn_param_count(net);
    *macs = 0;
    for (int i = 0; rc == 0 && i < net->count; i++)
        *macs += m[i];
    free(m);
    return rc;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cp_latency(nn_net *net, int batch, int runs, int warmup, int size, double *seconds)
{
    if (batch < 1 || runs < 1 || runs > 100000 || warmup < 0 || size < 1)
        return err_set("batch, runs and size must be positive (runs at most 100000), warmup not negative");
    tensor *x = tensor_new(4, (int64_t[]){batch, net->channels, size, size});
    double *t = malloc((size_t)runs * sizeof *t);
    rng *r = rng_new(1);
    int rc = -1;
    if (!x || !t || !r) {
        err_set("out of memory");
        goto done;
    }
    for (int64_t i = 0; i < x->numel; i++)
        x->data[i] = (float)rng_normal(r);
    for (int i = 0; i < warmup + runs; i++) {
        double start = timer_now();
        tensor *y = nn_forward(net, x);
        if (!y)
            goto done;
        tensor_free(y);
        if (i >= warmup)
            t[i - warmup] = timer_now() - start;
    }
    qsort(t, (size_t)runs, sizeof *t, by_value);
    *seconds = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    rc = 0;
done:
    tensor_free(x);
    free(t);
    rng_free(r);
    return rc;
}
