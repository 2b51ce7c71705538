/* plan: what inference plans (exec.c) and training plans (train/backprop.c) are both made of.
 * Values are a plan's tensors (activations, gradients, workspaces), each with a oneDNN layout;
 * steps are the primitives, or C loops, that read and write them in order. Once every step is
 * emitted, plan_allocate gives each value its memory: buffers are shared between values whose
 * lifetimes (first to last step using them) do not overlap. plan_run runs a range of steps and
 * plan_clear tears it all down. What a plan does beyond that (weights cached across plans,
 * parameter tensors bound at each call, C steps of its own) stays with its owner. */
#ifndef BOENGINE_PLAN_H
#define BOENGINE_PLAN_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_MAX_ARGS 12

/* A tensor of the plan: its layout and, once allocated, its memory. */
typedef struct plan_value {
    dnnl_memory_desc_t md;
    int external;   /* the caller's memory (input, output, incoming gradient): its handle is set at each run */
    int pinned;     /* a buffer of its own, never shared: read after the run (outputs, input gradient) */
    int inherit;    /* value whose buffer this one takes over (a sum computed in place), or -1 */
    int reorder_of; /* value this one is a reordered copy of, for plan_as_layout's reuse, or -1 */
    int aliased;    /* also the output of an identity node: never overwritten in place */
    int def, last;  /* first and last step that use it, -1 when none (set by plan_allocate) */
    int buffer;     /* its buffer, or -1 (external, or used by no step) */
    dnnl_memory_t mem;
} plan_value;

/* An argument of a step: a value of the plan, or (value -1) a memory of the owner's, such as a
 * parameter wrapped at each call or weights reordered once. */
typedef struct plan_arg {
    int id;           /* DNNL_ARG_* */
    int value;
    dnnl_memory_t mem;
} plan_arg;

/* Step kinds: a primitive, the adaptive average pools over uneven bins that oneDNN lacks (both
 * plans need them: plain NCHW, the shapes read from the arguments' descriptors), and from
 * PLAN_OWNER_STEP on, C loops that the plan's owner runs (plan_run's callback). */
enum {
    PLAN_PRIMITIVE,
    PLAN_ADAPTIVE_POOL,      /* DNNL_ARG_SRC → DNNL_ARG_DST */
    PLAN_ADAPTIVE_POOL_BACK, /* DNNL_ARG_DIFF_DST → DNNL_ARG_DIFF_SRC */
    PLAN_OWNER_STEP,
};

typedef struct plan_step {
    int kind;
    dnnl_primitive_t prim; /* PLAN_PRIMITIVE */
    int node;              /* the graph node a C step works for, or -1 */
    int nargs;
    plan_arg args[PLAN_MAX_ARGS];
    dnnl_exec_arg_t exec[PLAN_MAX_ARGS]; /* the arguments' memories, filled by plan_allocate */
} plan_step;

/* Where buffers come from and go back to (an owner's pool); plan_allocate's default, NULL, is
 * plain allocation. take returns a buffer of at least bytes and its size in *got. */
typedef struct plan_buffers {
    void *(*take)(size_t bytes, size_t *got);
    void (*give)(void *data, size_t bytes);
} plan_buffers;

typedef struct plan {
    int nvalues, nsteps, nbuffers;
    plan_value *values;
    plan_step *steps;
    void **buffers;
    size_t *buffer_bytes;        /* each buffer's size as allocated */
    int64_t bytes;               /* the buffers' sizes as needed, summed */
    const plan_buffers *source;  /* where the buffers go back to */
} plan;

/* A new value of layout md (which may point into the plan's own values); its index, or -1. */
int plan_value_new(plan *p, const dnnl_memory_desc_t *md);

/* A new step of that kind; a primitive made from pd (NULL for C steps). NULL with err_set. */
plan_step *plan_step_new(plan *p, int kind, const_dnnl_primitive_desc_t pd);

static inline void plan_arg_value(plan_step *s, int id, int value)
{
    s->args[s->nargs++] = (plan_arg){id, value, NULL};
}
static inline void plan_arg_memory(plan_step *s, int id, dnnl_memory_t m)
{
    s->args[s->nargs++] = (plan_arg){id, -1, m};
}
static inline const dnnl_memory_desc_t *plan_md(const plan *p, int v) { return &p->values[v].md; }

/* A reorder step from value src (or, when src is -1, memory src_mem) into value dst (or memory
 * dst_mem), adding to dst's content when acc is set. -1 with err_set. */
int plan_reorder(plan *p, int src, dnnl_memory_t src_mem, int dst, dnnl_memory_t dst_mem, int acc);

/* A new value holding a copy of v in layout want, made by a reorder step emitted now. */
int plan_copy(plan *p, int v, const dnnl_memory_desc_t *want);

/* Value v in layout want: v itself, else (with reuse) a copy made earlier by this function, else
 * a copy made now. Reuse needs values that are never written after their step. */
int plan_as_layout(plan *p, int v, const dnnl_memory_desc_t *want, int reuse);

/* Lifetimes from the steps, buffers shared by values whose lifetimes do not overlap (an inherited
 * buffer stays reserved until its heir's step), memories for every value and the steps'
 * argument lists. source: where buffers come from (NULL: plain allocation). -1 with err_set. */
int plan_allocate(plan *p, const plan_buffers *source);

/* Runs steps [from, to), the owner's C steps through own_step (0, or -1 with err_set), and waits
 * for the stream. -1 with err_set. */
typedef int (*plan_step_fn)(void *ctx, const plan_step *s);
int plan_run(plan *p, int from, int to, plan_step_fn own_step, void *ctx);

/* Destroys the primitives and memories, gives the buffers back and frees the arrays; the plan
 * is empty afterwards. */
void plan_clear(plan *p);

/* The data of a memory; of a step's argument id (NULL when it has none); its size in floats. */
float *plan_memory_data(dnnl_memory_t m);
float *plan_arg_data(const plan_step *s, int id);
int64_t plan_arg_floats(const plan_step *s, int id);

#endif
