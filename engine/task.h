/* A task is one sample's (or one likelihood's) resumable computation: it never calls a model;
 * it publishes the score queries it needs and is advanced once they are answered.  PC
 * sampling, the probability-flow ODE, likelihood, encode/decode, inpainting and colorization
 * are all tasks.  task_run_batched is the simple driver that the CLI and the tests use; the
 * server's scheduler does the same across requests. */
#ifndef SCORED_TASK_H
#define SCORED_TASK_H

#include "model.h"

enum { TASK_DONE = 0, TASK_NEED_SCORE = 1 };

typedef struct sc_task sc_task;

typedef struct sc_task_ops {
    /* Consumes the answers to the published queries (if any), computes until it needs more
     * scores or is done.  Returns TASK_NEED_SCORE, TASK_DONE or a negative sc_code. */
    int (*advance)(sc_task *t, sc_error *err);
    void (*destroy)(sc_task *t);
    /* Optional: the current estimate of the result (D floats, data units), for progress
     * previews.  NULL when the task kind has none. */
    void (*preview)(const sc_task *t, float *out);
} sc_task_ops;

struct sc_task {
    const sc_task_ops *ops;
    score_query *queries;  /* (n_queries) owned by the task; valid after TASK_NEED_SCORE */
    int n_queries;
    long nfe;              /* score-function evaluations of the state so far (a VJP or a
                              set of probes at the same point counts once)             */
    long step, steps;      /* progress; steps is 0 while unknown (adaptive solvers)   */
    double t;              /* current diffusion time                                  */
    int cancel_requested;  /* set by the owner; the task stops at its next advance    */
};

int task_advance(sc_task *t, sc_error *err);
void task_free(sc_task *t);
/* Writes the task's current estimate to out (D); returns 0, or -1 if it has none. */
int task_preview(const sc_task *t, float *out);

/* Runs tasks to completion: each round gathers the pending queries of every unfinished task
 * and answers them in chunks of at most max_batch.  scratch: from sc_model_scratch_alloc for
 * max_batch.  Stops at the first error (the message names the task index). */
int task_run_batched(const sc_model *m, sc_task **tasks, int n, int max_batch, void *scratch,
                     sc_error *err);

#endif
