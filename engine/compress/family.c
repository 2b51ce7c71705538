/* Declaring a family: the registry of families, which layers a family takes, its options, its
 * layers' bounds, and the factors computed once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/blas_serial.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timer.h"
#include "nn/edit.h"

/* The registry: a family is one line here (and the file that defines its cp_NAME_ops). */
#define CP_FAMILIES(X) X(vh) X(svd) X(tucker2) X(prune_channels) X(prune_weights) X(quantize)

#define DECLARE(name) extern const cp_family_ops cp_##name##_ops;
CP_FAMILIES(DECLARE)
#undef DECLARE
#define ENTRY(name) &cp_##name##_ops,
const cp_family_ops *const cp_families[] = {CP_FAMILIES(ENTRY) NULL};
#undef ENTRY

const cp_family_ops *cp_family_find(const char *name)
{
    char known[256] = "";
    for (int i = 0; cp_families[i]; i++) {
        if (strcmp(cp_families[i]->name, name) == 0)
            return cp_families[i];
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", cp_families[i]->name);
    }
    err_set("no compression family '%s' (known: %s)", name, known);
    return NULL;
}

const char *cp_family_name(const cp_family *f) { return f->ops->name; }

static const char *const mode_names[CP_MODES] = {[CP_FRACTION] = "fraction", [CP_ABSOLUTE] = "absolute",
                                                 [CP_ENERGY] = "energy"};

const char *cp_mode_name(cp_mode mode) { return mode >= 0 && mode < CP_MODES ? mode_names[mode] : "?"; }

static int takes_mode(const cp_family_ops *ops, int mode)
{
    return mode >= 0 && mode < CP_MODES && ((ops->modes | 1u << CP_FRACTION) >> mode & 1u);
}

/* "'rank' must be "fraction" or "absolute", got "x"", listing the modes the family takes. */
static int mode_error(const cp_family_ops *ops, const char *got)
{
    char list[128] = "";
    int n = 0, count = 0;
    for (int m = 0; m < CP_MODES; m++)
        count += takes_mode(ops, m);
    for (int m = 0; m < CP_MODES; m++)
        if (takes_mode(ops, m)) {
            n++;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                     n == 1 ? "" : n == count ? " or " : ", ", mode_names[m]);
        }
    return err_set("%s: 'rank' must be %s, got \"%s\"", ops->name, list, got);
}

int cp_mode_parse(const cp_family_ops *ops, const char *name, cp_mode *mode)
{
    for (int m = 0; m < CP_MODES; m++)
        if (strcmp(name, mode_names[m]) == 0 && takes_mode(ops, m)) {
            *mode = (cp_mode)m;
            return 0;
        }
    return mode_error(ops, name);
}

static int takes_option(const cp_family_ops *ops, const char *key)
{
    for (int i = 0; ops->options && ops->options[i]; i++)
        if (strcmp(ops->options[i], key) == 0)
            return 1;
    return 0;
}

/* The options once, for C callers and the Lua module alike. */
static int check_options(const cp_family_ops *ops, const cp_options *o)
{
    if (o->mode != CP_FRACTION && !takes_option(ops, "rank"))
        return err_set("%s: takes no option 'rank'", ops->name);
    if (!takes_mode(ops, (int)o->mode))
        return mode_error(ops, cp_mode_name(o->mode));
    if (o->dense && !takes_option(ops, "dense"))
        return err_set("%s: takes no option 'dense'", ops->name);
    if (o->hooi != 0 && !takes_option(ops, "hooi"))
        return err_set("%s: takes no option 'hooi'", ops->name);
    if (o->hooi < 0 || o->hooi > 100)
        return err_set("%s: 'hooi' must be between 0 and 100 iterations, got %d", ops->name, o->hooi);
    if (o->multiple > 1 && !takes_option(ops, "multiple"))
        return err_set("%s: takes no option 'multiple'", ops->name);
    if (o->multiple < 0 || o->multiple > 4096)
        return err_set("%s: 'multiple' must be between 1 and 4096, got %d", ops->name, o->multiple);
    return 0;
}

static int has_wildcard(const char *p) { return strpbrk(p, "*?") != NULL; }

