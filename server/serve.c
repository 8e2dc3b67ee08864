/* `scored serve`: configuration (options and environment), start-up, the libuv loop with its
 * timers and signals, and graceful shutdown.  SIGTERM/SIGINT: stop accepting, cancel queued
 * jobs, let running ones finish within the grace period (then cancel them), exit 0.
 * SIGHUP: reload the models directory. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "srv.h"



static const char usage[] =
    "usage: scored serve [--models DIR] [--host ADDR] [--port N] [--max-batch N] [--queue N]\n"
    "                    [--api-key-file F] [--static DIR] [--max-body-mb N] [--job-ttl S]\n"
    "                    [--grace S] [--max-items N] [--max-steps N] [--eval-threads N]\n"
    "\n"
    "Serves the models of DIR over HTTP/JSON (API: proto/openapi.yaml).  Each option can also be\n"
    "set by an environment variable: SCORED_MODELS, SCORED_HOST, SCORED_PORT, SCORED_MAX_BATCH,\n"
    "SCORED_QUEUE, SCORED_API_KEY_FILE, SCORED_STATIC, SCORED_MAX_BODY_MB, SCORED_JOB_TTL,\n"
    "SCORED_GRACE, SCORED_MAX_ITEMS, SCORED_MAX_STEPS, SCORED_EVAL_THREADS; options win over\n"
    "the environment.  Defaults: models, 127.0.0.1, 8080, 64, 256, none, static, 16, 600, 10,\n"
    "64, 10000, and one evaluation thread per core.\n";

static int parse_long(const char *what, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "scored: serve: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_double(const char *what, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "scored: serve: %s must be a number in [%g, %g], got '%s'\n", what, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

enum { O_MODELS, O_HOST, O_PORT, O_MAX_BATCH, O_QUEUE, O_KEYS, O_STATIC, O_MAX_BODY, O_TTL, O_GRACE,
       O_MAX_ITEMS, O_MAX_STEPS, O_EVAL_THREADS, O_HELP, O_COUNT };
static const char *const env_names[O_COUNT] = {"SCORED_MODELS", "SCORED_HOST", "SCORED_PORT", "SCORED_MAX_BATCH",
                                               "SCORED_QUEUE", "SCORED_API_KEY_FILE", "SCORED_STATIC",
                                               "SCORED_MAX_BODY_MB", "SCORED_JOB_TTL", "SCORED_GRACE",
                                               "SCORED_MAX_ITEMS", "SCORED_MAX_STEPS", "SCORED_EVAL_THREADS",
                                               NULL};

static int apply(srv_config *c, int opt, const char *v)
{
    long l;
    double d;
    switch (opt) {
    case O_MODELS: snprintf(c->models_dir, sizeof c->models_dir, "%s", v); return 0;
    case O_HOST: snprintf(c->host, sizeof c->host, "%s", v); return 0;
    case O_KEYS: snprintf(c->api_key_file, sizeof c->api_key_file, "%s", v); return 0;
    case O_STATIC: snprintf(c->static_dir, sizeof c->static_dir, "%s", v); return 0;
    case O_PORT: if (parse_long("--port", v, 0, 65535, &l)) return -1; c->port = (int)l; return 0;
    case O_MAX_BATCH: if (parse_long("--max-batch", v, 1, 4096, &l)) return -1; c->max_batch = (int)l; return 0;
    case O_QUEUE: if (parse_long("--queue", v, 1, 100000, &l)) return -1; c->queue_limit = (int)l; return 0;
    case O_MAX_BODY: if (parse_long("--max-body-mb", v, 1, 1024, &l)) return -1; c->max_body = (size_t)l << 20; return 0;
    case O_TTL: if (parse_double("--job-ttl", v, 1, 86400 * 7, &d)) return -1; c->job_ttl = d; return 0;
    case O_GRACE: if (parse_double("--grace", v, 0, 3600, &d)) return -1; c->grace = d; return 0;
    case O_MAX_ITEMS: if (parse_long("--max-items", v, 1, 4096, &l)) return -1; c->max_items = (int)l; return 0;
    case O_MAX_STEPS: if (parse_long("--max-steps", v, 2, SAMPLER_MAX_STEPS, &l)) return -1; c->max_steps = (int)l; return 0;
    case O_EVAL_THREADS:
        if (parse_long("--eval-threads", v, 1, SRV_MAX_EVAL_THREADS, &l)) return -1;
        c->eval_threads = (int)l;
        return 0;
    }
    return -1;
}

static int parse_config(int argc, char **argv, srv_config *c)
{
    *c = (srv_config){.port = 8080, .max_batch = 64, .queue_limit = 256, .max_body = 16u << 20,
                      .job_ttl = 600, .grace = 10, .max_items = 64, .max_steps = 10000, .max_retained = 1024};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->eval_threads = cores < 1 ? 1 : cores > SRV_MAX_EVAL_THREADS ? SRV_MAX_EVAL_THREADS : (int)cores;
    snprintf(c->models_dir, sizeof c->models_dir, "models");
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    snprintf(c->static_dir, sizeof c->static_dir, "static");
    for (int o = 0; o < O_COUNT; o++) {
        const char *v = env_names[o] ? getenv(env_names[o]) : NULL;
        if (v && *v && apply(c, o, v)) return 1;
    }
    static const struct option opts[] = {
        {"models", required_argument, 0, O_MODELS},     {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},         {"max-batch", required_argument, 0, O_MAX_BATCH},
        {"queue", required_argument, 0, O_QUEUE},       {"api-key-file", required_argument, 0, O_KEYS},
        {"static", required_argument, 0, O_STATIC},     {"max-body-mb", required_argument, 0, O_MAX_BODY},
        {"job-ttl", required_argument, 0, O_TTL},       {"grace", required_argument, 0, O_GRACE},
        {"max-items", required_argument, 0, O_MAX_ITEMS}, {"max-steps", required_argument, 0, O_MAX_STEPS},
        {"eval-threads", required_argument, 0, O_EVAL_THREADS},
        {"help", no_argument, 0, O_HELP},               {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_HELP || ch == 'h') {
            fputs(usage, stdout);
            return -1;
        }
        if (ch == '?' || ch == ':') {
            fprintf(stderr, "scored: serve: unknown option or missing value: %s (see 'scored serve --help')\n",
                    argv[optind - 1]);
            return 2;
        }
        if (apply(c, ch, optarg)) return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "scored: serve: unexpected argument '%s' (see 'scored serve --help')\n", argv[optind]);
        return 2;
    }
    return 0;
}

static char **load_keys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "scored: serve: cannot read --api-key-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char **keys = calloc(257, sizeof *keys), line[512];
    int n = 0;
    while (keys && n < 256 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (*k && *k != '#') keys[n++] = strdup(k);
    }
    fclose(f);
    if (keys && n == 0) {
        fprintf(stderr, "scored: serve: --api-key-file %s holds no key\n", path);
        free(keys);
        return NULL;
    }
    return keys;
}

/* ---- loop callbacks ---------------------------------------------------------------------- */

