/* Low-rank families (vh, svd, tucker2): each layer's SVD (or HOSVD) is computed once, with the
 * factors laid out so that the rank-K layers of any θ are leading rows of a matrix (or short
 * gathers from it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/err.h"
#include "nn/edit.h"

typedef struct lr_cache {
    int r;          /* vh, svd: full rank min(m, n) */
    float *s;       /* singular values, descending */
    float *first;   /* vh: r × C·kh, row k = sqrt(s_k)·u_k; svd: r × n, row k = sqrt(s_k)·v_k */
    float *second;  /* vh: N × r × kw (sqrt(s_k)·v_k split by output channel); svd: m × r = U·sqrt(S) */
    int r_in, r_out;/* tucker2: ranks of the input (C) and output (N) unfoldings */
    float *uin_t;   /* tucker2: r_in × C, leading left singular vectors of the mode-2 unfolding */
    float *uout;    /* tucker2: N × r_out, those of the mode-1 unfolding */
    float *core;    /* tucker2: r_out × r_in × kh·kw, the full core W ×1 Uout^T ×2 Uin^T */
} lr_cache;

static void lr_release(void *cache)
{
    lr_cache *c = cache;
    if (!c)
        return;
    free(c->s);
    free(c->first);
    free(c->second);
    free(c->uin_t);
    free(c->uout);
    free(c->core);
    free(c);
}

