/* bo_functions: test functions for minimization (docs/method.md §7): sinone, Branin, Hartmann-6, Levy and
 * Ackley, with their domains and known minima. */
#ifndef BOENGINE_BO_FUNCTIONS_H
#define BOENGINE_BO_FUNCTIONS_H

#include <stdint.h>

typedef struct bo_function {
    const char *name;
    int dim;          /* fixed dimension, or 0 for any (Levy, Ackley) */
    double minimum;   /* the global minimum value */
    double (*f)(int d, const double *x);
    void (*bounds)(int d, double *lower, double *upper);
    void (*argmin)(int d, double *x); /* one global minimizer */
} bo_function;

/* NULL with err_set for an unknown name. */
const bo_function *bo_function_find(const char *name);
/* The functions in a fixed order, terminated by a NULL name. */
const bo_function *bo_function_list(void);

/* f at x (d coordinates) plus, when sigma > 0, Gaussian noise of standard deviation sigma drawn from
 * seed (the same seed gives the same draw). -1 with err_set for a sigma that is not a finite
 * number >= 0. */
int bo_function_eval(const bo_function *f, int d, const double *x, double sigma, uint64_t seed, double *y);

#endif
