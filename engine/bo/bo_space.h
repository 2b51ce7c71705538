/* bo_space: the search box of a run: finite bounds per dimension, some dimensions integer (taking
 * the values lower, lower + 1, ..., upper), and the maps between the box and the unit cube in which
 * the GP and the proposal strategies work. */
#ifndef BOENGINE_BO_SPACE_H
#define BOENGINE_BO_SPACE_H

typedef struct bo_space {
    int d;
    double *lower, *upper; /* d each */
    int *levels;           /* d: upper - lower for an integer dimension, 0 for a continuous one */
} bo_space;

/* Copies the bounds; integer may be NULL (all continuous). -1 with err_set naming the dimension
 * ("bounds 2: ...") for bounds that are not finite, not increasing, or, for an integer dimension,
 * not integers within ±2147483647 and at most 2147483647 apart; or on out of memory. */
int bo_space_init(bo_space *s, int d, const double *lower, const double *upper, const int *integer);
void bo_space_free(bo_space *s);

/* -1 with err_set unless every coordinate of x is a number within the bounds (up to a slack of 1e-9
 * of the width, for points that went through the unit cube). */
int bo_space_check(const bo_space *s, const double *x);

/* The point as it is recorded: integer coordinates rounded to the nearest value, every coordinate
 * clamped to the bounds. out may be x. */
void bo_space_snap(const bo_space *s, const double *x, double *out);

/* Box to unit cube (integer dimensions on their grid k / levels) and back (clamped, integer
 * dimensions at the nearest value). */
void bo_space_to_unit(const bo_space *s, const double *x, double *u);
void bo_space_from_unit(const bo_space *s, const double *u, double *x);

/* A point of [0, 1)^d to the box, uniform in it when u is: continuous coordinates scaled, integer
 * ones split into levels + 1 equal cells, one per value. */
void bo_space_from_uniform(const bo_space *s, const double *u, double *x);

#endif
