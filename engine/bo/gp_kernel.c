#include "bo/gp_kernel.h"

#include <math.h>
#include <string.h>

#include "core/err.h"

int gp_kernel_parse(const char *name, gp_kernel_kind *out)
{
    if (strcmp(name, "matern52") == 0)
        *out = GP_MATERN52;
    else if (strcmp(name, "matern32") == 0)
        *out = GP_MATERN32;
    else if (strcmp(name, "se") == 0 || strcmp(name, "rbf") == 0)
        *out = GP_SE;
    else
        return err_set("unknown kernel '%s' (known: matern52, matern32, se)", name);
    return 0;
}

const char *gp_kernel_name(gp_kernel_kind kind)
{
    switch (kind) {
    case GP_MATERN52: return "matern52";
    case GP_MATERN32: return "matern32";
    case GP_SE: return "se";
    }
    return "?";
}

double gp_kernel_profile(gp_kernel_kind kind, double r2, double *dg)
{
    switch (kind) {
    case GP_MATERN52: {
        /* g = (1 + sqrt5 r + 5/3 r^2) e^{-sqrt5 r};  dg/d(r^2) = -5/6 (1 + sqrt5 r) e^{-sqrt5 r} */
        double r = sqrt(r2), e = exp(-sqrt(5.0) * r);
        if (dg)
            *dg = -(5.0 / 6.0) * (1.0 + sqrt(5.0) * r) * e;
        return (1.0 + sqrt(5.0) * r + (5.0 / 3.0) * r2) * e;
    }
    case GP_MATERN32: {
        /* g = (1 + sqrt3 r) e^{-sqrt3 r};  dg/d(r^2) = -3/2 e^{-sqrt3 r} */
        double r = sqrt(r2), e = exp(-sqrt(3.0) * r);
        if (dg)
            *dg = -1.5 * e;
        return (1.0 + sqrt(3.0) * r) * e;
    }
    case GP_SE: {
        double g = exp(-0.5 * r2);
        if (dg)
            *dg = -0.5 * g;
        return g;
    }
    }
    return 0;
}

double gp_kernel_r2(int d, const double *a, const double *b, const double *inv_l)
{
    double r2 = 0;
    for (int j = 0; j < d; j++) {
        double t = (a[j] - b[j]) * inv_l[j];
        r2 += t * t;
    }
    return r2;
}

double gp_kernel_eval(gp_kernel_kind kind, int d, const double *a, const double *b, const double *inv_l,
                      double outputscale, double *grad)
{
    double r2 = gp_kernel_r2(d, a, b, inv_l), dg;
    double k = outputscale * gp_kernel_profile(kind, r2, grad ? &dg : NULL);
    if (grad) {
        /* dr2/da_j = 2 (a_j - b_j) / l_j^2 */
        double c = 2.0 * outputscale * dg;
        for (int j = 0; j < d; j++)
            grad[j] = c * (a[j] - b[j]) * inv_l[j] * inv_l[j];
    }
    return k;
}
