/* θ → a candidate network: settings per layer, the rewrites in a copy of the reference that shares
 * its untouched parameters, the architecture record, and the ratios of parameters and MACs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "core/log.h"
#include "nn/edit.h"

void cp_stats_free(cp_stats *s)
{
    if (s) {
        free(s->choices);
        s->choices = NULL;
        s->nchoices = 0;
    }
}

static int clampi(int64_t v, int lo, int hi) { return (int)(v < lo ? lo : v > hi ? hi : v); }

/* A rank rounded up to the family's multiple (none when 0 or 1), within [lo, hi]. */
static int round_rank(const cp_family *f, int64_t k, int lo, int hi)
{
    int m = f->opt.multiple;
    if (m > 1 && k > 0)
        k = (k + m - 1) / m * m;
    return clampi(k, lo, hi);
}

/* θ of one layer → its rank, kept channels or bits. */
static int setting(const cp_family *f, const cp_layer *l, double theta, int index, cp_choice *c)
{
    if (!(theta >= l->lo - 1e-9 && theta <= l->hi + 1e-9))
        return err_set("theta[%d] = %g for %s (%s) is outside its bounds [%g, %g]", index + 1, theta, l->name,
                       cp_kind_name(f->kind), l->lo, l->hi);
    c->theta = theta;
    const tensor *w = f->net->nodes[l->node].weight;
    int N = (int)w->shape[0], C = w->ndim > 1 ? (int)w->shape[1] : 1;
    int k2 = w->ndim == 4 ? (int)(w->shape[2] * w->shape[3]) : 1;
    switch (f->kind) {
    case CP_VH:
    case CP_SVD: {
        int64_t K = f->opt.mode == CP_ABSOLUTE ? llround(theta)
                    : f->opt.mode == CP_ENERGY ? cp_svd_energy_rank(l, theta)
                                               : (int64_t)floor(theta * l->break_even);
        c->rank = round_rank(f, K, f->kind == CP_SVD && f->opt.dense ? 0 : 1, l->max_rank);
        break;
    }
    case CP_TUCKER2: {
        int r_in = C < N * k2 ? C : N * k2, r_out = N < C * k2 ? N : C * k2;
        int64_t a = f->opt.mode == CP_ABSOLUTE ? llround(theta) : llround(theta * C);
        int64_t b = f->opt.mode == CP_ABSOLUTE ? llround(theta) : llround(theta * N);
        c->rank = round_rank(f, a, 1, r_in);
        c->rank2 = round_rank(f, b, 1, r_out);
        break;
    }
    case CP_PRUNE_CHANNELS:
        c->rank = clampi(llround(theta * N), 1, N);
        break;
    case CP_PRUNE_WEIGHTS:
        c->kept = theta < 0 ? 0 : theta > 1 ? 1 : theta;
        break;
    case CP_QUANTIZE:
        c->rank = clampi(llround(theta), 2, 32);
        break;
    default:
        return err_set("unknown family");
    }
    return 0;
}

static int structural(cp_kind k) { return k == CP_VH || k == CP_SVD || k == CP_TUCKER2 || k == CP_PRUNE_CHANNELS; }

/* The nodes of cand that stand for reference layer name: itself, or the chain that replaced it. */
static int layer_nodes(const nn_net *cand, const char *name, int *out)
{
    int at = nn_find(cand, name);
    if (at >= 0) {
        out[0] = at;
        return 1;
    }
    static const char *const chains[3][3] = {{"v", "h", NULL}, {"a", "b", NULL}, {"first", "core", "last"}};
    char buf[300];
    for (int c = 0; c < 3; c++) {
        snprintf(buf, sizeof buf, "%s.%s", name, chains[c][0]);
        if ((at = nn_find(cand, buf)) < 0)
            continue;
        int k = 0;
        for (; k < 3 && chains[c][k]; k++)
            out[k] = at + k;
        return k;
    }
    return 0;
}

static const char *rewrite_op(const cp_family *f)
{
    if (f->kind == CP_SVD && f->opt.dense)
        return "svd_dense";
    return cp_kind_name(f->kind);
}

static int record(nn_net *cand, const cp_family *f, const cp_layer *l, const cp_choice *c)
{
    char extra[96] = "";
    if (f->kind == CP_SVD && f->opt.dense)
        snprintf(extra, sizeof extra, "{\"rank\":%d}", c->rank);
    else if (f->kind == CP_PRUNE_WEIGHTS)
        snprintf(extra, sizeof extra, "{\"kept\":%.17g}", c->kept);
    else if (f->kind == CP_QUANTIZE)
        snprintf(extra, sizeof extra, "{\"bits\":%d}", c->rank);
    return nn_arch_add_rewrite(cand, l->name, rewrite_op(f), c->rank, c->rank2, *extra ? extra : NULL);
}

/* Index of the reference layer a node of cand comes from (its name, or its chain's prefix). */
static int origin(const nn_net *ref, const char *name)
{
    int i = nn_find(ref, name);
    if (i >= 0)
        return i;
    const char *dot = strrchr(name, '.');
    if (!dot)
        return -1;
    char buf[300];
    snprintf(buf, sizeof buf, "%.*s", (int)(dot - name), name);
    return nn_find(ref, buf);
}

