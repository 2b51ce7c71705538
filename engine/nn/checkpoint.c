#include "nn/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/safetensors.h"

#define VELOCITY "sgd.velocity."
#define STAT_KEY "train.epoch."

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
    int nparams = nn_param_list(net, NULL, NULL), nsgd = nn_sgd_count(sgd);
    int count = nparams + nsgd, nmeta = 3 + epochs_done, rc = -1;
    char **names = calloc((size_t)count + 1, sizeof *names);
    tensor **tensors = calloc((size_t)count + 1, sizeof *tensors);
    st_meta *meta = calloc((size_t)nmeta, sizeof *meta);
    char *text = calloc((size_t)epochs_done + 2, 2 * 160);
    if (!names || !tensors || !meta || !text) {
        err_set("out of memory");
        goto done;
    }
    if (nn_param_list(net, names, tensors) < 0)
        goto done;
    int n = nparams;
    for (int i = 0; i < nsgd; i++) {
        tensor *v = nn_sgd_velocity(sgd, i);
        if (!v)
            continue;
        if (!(names[n] = malloc(sizeof VELOCITY + 12))) {
            err_set("out of memory");
            goto done;
        }
        snprintf(names[n], sizeof VELOCITY + 12, VELOCITY "%d", i);
        tensors[n++] = v;
    }
    char *t = text;
    snprintf(t, 160, "%d", epochs_done);
    meta[0] = (st_meta){"train.epochs_done", t};
    snprintf(t += 160, 160, "%" PRId64, nn_sgd_steps(sgd));
    meta[1] = (st_meta){"train.sgd_steps", t};
    meta[2] = (st_meta){"train.fingerprint", fingerprint};
    for (int e = 0; e < epochs_done; e++) {
        char *key = t += 160, *value = t += 160;
        snprintf(key, 160, STAT_KEY "%d", e + 1);
        stats_format(&stats[e], value, 160);
        meta[3 + e] = (st_meta){key, value};
    }
    rc = st_write(path, n, (const char *const *)names, (const tensor *const *)tensors, nmeta, meta);
done:
    for (int i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
    free(tensors);
    free(meta);
    free(text);
    return rc;
}

/* Checks that f fits net and sgd, reading epochs_done and the statistics; nothing is changed yet. */
static int check(const char *path, const st_file *f, const nn_net *net, const nn_sgd *sgd, const char *fingerprint,
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
    int n = nn_param_list(net, NULL, NULL);
    tensor **mine = malloc((size_t)(n + 1) * sizeof *mine);
    char **names = calloc((size_t)n + 1, sizeof *names);
    int rc = !mine || !names ? err_set("out of memory") : nn_param_list(net, names, mine) < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        tensor *t = st_find(f, names[i]);
        if (!t || !tensor_same_shape(t, mine[i]))
            rc = err_set("%s: parameter %s is missing or of another shape", path, names[i]);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(mine);
    for (int i = 0; rc == 0 && i < nn_sgd_count(sgd); i++) {
        tensor *v = nn_sgd_velocity(sgd, i);
        char name[sizeof VELOCITY + 12];
        snprintf(name, sizeof name, VELOCITY "%d", i);
        tensor *t = st_find(f, name);
        if (v && (!t || !tensor_same_shape(t, v)))
            rc = err_set("%s: optimizer state %s is missing or of another shape", path, name);
    }
    return rc;
}

int nn_checkpoint_load(const char *path, nn_net *net, nn_sgd *sgd, const char *fingerprint, int max_epochs,
                       int *epochs_done, nn_epoch_stats *stats)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return err_set("%s: %s", path, strerror(errno));
        /* a first run: fail now, not after an epoch of training, if the file cannot be written */
        char *dir = strdup(path);
        const char *slash = dir ? strrchr(dir, '/') : NULL;
        if (dir && slash)
            dir[slash == dir ? 1 : slash - dir] = '\0';
        int rc = !dir ? err_set("out of memory")
                 : access(slash ? dir : ".", W_OK) != 0
                     ? err_set("%s: cannot write a checkpoint there (%s)", path, strerror(errno))
                     : 0;
        free(dir);
        return rc;
    }
    st_file *f = st_read(path);
    if (!f)
        return -1;
    int rc = check(path, f, net, sgd, fingerprint, max_epochs, epochs_done, stats);
    if (rc == 0) { /* everything fits: copy */
        int n = nn_param_list(net, NULL, NULL);
        tensor **mine = malloc((size_t)(n + 1) * sizeof *mine);
        char **names = calloc((size_t)n + 1, sizeof *names);
        rc = !mine || !names ? err_set("out of memory") : nn_param_list(net, names, mine) < 0 ? -1 : 1;
        for (int i = 0; rc == 1 && i < n; i++)
            memcpy(mine[i]->data, st_find(f, names[i])->data, (size_t)mine[i]->numel * sizeof *mine[i]->data);
        for (int i = 0; rc == 1 && i < nn_sgd_count(sgd); i++) {
            tensor *v = nn_sgd_velocity(sgd, i);
            char name[sizeof VELOCITY + 12];
            snprintf(name, sizeof name, VELOCITY "%d", i);
            if (v)
                memcpy(v->data, st_find(f, name)->data, (size_t)v->numel * sizeof *v->data);
        }
        if (rc == 1)
            nn_sgd_set_steps(sgd, strtoll(st_meta_get(f, "train.sgd_steps"), NULL, 10));
        for (int i = 0; names && i < n; i++)
            free(names[i]);
        free(names);
        free(mine);
        nn_invalidate(net); /* the parameters changed in place */
    }
    st_file_free(f);
    return rc;
}
