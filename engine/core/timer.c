#include "core/timer.h"

#include <string.h>
#include <time.h>

double timer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static struct {
    const char *name;
    double seconds;
    long long calls;
} accounts[TIMER_ACCOUNTS];
static int naccounts;

void timer_account(const char *name, double seconds)
{
    int i = 0;
    while (i < naccounts && strcmp(accounts[i].name, name) != 0)
        i++;
    if (i == naccounts) {
        if (naccounts == TIMER_ACCOUNTS)
            return;
        accounts[naccounts++].name = name;
    }
    accounts[i].seconds += seconds;
    accounts[i].calls++;
}

int timer_account_count(void) { return naccounts; }
const char *timer_account_name(int i) { return i >= 0 && i < naccounts ? accounts[i].name : NULL; }
double timer_account_seconds(int i) { return i >= 0 && i < naccounts ? accounts[i].seconds : 0; }
long long timer_account_calls(int i) { return i >= 0 && i < naccounts ? accounts[i].calls : 0; }
