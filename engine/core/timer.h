/* timer: monotonic wall-clock time, for durations (progress, the time of an evaluation), and
 * process-wide time accounts: named sums of the time spent in parts of the engine (the GP fit, the
 * acquisition, candidate builds, reference and candidate forward passes), so that a benchmark can
 * split a whole run's time without instrumenting the code it calls (boengine.timing() in Lua). */
#ifndef BOENGINE_TIMER_H
#define BOENGINE_TIMER_H

/* Seconds on a monotonic clock (an arbitrary origin: differences only). */
double timer_now(void);

/* Adds seconds (and one occurrence) to the account of that name, created on first use. name must
 * be a string literal (it is kept, not copied). At most TIMER_ACCOUNTS names; later ones are
 * dropped. Meant for the main thread (not synchronized). */
#define TIMER_ACCOUNTS 32
void timer_account(const char *name, double seconds);

/* The accounts so far, in order of creation: 0 <= i < timer_account_count(). */
int timer_account_count(void);
const char *timer_account_name(int i);
double timer_account_seconds(int i);
long long timer_account_calls(int i);

#endif
