/* par: the ranks of a run started by an MPI launcher (mpirun, srun), and the few messages the
 * engine exchanges between them: byte strings from rank to rank, sums of doubles over all ranks,
 * a barrier. Without MPI at build time, or when the process was not started by a launcher, there is
 * one rank and every function is a local no-op, so that a plain run is unchanged.
 *
 * MPI is initialized only when the environment shows a launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 * PMIX_RANK, or BOENGINE_MPI=1). Errors are values: -1 with err_set naming the call. */
#ifndef BOENGINE_PAR_H
#define BOENGINE_PAR_H

#include <stddef.h>
#include <stdint.h>

/* Message tags of the engine's protocol (engine/lua/parallel.lua). */
enum { PAR_TAG_TASK = 1, PAR_TAG_RESULT = 2, PAR_TAG_ERROR = 3, PAR_TAG_STOP = 4 };

/* Initializes MPI when started under a launcher; 0, or -1 with err_set. */
int par_init(int *argc, char ***argv);
/* 1 when MPI was compiled in, 0 otherwise. */
int par_compiled(void);
/* 1 when MPI is initialized (started by a launcher). */
int par_active(void);
int par_rank(void);
int par_ranks(void);
/* This rank's contiguous share [lo, hi) of n items split over the ranks (all of them on one rank). */
void par_share(int64_t n, int64_t *lo, int64_t *hi);

int par_barrier(void);
/* v[0..n) summed over all ranks, in place (identical on every rank). */
int par_sum(double *v, int n);
/* A string from `root` to every rank: on root, *buf and *len are sent; elsewhere they receive a
 * malloc'd copy (NUL-terminated). */
int par_broadcast(char **buf, size_t *len, int root);
/* Returns at once (buf may be reused): the message is delivered whenever `dest` receives it, also
 * while this rank computes; messages from one rank to another arrive in the order sent. */
int par_send(int dest, int tag, const char *buf, size_t len);
/* The next message from `source` (-1: any) with `tag` (-1: any): a malloc'd NUL-terminated copy
 * (*out), its length, source and tag. Blocks. */
int par_recv(int source, int tag, char **out, size_t *len, int *from, int *tag_out);

/* The end of a run on every rank: ok says whether this rank succeeded and msg (NULL when ok) is its
 * one-line error. Rank 0 first releases the workers waiting for tasks (PAR_TAG_STOP); a worker that
 * failed tells rank 0 (PAR_TAG_ERROR), so that a rank 0 waiting for its result stops. Then the
 * ranks agree: the lowest rank that failed prints its line ("boengine: rank R: ..." for R > 0), but
 * when rank 0 failed because another rank did (its message says "another rank"), that rank's line
 * is printed instead. Every rank returns 0 when all succeeded, 1 otherwise. MPI is finalized.
 * Without MPI, prints msg. */
int par_conclude(int ok, const char *progname, const char *msg);

#endif
