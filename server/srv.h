/* The server's shared state: configuration, loaded models with their schedulers, jobs, and
 * the one lock that guards job state.  Threading model (README, "Threads"):
 *   - the libmicrohttpd polling thread parses requests, creates jobs, answers reads of job
 *     state, and suspends connections that wait;
 *   - the libuv loop thread (main thread) owns scheduling: admission, batch assembly, task
 *     advancing, results, resuming connections, timers and signals;
 *   - the libuv thread pool runs the batched score evaluations (one batch in flight per model).
 * srv.lock guards the job table and every job field marked [locked]; fields marked [loop] are
 * touched by the loop thread only (and by a pool thread only for the batch it evaluates).
 * Lock order: srv.lock is a leaf: no libmicrohttpd or libuv call is made while holding it,
 * except MHD_suspend_connection from within a libmicrohttpd callback. */
#ifndef SCORED_SRV_H
#define SCORED_SRV_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "flow.h"
#include "metrics.h"
#include "model.h"
#include "pc.h"
#include "sampler.h"

#define SRV_MAX_EVAL_THREADS 16
#define SRV_SEED_MAX ((1ull << 53) - 1) /* seeds stay exact as JSON numbers (JavaScript too) */

typedef struct srv_config {
    char models_dir[1024];
    char host[256];
    int port;
    int max_batch;          /* score queries per batched evaluation                   */
    int queue_limit;        /* queued jobs over all models before 429                 */
    char api_key_file[1024];
    char static_dir[1024];
    size_t max_body;        /* bytes                                                  */
    double job_ttl;         /* seconds a finished async job's result is kept          */
    double grace;           /* seconds running jobs get to finish on SIGTERM          */
    int max_items;          /* samples or images per request                          */
    int max_steps;          /* PC grid points / fixed ODE steps per request           */
    int max_retained;       /* finished async jobs kept at most                       */
    int eval_threads;       /* pool threads that share one batch (chunks of queries)  */
} srv_config;

typedef enum {
    JOB_SAMPLES,
    JOB_INPAINT,
    JOB_COLORIZE,
    JOB_LIKELIHOOD,
    JOB_ANOMALY,
    JOB_ENCODE,
    JOB_DECODE,
    JOB_KIND_COUNT
} job_kind;
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED, JOB_STATUS_COUNT } job_status;

const char *job_kind_name(job_kind k);
const char *job_status_name(job_status s);

typedef struct srv srv;
typedef struct srv_model srv_model;
typedef struct job job;

/* One server-sent-events stream on a job. */
typedef struct sse_listener {
    job *job;                          /* holds a reference                       [locked] */
    struct MHD_Connection *conn;
    int suspended;                     /* waiting for news                        [locked] */
    long sent_progress, sent_preview;  /* sequence numbers already streamed       [locked] */
    double last_progress;              /* when the last progress event went out    [locked] */
    int sent_final;
    char *pending;                     /* formatted, not yet written; owned       [locked] */
    size_t pending_len, pending_off;
    struct sse_listener *next;         /* job's listener list                     [locked] */
} sse_listener;

typedef enum { SCORE_BPD, SCORE_COMPLEXITY } anomaly_score;

