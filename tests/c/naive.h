/* naive: direct loop implementations of every layer kind, the independent reference that the
 * oneDNN execution is checked against. Plain NCHW float arrays; accumulation in double. */
#ifndef BOENGINE_NAIVE_H
#define BOENGINE_NAIVE_H

#include <math.h>

static inline void naive_conv(const float *x, int n, int c, int h, int w, const float *wt, const float *bias,
                              int oc, int kh, int kw, int sh, int sw, int ph, int pw, int groups, float *y,
                              int oh, int ow)
{
    int cg = c / groups, og = oc / groups;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < oc; o++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double s = bias ? bias[o] : 0;
                    int g = o / og;
                    for (int ci = 0; ci < cg; ci++)
                        for (int u = 0; u < kh; u++)
                            for (int v = 0; v < kw; v++) {
                                int hi = i * sh - ph + u, wi = j * sw - pw + v;
                                if (hi < 0 || hi >= h || wi < 0 || wi >= w)
                                    continue;
                                s += (double)x[((b * c + g * cg + ci) * h + hi) * w + wi] *
                                     wt[((o * cg + ci) * kh + u) * kw + v];
                            }
                    y[((b * oc + o) * oh + i) * ow + j] = (float)s;
                }
}

/* Max or average pooling with PyTorch's semantics (padding excluded from max; average counts
 * padding when count_include_pad, windows clipped to input + padding). */
static inline void naive_pool(const float *x, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
                              int ph, int pw, int is_max, float *y, int oh, int ow)
{
    for (int bc = 0; bc < n * c; bc++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double m = -INFINITY, s = 0;
                int h0 = i * sh - ph, w0 = j * sw - pw;
                int h1 = h0 + kh < h + ph ? h0 + kh : h + ph, w1 = w0 + kw < w + pw ? w0 + kw : w + pw;
                int count = (h1 - h0) * (w1 - w0);
                for (int u = h0; u < h0 + kh; u++)
                    for (int v = w0; v < w0 + kw; v++) {
                        if (u < 0 || u >= h || v < 0 || v >= w)
                            continue;
                        double e = x[(bc * h + u) * w + v];
                        m = e > m ? e : m;
                        s += e;
                    }
                y[(bc * oh + i) * ow + j] = (float)(is_max ? m : s / count);
            }
}

static inline void naive_adaptive_avg(const float *x, int n, int c, int h, int w, float *y, int oh, int ow)
{
    for (int bc = 0; bc < n * c; bc++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int h0 = (int)floor((double)i * h / oh), h1 = (int)ceil((double)(i + 1) * h / oh);
                int w0 = (int)floor((double)j * w / ow), w1 = (int)ceil((double)(j + 1) * w / ow);
                double s = 0;
                for (int u = h0; u < h1; u++)
                    for (int v = w0; v < w1; v++)
                        s += x[(bc * h + u) * w + v];
                y[(bc * oh + i) * ow + j] = (float)(s / ((h1 - h0) * (w1 - w0)));
            }
}

static inline void naive_linear(const float *x, int n, int in, const float *wt, const float *bias, int out, float *y)
{
    for (int b = 0; b < n; b++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0;
            for (int k = 0; k < in; k++)
                s += (double)x[b * in + k] * wt[o * in + k];
            y[b * out + o] = (float)s;
        }
}

static inline void naive_batchnorm(float *x, int n, int c, int hw, const float *gamma, const float *beta,
                                   const float *mean, const float *var, float eps)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int k = 0; k < hw; k++) {
                float *e = &x[(b * c + ch) * hw + k];
                *e = (float)((*e - mean[ch]) / sqrt((double)var[ch] + eps) * gamma[ch] + beta[ch]);
            }
}

static inline void naive_relu(float *x, long count)
{
    for (long i = 0; i < count; i++)
        x[i] = x[i] > 0 ? x[i] : 0;
}

static inline void naive_add(float *x, const float *y, long count)
{
    for (long i = 0; i < count; i++)
        x[i] += y[i];
}

static inline void naive_softmax(float *x, int n, int k)
{
    for (int b = 0; b < n; b++) {
        double m = -INFINITY, s = 0;
        for (int i = 0; i < k; i++)
            m = x[b * k + i] > m ? x[b * k + i] : m;
        for (int i = 0; i < k; i++)
            s += exp(x[b * k + i] - m);
        for (int i = 0; i < k; i++)
            x[b * k + i] = (float)(exp(x[b * k + i] - m) / s);
    }
}

#endif
