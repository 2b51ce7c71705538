#include "train/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/safetensors.h"

#define STAT_KEY "train.epoch."
#define SLOT 160 /* bytes of one metadata key or value */

/* The network's parameters by name, running statistics included. */
typedef struct params {
    int count;
    char **names;
    tensor **tensors;
} params;

static void params_free(params *p)
{
    for (int i = 0; p->names && i < p->count; i++)
        free(p->names[i]);
    free(p->names);
    free(p->tensors);
}

/* Lists them, leaving extra empty entries at the end of both arrays (for the optimizer's state). */
static int params_of(const nn_net *net, int extra, params *p)
{
    p->count = nn_param_list(net, NULL, NULL);
    p->names = calloc((size_t)(p->count + extra + 1), sizeof *p->names);
    p->tensors = calloc((size_t)(p->count + extra + 1), sizeof *p->tensors);
    if (!p->names || !p->tensors) {
        params_free(p);
        return err_set("out of memory");
    }
    if (nn_param_list(net, p->names, p->tensors) < 0) {
        params_free(p);
        return -1;
    }
    return 0;
}

static void velocity_name(int i, char *buf, size_t size) { snprintf(buf, size, "sgd.velocity.%d", i); }

/* One epoch's statistics as a metadata value, and back; %a keeps every bit of the doubles. */
static void stats_format(const nn_epoch_stats *s, char *buf, size_t size)
{
    snprintf(buf, size, "%a %a %a %a %a %a %" PRId64, s->loss, s->accuracy, s->test_accuracy, s->lr, s->seconds,
             s->images_per_second, s->steps);
}

static int stats_parse(const char *text, int epoch, nn_epoch_stats *s)
{
    double v[6];
    char *end = (char *)text;
    for (int i = 0; i < 6; i++) {
        const char *from = end;
        v[i] = strtod(from, &end);
        if (end == from)
            return -1;
    }
    const char *from = end;
    long long steps = strtoll(from, &end, 10);
    if (end == from || *end != '\0')
        return -1;
    *s = (nn_epoch_stats){.epoch = epoch, .loss = v[0], .accuracy = v[1], .test_accuracy = v[2], .lr = v[3],
                          .seconds = v[4], .images_per_second = v[5], .steps = steps};
    return 0;
}

int nn_checkpoint_save(const char *path, const nn_net *net, const nn_sgd *sgd, const char *fingerprint,
                       int epochs_done, const nn_epoch_stats *stats)
{
    int nsgd = nn_sgd_count(sgd), nmeta = 3 + epochs_done, rc = -1;
    params p;
    if (params_of(net, nsgd, &p) != 0)
        return -1;
    int n = p.count;
    st_meta *meta = calloc((size_t)nmeta, sizeof *meta);
    char *text = calloc((size_t)(2 * epochs_done + 2 + nsgd), SLOT);
    if (!meta || !text) {
        err_set("out of memory");
        goto done;
    }
    char *t = text;
    for (int i = 0; i < nsgd; i++) /* the names live in text: params_free frees only the network's */
        if ((p.tensors[n] = nn_sgd_velocity(sgd, i))) {
            velocity_name(i, t, SLOT);
            p.names[n++] = t;
            t += SLOT;
        }
    snprintf(t, SLOT, "%d", epochs_done);
    meta[0] = (st_meta){"train.epochs_done", t};
    snprintf(t += SLOT, SLOT, "%" PRId64, nn_sgd_steps(sgd));
    meta[1] = (st_meta){"train.sgd_steps", t};
    meta[2] = (st_meta){"train.fingerprint", fingerprint};
    for (int e = 0; e < epochs_done; e++) {
        char *key = t += SLOT, *value = t += SLOT;
        snprintf(key, SLOT, STAT_KEY "%d", e + 1);
        stats_format(&stats[e], value, SLOT);
        meta[3 + e] = (st_meta){key, value};
    }
    rc = st_write(path, n, (const char *const *)p.names, (const tensor *const *)p.tensors, nmeta, meta);
done:
    params_free(&p);
    free(meta);
    free(text);
    return rc;
}

