/* timer: monotonic wall-clock time, for durations (progress, the time of an evaluation). */
#ifndef BOENGINE_TIMER_H
#define BOENGINE_TIMER_H

/* Seconds on a monotonic clock (an arbitrary origin: differences only). */
double timer_now(void);

#endif