int cp_measure(const nn_net *net, int64_t *params, int64_t *macs)
{
    nn_dims *dims = malloc((size_t)(net->count ? net->count : 1) * sizeof *dims);
    if (!dims)
        return err_set("out of memory");
    if (nn_infer(net, net->channels, net->size, net->size, dims) != 0) {
        free(dims);
        return -1;
    }
    *params = nn_param_count(net);
    *macs = 0;
    for (int i = 0; i < net->count; i++) {
        const nn_node *n = &net->nodes[i];
        nn_dims in = n->in[0] == NN_INPUT ? (nn_dims){net->channels, net->size, net->size} : dims[n->in[0]];
        *macs += nn_node_macs(n, &in, &dims[i]);
    }
    free(dims);
    return 0;
}

/* Per-node MACs at the nominal input size. */
static int node_macs(const nn_net *net, int64_t *macs)
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

typedef struct accounting {
    int64_t *wcount; /* weights counted per node of cand (-1: all of them) */
    double *wbits;   /* their storage width */
    char *touched;   /* weights changed */
} accounting;

static int stats(const nn_net *ref, const nn_net *cand, const accounting *acc, cp_family *const *fams, cp_stats *st)
{
    int rc = -1;
    int *from = malloc((size_t)cand->count * sizeof *from);
    char *aff = calloc((size_t)ref->count, 1);
    int64_t *mref = malloc((size_t)ref->count * sizeof *mref), *mc = malloc((size_t)cand->count * sizeof *mc);
    if (!from || !aff || !mref || !mc) {
        err_set("out of memory");
        goto done;
    }
    if (node_macs(ref, mref) != 0 || node_macs(cand, mc) != 0)
        goto done;
    for (int j = 0; j < cand->count; j++) {
        from[j] = origin(ref, cand->nodes[j].name);
        if (from[j] >= 0 && (acc->touched[j] || strcmp(cand->nodes[j].name, ref->nodes[from[j]].name) != 0))
            aff[from[j]] = 1;
    }
    st->params_ref = nn_param_count(ref);
    st->net_bits_ref = 32.0 * (double)st->params_ref;
    for (int i = 0; i < ref->count; i++) {
        st->macs_ref += mref[i];
        if (aff[i] && ref->nodes[i].weight) {
            st->weights_ref += ref->nodes[i].weight->numel;
            st->layer_macs_ref += mref[i];
        }
    }
    st->bits_ref = 32.0 * (double)st->weights_ref;
    for (int j = 0; j < cand->count; j++) {
        const nn_node *n = &cand->nodes[j];
        int64_t numel = n->weight ? n->weight->numel : 0;
        int64_t wn = n->weight ? (acc->wcount[j] >= 0 ? acc->wcount[j] : numel) : 0;
        int64_t p = nn_node_param_count(n) - numel + wn;
        st->params += p;
        st->net_bits += 32.0 * (double)(p - wn) + acc->wbits[j] * (double)wn;
        st->macs += mc[j];
        if (from[j] >= 0 && aff[from[j]]) {
            st->weights += wn;
            st->bits += acc->wbits[j] * (double)wn;
            st->layer_macs += mc[j];
        }
        for (int c = 0; c < st->nchoices; c++) { /* this layer's own weights */
            cp_choice *ch = &st->choices[c];
            if (from[j] >= 0 && fams[ch->family]->layers[ch->layer].node == from[j])
                ch->weights += wn;
        }
    }
    for (int c = 0; c < st->nchoices; c++) {
        cp_choice *ch = &st->choices[c];
        ch->weights_ref = ref->nodes[fams[ch->family]->layers[ch->layer].node].weight->numel;
        /* a layer in two families (e.g. pruned, then quantized) would be counted twice */
        for (int d = 0; d < c; d++)
            if (fams[st->choices[d].family]->layers[st->choices[d].layer].node ==
                fams[ch->family]->layers[ch->layer].node)
                ch->weights = st->choices[d].weights;
    }
    rc = 0;
done:
    free(from);
    free(aff);
    free(mref);
    free(mc);
    return rc;
}

typedef struct order_item {
    int node, choice;
} order_item;

static int by_node_desc(const void *a, const void *b)
{
    return ((const order_item *)b)->node - ((const order_item *)a)->node;
}

