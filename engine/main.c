/* boengine: runs a Lua 5.4 experiment file with the engine's modules loaded. */
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buildinfo.h"
#include "core/err.h"
#include "core/log.h"
#include "core/par.h"
#include "core/timer.h"
#include "lua/lb.h"
#include "nn/dnnl_util.h"
#include "nn/exec_cache.h"

static const char *progname = "boengine";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: boengine [options] FILE.lua [ARGS...]\n"
            "Runs a Lua 5.4 experiment file with the engine's modules (tensor, nn, data, bo, ...).\n"
            "ARGS reach the script in the global table `arg`, as with the standalone lua.\n"
            "\n"
            "options:\n"
            "  --seed N      default seed for modules whose tables give none (default 1)\n"
            "  --threads N   worker threads for inference and training (default: all cores)\n"
            "  --quiet       no progress or informational output on stderr\n"
            "  --fresh       start BO journals over instead of resuming them (the default of fresh)\n"
            "  --version     print the engine version and exit\n"
            "  --help        print this help and exit\n");
}

static void print_version(void)
{
    const dnnl_version_t *d = dnnl_version();
    printf("boengine %s (commit %s, %s, oneDNN %d.%d.%d)\n", engine_version(), engine_commit(), LUA_RELEASE,
           d->major, d->minor, d->patch);
}

/* Message handler: bad input raised by the engine stays one line; other errors get a traceback. */
static int msghandler(lua_State *L)
{
    if (lb_is_input_error(L, 1))
        return 1;
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Under MPI the first error of this rank waits for par_conclude, which prints one line for the run
 * (the lowest rank that failed), not one per rank. */
static char *deferred;

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!par_active()) {
            fprintf(stderr, "%s: %s\n", progname, msg);
            fflush(stderr);
        } else if (!deferred) {
            deferred = strdup(msg ? msg : "(error object is not a string)");
        }
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

typedef struct options {
    long long seed;
    int threads, quiet, fresh;
    int script; /* index of the script in argv */
} options;

static int parse_long(const char *s, long long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *end || errno == ERANGE ? -1 : 0;
}

/* The value of an option given as "--name VALUE" or "--name=VALUE" (NULL when missing); *i moves
 * past what was used. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static int is_option(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* Returns 0 to run, 1 to exit successfully (help, version), -1 on a usage error. */
static int parse_options(int argc, char **argv, options *o)
{
    o->seed = 1;
    o->threads = 0;
    o->quiet = 0;
    o->fresh = 0;
    o->script = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--version") == 0) {
            print_version();
            return 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--fresh") == 0) {
            o->fresh = 1;
        } else if (is_option(a, "--seed")) {
            if (parse_long(option_value(argc, argv, &i, "--seed"), &v) != 0 || v < 0) {
                fprintf(stderr, "%s: --seed needs an integer from 0 to %lld\n", progname, LLONG_MAX);
                return -1;
            }
            o->seed = v;
        } else if (is_option(a, "--threads")) {
            if (parse_long(option_value(argc, argv, &i, "--threads"), &v) != 0 || v < 1 || v > 1024) {
                fprintf(stderr, "%s: --threads needs an integer from 1 to 1024\n", progname);
                return -1;
            }
            o->threads = (int)v;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", progname, a);
            return -1;
        } else {
            o->script = i;
            return 0;
        }
    }
    fprintf(stderr, "%s: no experiment file given (see --help)\n", progname);
    return -1;
}

/* arg[0] is the script, arg[1..] its arguments, arg[-1..] the interpreter and its options. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* boengine.clock(): monotonic wall-clock seconds, for timing from Lua (os.clock is CPU time). */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, timer_now());
    return 1;
}

