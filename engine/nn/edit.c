#include "nn/edit.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "nn/build.h"

nn_net *nn_clone(const nn_net *net, int share)
{
    nn_net *c = nn_net_new(net->channels, net->size, net->classes);
    if (!c)
        return NULL;
    if (net->arch && !(c->arch = strdup(net->arch)))
        goto fail;
    for (int i = 0; i < net->count; i++) {
        nn_node n = net->nodes[i];
        n.shared = 1; /* until copied: a failure must not free the original's tensors */
        if (nn_add(c, &n) < 0 || (!share && nn_node_own(&c->nodes[i]) != 0))
            goto fail;
    }
    return c;
fail:
    err_set("out of memory");
    nn_net_free(c);
    return NULL;
}

static int dense_op(nn_op op) { return op == NN_LINEAR || op == NN_RELU || op == NN_DROPOUT || op == NN_SOFTMAX; }

nn_net *nn_dense_tail(const nn_net *net, const nn_dims *dims, int *from)
{
    int k = net->count - 1;
    while (k >= 0 && dense_op(net->nodes[k].op))
        k--;
    *from = -1;
    if (k < 0)
        return NULL;
    while (k + 1 < net->count && net->nodes[k + 1].op != NN_LINEAR) /* a ReLU right after stays fused */
        k++;
    if (k == net->count - 1)
        return NULL;
    for (int i = k + 1; i < net->count; i++)
        if (net->nodes[i].in[0] < k)
            return NULL;
    nn_net *tail = nn_net_new(dims[k].c * dims[k].h * dims[k].w, 1, net->classes);
    for (int i = k + 1; tail && i < net->count; i++) {
        nn_node n = net->nodes[i];
        n.shared = 1;
        n.in[0] = n.in[0] == k ? NN_INPUT : n.in[0] - (k + 1);
        if (nn_add(tail, &n) < 0) {
            nn_net_free(tail);
            return NULL;
        }
    }
    if (tail)
        *from = k;
    return tail;
}

int nn_own(nn_net *net)
{
    for (int i = 0; i < net->count; i++)
        if (nn_node_own(&net->nodes[i]) != 0)
            return -1;
    nn_invalidate(net);
    return 0;
}