/* NULL when the family applies to node i, else the reason it does not. */
static const char *ineligible(const cp_family_ops *ops, const nn_net *net, int i)
{
    const nn_node *n = &net->nodes[i];
    if (n->op == NN_CONV && n->groups != 1)
        return "a grouped convolution";
    return ops->ineligible(net, i);
}

/* The nodes the patterns select into take[]; each pattern must select something. */
static int select_layers(const cp_family_ops *ops, const nn_net *net, int npatterns, const char *const *patterns,
                         char *take)
{
    const char *what = ops->name;
    if (npatterns < 1)
        return err_set("%s: no layers given", what);
    for (int p = 0; p < npatterns; p++) {
        int found = 0, eligible = 0;
        const char *reason = NULL, *first = NULL;
        for (int i = 0; i < net->count; i++) {
            if (!nn_match(patterns[p], net->nodes[i].name))
                continue;
            found++;
            const char *why = ineligible(ops, net, i);
            if (!why) {
                take[i] = 1;
                eligible++;
            } else if (!reason) {
                reason = why;
                first = net->nodes[i].name;
            }
        }
        if (!found)
            return err_set("%s: no layer matches '%s'", what, patterns[p]);
        if (reason && !has_wildcard(patterns[p]))
            return err_set("%s: layer %s is %s", what, first, reason);
        if (!eligible)
            return err_set("%s: no layer matching '%s' qualifies (%s is %s)", what, patterns[p], first, reason);
    }
    return 0;
}

/* One layer: its name, shape, what the family knows of it, and the range and default bounds of θ. */
static int describe_layer(cp_family *f, cp_layer *l, int node)
{
    const nn_node *n = &f->net->nodes[node];
    l->node = node;
    if (!(l->name = strdup(n->name)))
        return err_set("out of memory");
    if (!n->weight)
        return err_set("%s: layer %s has no weights", f->ops->name, l->name);
    l->ndim = n->weight->ndim < 4 ? n->weight->ndim : 4;
    for (int d = 0; d < l->ndim; d++)
        l->shape[d] = n->weight->shape[d];
    l->break_even = -1;
    f->ops->describe(f, l);
    f->ops->range(f, l);
    return 0;
}

cp_family *cp_family_new(const char *family, const nn_net *net, int npatterns, const char *const *patterns,
                         const cp_options *opt)
{
    const cp_family_ops *ops = cp_family_find(family);
    if (!ops)
        return NULL;
    cp_family *f = calloc(1, sizeof *f);
    char *take = calloc((size_t)net->count + 1, 1);
    if (!f || !take) {
        free(f);
        free(take);
        err_set("out of memory");
        return NULL;
    }
    f->ops = ops;
    f->net = net;
    if (opt)
        f->opt = *opt;
    if (check_options(ops, &f->opt) != 0 || select_layers(ops, net, npatterns, patterns, take) != 0)
        goto fail;
    int count = 0;
    for (int i = 0; i < net->count; i++)
        count += take[i];
    if (!(f->layers = calloc((size_t)count, sizeof *f->layers))) {
        err_set("out of memory");
        goto fail;
    }
    for (int i = 0; i < net->count; i++)
        if (take[i] && describe_layer(f, &f->layers[f->count++], i) != 0)
            goto fail;
    free(take);
    return f;
fail:
    free(take);
    cp_family_free(f);
    return NULL;
}

static void drop_cache(const cp_family *f, cp_layer *l)
{
    if (f->ops->release)
        f->ops->release(l->cache);
    else
        free(l->cache);
    l->cache = NULL;
}

void cp_family_free(cp_family *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++) {
        free(f->layers[i].name);
        drop_cache(f, &f->layers[i]);
    }
    free(f->layers);
    free(f);
}

