/* The engine's offline batched sampling throughput, without HTTP: the yardstick for the
 * server benchmark (tests/bench/bench_server.sh).  Loads a model, builds the sampler exactly
 * as the server does for a request (the model's default PC sampler overlaid with a JSON
 * "sampler" object), creates N one-sample tasks with distinct seeds (index 0 of each seed,
 * as a request {"n": 1, "seed": s} makes) and runs them with task_run_batched.  One sample
 * here is one request of the load generator.
 *
 *   offline [--model models/fmnist-gmm.json] [--n 512] [--batch 64] [--batch 16 ...]
 *           [--sampler '{"kind":"pc",...}']
 *
 * Prints, per batch size:  offline batch=B samples=N seconds=T throughput_sps=X
 * A small untimed run first warms caches and the allocator. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "pc.h"
#include "sampler.h"
#include "sampler_json.h"
#include "task.h"

#define MAX_BATCHES 16
#define DEFAULT_SAMPLER "{\"kind\":\"pc\",\"predictor\":\"reverse_diffusion\",\"corrector\":\"none\",\"steps\":200}"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Creates n tasks (seeds first_seed...), runs them at max_batch; returns seconds or < 0. */
static double run(const sc_model *m, const sampler_config *cfg, int n, int max_batch, long first_seed)
{
    sc_error err = {0};
    sc_task **t = calloc((size_t)n, sizeof *t);
    void *scratch = sc_model_scratch_alloc(m, max_batch);
    if (!t || !scratch) {
        fprintf(stderr, "offline: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (pc_task_create(m, cfg, NULL, (uint64_t)(first_seed + i), 0, &t[i], &err)) {
            fprintf(stderr, "offline: %s\n", err.msg);
            exit(1);
        }
    double t0 = now();
    int rc = task_run_batched(m, t, n, max_batch, scratch, &err);
    double dt = now() - t0;
    if (rc) {
        fprintf(stderr, "offline: %s\n", err.msg);
        exit(1);
    }
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
    free(scratch);
    return dt;
}

int main(int argc, char **argv)
{
    const char *model_path = "models/fmnist-gmm.json", *sampler_json = DEFAULT_SAMPLER;
    int n = 512, batches[MAX_BATCHES], nb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: offline [--model PATH] [--n N] [--batch B]... [--sampler JSON]\n");
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

    run(m, &cfg, batches[0] < n ? batches[0] : n, batches[0], 1000000); /* warm-up */
    for (int b = 0; b < nb; b++) {
        double dt = run(m, &cfg, n, batches[b], 1);
        printf("offline batch=%d samples=%d seconds=%.3f throughput_sps=%.2f\n", batches[b], n, dt, n / dt);
        fflush(stdout);
    }
    sc_model_free(m);
    return 0;
}