static void maybe_finish_shutdown(srv *s);

static void on_wake(uv_async_t *h)
{
    srv *s = h->data;
    sched_kick_all(s);
    maybe_finish_shutdown(s);
}

/* Every 200 ms: synchronous clients that hung up cancel their jobs; expired results go. */
static void on_sweep(uv_timer_t *h)
{
    srv *s = h->data;
    job *gone[256];
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (int b = 0; b < JOB_BUCKETS && n < 256; b++)
        for (job *j = s->jobs[b]; j && n < 256; j = j->hash_next) {
            if (!j->waiter || job_is_final(j) || j->cancel_requested) continue;
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(j->waiter, MHD_CONNECTION_INFO_CONNECTION_FD);
            char byte;
            if (ci && recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
                sched_cancel(s, j);
                job_ref(j);
                gone[n++] = j;
            }
        }
    job_expire(s, srv_now());
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) {
        sched_notify(s, gone[i]);
        pthread_mutex_lock(&s->lock);
        job_unref(gone[i]);
        pthread_mutex_unlock(&s->lock);
    }
    if (n) sched_kick_all(s);
    maybe_finish_shutdown(s);
}

static void cancel_all(srv *s, int running_too)
{
    job *list[1024];
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (int b = 0; b < JOB_BUCKETS; b++)
        for (job *j = s->jobs[b]; j && n < 1024; j = j->hash_next)
            if (!job_is_final(j) && (running_too || j->status == JOB_QUEUED)) {
                sched_cancel(s, j);
                job_ref(j);
                list[n++] = j;
            }
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) {
        sched_notify(s, list[i]);
        pthread_mutex_lock(&s->lock);
        job_unref(list[i]);
        pthread_mutex_unlock(&s->lock);
    }
    sched_kick_all(s);
}