int cp_family_set_bounds(cp_family *f, int i, double lo, double hi)
{
    if (i >= f->count)
        return err_set("%s: no layer #%d in a family of %d", f->ops->name, i + 1, f->count);
    for (int k = i < 0 ? 0 : i; k < (i < 0 ? f->count : i + 1); k++) {
        cp_layer *l = &f->layers[k];
        if (!(lo <= hi))
            return err_set("%s: bounds {%g, %g} of %s: the lower bound exceeds the upper", f->ops->name, lo, hi,
                           l->name);
        if (lo < l->min - 1e-12 || hi > l->max + 1e-12)
            return err_set("%s: bounds {%g, %g} of %s leave the range [%g, %g] of its parameter", f->ops->name, lo,
                           hi, l->name, l->min, l->max);
    }
    for (int k = i < 0 ? 0 : i; k < (i < 0 ? f->count : i + 1); k++) {
        f->layers[k].lo = lo;
        f->layers[k].hi = hi;
    }
    return 0;
}

int cp_family_set_bounds_list(cp_family *f, int n, const double *lo, const double *hi)
{
    if (n != f->count)
        return err_set("%s: a list of %d bounds for %d layers (give one pair {lo, hi} for all, or one per layer)",
                       f->ops->name, n, f->count);
    for (int i = 0; i < n; i++)
        if (cp_family_set_bounds(f, i, lo[i], hi[i]) != 0)
            return -1;
    return 0;
}

int cp_family_prepare(cp_family *f)
{
    if (!f->ops->prepare) { /* nothing to compute ahead (weight pruning, quantization) */
        f->prepared = 1;
        return 0;
    }
    double start = timer_now();
    int done = 0, failed = -1;
    /* The layers' factorizations are independent: a layer per thread (VGG16's 13 SVDs 4.5 s one
     * after the other, 3 s side by side). OpenBLAS stays on one thread for the whole loop, as
     * each SVD asks: were each call to restore the count when it ends, another still running
     * would go on with two threads, and its factors would differ in the last bits from one
     * process to the next (a resumed run would no longer match an uninterrupted one). A message
     * is thread-local, so a failed layer is redone below to record its own. */
    int threads = blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : done) if (f->count > 1)
    for (int i = 0; i < f->count; i++) {
        cp_layer *l = &f->layers[i];
        if (l->cache)
            continue;
        if (f->ops->prepare(f, l) == 0) {
            done++;
            continue;
        }
        drop_cache(f, l); /* half made: prepared again next time */
#pragma omp critical(cp_family_prepare_failed)
        if (failed < 0 || i < failed)
            failed = i;
    }
    if (failed >= 0) {
        cp_layer *l = &f->layers[failed];
        f->ops->prepare(f, l);
        drop_cache(f, l);
    }
    blas_serial_end(threads);
    if (failed >= 0)
        return err_prefix("%s: layer %s", f->ops->name, f->layers[failed].name);
    f->prepared = 1;
    if (done && timer_now() - start > 1)
        log_info("%s: factored %d layers in %.1f s", f->ops->name, done, timer_now() - start);
    return 0;
}

int cp_dim(int nfam, cp_family *const *fams)
{
    int d = 0;
    for (int i = 0; i < nfam; i++)
        d += fams[i]->count;
    return d;
}

void cp_box(int nfam, cp_family *const *fams, double *lo, double *hi, int *integer)
{
    int k = 0;
    for (int i = 0; i < nfam; i++)
        for (int j = 0; j < fams[i]->count; j++, k++) {
            const cp_layer *l = &fams[i]->layers[j];
            if (lo)
                lo[k] = l->lo;
            if (hi)
                hi[k] = l->hi;
            if (integer)
                integer[k] = l->integer;
        }
}

int cp_theta_name(int nfam, cp_family *const *fams, int i, char *buf, size_t size)
{
    for (int k = 0; k < nfam && i >= 0; k++) {
        if (i < fams[k]->count)
            return snprintf(buf, size, "%s:%s", fams[k]->ops->name, fams[k]->layers[i].name);
        i -= fams[k]->count;
    }
    return -1;
}

void cp_choice_setting(const cp_family *f, const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "", .count = 0};
    f->ops->report(c, s);
}

int cp_choice_format(const cp_family *f, const cp_choice *c, char *buf, size_t size)
{
    cp_setting s;
    cp_choice_setting(f, c, &s);
    const char *fmt = s.integer ? (s.count == 2 ? "%s %.0f, %.0f" : "%s %.0f")
                                : (s.count == 2 ? "%s %.6g, %.6g" : "%s %.6g");
    return snprintf(buf, size, fmt, s.key, s.value[0], s.value[1]);
}
