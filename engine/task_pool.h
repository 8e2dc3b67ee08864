/* Running a set of tasks on several threads ("lanes"), for the CLI and the offline benchmark.
 *
 * Every round, the pending score queries of all unfinished tasks are gathered and split
 * evenly over the lanes; each lane answers its share in evaluations of at most lane_batch
 * queries with its own scratch, then advances its share of the tasks.  The split is made
 * again every round, so tasks of very different lengths (adaptive ODE steps, early
 * finishers) keep every lane busy while queries remain.  Results do not depend on the lane
 * count or the batch: a query's answer never depends on its batch-mates (DESIGN.md), and each
 * task is advanced by exactly one lane per round.
 *
 * Not here: creating tasks or reading their results (the callers), the server's scheduler
 * (server/sched.c), which batches queries across requests as they arrive. */
#ifndef SCORED_TASK_POOL_H
#define SCORED_TASK_POOL_H

#include "model.h"
#include "task.h"

typedef struct task_pool task_pool;

/* threads >= 1 lanes for model m, each with scratch for lane_batch >= 1 queries (allocated
 * here, once).  m is borrowed and must outlive the pool.  NULL on failure (err set). */
task_pool *task_pool_create(const sc_model *m, int threads, int lane_batch, sc_error *err);

/* Runs tasks[0..n) to completion (or to the first error, whose message names the item
 * index).  Starts threads-1 threads for the call, the calling thread is lane 0; when a thread
 * cannot be started the run goes on with the lanes that could.  tasks stay the caller's. */
int task_pool_run(task_pool *p, sc_task **tasks, int n, sc_error *err);

int task_pool_threads(const task_pool *p);
void task_pool_free(task_pool *p);

#endif
