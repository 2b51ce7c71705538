#include "bo/bo_strategy.h"

#include <string.h>

#include "core/err.h"

static const bo_strategy *const strategies[] = {&bo_strategy_bo, &bo_strategy_random, &bo_strategy_sobol,
                                                    &bo_strategy_uniform, &bo_strategy_external, NULL};

const bo_strategy *bo_strategy_find(const char *name)
{
    for (int i = 0; strategies[i]; i++)
        if (strcmp(name, strategies[i]->name) == 0)
            return strategies[i];
    char known[128] = "";
    for (int i = 0; strategies[i]; i++) {
        if (i)
            strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, strategies[i]->name, sizeof known - strlen(known) - 1);
    }
    err_set("unknown strategy '%s' (known: %s)", name, known);
    return NULL;
}
