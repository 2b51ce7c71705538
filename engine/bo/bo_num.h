/* bo_num: a double in a message, with NaN and the infinities spelled out ("NaN", "inf", "-inf"):
 * printf writes "-nan" or "nan" depending on a sign bit that means nothing. */
#ifndef BOENGINE_BO_NUM_H
#define BOENGINE_BO_NUM_H

#include <math.h>
#include <stdio.h>

static inline const char *bo_num_text(char *buf, size_t size, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "inf" : "-inf";
    snprintf(buf, size, "%g", v);
    return buf;
}

/* For a printf argument: the text lives until the end of the enclosing block. */
#define BO_NUM(v) bo_num_text((char[32]){0}, 32, (v))

#endif
