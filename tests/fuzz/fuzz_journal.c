/* libFuzzer harness: the BO journal reader through a session: any bytes as the journal of a 2-D
 * problem (one integer dimension) are opened, checked and replayed; a session that opens asks for
 * its next point and tells it, so that what a journal can put into the GP and the strategy is
 * exercised too. A header must match the problem for its lines to be read: the seed corpus has
 * journals written by the engine. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bo/bo_session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double lower[2] = {0, 1}, upper[2] = {1, 8};
    static const int integer[2] = {0, 1};
    bo_session_config c;
    bo_session_config_defaults(&c, 2, lower, upper);
    c.integer = integer;
    c.init = 3;
    c.seed = 7;
    c.raw_samples = 64; /* a quick acquisition: the harness is about the journal */
    c.restarts = 2;
    c.fit_restarts = 0;
    c.strategy = size > 0 && data[0] % 3 == 0 ? "random" : "bo";
    c.acquisition = "ei_c";
    c.journal = fuzz_as_file(data, size);
    c.resume = "force"; /* past the experiment file, seed and strategy: to the lines themselves */
    bo_session *s = bo_session_open(&c);
    if (!s)
        return 0;
    double x[2];
    if (bo_session_count(s) < 40 && bo_session_ask(s, x, NULL) == 0) {
        bo_outcome o = {.y = sin(3 * x[0]) + x[1] / 8, .se = 0.01, .has_se = 1, .info = "{\"L\":1}"};
        bo_session_tell(s, x, &o, 0.5);
    }
    bo_session_free(s);
    return 0;
}
