/* bo_strategy: where the proposals of a run come from. A strategy is a table of operations on a
 * state of its own: Bayesian optimization (bo_loop.c) is one, the baselines random search and a
 * Sobol sequence and the uniform baseline on the box's diagonal (bo_baselines.c) are others. The session asks and tells whichever was chosen, so
 * that every strategy runs through the same journal, history, best point and progress. A new
 * strategy is a file with its table plus a line in bo_strategy.c's list. */
#ifndef BOENGINE_BO_STRATEGY_H
#define BOENGINE_BO_STRATEGY_H

#include <stdint.h>

#include "bo/bo_loop.h"

typedef struct bo_strategy {
    const char *name;     /* as chosen by strategy = "..." */
    int uses_acquisition; /* the acquisition option means something (and a journal records it) */
    /* A new state for the run o describes (o passed bo_options_check and its bounds bo_space_init);
     * NULL with err_set. */
    void *(*create)(const bo_options *o);
    void (*destroy)(void *state);
    /* Proposal `number` (1-based: the evaluation it is meant to become) as d coordinates in the box,
     * integer dimensions at integers. The same number after the same tells gives the same point, so
     * that a run rebuilt from its journal goes on as the original would have. A strategy may refuse
     * a number other than the next evaluation's (BO proposes one point at a time). */
    int (*ask)(void *state, int64_t number, double *x);
    /* One evaluation, x in the box with integer coordinates rounded; se NaN when unknown. */
    int (*tell)(void *state, const double *x, double y, double se);
    /* The recommended evaluation (BO: the lowest posterior mean); NULL: the lowest y told. */
    int (*best)(void *state, bo_best_point *out);
    /* Optional: proposal `number` seeing the first `told` evaluations and m pending points (caller
     * units), as bo_ask_pending. NULL: the strategy's ask answers any number (its proposals do not
     * depend on the results). */
    int (*ask_pending)(void *state, int64_t number, int told, int m, const double *pending, double *x);
} bo_strategy;

extern const bo_strategy bo_strategy_bo, bo_strategy_random, bo_strategy_sobol, bo_strategy_uniform;

/* The strategy of that name ("bo", "random", "sobol", "uniform"); NULL with err_set listing the known ones. */
const bo_strategy *bo_strategy_find(const char *name);

/* Proposals from a driver process over two pipes (bo_external.c; scripts/tpe drives it with TPE). */
extern const bo_strategy bo_strategy_external;

#endif