struct job {
    char id[33];
    job_kind kind;
    job_status status;                 /*                                        [locked] */
    srv_model *sm;                     /* holds a model reference                          */
    srv *server;
    int n;                             /* items (samples, images)                          */
    int D;
    /* request parameters (immutable after creation) */
    sampler_config scfg;
    likelihood_config lcfg;
    sc_condition cond;                 /* arrays point at inputs / mask                    */
    uint64_t seed;
    float *inputs;                     /* (n, D) data, latents or condition; owned          */
    float *mask;                       /* (D) inpainting mask; owned                         */
    double *complexity;                /* (n) anomaly: compressed size of each image, bits/dim */
    int have_pngs;                     /* inputs came from 8-bit images (bits/dim)         */
    int want_png, grid, want_npy;
    int preview_every;
    anomaly_score ascore;
    double threshold;
    const char *threshold_source;
    /* execution [loop] */
    sc_task **tasks;                   /* (n) owned                                        */
    unsigned char *task_done;          /* (n)                                              */
    int remaining;
    int in_batch;                      /* batches in flight holding some of its tasks      */
    unsigned batch_round;              /* the scheduler round that sent them               */
    float *outputs;                    /* (n, D) samples / latents                          */
    likelihood_result *lik;            /* (n)                                              */
    job *next_queued;                  /* model's FIFO / running list              [locked] */
    /* progress [locked] */
    long step, steps, nfe;
    long progress_seq;
    char *preview_b64;                 /* latest preview PNG; owned                        */
    long preview_seq, preview_step;
    int queue_position;
    double t_created, t_started, t_finished;
    /* outcome [locked] */
    sc_error error;
    int error_http;
    unsigned char *body;               /* the synchronous response body; owned            */
    size_t body_len;
    const char *content_type;
    char *result_json;                 /* the JSON result, for GET /v1/jobs/{id}; owned    */
    double seconds;                    /* compute seconds, start to finish                 */
    /* who is waiting [locked] */
    int async;
    int cancel_requested;
    struct MHD_Connection *waiter;     /* a synchronous request, suspended                 */
    sse_listener *listeners;
    int refs;                          /* table, waiter, listeners                         */
    int in_table;
    job *hash_next;                    /* job table chain                          [locked] */
    job *retained_next;                /* finished async jobs, oldest first        [locked] */
};

/* One task's place in a batch: its queries, and the result of advancing it. */
typedef struct sched_entry {
    int job;                           /* index into the batch's jobs                       */
    int task;
    int rc;                            /* task_advance's answer, set by the pool thread      */
    sc_error err;
} sched_entry;

/* One batched evaluation in flight on a pool thread [loop; the pool thread while busy]. */
typedef struct sched_batch {
    struct srv_model *sm;
    int busy;
    uv_work_t work;
    score_query *q;                    /* (cap_q)                                           */
    int nq, cap_q;
    job **jobs;                        /* (cap_jobs) each holds a reference                  */
    int njobs, cap_jobs;
    sched_entry *entries;              /* (cap_entries) the tasks answered by this batch      */
    int n_entries, cap_entries;
    void *scratch;                     /* the model's eval scratch for max_batch queries      */
    int rc;
    sc_error err;
    double t0;
} sched_batch;

/* A loaded model and its scheduler. */
struct srv_model {
    char id[128];
    sc_model *model;                   /* owned; immutable                                 */
    srv *server;
    int refs;                          /* registry + jobs                          [locked] */
    int retired;                       /* replaced by a reload                     [locked] */
    job *queued_head, *queued_tail;    /* FIFO                                     [locked] */
    job *running;                      /* list via next_queued                     [locked] */
    int running_items;                 /*                                          [locked] */
    /* Up to eval_threads batches are in flight at once, each on its own pool thread and
     * each with its own jobs, so the pool keeps evaluating while the loop thread digests a
     * finished batch. */
    sched_batch batches[SRV_MAX_EVAL_THREADS];
    int n_batches;
    int in_flight;                     /* busy batches                             [loop]   */
    unsigned round;                    /* scheduling rounds so far                 [loop]   */
    srv_model *next;                   /* registry list                                    */
};

#define JOB_BUCKETS 1024
#define TOMBSTONES 4096