nn_net *cp_apply(const nn_net *ref, int nfam, cp_family *const *fams, const double *theta, cp_stats *out)
{
    double start = now_seconds(), numeric = 0;
    int dim = cp_dim(nfam, fams);
    cp_stats st = {0};
    nn_net *cand = NULL;
    accounting acc = {0};
    int *owner = malloc((size_t)ref->count * 3 * sizeof *owner);
    order_item *order = malloc((size_t)(dim ? dim : 1) * sizeof *order);
    st.choices = calloc((size_t)(dim ? dim : 1), sizeof *st.choices);
    st.nchoices = dim;
    if (!owner || !order || !st.choices) {
        err_set("out of memory");
        goto fail;
    }
    for (int i = 0; i < 3 * ref->count; i++)
        owner[i] = -1;
    for (int fi = 0; fi < nfam; fi++) {
        if (fams[fi]->net != ref) {
            err_set("family #%d (%s) was declared on another network", fi + 1, cp_kind_name(fams[fi]->kind));
            goto fail;
        }
        if (!fams[fi]->prepared) {
            double t = now_seconds();
            if (cp_family_prepare(fams[fi]) != 0)
                goto fail;
            st.t_prepare += now_seconds() - t;
        }
    }
    /* settings, and at most one family of each role per layer */
    int idx = 0, norder = 0;
    for (int fi = 0; fi < nfam; fi++) {
        const cp_family *f = fams[fi];
        for (int li = 0; li < f->count; li++, idx++) {
            const cp_layer *l = &f->layers[li];
            cp_choice *c = &st.choices[idx];
            c->family = fi;
            c->layer = li;
            if (setting(f, l, theta[idx], idx, c) != 0)
                goto fail;
            int role = structural(f->kind) ? 0 : f->kind == CP_PRUNE_WEIGHTS ? 1 : 2;
            int *o = &owner[3 * l->node + role];
            if (*o >= 0) {
                err_set("layer %s is in two families (%s and %s)", l->name, cp_kind_name(fams[*o]->kind),
                        cp_kind_name(f->kind));
                goto fail;
            }
            *o = fi;
            if (f->kind == CP_VH || f->kind == CP_SVD || f->kind == CP_TUCKER2)
                order[norder++] = (order_item){l->node, idx};
        }
    }
    if (!(cand = nn_clone(ref, 1)))
        goto fail;
    /* low-rank rewrites from the last layer back, so that earlier indices stay put */
    qsort(order, (size_t)norder, sizeof *order, by_node_desc);
    for (int k = 0; k < norder; k++) {
        const cp_choice *c = &st.choices[order[k].choice];
        double t = now_seconds();
        if (cp_lowrank_build(fams[c->family], &fams[c->family]->layers[c->layer], c, cand) != 0)
            goto fail;
        numeric += now_seconds() - t;
    }
    acc.wcount = malloc((size_t)cand->count * sizeof *acc.wcount);
    acc.wbits = malloc((size_t)cand->count * sizeof *acc.wbits);
    acc.touched = calloc((size_t)cand->count, 1);
    if (!acc.wcount || !acc.wbits || !acc.touched) {
        err_set("out of memory");
        goto fail;
    }
    for (int j = 0; j < cand->count; j++) {
        acc.wcount[j] = -1;
        acc.wbits[j] = 32;
    }
    /* channels, then weight values: pruning before quantization keeps the zeros */
    for (int pass = 0; pass < 3; pass++)
        for (int c = 0; c < dim; c++) {
            const cp_choice *ch = &st.choices[c];
            const cp_family *f = fams[ch->family];
            const cp_layer *l = &f->layers[ch->layer];
            cp_kind want = pass == 0 ? CP_PRUNE_CHANNELS : pass == 1 ? CP_PRUNE_WEIGHTS : CP_QUANTIZE;
            int nodes[3], k = layer_nodes(cand, l->name, nodes);
            double t = now_seconds();
            if (pass == 0 && f->kind == CP_SVD && f->opt.dense && k == 1) {
                const tensor *w = ref->nodes[l->node].weight;
                acc.wcount[nodes[0]] = (int64_t)ch->rank * (w->shape[0] + w->numel / w->shape[0]);
                acc.touched[nodes[0]] = 1;
            }
            if (f->kind != want)
                continue;
            if (pass == 0) {
                if (cp_prune_channels(l, ch, cand, acc.touched) != 0)
                    goto fail;
            } else {
                for (int j = 0; j < k; j++) {
                    int64_t nz;
                    if (pass == 1 ? cp_prune_weights(&cand->nodes[nodes[j]], ch->kept, &nz)
                                  : cp_quantize(&cand->nodes[nodes[j]], ch->rank))
                        goto fail;
                    if (pass == 1)
                        acc.wcount[nodes[j]] = nz;
                    else
                        acc.wbits[nodes[j]] = ch->rank;
                    acc.touched[nodes[j]] = 1;
                }
            }
            numeric += now_seconds() - t;
        }
    nn_invalidate(cand);
    for (int c = 0; c < dim; c++) {
        const cp_choice *ch = &st.choices[c];
        if (record(cand, fams[ch->family], &fams[ch->family]->layers[ch->layer], ch) != 0)
            goto fail;
    }
    if (stats(ref, cand, &acc, fams, &st) != 0)
        goto fail;
    st.t_truncate = numeric;
    st.t_rebuild = now_seconds() - start - numeric - st.t_prepare;
    free(owner);
    free(order);
    free(acc.wcount);
    free(acc.wbits);
    free(acc.touched);
    if (out)
        *out = st;
    else
        cp_stats_free(&st);
    return cand;
fail:
    free(owner);
    free(order);
    free(acc.wcount);
    free(acc.wbits);
    free(acc.touched);
    cp_stats_free(&st);
    nn_net_free(cand);
    return NULL;
}
