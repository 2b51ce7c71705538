/* θ → a candidate network, in named steps: the settings per layer (cp_choose), the structural
 * rewrites in a copy of the reference that shares its untouched parameters, the passes of the
 * families' roles (structure, sparsity, values), the architecture record, and the accounting of
 * parameters and MACs, per layer and in total, with their ratios. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "core/timer.h"
#include "nn/edit.h"

void cp_stats_free(cp_stats *s)
{
    if (s) {
        free(s->choices);
        s->choices = NULL;
        s->nchoices = 0;
    }
}

int cp_set_param(nn_node *n, int slot, tensor *t)
{
    tensor **slots[4] = {&n->weight, &n->bias, &n->mean, &n->var};
    if (n->shared) { /* the others are copied; the replaced one stays with its owner */
        tensor *copies[4] = {0};
        for (int k = 0; k < 4; k++)
            if (k != slot && *slots[k] && !(copies[k] = tensor_clone(*slots[k]))) {
                for (int j = 0; j < 4; j++)
                    tensor_free(copies[j]);
                tensor_free(t);
                return err_set("out of memory");
            }
        for (int k = 0; k < 4; k++)
            if (k != slot)
                *slots[k] = copies[k];
        n->shared = 0;
    } else {
        tensor_free(*slots[slot]);
    }
    *slots[slot] = t;
    return 0;
}

int cp_layer_nodes(const nn_net *cand, const char *name, int *out) { return nn_layer_nodes(cand, name, out, 3); }

/* ---- ratios ------------------------------------------------------------------------------------ */

const char *const cp_ratio_names[] = {"params", "params_net", "bits", "bits_net", "flops", "flops_layers", NULL};

int cp_ratio_get(const cp_ratios *r, const char *name, double *value)
{
    const double v[] = {r->params, r->params_net, r->bits, r->bits_net, r->flops, r->flops_layers};
    for (int i = 0; cp_ratio_names[i]; i++)
        if (strcmp(name, cp_ratio_names[i]) == 0) {
            *value = v[i];
            return 0;
        }
    return err_set("ratio \"%s\" is not one of params, params_net, bits, bits_net, flops, flops_layers", name);
}

static double ratio(double a, double b) { return b > 0 ? a / b : 1; }

static void ratios(cp_stats *s)
{
    s->ratio.params = ratio((double)s->weights, (double)s->weights_ref);
    s->ratio.params_net = ratio((double)s->params, (double)s->params_ref);
    s->ratio.bits = ratio(s->bits, s->bits_ref);
    s->ratio.bits_net = ratio(s->net_bits, s->net_bits_ref);
    s->ratio.flops = ratio((double)s->macs, (double)s->macs_ref);
    s->ratio.flops_layers = ratio((double)s->layer_macs, (double)s->layer_macs_ref);
}

/* ---- settings ---------------------------------------------------------------------------------- */

static int check_families(int nfam, cp_family *const *fams, const nn_net *net, int ntheta)
{
    for (int fi = 0; fi < nfam; fi++)
        if (fams[fi]->net != net)
            return err_set("family #%d (%s) was declared on another network", fi + 1, fams[fi]->ops->name);
    int dim = cp_dim(nfam, fams);
    if (ntheta != dim)
        return err_set("theta has %d entries, the families have %d layers", ntheta, dim);
    return 0;
}

int cp_choose(int nfam, cp_family *const *fams, int ntheta, const double *theta, cp_choice *out)
{
    if (nfam > 0 && check_families(nfam, fams, fams[0]->net, ntheta) != 0)
        return -1;
    if (nfam == 0)
        return ntheta == 0 ? 0 : err_set("theta has %d entries, the families have 0 layers", ntheta);
    const nn_net *net = fams[0]->net;
    int *owner = malloc((size_t)net->count * CP_ROLES * sizeof *owner); /* family of each role per node */
    if (!owner)
        return err_set("out of memory");
    for (int i = 0; i < CP_ROLES * net->count; i++)
        owner[i] = -1;
    int idx = 0, rc = 0;
    for (int fi = 0; fi < nfam && rc == 0; fi++) {
        const cp_family *f = fams[fi];
        for (int li = 0; li < f->count && rc == 0; li++, idx++) {
            cp_layer *l = &f->layers[li];
            cp_choice *c = &out[idx];
            double t = theta[idx];
            memset(c, 0, sizeof *c);
            c->family = fi;
            c->layer = li;
            c->theta = t;
            if (!(t >= l->lo - 1e-9 && t <= l->hi + 1e-9)) {
                rc = err_set("theta[%d] = %g for %s (%s) is outside its bounds [%g, %g]", idx + 1, t, l->name,
                             f->ops->name, l->lo, l->hi);
                break;
            }
            if ((rc = f->ops->setting(f, l, t, c)) != 0)
                break;
            int *o = &owner[CP_ROLES * l->node + f->ops->role];
            if (*o >= 0) {
                rc = err_set("layer %s is in two families (%s and %s)", l->name, fams[*o]->ops->name, f->ops->name);
                break;
            }
            *o = fi;
        }
    }
    free(owner);
    return rc;
}