struct srv {
    srv_config cfg;
    pthread_mutex_t lock;
    uv_loop_t *loop;
    struct MHD_Daemon *daemon;
    metrics *metrics;
    char **api_keys;                   /* NULL-terminated, or NULL when none configured    */
    srv_model *models;                 /* registry                                 [locked] */
    srv_model *retired;                /* replaced by a reload, still running jobs [locked] */
    int ready;                         /* models loaded                            [locked] */
    int shutting_down;                 /*                                          [locked] */
    job *jobs[JOB_BUCKETS];            /* by id                                    [locked] */
    job *retained_head, *retained_tail;
    int retained_count;
    char tombstones[TOMBSTONES][33];   /* expired job ids (410)                    [locked] */
    int tombstone_next;
    int queued_count;                  /* over all models                          [locked] */
    int running_count;
    uint64_t id_counter;
    uint64_t id_salt;
    uv_async_t wake;                   /* "jobs submitted / cancelled / listeners"         */
    uv_timer_t sweep;                  /* TTL expiry, disconnect checks                    */
    uv_timer_t grace_timer;
    uv_signal_t sig_term, sig_int, sig_hup;
    double shutdown_started;
    int stopping;
};

double srv_now(void);

/* Server-side error codes beside the engine's sc_code (err.h). */
#define SRV_ERR_QUEUE_FULL (-100)    /* 429 */
#define SRV_ERR_MEDIA_TYPE (-101)    /* 415 */
#define SRV_ERR_NOT_READY (-102)     /* 503 */
#define SRV_ERR_NOT_FOUND (-103)     /* 404 */
#define SRV_ERR_UNAUTHORIZED (-104)  /* 401 */
#define SRV_ERR_METHOD (-105)        /* 405 */
#define SRV_ERR_GONE (-106)          /* 410 */
#define SRV_ERR_CONFLICT (-107)      /* 409 */
#define SRV_ERR_SHUTTING_DOWN (-108) /* 503 */
int srv_error_status(int code);
const char *srv_error_name(int code);

/* ---- jobs (jobs.c) ---- */
/* A new job holding no model reference yet: on success the creator hands it its own. */
job *job_new(srv *s, srv_model *sm, job_kind kind, int n, sc_error *err);
void job_discard(job *j);                      /* frees a job that never got a model reference */
void job_ref(job *j);                          /* [locked] */
void job_unref(job *j);                        /* [locked]; frees at zero */
job *job_find(srv *s, const char *id, int *expired); /* [locked]; no reference taken */
void job_table_add(srv *s, job *j);            /* [locked] */
void job_table_remove(srv *s, job *j);         /* [locked]; records a tombstone */
void job_retain_finished(srv *s, job *j);      /* [locked]: an async job finished */
void job_expire(srv *s, double now);           /* [locked]: TTL and count limits */
char *job_to_json(const job *j);               /* [locked]; malloc'd */
int job_is_final(const job *j);

/* ---- models (registry.c) ---- */
int registry_load(srv *s, srv_model **out_list, int *count, sc_error *err);
srv_model *registry_find(srv *s, const char *id);   /* [locked]; no reference taken */
void srv_model_unref(srv_model *sm);                 /* [locked] */
int registry_reload(srv *s);                         /* loop thread */
char *model_info_json(const srv_model *sm);          /* malloc'd */
char *model_list_json(srv *s);                       /* [locked]; malloc'd */

/* ---- scheduling (sched.c), loop thread unless noted ---- */
/* Enqueues a new job: [locked], any thread; then call srv_wake. Fails with 429 when full. */
int sched_submit(srv *s, job *j, sc_error *err);
void sched_kick_all(srv *s);
void sched_cancel(srv *s, job *j);                    /* [locked], any thread */
void srv_wake(srv *s);                                /* any thread */
/* Resumes the connections waiting on j (after a state change); called without the lock. */
void sched_notify(srv *s, job *j);

/* ---- results (results.c), loop thread ---- */
int results_build(srv *s, job *j, sc_error *err);

/* ---- http (http.c) ---- */
int http_start(srv *s, sc_error *err);
void http_quiesce(srv *s);
void http_stop(srv *s);
int http_port(srv *s);                 /* the port bound (useful with --port 0) */

#endif
