/* gp_kernel: stationary ARD covariance functions k(x, x') = s2 * g(r2), r2 = sum_j ((x_j - x'_j) / l_j)^2,
 * with their derivatives (for the marginal-likelihood gradient and for acquisition gradients). */
#ifndef BOENGINE_GP_KERNEL_H
#define BOENGINE_GP_KERNEL_H

typedef enum gp_kernel_kind { GP_MATERN52, GP_MATERN32, GP_SE } gp_kernel_kind;

/* "matern52", "matern32", "se" (also "rbf"); -1 with err_set for an unknown name. */
int gp_kernel_parse(const char *name, gp_kernel_kind *out);
const char *gp_kernel_name(gp_kernel_kind kind);

/* The unit-variance profile g(r2) and, in *dg, its derivative dg/d(r2) (finite at r2 = 0 for all three). */
double gp_kernel_profile(gp_kernel_kind kind, double r2, double *dg);

/* Scaled squared distance sum_j ((a_j - b_j) * inv_l_j)^2. */
double gp_kernel_r2(int d, const double *a, const double *b, const double *inv_l);

/* k(a, b) for lengthscales given as inverses; when grad is not NULL it receives dk/da (d values). */
double gp_kernel_eval(gp_kernel_kind kind, int d, const double *a, const double *b, const double *inv_l,
                      double outputscale, double *grad);

#endif
