#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/timer.h"

static int quiet;
static int bar_open; /* a progress bar is drawn on the terminal without its line ended */

void log_set_quiet(int q) { quiet = q; }
int log_is_quiet(void) { return quiet; }

void log_end_line(void)
{
    if (bar_open) {
        fputc('\n', stderr);
        fflush(stderr);
        bar_open = 0;
    }
}

static void vlog(const char *tag, const char *fmt, va_list ap)
{
    log_end_line();
    fputs(tag, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_info(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void progress_start(progress *p, const char *label, int64_t total)
{
    log_end_line();
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->start = timer_now();
    p->last_draw = 0;
    p->tty = isatty(STDERR_FILENO);
}

static void format_duration(double s, char *buf, size_t size)
{
    if (s < 0 || s > 1e7)
        snprintf(buf, size, "?");
    else if (s < 60)
        snprintf(buf, size, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, size, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void draw(progress *p, int64_t done, const char *extra, int final)
{
    double elapsed = timer_now() - p->start;
    double frac = p->total > 0 ? (double)done / (double)p->total : 1.0;
    char eta[32], took[32];
    format_duration(frac > 0 ? elapsed * (1 - frac) / frac : -1, eta, sizeof eta);
    format_duration(elapsed, took, sizeof took);
    if (p->tty) {
        char bar[21];
        int filled = (int)(frac * 20 + 0.5);
        for (int i = 0; i < 20; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld %s %s %s\033[K%s", p->label, bar, (long long)done,
                (long long)p->total, final ? "in" : "ETA", final ? took : eta, extra ? extra : "",
                final ? "\n" : "");
        bar_open = !final;
    } else {
        fprintf(stderr, "%s %lld/%lld (%s %s) %s\n", p->label, (long long)done, (long long)p->total,
                final ? "took" : "ETA", final ? took : eta, extra ? extra : "");
    }
    fflush(stderr);
}

void progress_update(progress *p, int64_t done, const char *extra)
{
    if (quiet)
        return;
    double t = timer_now();
    /* a terminal is redrawn a few times a second; a log file gets a line every 10 s */
    if (t - p->last_draw < (p->tty ? 0.2 : 10.0))
        return;
    p->last_draw = t;
    draw(p, done, extra, 0);
}

void progress_end(progress *p, const char *extra)
{
    if (!quiet)
        draw(p, p->total, extra, 1);
}