static float *floats(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

/* Thin SVD into fresh arrays; a is overwritten. */
static int svd_alloc(int m, int n, float *a, float **u, float **s, float **vt)
{
    int r = m < n ? m : n;
    *u = floats((int64_t)m * r);
    *s = floats(r);
    *vt = floats((int64_t)r * n);
    if (!*u || !*s || !*vt)
        return err_set("out of memory");
    return cp_svd(m, n, a, *u, *s, *vt);
}

/* W (N×C×k2) ×2 Ut (rows: r vectors over C): T[n][b][p] = Σ_c Ut[b][c]·W[n][c][p], as one GEMM on
 * the mode-2 unfolding (many small GEMMs cost more in thread start-ups than in arithmetic). */
static int mode2_product(const float *w, int N, int C, int k2, const float *ut, int r, float *t)
{
    float *a = floats((int64_t)C * N * k2), *g = floats((int64_t)r * N * k2);
    int rc = -1;
    if (!a || !g) {
        err_set("out of memory");
        goto done;
    }
    for (int o = 0; o < N; o++) /* W as C × (N·k2) */
        for (int i = 0; i < C; i++)
            memcpy(a + ((int64_t)i * N + o) * k2, w + ((int64_t)o * C + i) * k2, (size_t)k2 * sizeof *a);
    if (cp_gemm('N', 'N', r, N * k2, C, ut, C, a, N * k2, g, N * k2) != 0)
        goto done;
    for (int b = 0; b < r; b++) /* (r, N, k2) → (N, r, k2) */
        for (int o = 0; o < N; o++)
            memcpy(t + ((int64_t)o * r + b) * k2, g + ((int64_t)b * N + o) * k2, (size_t)k2 * sizeof *t);
    rc = 0;
done:
    free(a);
    free(g);
    return rc;
}

static int prepare_vh(const tensor *w, lr_cache *c)
{
    int N = (int)w->shape[0], C = (int)w->shape[1], kh = (int)w->shape[2], kw = (int)w->shape[3];
    int m = C * kh, n = N * kw, r = m < n ? m : n;
    float *a = floats((int64_t)m * n), *u = NULL, *vt = NULL;
    int rc = -1;
    if (!a)
        return err_set("out of memory");
    /* the kernel as a (C·kh) × (N·kw) matrix: rows (c, y), columns (n, x) */
    for (int o = 0; o < N; o++)
        for (int i = 0; i < C; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    a[(int64_t)(i * kh + y) * n + o * kw + x] = w->data[(((int64_t)o * C + i) * kh + y) * kw + x];
    if (svd_alloc(m, n, a, &u, &c->s, &vt) != 0)
        goto done;
    c->r = r;
    c->first = floats((int64_t)r * m);
    c->second = floats((int64_t)N * r * kw);
    if (!c->first || !c->second) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < r; k++) {
        float sq = sqrtf(c->s[k]);
        for (int i = 0; i < m; i++)
            c->first[(int64_t)k * m + i] = u[(int64_t)i * r + k] * sq;
        for (int o = 0; o < N; o++)
            for (int x = 0; x < kw; x++)
                c->second[((int64_t)o * r + k) * kw + x] = sq * vt[(int64_t)k * n + o * kw + x];
    }
    rc = 0;
done:
    free(a);
    free(u);
    free(vt);
    return rc;
}

static int prepare_svd(const tensor *w, lr_cache *c)
{
    int m = (int)w->shape[0], n = (int)(w->numel / m), r = m < n ? m : n;
    float *a = floats(w->numel), *u = NULL, *vt = NULL;
    int rc = -1;
    if (!a)
        return err_set("out of memory");
    memcpy(a, w->data, (size_t)w->numel * sizeof *a);
    if (svd_alloc(m, n, a, &u, &c->s, &vt) != 0)
        goto done;
    c->r = r;
    c->first = vt;
    c->second = u;
    vt = u = NULL;
    for (int k = 0; k < r; k++) {
        float sq = sqrtf(c->s[k]);
        for (int j = 0; j < n; j++)
            c->first[(int64_t)k * n + j] *= sq;
        for (int i = 0; i < m; i++)
            c->second[(int64_t)i * r + k] *= sq;
    }
    rc = 0;
done:
    free(a);
    free(u);
    free(vt);
    return rc;
}

static int prepare_tucker2(const tensor *w, lr_cache *c)
{
    int N = (int)w->shape[0], C = (int)w->shape[1], k2 = (int)(w->shape[2] * w->shape[3]);
    int64_t numel = w->numel;
    float *a = floats(numel), *u = NULL, *s = NULL, *vt = NULL, *t = NULL;
    int rc = -1;
    if (!a)
        return err_set("out of memory");
    /* mode 1 (output channels): W as N × C·k2 */
    memcpy(a, w->data, (size_t)numel * sizeof *a);
    if (svd_alloc(N, C * k2, a, &c->uout, &s, &vt) != 0)
        goto done;
    c->r_out = N < C * k2 ? N : C * k2;
    free(s);
    free(vt);
    s = vt = NULL;
    /* mode 2 (input channels): W as C × N·k2 */
    for (int o = 0; o < N; o++)
        for (int i = 0; i < C; i++)
            memcpy(a + ((int64_t)i * N + o) * k2, w->data + ((int64_t)o * C + i) * k2, (size_t)k2 * sizeof *a);
    if (svd_alloc(C, N * k2, a, &u, &s, &vt) != 0)
        goto done;
    c->r_in = C < N * k2 ? C : N * k2;
    if (!(c->uin_t = floats((int64_t)c->r_in * C)) || !(t = floats((int64_t)N * c->r_in * k2)) ||
        !(c->core = floats((int64_t)c->r_out * c->r_in * k2))) {
        err_set("out of memory");
        goto done;
    }
    for (int b = 0; b < c->r_in; b++)
        for (int i = 0; i < C; i++)
            c->uin_t[(int64_t)b * C + i] = u[(int64_t)i * c->r_in + b];
    if (mode2_product(w->data, N, C, k2, c->uin_t, c->r_in, t) != 0 ||
        cp_gemm('T', 'N', c->r_out, c->r_in * k2, N, c->uout, c->r_out, t, c->r_in * k2, c->core, c->r_in * k2) != 0)
        goto done;
    rc = 0;
done:
    free(a);
    free(u);
    free(s);
    free(vt);
    free(t);
    return rc;
}

static int lr_prepare(const cp_family *f, cp_layer *l, int (*factor)(const tensor *, lr_cache *))
{
    lr_cache *c = calloc(1, sizeof *c);
    if (!c)
        return err_set("out of memory");
    l->cache = c;
    return factor(f->net->nodes[l->node].weight, c);
}

static int vh_prepare(const cp_family *f, cp_layer *l) { return lr_prepare(f, l, prepare_vh); }
static int svd_prepare(const cp_family *f, cp_layer *l) { return lr_prepare(f, l, prepare_svd); }
static int tucker2_prepare(const cp_family *f, cp_layer *l) { return lr_prepare(f, l, prepare_tucker2); }

static int svd_energy_rank(const cp_layer *l, double theta)
{
    const lr_cache *c = l->cache;
    double total = 0, run = 0;
    for (int k = 0; k < c->r; k++)
        total += c->s[k];
    int K = 0;
    for (int k = 0; k < c->r && total > 0; k++) {
        run += c->s[k];
        if (run / total < theta)
            K++;
    }
    return K;
}

static tensor *new_tensor(int a, int b, int h, int w)
{
    return h ? tensor_new(4, (int64_t[]){a, b, h, w}) : tensor_new(2, (int64_t[]){a, b});
}

static int set_bias(nn_node *dst, const nn_node *src)
{
    if (!src->bias)
        return 0;
    tensor *b = tensor_clone(src->bias);
    return b ? cp_set_param(dst, 1, b) : -1;
}

/* The two factors of a split layer into the chain at node (a then b, b with ref's bias); a and b
 * are taken over, NULL when their allocation failed. */
static int set_pair(nn_node *node, tensor *a, tensor *b, const nn_node *ref)
{
    if (!a || !b) {
        tensor_free(a);
        tensor_free(b);
        return -1;
    }
    if (cp_set_param(&node[0], 0, a) != 0) {
        tensor_free(b);
        return -1;
    }
    if (cp_set_param(&node[1], 0, b) != 0)
        return -1;
    return set_bias(&node[1], ref);
}

/* HOOI from the truncated HOSVD: alternately the best input factor for the current output one
 * and back; fills uin_t (R3×C), uout (N×R4) and core (R4×R3×k2). */
static int hooi(const tensor *w, const lr_cache *c, int R3, int R4, int iterations, float *uin_t, float *uout,
                float *core)
{
    int N = (int)w->shape[0], C = (int)w->shape[1], k2 = (int)(w->shape[2] * w->shape[3]);
    for (int b = 0; b < R3; b++)
        memcpy(uin_t + (int64_t)b * C, c->uin_t + (int64_t)b * C, (size_t)C * sizeof *uin_t);
    for (int o = 0; o < N; o++)
        memcpy(uout + (int64_t)o * R4, c->uout + (int64_t)o * c->r_out, (size_t)R4 * sizeof *uout);
    int64_t big = (int64_t)(N > C ? N : C) * (R3 > R4 ? R3 : R4) * k2;
    float *a = floats(big), *a2 = floats(big), *bt = floats((int64_t)N * R3 * k2), *u = NULL, *s = NULL, *vt = NULL;
    int rc = -1;
    if (!a || !a2 || !bt) {
        err_set("out of memory");
        goto done;
    }
    int update = R3 <= R4 * k2 && R4 <= R3 * k2; /* otherwise the HOSVD factors are already optimal */
    for (int it = 0; it < iterations && update; it++) {
        /* input factor: leading left singular vectors of (W ×1 Uout^T) unfolded along C */
        if (cp_gemm('T', 'N', R4, C * k2, N, uout, R4, w->data, C * k2, a, C * k2) != 0)
            goto done;
        for (int r = 0; r < R4; r++)
            for (int i = 0; i < C; i++)
                memcpy(a2 + ((int64_t)i * R4 + r) * k2, a + ((int64_t)r * C + i) * k2, (size_t)k2 * sizeof *a);
        if (svd_alloc(C, R4 * k2, a2, &u, &s, &vt) != 0)
            goto done;
        int rr = C < R4 * k2 ? C : R4 * k2;
        for (int b = 0; b < R3; b++)
            for (int i = 0; i < C; i++)
                uin_t[(int64_t)b * C + i] = u[(int64_t)i * rr + b];
        free(u), free(s), free(vt);
        u = s = vt = NULL;
        /* output factor: leading left singular vectors of W ×2 Uin^T unfolded along N */
        if (mode2_product(w->data, N, C, k2, uin_t, R3, bt) != 0)
            goto done;
        memcpy(a, bt, (size_t)N * R3 * k2 * sizeof *a);
        if (svd_alloc(N, R3 * k2, a, &u, &s, &vt) != 0)
            goto done;
        rr = N < R3 * k2 ? N : R3 * k2;
        for (int o = 0; o < N; o++)
            memcpy(uout + (int64_t)o * R4, u + (int64_t)o * rr, (size_t)R4 * sizeof *uout);
        free(u), free(s), free(vt);
        u = s = vt = NULL;
    }
    if (mode2_product(w->data, N, C, k2, uin_t, R3, bt) != 0 ||
        cp_gemm('T', 'N', R4, R3 * k2, N, uout, R4, bt, R3 * k2, core, R3 * k2) != 0)
        goto done;
    rc = 0;
done:
    free(a);
    free(a2);
    free(bt);
    free(u);
    free(s);
    free(vt);
    return rc;
}

static int build_tucker2(const cp_family *f, const cp_layer *l, const cp_choice *ch, nn_net *cand, int at)
{
    const lr_cache *c = l->cache;
    const nn_node *ref = &f->net->nodes[l->node];
    const tensor *w = ref->weight;
    int N = (int)w->shape[0], C = (int)w->shape[1], kh = (int)w->shape[2], kw = (int)w->shape[3], k2 = kh * kw;
    int R3 = ch->ranks[0], R4 = ch->ranks[1];
    tensor *first = new_tensor(R3, C, 1, 1), *core = new_tensor(R4, R3, kh, kw), *last = new_tensor(N, R4, 1, 1);
    int rc = -1;
    if (!first || !core || !last)
        goto done;
    if (f->opt.hooi > 0) {
        if (hooi(w, c, R3, R4, f->opt.hooi, first->data, last->data, core->data) != 0)
            goto done;
    } else {
        memcpy(first->data, c->uin_t, (size_t)R3 * C * sizeof(float));
        for (int a = 0; a < R4; a++)
            memcpy(core->data + (int64_t)a * R3 * k2, c->core + (int64_t)a * c->r_in * k2,
                   (size_t)R3 * k2 * sizeof(float));
        for (int o = 0; o < N; o++)
            memcpy(last->data + (int64_t)o * R4, c->uout + (int64_t)o * c->r_out, (size_t)R4 * sizeof(float));
    }
    tensor *parts[3] = {first, core, last};
    rc = 0;
    for (int k = 0; k < 3; k++) /* cp_set_param takes each tensor over, even when it fails */
        if (rc == 0)
            rc = cp_set_param(&cand->nodes[at + k], 0, parts[k]);
        else
            tensor_free(parts[k]);
    first = core = last = NULL;
    if (rc == 0)
        rc = set_bias(&cand->nodes[at + 2], ref);
done:
    tensor_free(first);
    tensor_free(core);
    tensor_free(last);
    return rc;
}

static int vh_rewrite(const cp_family *f, const cp_layer *l, const cp_choice *ch, nn_net *cand)
{
    const lr_cache *c = l->cache;
    const nn_node *ref = &f->net->nodes[l->node];
    int N = (int)l->shape[0], C = (int)l->shape[1], kh = (int)l->shape[2], kw = (int)l->shape[3], K = ch->rank;
    int at = nn_rewrite(cand, l->name, "vh", K, 0);
    if (at < 0)
        return -1;
    tensor *a = new_tensor(K, C, kh, 1), *b = new_tensor(N, K, 1, kw);
    if (a && b) {
        memcpy(a->data, c->first, (size_t)K * C * kh * sizeof(float));
        for (int o = 0; o < N; o++)
            memcpy(b->data + (int64_t)o * K * kw, c->second + (int64_t)o * c->r * kw, (size_t)K * kw * sizeof(float));
    }
    return set_pair(&cand->nodes[at], a, b, ref);
}

static int svd_rewrite(const cp_family *f, const cp_layer *l, const cp_choice *ch, nn_net *cand)
{
    const lr_cache *c = l->cache;
    const nn_node *ref = &f->net->nodes[l->node];
    const tensor *w = ref->weight;
    int conv = w->ndim == 4, K = ch->rank;
    int N = (int)w->shape[0], n = (int)(w->numel / N);
    if (f->opt.dense) { /* the layer keeps its shape: W_K = U_K S_K V_K^T */
        int at = nn_find(cand, l->name);
        tensor *t = tensor_new(w->ndim, w->shape);
        if (at < 0 || !t || cp_gemm('N', 'N', N, n, K, c->second, c->r, c->first, n, t->data, n) != 0) {
            tensor_free(t);
            return at < 0 ? err_set("layer %s is gone", l->name) : -1;
        }
        return cp_set_param(&cand->nodes[at], 0, t);
    }
    int at = nn_rewrite(cand, l->name, "svd", K, 0);
    if (at < 0)
        return -1;
    tensor *a = conv ? new_tensor(K, (int)w->shape[1], (int)w->shape[2], (int)w->shape[3]) : new_tensor(K, n, 0, 0);
    tensor *b = conv ? new_tensor(N, K, 1, 1) : new_tensor(N, K, 0, 0);
    if (a && b) {
        memcpy(a->data, c->first, (size_t)K * n * sizeof(float));
        for (int o = 0; o < N; o++)
            memcpy(b->data + (int64_t)o * K, c->second + (int64_t)o * c->r, (size_t)K * sizeof(float));
    }
    return set_pair(&cand->nodes[at], a, b, ref);
}

static int tucker2_rewrite(const cp_family *f, const cp_layer *l, const cp_choice *ch, nn_net *cand)
{
    int at = nn_rewrite(cand, l->name, "tucker2", ch->ranks[0], ch->ranks[1]);
    return at < 0 ? -1 : build_tucker2(f, l, ch, cand, at);
}

/* ---- the operations: eligibility, θ → rank, accounting, records --------------------------------- */

static const char *vh_ineligible(const nn_net *net, int i)
{
    const nn_node *n = &net->nodes[i];
    if (n->op != NN_CONV)
        return "not a convolution";
    return n->kh >= 2 && n->kw >= 2 ? NULL : "not a k×k convolution with k >= 2";
}

static const char *svd_ineligible(const nn_net *net, int i)
{
    nn_op op = net->nodes[i].op;
    return op == NN_CONV || op == NN_LINEAR ? NULL : "not a convolution or linear layer";
}

static const char *tucker2_ineligible(const nn_net *net, int i)
{
    const nn_node *n = &net->nodes[i];
    if (n->op != NN_CONV)
        return "not a convolution";
    return n->kh * n->kw >= 2 ? NULL : "a 1×1 convolution";
}

static int64_t numel(const cp_layer *l)
{
    int64_t n = 1;
    for (int d = 0; d < l->ndim; d++)
        n *= l->shape[d];
    return n;
}

/* vh factors the (C·kh) × (N·kw) matrix, svd the N × (C·kh·kw) one. */
static void vh_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    int64_t N = l->shape[0], C = l->shape[1], kh = l->shape[2], kw = l->shape[3];
    int64_t m = C * kh, k = N * kw;
    l->max_rank = (int)(m < k ? m : k);
    l->break_even = (int)(kh * kw * C * N / (kh * C + kw * N));
}

