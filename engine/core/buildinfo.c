#include "core/buildinfo.h"

#include "version.h" /* generated in the build tree */

const char *engine_version(void) { return BOENGINE_VERSION; }
const char *engine_commit(void) { return BOENGINE_COMMIT; }