int nn_find(const nn_net *net, const char *name)
{
    for (int i = 0; i < net->count; i++)
        if (strcmp(net->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int nn_match(const char *p, const char *s)
{
    /* iterative glob with backtracking to the last star */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int nn_consumers(const nn_net *net, int i, int *out, int max)
{
    int k = 0;
    for (int j = i + 1; j < net->count; j++) {
        const nn_node *n = &net->nodes[j];
        if (n->in[0] == i || (n->op == NN_ADD && n->in[1] == i)) {
            if (k < max)
                out[k] = j;
            k++;
        }
    }
    return k;
}

int nn_replace(nn_net *net, int at, int count, const nn_node *nodes)
{
    if (at < 0 || at >= net->count || count < 1)
        return err_set("replace: no layer #%d in a network of %d", at + 1, net->count);
    int total = net->count + count - 1;
    nn_node *fresh = calloc((size_t)total, sizeof *fresh);
    if (!fresh)
        return err_set("out of memory");
    for (int k = 0; k < count; k++)
        if (!(fresh[at + k].name = strdup(nodes[k].name ? nodes[k].name : ""))) {
            for (int j = 0; j < k; j++)
                free(fresh[at + j].name);
            free(fresh);
            return err_set("out of memory");
        }
    int shift = count - 1;
    for (int j = 0; j < net->count; j++) {
        if (j == at)
            continue;
        nn_node n = net->nodes[j];
        for (int s = 0; s < 2; s++)
            if (n.in[s] >= at) /* readers of at read the chain's end; later nodes move */
                n.in[s] += shift;
        fresh[j < at ? j : j + shift] = n;
    }
    for (int k = 0; k < count; k++) {
        char *name = fresh[at + k].name;
        fresh[at + k] = nodes[k];
        fresh[at + k].name = name;
        fresh[at + k].in[0] = k == 0 ? net->nodes[at].in[0] : at + k - 1;
        fresh[at + k].in[1] = -2;
    }
    nn_node_clear(&net->nodes[at]);
    free(net->nodes);
    net->nodes = fresh;
    net->count = net->cap = total;
    nn_invalidate(net);
    return 0;
}

static nn_node conv_like(const nn_node *base, const char *name, int out, int kh, int kw, int sh, int sw,
                         int ph, int pw, int bias)
{
    return (nn_node){.op = NN_CONV, .name = (char *)name, .in = {0, -2}, .out = out, .kh = kh, .kw = kw,
                     .sh = sh, .sw = sw, .ph = ph, .pw = pw, .groups = 1, .has_bias = bias && base->has_bias};
}

int nn_rewrite(nn_net *net, const char *layer, const char *op, int rank, int rank2)
{
    int at = nn_find(net, layer);
    if (at < 0)
        return err_set("rewrite %s: the network has no layer %s", op, layer);
    const nn_node *n = &net->nodes[at];
    int conv = n->op == NN_CONV && n->groups == 1, linear = n->op == NN_LINEAR;
    char names[3][256];
    nn_node chain[3];
    int count = 0;
    if (strcmp(op, "vh") == 0 || strcmp(op, "svd") == 0 || strcmp(op, "tucker2") == 0 ||
        strcmp(op, "prune_channels") == 0) {
        if (!conv && !(linear && strcmp(op, "svd") == 0))
            return err_set("rewrite %s: layer %s is a %s, not a%s", op, layer, nn_op_name(n->op),
                           strcmp(op, "svd") == 0 ? " convolution or linear layer" : " convolution");
        if (rank < 1 || (strcmp(op, "tucker2") == 0 && rank2 < 1))
            return err_set("rewrite %s: layer %s: rank %d must be at least 1", op, layer,
                           rank < 1 ? rank : rank2);
    }
    if (strcmp(op, "vh") == 0) {
        snprintf(names[0], sizeof names[0], "%s.v", layer);
        snprintf(names[1], sizeof names[1], "%s.h", layer);
        chain[0] = conv_like(n, names[0], rank, n->kh, 1, n->sh, 1, n->ph, 0, 0);
        chain[1] = conv_like(n, names[1], n->out, 1, n->kw, 1, n->sw, 0, n->pw, 1);
        count = 2;
    } else if (strcmp(op, "svd") == 0) {
        snprintf(names[0], sizeof names[0], "%s.a", layer);
        snprintf(names[1], sizeof names[1], "%s.b", layer);
        if (linear) {
            chain[0] = (nn_node){.op = NN_LINEAR, .name = names[0], .out = rank};
            chain[1] = (nn_node){.op = NN_LINEAR, .name = names[1], .out = n->out, .has_bias = n->has_bias};
        } else {
            chain[0] = conv_like(n, names[0], rank, n->kh, n->kw, n->sh, n->sw, n->ph, n->pw, 0);
            chain[1] = conv_like(n, names[1], n->out, 1, 1, 1, 1, 0, 0, 1);
        }
        count = 2;
    } else if (strcmp(op, "tucker2") == 0) {
        snprintf(names[0], sizeof names[0], "%s.first", layer);
        snprintf(names[1], sizeof names[1], "%s.core", layer);
        snprintf(names[2], sizeof names[2], "%s.last", layer);
        chain[0] = conv_like(n, names[0], rank, 1, 1, 1, 1, 0, 0, 0);
        chain[1] = conv_like(n, names[1], rank2, n->kh, n->kw, n->sh, n->sw, n->ph, n->pw, 0);
        chain[2] = conv_like(n, names[2], n->out, 1, 1, 1, 1, 0, 0, 1);
        count = 3;
    } else if (strcmp(op, "prune_channels") == 0) {
        if (rank > n->out)
            return err_set("rewrite prune_channels: layer %s has %d channels, cannot keep %d", layer, n->out, rank);
        net->nodes[at].out = rank;
        nn_invalidate(net);
        return at;
    } else {
        return at; /* values only */
    }
    return nn_replace(net, at, count, chain) == 0 ? at : -1;
}

int nn_layer_nodes(const nn_net *net, const char *layer, int *out, int max)
{
    /* the chains nn_rewrite makes, by the suffixes of their nodes (consecutive, in this order) */
    static const char *const chains[3][3] = {{"v", "h", NULL}, {"a", "b", NULL}, {"first", "core", "last"}};
    int at = nn_find(net, layer);
    if (at >= 0) {
        if (max > 0)
            out[0] = at;
        return 1;
    }
    char buf[300];
    for (int c = 0; c < 3; c++) {
        snprintf(buf, sizeof buf, "%s.%s", layer, chains[c][0]);
        if ((at = nn_find(net, buf)) < 0)
            continue;
        int k = 0;
        for (; k < 3 && chains[c][k]; k++)
            if (k < max)
                out[k] = at + k;
        return k;
    }
    return 0;
}

static cJSON *arch_object(const nn_net *net)
{
    cJSON *o = net->arch ? cJSON_Parse(net->arch) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    return o;
}

int nn_arch_add_rewrite(nn_net *net, const char *layer, const char *op, int rank, int rank2, const char *extra)
{
    cJSON *o = arch_object(net), *list = cJSON_GetObjectItemCaseSensitive(o, "rewrites");
    if (!cJSON_IsArray(list)) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "rewrites");
        list = cJSON_AddArrayToObject(o, "rewrites");
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "layer", layer);
    cJSON_AddStringToObject(r, "op", op);
    if (strcmp(op, "vh") == 0 || strcmp(op, "svd") == 0) {
        cJSON_AddNumberToObject(r, "rank", rank);
    } else if (strcmp(op, "tucker2") == 0) {
        int ranks[2] = {rank, rank2};
        cJSON_AddItemToObject(r, "ranks", cJSON_CreateIntArray(ranks, 2));
    } else if (strcmp(op, "prune_channels") == 0) {
        cJSON_AddNumberToObject(r, "keep", rank);
    }
    cJSON *x = extra ? cJSON_Parse(extra) : NULL, *e;
    if (cJSON_IsObject(x)) {
        cJSON_ArrayForEach(e, x) cJSON_AddItemToObject(r, e->string, cJSON_Duplicate(e, 1));
    }
    cJSON_Delete(x);
    cJSON_AddItemToArray(list, r);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return err_set("out of memory");
    free(net->arch);
    net->arch = text;
    return 0;
}

/* Replays one record; "rank", "ranks" or "keep" give the structure. */
static int replay(nn_net *net, const cJSON *r, int index)
{
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(r, "layer");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(r, "op");
    if (!cJSON_IsString(layer) || !cJSON_IsString(op))
        return err_set("rewrite #%d has no layer or op", index + 1);
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(r, "rank");
    const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(r, "ranks");
    const cJSON *keep = cJSON_GetObjectItemCaseSensitive(r, "keep");
    int a = 0, b = 0;
    if (strcmp(op->valuestring, "tucker2") == 0) {
        if (cJSON_GetArraySize(ranks) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(ranks, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(ranks, 1)))
            return err_set("rewrite #%d (tucker2 of %s) needs two ranks", index + 1, layer->valuestring);
        a = cJSON_GetArrayItem(ranks, 0)->valueint;
        b = cJSON_GetArrayItem(ranks, 1)->valueint;
    } else if (strcmp(op->valuestring, "prune_channels") == 0) {
        if (!cJSON_IsNumber(keep))
            return err_set("rewrite #%d (prune_channels of %s) has no keep count", index + 1, layer->valuestring);
        a = keep->valueint;
    } else if (strcmp(op->valuestring, "vh") == 0 || strcmp(op->valuestring, "svd") == 0) {
        if (!cJSON_IsNumber(rank))
            return err_set("rewrite #%d (%s of %s) has no rank", index + 1, op->valuestring, layer->valuestring);
        a = rank->valueint;
    } else {
        /* values only (quantize, prune_weights, svd_dense): nothing to rebuild, but the layer must
         * be there, itself or as the chain a structural rewrite made of it */
        int nodes[3];
        if (nn_layer_nodes(net, layer->valuestring, nodes, 3) == 0)
            return err_set("rewrite %s: the network has no layer %s", op->valuestring, layer->valuestring);
        return 0;
    }
    return nn_rewrite(net, layer->valuestring, op->valuestring, a, b) < 0 ? -1 : 0;
}

nn_net *nn_arch_graph(const char *json)
{
    nn_spec s;
    if (nn_spec_from_json(&s, json) != 0)
        return NULL;
    nn_net *net = nn_build_graph(&s);
    if (!net)
        return NULL;
    cJSON *o = cJSON_Parse(json);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "rewrites"), *r;
    int rc = 0, k = 0;
    if (list && !cJSON_IsArray(list))
        rc = err_set("architecture record: rewrites is not a list");
    cJSON_ArrayForEach(r, list)
    {
        if (rc == 0 && replay(net, r, k++) != 0)
            rc = err_prefix("architecture record");
    }
    cJSON_Delete(o);
    if (rc == 0 && k > 0) {
        free(net->arch);
        if (!(net->arch = strdup(json)))
            rc = err_set("out of memory");
    }
    if (rc != 0) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}

nn_net *nn_from_arch(const char *json)
{
    nn_spec s;
    nn_net *net = nn_arch_graph(json);
    if (net && (nn_spec_from_json(&s, json) != 0 || nn_init_params(net, s.seed) != 0)) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}
