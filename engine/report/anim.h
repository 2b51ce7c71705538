/* anim: an animated GIF from equally sized PNG frames (one per BO iteration, say). One palette of at
 * most 256 colours serves every frame, chosen by median cut over the pixels of all frames so that
 * a colour does not shift from frame to frame; frames after the first store only the rectangle
 * that changed. The provenance goes into a comment extension ("key: value" lines).
 *
 * GIF rather than APNG: every browser, image viewer, slide tool and issue tracker animates GIF,
 * giflib is a Debian package, and plot frames (white, a few line colours and their anti-aliased
 * edges) lose nothing visible in 256 colours. */
#ifndef BOENGINE_ANIM_H
#define BOENGINE_ANIM_H

#include "report/prov.h"

typedef struct anim_spec {
    const char *const *frames; /* PNG paths, in order */
    int nframes;
    double delay;      /* seconds per frame, 0.02 to 655 */
    double last_delay; /* seconds the last frame stays; 0 for delay */
    int loops;         /* 0 loops forever, n > 0 plays n more times, -1 plays once */
    const prov_kv *prov;
    int nprov;
} anim_spec;

/* Writes the GIF atomically, creating missing folders. -1 with err_set naming the file and the
 * frame at fault (a frame of another size, an unreadable PNG). */
int anim_write_gif(const char *path, const anim_spec *a);

#endif
