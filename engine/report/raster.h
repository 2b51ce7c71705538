/* raster: 8-bit RGB images as the report writes and checks them: PNG written atomically with the
 * provenance as text chunks, PNG read back, several PNGs tiled into one (a grid of animation
 * frames), and PNG or GIF files inspected (size, frames, colours, how much is not background) so
 * that tests can tell a figure from a blank page. */
#ifndef BOENGINE_RASTER_H
#define BOENGINE_RASTER_H

#include <stdint.h>

#include "report/prov.h"

typedef struct raster {
    int width, height;
    uint8_t *rgb; /* height x width x 3 */
} raster;

/* Writes an 8-bit RGB PNG, with each provenance pair as a text chunk (tEXt, or iTXt for values
 * that are not ASCII) and no time stamp, creating missing folders. -1 with err_set naming the file. */
int raster_write_png(const char *path, const raster *im, const prov_kv *prov, int nprov);

/* Reads any PNG as 8-bit RGB (grey replicated, palettes expanded, alpha composited on white). The
 * caller frees out->rgb. */
int raster_read_png(const char *path, raster *out);

/* Tiles PNGs in a grid of columns on white, each in a cell as large as the largest image, centred. */
int raster_montage(const char *path, const char *const *images, int n, int columns, const prov_kv *prov,
                   int nprov);

typedef struct raster_info {
    const char *format;  /* "png" or "gif" */
    int width, height, frames;
    int colors;          /* distinct colours of the first frame */
    double ink;          /* fraction of its pixels that differ from its most common colour */
    double delay;        /* GIF: seconds the first frame shows */
    int loops;           /* GIF: -1 no loop extension (plays once), 0 loops forever, else the count */
    int ntext;           /* PNG text chunks, or the "key: value" lines of GIF comments */
    char **keys, **values;
} raster_info;

int raster_inspect(const char *path, raster_info *info);
void raster_info_free(raster_info *info);

#endif