static void svd_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    int64_t m = l->shape[0], k = numel(l) / m;
    l->max_rank = (int)(m < k ? m : k);
    l->break_even = (int)(m * k / (m + k));
}

static void tucker2_describe(const cp_family *f, cp_layer *l)
{
    (void)f;
    l->max_rank = (int)(l->shape[1] > l->shape[0] ? l->shape[1] : l->shape[0]);
}

/* Fractions of the break-even rank (vh, svd) reach the full rank; tucker2's are of the channels. */
static void lr_range(const cp_family *f, cp_layer *l)
{
    l->min = 0;
    l->max = 1;
    l->lo = 0.05;
    l->hi = 1;
    l->integer = f->opt.mode == CP_ABSOLUTE;
    if (f->opt.mode == CP_ABSOLUTE) {
        l->min = l->lo = 1;
        l->max = l->hi = l->max_rank;
    } else if (f->opt.mode == CP_ENERGY) {
        l->hi = 0.95;
    } else if (l->break_even >= 0) {
        l->max = l->break_even > 0 ? (double)l->max_rank / l->break_even : 1;
        if (l->max < 1)
            l->max = 1;
    }
}

int64_t cp_fraction_rank(double theta, int b)
{
    if (b <= 0 || !(theta > 0))
        return 0;
    int64_t K = (int64_t)floor(theta * b);
    /* θ·b is rounded: at most one step either way */
    while (K > 0 && (double)K / b > theta)
        K--;
    while ((double)(K + 1) / b <= theta)
        K++;
    return K;
}

