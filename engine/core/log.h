/* log: the engine's voice on stderr: informational lines and progress bars with an ETA
 * (a redrawn bar on a terminal, plain lines otherwise). Silenced by --quiet. */
#ifndef BOENGINE_LOG_H
#define BOENGINE_LOG_H

#include <stdint.h>

void log_set_quiet(int quiet);
int log_is_quiet(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends the line of a progress bar left open on the terminal, so that other output (a log line,
 * the script's own print) starts on a line of its own. */
void log_end_line(void);

typedef struct progress {
    char label[64];
    int64_t total;
    double start, last_draw;
    int tty;
} progress;

void progress_start(progress *p, const char *label, int64_t total);
/* Reports done out of total, with an optional extra text such as "loss 0.31"; throttled. */
void progress_update(progress *p, int64_t done, const char *extra);
void progress_end(progress *p, const char *extra);

#endif
