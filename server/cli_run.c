/* The CLI's task driver: waves of --batch tasks, each run on a pool of --threads lanes
 * (engine/task_pool.h: each round's queries shared out evenly; one scratch buffer per lane for
 * the whole run), and the sampling loop shared by sample, inpaint, colorize and decode.
 * Not here: what the tasks compute (pc.c, flow.c). */
#include "cli_run.h"

#include "cli_args.h"
#include "flow.h"
#include "pc.h"
#include "task_pool.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_run_tasks(const sc_model *m, int n, int batch, int threads, cli_task_create_fn create,
                  cli_task_collect_fn collect, void *ctx, cli_run_stats *stats, sc_error *err)
{
    const double start = cli_now();
    stats->nfe = 0;
    stats->seconds = 0;
    if (n <= 0) return 0;
    SC_ASSERT(threads >= 1 && threads <= CLI_MAX_THREADS && batch >= 1);
    const int wave = n < batch ? n : batch;
    if (threads > wave) threads = wave;
    /* the lanes share each round of the wave's queries: their scratch together holds
     * ceil(wave / T) * T <= wave + T - 1 queries' worth (plus each lane's fixed part), about one
     * batch */
    const int lane_batch = (wave + threads - 1) / threads;
    sc_task **tasks = calloc((size_t)wave, sizeof *tasks);
    task_pool *pool = tasks ? task_pool_create(m, threads, lane_batch, err) : NULL;
    int rc = 0;
    if (!tasks) rc = sc_fail(err, SC_ERR_NOMEM, "out of memory for a batch of %d", batch);
    else if (!pool) rc = err ? err->code : SC_ERR_NOMEM;
    for (int first = 0; rc == 0 && first < n; first += wave) {
        const int count = n - first < wave ? n - first : wave;
        for (int j = 0; j < count && rc == 0; j++) rc = create(ctx, first + j, &tasks[j], err);
        if (rc == 0) rc = task_pool_run(pool, tasks, count, err);
        for (int j = 0; j < count; j++) {
            if (!tasks[j]) continue;
            if (rc == 0) {
                stats->nfe += tasks[j]->nfe;
                rc = collect(ctx, first + j, tasks[j], err);
            }
            task_free(tasks[j]);
            tasks[j] = NULL;
        }
    }
    task_pool_free(pool);
    free(tasks);
    stats->seconds = cli_now() - start;
    return rc;
}

/* ---- sampling ---------------------------------------------------------------------------- */

typedef struct sample_ctx {
    const sc_model *m;          /* borrowed                 */
    const sampler_config *cfg;  /* borrowed, validated      */
    const sc_condition *cond;   /* borrowed, may be NULL    */
    const float *latents;       /* (n, D) borrowed, or NULL */
    uint64_t seed;
    float *out;                 /* (n, D) borrowed          */
} sample_ctx;

static int sample_create(void *vctx, int index, sc_task **out, sc_error *err)
{
    const sample_ctx *c = vctx;
    if (c->cfg->kind == SAMPLER_PC)
        return pc_task_create(c->m, c->cfg, c->cond, c->seed, (uint64_t)index, out, err);
    const float *latent = c->latents ? c->latents + (size_t)index * (size_t)c->m->D : NULL;
    return flow_sample_task_create(c->m, c->cfg, c->cond, latent, c->seed, (uint64_t)index, out,
                                   err);
}

static int sample_collect(void *vctx, int index, const sc_task *t, sc_error *err)
{
    (void)err;
    const sample_ctx *c = vctx;
    const float *x = c->cfg->kind == SAMPLER_PC ? pc_task_result(t) : flow_task_result(t);
    memcpy(c->out + (size_t)index * (size_t)c->m->D, x, sizeof(float) * (size_t)c->m->D);
    return 0;
}

int cli_run_samples(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                    const float *latents, uint64_t seed, int n, int batch, int threads, float *out,
                    cli_run_stats *stats, sc_error *err)
{
    SC_ASSERT(!latents || cfg->kind == SAMPLER_ODE);
    sample_ctx c = {.m = m, .cfg = cfg, .cond = cond, .latents = latents, .seed = seed, .out = out};
    return cli_run_tasks(m, n, batch, threads, sample_create, sample_collect, &c, stats, err);
}