static void on_close_stop(uv_timer_t *h)
{
    srv *s = h->data;
    uv_stop(s->loop);
}

static void maybe_finish_shutdown(srv *s)
{
    if (!s->stopping) return;
    pthread_mutex_lock(&s->lock);
    int busy = s->running_count > 0 || s->queued_count > 0;
    pthread_mutex_unlock(&s->lock);
    if (busy || s->stopping == 2) return;
    s->stopping = 2;
    /* the last responses get a moment to leave before the daemon stops */
    uv_timer_stop(&s->grace_timer);
    uv_timer_start(&s->grace_timer, on_close_stop, 300, 0);
}

static void on_grace(uv_timer_t *h)
{
    srv *s = h->data;
    fprintf(stderr, "scored: grace period over; cancelling running jobs\n");
    cancel_all(s, 1);
    maybe_finish_shutdown(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    srv *s = h->data;
    if (signum == SIGHUP) {
        registry_reload(s);
        sched_kick_all(s);
        return;
    }
    if (s->stopping) return;
    fprintf(stderr, "scored: %s: no new requests; finishing running jobs (grace %.0f s)\n",
            signum == SIGTERM ? "SIGTERM" : "SIGINT", s->cfg.grace);
    pthread_mutex_lock(&s->lock);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->lock);
    s->stopping = 1;
    http_quiesce(s);
    cancel_all(s, 0);
    uv_timer_start(&s->grace_timer, on_grace, (uint64_t)(s->cfg.grace * 1000), 0);
    maybe_finish_shutdown(s);
}

static void free_registry(srv *s)
{
    pthread_mutex_lock(&s->lock);
    for (int b = 0; b < JOB_BUCKETS; b++)
        while (s->jobs[b]) job_table_remove(s, s->jobs[b]);
    srv_model *sm = s->models;
    s->models = NULL;
    while (sm) {
        srv_model *next = sm->next;
        sm->next = s->retired;
        s->retired = sm;
        srv_model_unref(sm);
        sm = next;
    }
    pthread_mutex_unlock(&s->lock);
}

int cli_serve_main(int argc, char **argv)
{
    srv *s = calloc(1, sizeof *s);
    if (!s) return 1;
    int rc = parse_config(argc, argv, &s->cfg);
    if (rc) {
        free(s);
        return rc < 0 ? 0 : rc;
    }
    if (s->cfg.api_key_file[0] && !(s->api_keys = load_keys(s->cfg.api_key_file))) {
        free(s);
        return 1;
    }
    /* Up to eval_threads batches per model are in flight at once on the libuv pool, one per
     * thread; OpenBLAS runs single-threaded inside each (main.c sets it for every command), so
     * the cores are used once, not eval_threads x BLAS-threads times over (README, Threads). */
    char pool[16];
    snprintf(pool, sizeof pool, "%d", s->cfg.eval_threads + 2);
    setenv("UV_THREADPOOL_SIZE", pool, 0);
    pthread_mutex_init(&s->lock, NULL);
    s->id_salt = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(srv_now() * 1e9);
    s->metrics = metrics_create(s->cfg.max_batch);
    s->loop = uv_default_loop();
    sc_error err = {0};
    int count = 0;
    srv_model *list = NULL;
    if (!s->metrics || registry_load(s, &list, &count, &err)) {
        fprintf(stderr, "scored: serve: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    s->models = list;
    s->ready = 1;
    uv_async_init(s->loop, &s->wake, on_wake);
    s->wake.data = s;
    uv_timer_init(s->loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_init(s->loop, &s->grace_timer);
    s->grace_timer.data = s;
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
    if (http_start(s, &err)) {
        fprintf(stderr, "scored: serve: %s\n", err.msg);
        return 1;
    }
    uv_timer_start(&s->sweep, on_sweep, 200, 200);
    fprintf(stderr, "scored: serving %d models from %s on http://%s:%d/\n", count, s->cfg.models_dir,
            s->cfg.host, http_port(s));
    uv_run(s->loop, UV_RUN_DEFAULT);

    http_stop(s);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->sweep, NULL);
    uv_close((uv_handle_t *)&s->grace_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    free_registry(s);
    metrics_free(s->metrics);
    if (s->api_keys) {
        for (char **k = s->api_keys; *k; k++) free(*k);
        free(s->api_keys);
    }
    pthread_mutex_destroy(&s->lock);
    fprintf(stderr, "scored: stopped\n");
    free(s);
    return 0;
}