/* A rank rounded up to the family's multiple (none when 0 or 1), within [lo, hi]. */
static int round_rank(const cp_family *f, int64_t k, int lo, int hi)
{
    int m = f->opt.multiple;
    if (m > 1 && k > 0)
        k = (k + m - 1) / m * m;
    return (int)(k < lo ? lo : k > hi ? hi : k);
}

static int split_setting(const cp_family *f, cp_layer *l, double theta, cp_choice *c)
{
    int64_t K;
    if (f->opt.mode == CP_ABSOLUTE) {
        K = llround(theta);
    } else if (f->opt.mode == CP_ENERGY) { /* needs the singular values */
        if (!l->cache && f->ops->prepare(f, l) != 0)
            return err_prefix("%s: layer %s", f->ops->name, l->name);
        K = svd_energy_rank(l, theta);
    } else {
        K = cp_fraction_rank(theta, l->break_even);
    }
    c->rank = round_rank(f, K, f->opt.dense ? 0 : 1, l->max_rank);
    return 0;
}

static int tucker2_setting(const cp_family *f, cp_layer *l, double theta, cp_choice *c)
{
    int N = (int)l->shape[0], C = (int)l->shape[1], k2 = (int)(l->shape[2] * l->shape[3]);
    int r_in = C < N * k2 ? C : N * k2, r_out = N < C * k2 ? N : C * k2;
    int64_t a = f->opt.mode == CP_ABSOLUTE ? llround(theta) : llround(theta * C);
    int64_t b = f->opt.mode == CP_ABSOLUTE ? llround(theta) : llround(theta * N);
    c->ranks[0] = round_rank(f, a, 1, r_in);
    c->ranks[1] = round_rank(f, b, 1, r_out);
    return 0;
}

