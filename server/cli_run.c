/* The CLI's task driver: waves of --batch tasks, each split over --threads lanes that run
 * their share through task_run_batched (one scratch buffer per lane for the whole run), and
 * the sampling loop shared by sample, inpaint, colorize and decode.
 * Not here: what the tasks compute (pc.c, flow.c). */
#include "cli_run.h"

#include "cli_args.h"
#include "flow.h"
#include "pc.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One thread's share of a wave: its tasks, batched at most max_batch, with its own scratch. */
typedef struct lane {
    const sc_model *m;  /* borrowed                                      */
    sc_task **tasks;    /* (count) borrowed: a slice of the wave          */
    int count, max_batch, rc;
    void *scratch;      /* owned by cli_run_tasks: for max_batch tasks     */
    sc_error err;       /* the lane's failure, when rc != 0               */
} lane;

static void *run_lane(void *arg)
{
    lane *l = arg;
    l->rc = l->count ? task_run_batched(l->m, l->tasks, l->count, l->max_batch, l->scratch, &l->err) : 0;
    return NULL;
}

/* Runs tasks[0..count) on the lanes: a contiguous share each, lane 0 on the calling thread.
 * A task's result does not depend on which lane or batch ran it. */
static int run_wave(lane *lanes, int threads, sc_task **tasks, int count, sc_error *err)
{
    pthread_t tid[CLI_MAX_THREADS];
    int started[CLI_MAX_THREADS] = {0};
    const int share = (count + threads - 1) / threads;
    for (int i = 0; i < threads; i++) {
        const int first = i * share < count ? i * share : count;
        lanes[i].tasks = tasks + first;
        lanes[i].count = count - first < share ? count - first : share;
        lanes[i].rc = 0;
    }
    for (int i = 1; i < threads; i++)
        if (lanes[i].count) started[i] = pthread_create(&tid[i], NULL, run_lane, &lanes[i]) == 0;
    run_lane(&lanes[0]);
    for (int i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else if (lanes[i].count)
            run_lane(&lanes[i]); /* no thread to be had: run it here */
    }
    for (int i = 0; i < threads; i++)
        if (lanes[i].rc) {
            *err = lanes[i].err;
            return lanes[i].rc;
        }
    return 0;
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
    /* the lanes share the wave: their scratch together holds ceil(wave / T) * T <= wave + T - 1
     * tasks' worth (plus each lane's fixed part), about one batch as before */
    const int lane_batch = (wave + threads - 1) / threads;
    /* the lanes are the parallelism: OpenBLAS (the convs it still runs, NIN, attention) on one
     * thread each, as the server runs its workers */
    openblas_set_num_threads(1);
    sc_task **tasks = calloc((size_t)wave, sizeof *tasks);
    lane *lanes = calloc((size_t)threads, sizeof *lanes);
    int rc = 0;
    if (!tasks || !lanes) rc = sc_fail(err, SC_ERR_NOMEM, "out of memory for a batch of %d", batch);
    for (int i = 0; rc == 0 && i < threads; i++) {
        lanes[i] = (lane){.m = m, .max_batch = lane_batch, .scratch = sc_model_scratch_alloc(m, lane_batch)};
        if (!lanes[i].scratch) rc = sc_fail(err, SC_ERR_NOMEM, "out of memory for a batch of %d", batch);
    }
    for (int first = 0; rc == 0 && first < n; first += wave) {
        const int count = n - first < wave ? n - first : wave;
        for (int j = 0; j < count && rc == 0; j++) rc = create(ctx, first + j, &tasks[j], err);
        if (rc == 0) rc = run_wave(lanes, threads, tasks, count, err);
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
    for (int i = 0; lanes && i < threads; i++) free(lanes[i].scratch);
    free(lanes);
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