/* Checks that f belongs to this run and fits the network and optimizer, reading epochs_done and
 * the statistics; nothing is changed yet. */
static int check(const char *path, const st_file *f, const params *p, const nn_sgd *sgd, const char *fingerprint,
                 int max_epochs, int *epochs_done, nn_epoch_stats *stats)
{
    const char *fp = st_meta_get(f, "train.fingerprint"), *done = st_meta_get(f, "train.epochs_done");
    if (!fp || !done || !st_meta_get(f, "train.sgd_steps"))
        return err_set("%s: not a training checkpoint (no train.fingerprint, epochs_done, sgd_steps)", path);
    if (strcmp(fp, fingerprint) != 0)
        return err_set("%s: a checkpoint of another run (its options: %s; this run's: %s): delete it or name another",
                       path, fp, fingerprint);
    char *end;
    long e = strtol(done, &end, 10);
    if (*end != '\0' || e < 0 || e > max_epochs)
        return err_set("%s: %s epochs done, not in [0, %d]", path, done, max_epochs);
    *epochs_done = (int)e;
    for (int i = 0; i < *epochs_done; i++) {
        char key[32];
        snprintf(key, sizeof key, STAT_KEY "%d", i + 1);
        const char *v = st_meta_get(f, key);
        if (!v || stats_parse(v, i + 1, &stats[i]) != 0)
            return err_set("%s: the statistics of epoch %d are missing or malformed", path, i + 1);
    }
    for (int i = 0; i < p->count; i++) {
        const tensor *t = st_find(f, p->names[i]);
        if (!t || !tensor_same_shape(t, p->tensors[i]))
            return err_set("%s: parameter %s is missing or of another shape", path, p->names[i]);
    }
    for (int i = 0; i < nn_sgd_count(sgd); i++) {
        const tensor *v = nn_sgd_velocity(sgd, i), *t;
        char name[32];
        velocity_name(i, name, sizeof name);
        if (v && (!(t = st_find(f, name)) || !tensor_same_shape(t, v)))
            return err_set("%s: optimizer state %s is missing or of another shape", path, name);
    }
    return 0;
}

/* A first run: fails now, not after an epoch of training, when path cannot be written. */
static int writable(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return err_set("out of memory");
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    int rc = access(slash ? dir : ".", W_OK) != 0 ? err_set("%s: cannot write a checkpoint there (%s)", path,
                                                            strerror(errno))
                                                  : 0;
    free(dir);
    return rc;
}

int nn_checkpoint_load(const char *path, nn_net *net, nn_sgd *sgd, const char *fingerprint, int max_epochs,
                       int *epochs_done, nn_epoch_stats *stats)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? writable(path) : err_set("%s: %s", path, strerror(errno));
    st_file *f = st_read(path);
    params p;
    if (!f || params_of(net, 0, &p) != 0) {
        st_file_free(f);
        return -1;
    }
    int rc = check(path, f, &p, sgd, fingerprint, max_epochs, epochs_done, stats);
    if (rc == 0) { /* everything fits: copy */
        for (int i = 0; i < p.count; i++)
            memcpy(p.tensors[i]->data, st_find(f, p.names[i])->data, (size_t)p.tensors[i]->numel * sizeof(float));
        for (int i = 0; i < nn_sgd_count(sgd); i++) {
            tensor *v = nn_sgd_velocity(sgd, i);
            char name[32];
            velocity_name(i, name, sizeof name);
            if (v)
                memcpy(v->data, st_find(f, name)->data, (size_t)v->numel * sizeof(float));
        }
        nn_sgd_set_steps(sgd, strtoll(st_meta_get(f, "train.sgd_steps"), NULL, 10));
        nn_invalidate(net); /* the parameters changed in place */
        rc = 1;
    }
    params_free(&p);
    st_file_free(f);
    return rc;
}
