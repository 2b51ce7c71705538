/* Declaring a family: which layers it takes, their bounds, and the factors computed once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "core/log.h"
#include "nn/edit.h"

static const char *const kind_names[CP_KINDS] = {
    [CP_VH] = "vh", [CP_SVD] = "svd", [CP_TUCKER2] = "tucker2", [CP_PRUNE_CHANNELS] = "prune_channels",
    [CP_PRUNE_WEIGHTS] = "prune_weights", [CP_QUANTIZE] = "quantize",
};

const char *cp_kind_name(cp_kind k) { return k < CP_KINDS ? kind_names[k] : "?"; }

/* NULL when the family applies to node i, else the reason it does not. */
static const char *ineligible(cp_kind kind, const nn_net *net, int i)
{
    const nn_node *n = &net->nodes[i];
    int conv = n->op == NN_CONV, linear = n->op == NN_LINEAR;
    if (conv && n->groups != 1)
        return "a grouped convolution";
    switch (kind) {
    case CP_VH:
        if (!conv)
            return "not a convolution";
        return n->kh >= 2 && n->kw >= 2 ? NULL : "not a k×k convolution with k >= 2";
    case CP_TUCKER2:
        if (!conv)
            return "not a convolution";
        return n->kh * n->kw >= 2 ? NULL : "a 1×1 convolution";
    case CP_SVD:
    case CP_PRUNE_WEIGHTS:
    case CP_QUANTIZE:
        return conv || linear ? NULL : "not a convolution or linear layer";
    case CP_PRUNE_CHANNELS:
        if (!conv)
            return "not a convolution";
        return cp_channels_prunable(net, i) ? NULL
                                             : "a convolution whose channels reach a residual add or the output";
    default:
        return "of an unknown family";
    }
}

static int has_wildcard(const char *p) { return strpbrk(p, "*?") != NULL; }

/* Shapes: m×n of the matrix each rank-based family factors, and the ranks that matter. */
static void describe(const cp_family *f, cp_layer *l)
{
    const nn_node *n = &f->net->nodes[l->node];
    const tensor *w = n->weight;
    int64_t N = w->shape[0], C = w->ndim > 1 ? w->shape[1] : 1;
    int64_t kh = w->ndim == 4 ? w->shape[2] : 1, kw = w->ndim == 4 ? w->shape[3] : 1;
    switch (f->kind) {
    case CP_VH: {
        int64_t m = C * kh, k = N * kw;
        l->max_rank = (int)(m < k ? m : k);
        l->break_even = (int)(kh * kw * C * N / (kh * C + kw * N));
        break;
    }
    case CP_SVD: {
        int64_t m = N, k = w->numel / N;
        l->max_rank = (int)(m < k ? m : k);
        l->break_even = (int)(m * k / (m + k));
        break;
    }
    case CP_TUCKER2:
        l->max_rank = (int)(C > N ? C : N);
        l->break_even = 0;
        break;
    case CP_PRUNE_CHANNELS:
        l->max_rank = (int)N;
        break;
    case CP_PRUNE_WEIGHTS:
        l->max_rank = (int)(w->numel > INT32_MAX ? INT32_MAX : w->numel);
        break;
    case CP_QUANTIZE:
        l->max_rank = 32;
        break;
    default:
        break;
    }
}

/* The range θ may take, and the default bounds. */
static void theta_range(const cp_family *f, const cp_layer *l, double *lo, double *hi, double *dlo, double *dhi)
{
    int ranked = f->kind == CP_VH || f->kind == CP_SVD || f->kind == CP_TUCKER2;
    *lo = 0;
    *hi = 1;
    *dlo = 0.05;
    *dhi = 1;
    if (ranked && f->opt.mode == CP_ABSOLUTE) {
        *lo = *dlo = 1;
        *hi = *dhi = l->max_rank;
    } else if (ranked && f->opt.mode == CP_ENERGY) {
        *dhi = 0.95;
    } else if (f->kind == CP_VH || f->kind == CP_SVD) { /* fraction of the break-even rank */
        *hi = l->break_even > 0 ? (double)l->max_rank / l->break_even : 1;
        if (*hi < 1)
            *hi = 1;
    } else if (f->kind == CP_PRUNE_WEIGHTS) {
        *dlo = 0.01;
    } else if (f->kind == CP_QUANTIZE) {
        *lo = 2;
        *hi = 32;
        *dlo = 2;
        *dhi = 8;
    }
}