/* A dense reconstruction holds K·(m + n) weights' worth of information: count it so. */
static int svd_apply(const cp_family *f, const cp_layer *l, const cp_choice *c, cp_work *w)
{
    int nodes[3];
    if (!f->opt.dense || cp_layer_nodes(w->cand, l->name, nodes) != 1)
        return 0;
    w->weights[nodes[0]] = (int64_t)c->rank * (l->shape[0] + numel(l) / l->shape[0]);
    w->touched[nodes[0]] = 1;
    return 0;
}

static int vh_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    (void)f;
    return nn_arch_add_rewrite(cand, l->name, "vh", c->rank, 0, NULL);
}

static int svd_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    char extra[64];
    if (!f->opt.dense)
        return nn_arch_add_rewrite(cand, l->name, "svd", c->rank, 0, NULL);
    snprintf(extra, sizeof extra, "{\"rank\":%d}", c->rank);
    return nn_arch_add_rewrite(cand, l->name, "svd_dense", c->rank, 0, extra);
}

static int tucker2_record(const cp_family *f, const cp_layer *l, const cp_choice *c, nn_net *cand)
{
    (void)f;
    return nn_arch_add_rewrite(cand, l->name, "tucker2", c->ranks[0], c->ranks[1], NULL);
}

static void rank_report(const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "rank", .count = 1, .integer = 1, .value = {c->rank}};
}

