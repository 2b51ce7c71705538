#include "core/par.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#ifdef BOENGINE_MPI
#include <mpi.h>

static int active, rank_, ranks_ = 1;

/* Started by a launcher: Open MPI's mpirun, a PMI or PMIx launcher (srun, MPICH's hydra), or asked. */
static int launched(void)
{
    const char *force = getenv("BOENGINE_MPI");
    if (force && strcmp(force, "1") == 0)
        return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static int mpi_fail(const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", rc);
    return err_set("MPI: %s: %s", what, text);
}

int par_init(int *argc, char ***argv)
{
    if (active || !launched())
        return 0;
    int provided, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return err_set("MPI_Init_thread failed (error %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); /* errors as values, not aborts */
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
    active = 1;
    return 0;
}

int par_compiled(void) { return 1; }
int par_active(void) { return active; }
int par_rank(void) { return rank_; }
int par_ranks(void) { return ranks_; }

int par_barrier(void)
{
    if (!active)
        return 0;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail("barrier", rc);
}

int par_sum(double *v, int n)
{
    if (!active || n <= 0)
        return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail("sum over the ranks", rc);
}

int par_broadcast(char **buf, size_t *len, int root)
{
    if (!active)
        return 0;
    if (*len > INT_MAX && rank_ == root)
        return err_set("MPI: a broadcast of %zu bytes is too long", *len);
    int n = (int)*len, rc = MPI_Bcast(&n, 1, MPI_INT, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        return mpi_fail("broadcast", rc);
    if (rank_ != root) {
        if (!(*buf = malloc((size_t)n + 1)))
            return err_set("out of memory receiving a broadcast of %d bytes", n);
        (*buf)[n] = '\0';
        *len = (size_t)n;
    }
    rc = MPI_Bcast(*buf, n, MPI_CHAR, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        if (rank_ != root) {
            free(*buf);
            *buf = NULL;
        }
        return mpi_fail("broadcast", rc);
    }
    return 0;
}

/* Sends in flight: a message above the transport's eager limit (a few KB on shared memory) is only
 * delivered when its receiver gets to MPI_Recv, and a blocking MPI_Send would hold a worker there
 * while rank 0 evaluates its own share of a batch. So messages leave as MPI_Isend of a private copy;
 * finished ones are reaped by every later send and receive, the rest at the end of the run. */
typedef struct {
    MPI_Request req;
    char *copy;
} pending_send;
static pending_send *sends;
static int nsends, capsends;

static void reap_sends(void)
{
    int k = 0;
    for (int i = 0; i < nsends; i++) {
        int done = 0;
        MPI_Test(&sends[i].req, &done, MPI_STATUS_IGNORE);
        if (done)
            free(sends[i].copy);
        else
            sends[k++] = sends[i];
    }
    nsends = k;
}

/* At the end of the run: when every rank succeeded every message has a receiver, so wait for
 * them; otherwise a receiver may have stopped early: let them go (the copies stay with MPI). */
static void end_sends(int all_ok)
{
    for (int i = 0; i < nsends; i++) {
        if (all_ok) {
            MPI_Wait(&sends[i].req, MPI_STATUS_IGNORE);
            free(sends[i].copy);
        } else {
            MPI_Request_free(&sends[i].req);
        }
    }
    free(sends);
    sends = NULL;
    nsends = capsends = 0;
}

int par_send(int dest, int tag, const char *buf, size_t len)
{
    if (!active)
        return err_set("MPI: no other rank to send to (not started by a launcher)");
    if (dest < 0 || dest >= ranks_)
        return err_set("MPI: no rank %d (ranks 0 to %d)", dest, ranks_ - 1);
    if (len > INT_MAX)
        return err_set("MPI: a message of %zu bytes is too long", len);
    reap_sends();
    if (nsends == capsends) {
        int cap = capsends ? 2 * capsends : 16;
        pending_send *grown = realloc(sends, (size_t)cap * sizeof *grown);
        if (!grown)
            return err_set("out of memory sending a message");
        sends = grown;
        capsends = cap;
    }
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return err_set("out of memory sending a message of %zu bytes", len);
    memcpy(copy, buf, len);
    int rc = MPI_Isend(copy, (int)len, MPI_CHAR, dest, tag, MPI_COMM_WORLD, &sends[nsends].req);
    if (rc != MPI_SUCCESS) {
        free(copy);
        return mpi_fail("send", rc);
    }
    sends[nsends++].copy = copy;
    return 0;
}

int par_recv(int source, int tag, char **out, size_t *len, int *from, int *tag_out)
{
    if (!active)
        return err_set("MPI: no other rank to receive from (not started by a launcher)");
    reap_sends();
    MPI_Status st;
    int rc = MPI_Probe(source < 0 ? MPI_ANY_SOURCE : source, tag < 0 ? MPI_ANY_TAG : tag, MPI_COMM_WORLD, &st);
    if (rc != MPI_SUCCESS)
        return mpi_fail("probe", rc);
    int n;
    MPI_Get_count(&st, MPI_CHAR, &n);
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return err_set("out of memory receiving a message of %d bytes", n);
    rc = MPI_Recv(buf, n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_fail("receive", rc);
    }
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    if (from)
        *from = st.MPI_SOURCE;
    if (tag_out)
        *tag_out = st.MPI_TAG;
    return 0;
}

int par_conclude(int ok, const char *progname, const char *msg)
{
    if (!active) {
        if (!ok && msg)
            fprintf(stderr, "%s: %s\n", progname, msg);
        return !ok;
    }
    if (rank_ == 0) {
        for (int r = 1; r < ranks_; r++)
            MPI_Send("", 0, MPI_CHAR, r, PAR_TAG_STOP, MPI_COMM_WORLD);
    } else if (!ok) {
        const char *m = msg ? msg : "failed";
        MPI_Send(m, (int)strlen(m), MPI_CHAR, 0, PAR_TAG_ERROR, MPI_COMM_WORLD);
    }
    int failed = !ok, any = 0, me = ok ? INT_MAX : rank_, first = INT_MAX;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    /* rank 0 failed because another did (a collective measurement): the other's line says why */
    if (!ok && rank_ == 0 && any > 1 && msg && strstr(msg, "another rank")) {
        MPI_Status st;
        int n = 0;
        if (MPI_Probe(MPI_ANY_SOURCE, PAR_TAG_ERROR, MPI_COMM_WORLD, &st) == MPI_SUCCESS &&
            MPI_Get_count(&st, MPI_CHAR, &n) == MPI_SUCCESS) {
            char *text = malloc((size_t)n + 1);
            if (text && MPI_Recv(text, n, MPI_CHAR, st.MPI_SOURCE, PAR_TAG_ERROR, MPI_COMM_WORLD, MPI_STATUS_IGNORE) ==
                            MPI_SUCCESS) {
                text[n] = '\0';
                fprintf(stderr, "%s: rank %d: %s\n", progname, st.MPI_SOURCE, text);
                fflush(stderr);
                first = -1; /* said */
            }
            free(text);
        }
    }
    if (!ok && first == rank_) {
        if (rank_ > 0)
            fprintf(stderr, "%s: rank %d: %s\n", progname, rank_, msg ? msg : "failed");
        else
            fprintf(stderr, "%s: %s\n", progname, msg ? msg : "failed");
        fflush(stderr);
    }
    end_sends(any == 0);
    MPI_Finalize();
    active = 0;
    return any > 0;
}

#else /* one rank, no MPI */

int par_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
int par_compiled(void) { return 0; }
int par_active(void) { return 0; }
int par_rank(void) { return 0; }
int par_ranks(void) { return 1; }
int par_barrier(void) { return 0; }
int par_sum(double *v, int n)
{
    (void)v;
    (void)n;
    return 0;
}
int par_broadcast(char **buf, size_t *len, int root)
{
    (void)buf;
    (void)len;
    (void)root;
    return 0;
}
int par_send(int dest, int tag, const char *buf, size_t len)
{
    (void)tag;
    (void)buf;
    (void)len;
    return err_set("MPI: no rank %d: this boengine was built without MPI", dest);
}
int par_recv(int source, int tag, char **out, size_t *len, int *from, int *tag_out)
{
    (void)source;
    (void)tag;
    (void)out;
    (void)len;
    (void)from;
    (void)tag_out;
    return err_set("MPI: nothing to receive: this boengine was built without MPI");
}
int par_conclude(int ok, const char *progname, const char *msg)
{
    if (!ok && msg)
        fprintf(stderr, "%s: %s\n", progname, msg);
    return !ok;
}

#endif

void par_share(int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = n * par_rank() / par_ranks();
    *hi = n * (par_rank() + 1) / par_ranks();
}