/* ---- the candidate ----------------------------------------------------------------------------- */

typedef struct order_item {
    int node, choice;
} order_item;

static int by_node_desc(const void *a, const void *b)
{
    return ((const order_item *)b)->node - ((const order_item *)a)->node;
}

/* Structural rewrites from the last layer back, so that earlier indices stay put. */
static int rewrite(cp_family *const *fams, const cp_stats *st, nn_net *cand, double *seconds)
{
    order_item *order = malloc((size_t)(st->nchoices ? st->nchoices : 1) * sizeof *order);
    int n = 0, rc = 0;
    if (!order)
        return err_set("out of memory");
    for (int c = 0; c < st->nchoices; c++) {
        const cp_family *f = fams[st->choices[c].family];
        if (f->ops->rewrite)
            order[n++] = (order_item){f->layers[st->choices[c].layer].node, c};
    }
    qsort(order, (size_t)n, sizeof *order, by_node_desc);
    for (int k = 0; k < n && rc == 0; k++) {
        const cp_choice *c = &st->choices[order[k].choice];
        const cp_family *f = fams[c->family];
        double t = timer_now();
        rc = f->ops->rewrite(f, &f->layers[c->layer], c, cand);
        *seconds += timer_now() - t;
    }
    free(order);
    return rc;
}

static void work_free(cp_work *w)
{
    free(w->weights);
    free(w->bits);
    free(w->touched);
}

static int work_init(cp_work *w, const nn_net *ref, nn_net *cand)
{
    w->ref = ref;
    w->cand = cand;
    w->weights = malloc((size_t)(cand->count ? cand->count : 1) * sizeof *w->weights);
    w->bits = malloc((size_t)(cand->count ? cand->count : 1) * sizeof *w->bits);
    w->touched = calloc((size_t)(cand->count ? cand->count : 1), 1);
    if (!w->weights || !w->bits || !w->touched)
        return err_set("out of memory");
    for (int j = 0; j < cand->count; j++) {
        w->weights[j] = -1;
        w->bits[j] = 32;
    }
    return 0;
}

/* The passes of the roles in order: channels, then weight values (pruning before quantization
 * keeps the zeros); within a pass, the choices in θ order. */
static int transform(cp_family *const *fams, const cp_stats *st, cp_work *w, double *seconds)
{
    for (int role = 0; role < CP_ROLES; role++)
        for (int c = 0; c < st->nchoices; c++) {
            const cp_choice *ch = &st->choices[c];
            const cp_family *f = fams[ch->family];
            if ((int)f->ops->role != role || !f->ops->apply)
                continue;
            double t = timer_now();
            int rc = f->ops->apply(f, &f->layers[ch->layer], ch, w);
            *seconds += timer_now() - t;
            if (rc != 0)
                return -1;
        }
    nn_invalidate(w->cand);
    return 0;
}

static int record(cp_family *const *fams, const cp_stats *st, nn_net *cand)
{
    for (int c = 0; c < st->nchoices; c++) {
        const cp_choice *ch = &st->choices[c];
        const cp_family *f = fams[ch->family];
        if (f->ops->record(f, &f->layers[ch->layer], ch, cand) != 0)
            return -1;
    }
    return 0;
}

/* ---- accounting -------------------------------------------------------------------------------- */

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

