/* outdir: the folders of report outputs, created on demand so that an experiment can write
 * results/NAME/x.csv or figures/fig4/x.png without a mkdir of its own. */
#ifndef BOENGINE_OUTDIR_H
#define BOENGINE_OUTDIR_H

/* Creates the missing folders above the file path (as mkdir -p of its dirname, with the usual
 * umask-based mode). -1 with err_set naming the folder that could not be made. */
int outdir_make_parents(const char *path);

#endif