static void tucker2_report(const cp_choice *c, cp_setting *s)
{
    *s = (cp_setting){.key = "ranks", .count = 2, .integer = 1, .value = {c->ranks[0], c->ranks[1]}};
}

static const char *const vh_options[] = {"rank", "multiple", NULL};
static const char *const svd_options[] = {"rank", "dense", "multiple", NULL};
static const char *const tucker2_options[] = {"rank", "hooi", "multiple", NULL};

const cp_family_ops cp_vh_ops = {
    .name = "vh", .role = CP_STRUCTURE, .modes = 1u << CP_ABSOLUTE, .options = vh_options,
    .ineligible = vh_ineligible, .describe = vh_describe, .range = lr_range, .setting = split_setting,
    .prepare = vh_prepare, .release = lr_release, .rewrite = vh_rewrite, .record = vh_record,
    .report = rank_report,
};

const cp_family_ops cp_svd_ops = {
    .name = "svd", .role = CP_STRUCTURE, .modes = 1u << CP_ABSOLUTE | 1u << CP_ENERGY, .options = svd_options,
    .ineligible = svd_ineligible, .describe = svd_describe, .range = lr_range, .setting = split_setting,
    .prepare = svd_prepare, .release = lr_release, .rewrite = svd_rewrite, .apply = svd_apply,
    .record = svd_record, .report = rank_report,
};

const cp_family_ops cp_tucker2_ops = {
    .name = "tucker2", .role = CP_STRUCTURE, .modes = 1u << CP_ABSOLUTE, .options = tucker2_options,
    .ineligible = tucker2_ineligible, .describe = tucker2_describe, .range = lr_range,
    .setting = tucker2_setting, .prepare = tucker2_prepare, .release = lr_release, .rewrite = tucker2_rewrite,
    .record = tucker2_record, .report = tucker2_report,
};
