/* err: the last error of this thread, recorded by library code and reported by the caller.
 * Library functions never print or exit; they call err_set() and return -1 or NULL. */
#ifndef BOENGINE_ERR_H
#define BOENGINE_ERR_H

/* Records a printf-style message; returns -1 so that `return err_set(...)` reads naturally. */
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepends "prefix: " to the recorded message (e.g. a file name added by an outer layer). */
int err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The recorded message ("" when none). */
const char *err_msg(void);

#endif
