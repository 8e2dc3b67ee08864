/* The engine's offline batched sampling throughput, without HTTP: the yardstick for the
 * server benchmark (tests/bench/bench_server.sh).  Loads a model, builds the sampler exactly
 * as the server does for a request (the model's default PC sampler overlaid with a JSON
 * "sampler" object), creates N one-sample tasks with distinct seeds (index 0 of each seed,
 * as a request {"n": 1, "seed": s} makes) and runs them on a task pool (engine/task_pool.h).
 * One sample here is one request of the load generator.
 *
 *   offline [--model models/fmnist-gmm.json] [--n 512] [--batch 64] [--batch 16 ...]
 *           [--sampler '{"kind":"pc",...}']
 *
 * Prints, per batch size:  offline batch=B samples=N seconds=T throughput_sps=X
 * A small untimed run first warms caches and the allocator.
 *
 * --threads T (default: the number of online cores) runs the tasks the way the server uses the
 * cores: T lanes, each answering its share of every round's queries in batches of at most B
 * with its own scratch, OpenBLAS on one thread.  --threads 1 runs them all on the calling
 * thread with OpenBLAS's own thread count. */
#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "pc.h"
#include "sampler.h"
#include "sampler_json.h"
#include "task.h"
#include "task_pool.h"

#define MAX_BATCHES 16
#define DEFAULT_SAMPLER "{\"kind\":\"pc\",\"predictor\":\"reverse_diffusion\",\"corrector\":\"none\",\"steps\":200}"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Creates n tasks (seeds first_seed...), runs them on a pool of `threads` lanes answering at
 * most max_batch queries per evaluation each; returns seconds. */
static double run(const sc_model *m, const sampler_config *cfg, int n, int max_batch, long first_seed, int threads)
{
    sc_error err = {0};
    sc_task **t = calloc((size_t)n, sizeof *t);
    task_pool *pool = task_pool_create(m, threads, max_batch, &err);
    if (!t || !pool) {
        fprintf(stderr, "offline: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (pc_task_create(m, cfg, NULL, (uint64_t)(first_seed + i), 0, &t[i], &err)) {
            fprintf(stderr, "offline: %s\n", err.msg);
            exit(1);
        }
    double t0 = now();
    if (task_pool_run(pool, t, n, &err)) {
        fprintf(stderr, "offline: %s\n", err.msg);
        exit(1);
    }
    double dt = now() - t0;
    task_pool_free(pool);
    for (int i = 0; i < n; i++) {
        const float *x = pc_task_result(t[i]);
        for (int d = 0; d < m->D; d++)
            if (x[d] != x[d]) {
                fprintf(stderr, "offline: sample %d has a NaN\n", i);
                exit(1);
            }
        task_free(t[i]);
    }
    free(t);
    return dt;
}

int main(int argc, char **argv)
{
    const char *model_path = "models/fmnist-gmm.json", *sampler_json = DEFAULT_SAMPLER;
    int n = 512, batches[MAX_BATCHES], nb = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores >= 1 && cores <= 256 ? (int)cores : 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: offline [--model PATH] [--n N] [--batch B]... [--sampler JSON] [--threads T]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "offline: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *a = argv[i], *v = argv[++i];
        char *end;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--sampler")) sampler_json = v;
        else if (!strcmp(a, "--n")) {
            long l = strtol(v, &end, 10);
            if (*end || l < 1 || l > 1000000) return fprintf(stderr, "offline: bad --n %s\n", v), 2;
            n = (int)l;
        } else if (!strcmp(a, "--threads")) {
            long l = strtol(v, &end, 10);
            if (*end || l < 1 || l > 256) return fprintf(stderr, "offline: bad --threads %s\n", v), 2;
            threads = (int)l;
        } else if (!strcmp(a, "--batch")) {
            long l = strtol(v, &end, 10);
            if (*end || l < 1 || l > 65536 || nb == MAX_BATCHES) return fprintf(stderr, "offline: bad --batch %s\n", v), 2;
            batches[nb++] = (int)l;
        } else {
            fprintf(stderr, "offline: unknown option %s\n", a);
            return 2;
        }
    }
    if (nb == 0) {
        batches[nb++] = 64;
        batches[nb++] = 16;
    }

    sc_error err = {0};
    sc_model *m = NULL;
    if (sc_model_load(model_path, &m, &err)) {
        fprintf(stderr, "offline: %s: %s\n", model_path, err.msg);
        return 1;
    }
    json_error_t jerr;
    json_t *sj = json_loads(sampler_json, 0, &jerr);
    if (!sj || !json_is_object(sj)) {
        fprintf(stderr, "offline: --sampler is not a JSON object: %s\n", jerr.text);
        return 2;
    }
    sampler_config cfg;
    if (sampler_config_model_default(&cfg, m, SAMPLER_PC, &err) || sampler_config_apply_json(&cfg, sj, &err) ||
        sampler_config_validate(&cfg, m, &err)) {
        fprintf(stderr, "offline: %s\n", err.msg);
        return 1;
    }
    json_decref(sj);
    if (cfg.kind != SAMPLER_PC) {
        fprintf(stderr, "offline: only the pc sampler is supported\n");
        return 2;
    }

    if (threads > 1) openblas_set_num_threads(1); /* the cores are used by the threads */
    run(m, &cfg, batches[0] < n ? batches[0] : n, batches[0], 1000000, threads); /* warm-up */
    for (int b = 0; b < nb; b++) {
        double dt = run(m, &cfg, n, batches[b], 1, threads);
        printf("offline batch=%d samples=%d threads=%d seconds=%.3f throughput_sps=%.2f\n", batches[b], n, threads,
               dt, n / dt);
        fflush(stdout);
    }
    sc_model_free(m);
    return 0;
}