/* The totals of the reference and the candidate, and each layer's own share. */
static int account(const cp_work *w, cp_family *const *fams, cp_stats *st)
{
    const nn_net *ref = w->ref, *cand = w->cand;
    int rc = -1;
    int *from = malloc((size_t)cand->count * sizeof *from);
    char *aff = calloc((size_t)ref->count, 1);
    int64_t *mref = malloc((size_t)ref->count * sizeof *mref), *mc = malloc((size_t)cand->count * sizeof *mc);
    if (!from || !aff || !mref || !mc) {
        err_set("out of memory");
        goto done;
    }
    if (cp_node_macs(ref, mref) != 0 || cp_node_macs(cand, mc) != 0)
        goto done;
    for (int j = 0; j < cand->count; j++) {
        from[j] = origin(ref, cand->nodes[j].name);
        if (from[j] >= 0 && (w->touched[j] || strcmp(cand->nodes[j].name, ref->nodes[from[j]].name) != 0))
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
        int64_t wn = n->weight ? (w->weights[j] >= 0 ? w->weights[j] : numel) : 0;
        int64_t p = nn_node_param_count(n) - numel + wn;
        st->params += p;
        st->net_bits += 32.0 * (double)(p - wn) + w->bits[j] * (double)wn;
        st->macs += mc[j];
        if (from[j] >= 0 && aff[from[j]]) {
            st->weights += wn;
            st->bits += w->bits[j] * (double)wn;
            st->layer_macs += mc[j];
        }
        for (int c = 0; c < st->nchoices; c++) { /* this layer's own nodes */
            cp_choice *ch = &st->choices[c];
            if (from[j] >= 0 && fams[ch->family]->layers[ch->layer].node == from[j]) {
                ch->weights += wn;
                ch->params += p;
                ch->macs += mc[j];
            }
        }
    }
    for (int c = 0; c < st->nchoices; c++) {
        cp_choice *ch = &st->choices[c];
        const nn_node *n = &ref->nodes[fams[ch->family]->layers[ch->layer].node];
        ch->weights_ref = n->weight->numel;
        ch->params_ref = nn_node_param_count(n);
        ch->macs_ref = mref[fams[ch->family]->layers[ch->layer].node];
    }
    ratios(st);
    rc = 0;
done:
    free(from);
    free(aff);
    free(mref);
    free(mc);
    return rc;
}

/* Factors computed on first use, timed. */
static int prepare(int nfam, cp_family *const *fams, double *seconds)
{
    for (int fi = 0; fi < nfam; fi++)
        if (!fams[fi]->prepared) {
            double t = timer_now();
            if (cp_family_prepare(fams[fi]) != 0)
                return -1;
            *seconds += timer_now() - t;
        }
    return 0;
}

nn_net *cp_apply(const nn_net *ref, int nfam, cp_family *const *fams, int ntheta, const double *theta, cp_stats *out)
{
    double start = timer_now(), numeric = 0;
    cp_stats st = {0};
    cp_work w = {0};
    nn_net *cand = NULL;
    if (check_families(nfam, fams, ref, ntheta) != 0 || prepare(nfam, fams, &st.t_prepare) != 0)
        return NULL;
    st.nchoices = ntheta;
    if (!(st.choices = calloc((size_t)(ntheta ? ntheta : 1), sizeof *st.choices))) {
        err_set("out of memory");
        return NULL;
    }
    if (cp_choose(nfam, fams, ntheta, theta, st.choices) != 0 || !(cand = nn_clone(ref, 1)) ||
        rewrite(fams, &st, cand, &numeric) != 0 || work_init(&w, ref, cand) != 0 ||
        transform(fams, &st, &w, &numeric) != 0 || record(fams, &st, cand) != 0 || account(&w, fams, &st) != 0)
        goto fail;
    st.t_truncate = numeric;
    st.t_rebuild = timer_now() - start - numeric - st.t_prepare;
    if (st.t_prepare > 0)
        timer_account("compress.prepare", st.t_prepare);
    timer_account("compress.build", st.t_truncate + st.t_rebuild);
    work_free(&w);
    if (out)
        *out = st;
    else
        cp_stats_free(&st);
    return cand;
fail:
    work_free(&w);
    cp_stats_free(&st);
    nn_net_free(cand);
    return NULL;
}
