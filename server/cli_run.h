/* Running many engine tasks from the CLI: items are processed in waves of at most --batch
 * tasks, each wave run on --threads lanes (engine/task_pool.h: every round's score queries
 * shared out evenly), so memory stays bounded by the batch and not by the item count.  Results do not depend on the waves or lanes (every
 * task has its own (seed, index), and a sample's bits never depend on its batch-mates). */
#ifndef SCORED_CLI_RUN_H
#define SCORED_CLI_RUN_H

#include "model.h"
#include "sampler.h"
#include "task.h"

/* Creates the task for item `index` (0..n-1). */
typedef int (*cli_task_create_fn)(void *ctx, int index, sc_task **out, sc_error *err);
/* Reads a finished task's result for item `index`. */
typedef int (*cli_task_collect_fn)(void *ctx, int index, const sc_task *t, sc_error *err);

typedef struct cli_run_stats {
    long nfe;        /* summed over items */
    double seconds;  /* wall time of the whole run */
} cli_run_stats;

/* threads: lanes that share each wave (one per core by default); OpenBLAS should be on one
 * thread (main.c sets it): the lanes are the parallelism. */
int cli_run_tasks(const sc_model *m, int n, int batch, int threads, cli_task_create_fn create,
                  cli_task_collect_fn collect, void *ctx, cli_run_stats *stats, sc_error *err);

/* Runs n samples with cfg (pc or ode) and cond (may be NULL) into out (n, D): sample i from
 * the (seed, i) stream, or, when latents (n, D) is given, decoded from latent i (ode only). */
int cli_run_samples(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                    const float *latents, uint64_t seed, int n, int batch, int threads, float *out,
                    cli_run_stats *stats, sc_error *err);

/* Monotonic seconds, for timing. */
double cli_now(void);

#endif
