/* tap: a minimal Test Anything Protocol writer for the C test programs run by prove. */
#ifndef BOENGINE_TAP_H
#define BOENGINE_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static int tap_count, tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* Passes when |got - want| <= tol * max(1, |want|). */
static inline int tap_near(double got, double want, double tol, const char *what)
{
    int ok = fabs(got - want) <= tol * fmax(1.0, fabs(want));
    tap_ok(ok, "%s", what);
    if (!ok)
        tap_diag("got %.10g, want %.10g (tolerance %.3g)", got, want, tol);
    return ok;
}

/* Passes when a call failed (failed is true) with a recorded message holding part1 and, if
 * given, part2; the message is shown otherwise. */
static inline int tap_error(int failed, const char *part1, const char *part2, const char *what)
{
    const char *m = err_msg();
    int ok = failed && strstr(m, part1) && (!part2 || strstr(m, part2));
    tap_ok(ok, "%s", what);
    if (!ok)
        tap_diag("failed %d, message: %s", failed, m);
    return ok;
}

/* Prints the plan at the end and returns the exit status. */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
