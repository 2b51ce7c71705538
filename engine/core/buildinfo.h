/* buildinfo: the engine's version and the git commit it was built from, recorded in results. */
#ifndef BOENGINE_BUILDINFO_H
#define BOENGINE_BUILDINFO_H

const char *engine_version(void);
const char *engine_commit(void);

#endif