static void create_engine_table(lua_State *L, const options *o, const char *script)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, engine_version());
    lua_setfield(L, -2, "version");
    lua_pushstring(L, engine_commit());
    lua_setfield(L, -2, "commit");
    lua_pushinteger(L, o->seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, omp_get_max_threads());
    lua_setfield(L, -2, "threads");
    lua_pushboolean(L, o->quiet);
    lua_setfield(L, -2, "quiet");
    lua_pushboolean(L, o->fresh);
    lua_setfield(L, -2, "fresh");
    lua_pushstring(L, script);
    lua_setfield(L, -2, "script");
    char digest[SHA256_DIGEST_STRING_LENGTH]; /* results record which experiment file made them */
    if (SHA256File(script, digest)) {
        lua_pushstring(L, digest);
        lua_setfield(L, -2, "script_sha256");
    }
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
    lua_pushinteger(L, par_rank()); /* the ranks of an MPI run (docs/cluster.md); 0 of 1 otherwise */
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, par_ranks());
    lua_setfield(L, -2, "ranks");
    lua_pushboolean(L, par_active());
    lua_setfield(L, -2, "mpi");
    lua_setglobal(L, "boengine");
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    const options *o = lua_touserdata(L, 3);
    const char *script = argv[o->script];
    luaL_openlibs(L);
    create_arg_table(L, argc, argv, o->script);
    create_engine_table(L, o, script);
    lua_pushcfunction(L, lb_open_engine);
    if (report(L, docall(L, 0, 0)) != LUA_OK)
        return 0;
    int status = luaL_loadfile(L, strcmp(script, "-") == 0 ? NULL : script);
    if (status == LUA_OK) {
        int n = argc - o->script - 1;
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = 1; i <= n; i++)
            lua_pushstring(L, argv[o->script + i]);
        status = docall(L, n, 0);
    }
    if (report(L, status) != LUA_OK)
        return 0;
    lua_pushboolean(L, 1);
    return 1;
}

/* The OpenMP and OpenBLAS runtimes read their settings when they are loaded, before main: set the
 * engine's defaults (threads that sleep rather than spin when waiting, which keeps a shared machine
 * usable; OpenBLAS's AVX-512 kernels, which it does not pick by itself on newer CPUs) and start
 * again. A setting the user made is kept. */
static void tune_runtimes(char **argv)
{
    if (getenv("BOENGINE_RUNTIMES_SET"))
        return;
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY"))
        changed |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f"))
        changed |= setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
    if (changed && setenv("BOENGINE_RUNTIMES_SET", "1", 1) == 0)
        execv("/proc/self/exe", argv); /* on failure, run with the runtimes' own defaults */
}

int main(int argc, char **argv)
{
    tune_runtimes(argv);
    if (par_init(&argc, &argv) != 0) {
        fprintf(stderr, "%s: %s\n", progname, err_msg());
        return EXIT_FAILURE;
    }
    options o;
    int saved = -1; /* the ranks parse the same arguments: rank 0 alone says what is wrong with them */
    if (par_rank() > 0 && (saved = dup(STDERR_FILENO)) >= 0 && !freopen("/dev/null", "w", stderr))
        saved = -1;
    int rc = parse_options(argc, argv, &o);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    if (rc != 0) {
        if (par_active()) /* every rank parsed the same arguments: one of them said so */
            par_conclude(1, progname, NULL);
        return rc > 0 ? EXIT_SUCCESS : 2;
    }
    if (par_rank() > 0) { /* workers evaluate; rank 0 speaks for the run (par_conclude prints errors) */
        o.quiet = 1;
        if (!freopen("/dev/null", "w", stdout))
            fprintf(stderr, "%s: rank %d: cannot silence its output\n", progname, par_rank());
    }
    if (o.threads > 0)
        omp_set_num_threads(o.threads);
    log_set_quiet(o.quiet);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", progname);
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    lua_pushlightuserdata(L, &o);
    int status = lua_pcall(L, 3, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    if (status != LUA_OK)
        report(L, status);
    lua_close(L);      /* frees every network, whose plans release the cached weights... */
    exec_cache_free(); /* ...which go now with the pooled buffers, then oneDNN's engine */
    dn_free();
    int failed = par_conclude(ok, progname, deferred);
    free(deferred);
    return ok && !failed ? EXIT_SUCCESS : EXIT_FAILURE;
}