int cp_family_set_bounds(cp_family *f, int i, double lo, double hi)
{
    for (int k = i < 0 ? 0 : i; k < (i < 0 ? f->count : i + 1); k++) {
        cp_layer *l = &f->layers[k];
        double rlo, rhi, dlo, dhi;
        theta_range(f, l, &rlo, &rhi, &dlo, &dhi);
        if (!(lo <= hi))
            return err_set("%s: bounds {%g, %g} of %s: the lower bound exceeds the upper", cp_kind_name(f->kind), lo,
                           hi, l->name);
        if (lo < rlo - 1e-12 || hi > rhi + 1e-12)
            return err_set("%s: bounds {%g, %g} of %s leave the range [%g, %g] of its parameter", cp_kind_name(f->kind),
                           lo, hi, l->name, rlo, rhi);
        l->lo = lo;
        l->hi = hi;
    }
    return 0;
}

void cp_family_free(cp_family *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++) {
        free(f->layers[i].name);
        if (f->kind == CP_VH || f->kind == CP_SVD || f->kind == CP_TUCKER2)
            cp_lowrank_free(f->kind, f->layers[i].cache);
        else
            free(f->layers[i].cache);
    }
    free(f->layers);
    free(f);
}

cp_family *cp_family_new(cp_kind kind, const nn_net *net, int npatterns, const char *const *patterns,
                         const cp_options *opt)
{
    const char *what = cp_kind_name(kind);
    cp_family *f = calloc(1, sizeof *f);
    char *take = calloc((size_t)net->count + 1, 1);
    if (!f || !take) {
        free(f);
        free(take);
        err_set("out of memory");
        return NULL;
    }
    f->kind = kind;
    f->net = net;
    if (opt)
        f->opt = *opt;
    if (f->opt.mode == CP_ENERGY && kind != CP_SVD) {
        err_set("%s: rank = \"energy\" is for svd only", what);
        goto fail;
    }
    if (npatterns < 1) {
        err_set("%s: no layers given", what);
        goto fail;
    }
    for (int p = 0; p < npatterns; p++) {
        int found = 0, eligible = 0;
        const char *reason = NULL, *first = NULL;
        for (int i = 0; i < net->count; i++) {
            if (!nn_match(patterns[p], net->nodes[i].name))
                continue;
            found++;
            const char *why = ineligible(kind, net, i);
            if (!why) {
                take[i] = 1;
                eligible++;
            } else if (!reason) {
                reason = why;
                first = net->nodes[i].name;
            }
        }
        if (!found) {
            err_set("%s: no layer matches '%s'", what, patterns[p]);
            goto fail;
        }
        if (reason && !has_wildcard(patterns[p])) {
            err_set("%s: layer %s is %s", what, first, reason);
            goto fail;
        }
        if (!eligible) {
            err_set("%s: no layer matching '%s' qualifies (%s is %s)", what, patterns[p], first, reason);
            goto fail;
        }
    }
    for (int i = 0; i < net->count; i++)
        f->count += take[i];
    if (!(f->layers = calloc((size_t)f->count, sizeof *f->layers))) {
        err_set("out of memory");
        goto fail;
    }
    int k = 0;
    for (int i = 0; i < net->count; i++) {
        if (!take[i])
            continue;
        cp_layer *l = &f->layers[k++];
        l->node = i;
        if (!(l->name = strdup(net->nodes[i].name))) {
            err_set("out of memory");
            goto fail;
        }
        if (!net->nodes[i].weight) {
            err_set("%s: layer %s has no weights", what, l->name);
            goto fail;
        }
        describe(f, l);
        double lo, hi;
        theta_range(f, l, &lo, &hi, &l->lo, &l->hi);
        l->integer = kind == CP_QUANTIZE || ((kind == CP_VH || kind == CP_SVD || kind == CP_TUCKER2) &&
                                             f->opt.mode == CP_ABSOLUTE);
    }
    free(take);
    return f;
fail:
    free(take);
    cp_family_free(f);
    return NULL;
}

int cp_family_prepare(cp_family *f)
{
    double start = now_seconds();
    int done = 0;
    for (int i = 0; i < f->count; i++) {
        cp_layer *l = &f->layers[i];
        if (l->cache)
            continue;
        int rc = f->kind == CP_VH || f->kind == CP_SVD || f->kind == CP_TUCKER2 ? cp_lowrank_prepare(f, l)
                 : f->kind == CP_PRUNE_CHANNELS                              ? cp_prune_prepare(f, l)
                                                                             : 0;
        if (rc != 0)
            return err_prefix("%s: layer %s", cp_kind_name(f->kind), l->name);
        done++;
    }
    f->prepared = 1;
    if (done && now_seconds() - start > 1)
        log_info("%s: factored %d layers in %.1f s", cp_kind_name(f->kind), done, now_seconds() - start);
    return 0;
}

int cp_dim(int nfam, cp_family *const *fams)
{
    int d = 0;
    for (int i = 0; i < nfam; i++)
        d += fams[i]->count;
    return d;
}
