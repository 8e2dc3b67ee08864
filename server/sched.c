/* Continuous batching.  Each model's scheduler runs on the loop thread: it admits queued
 * jobs, gathers the pending score queries of all its running jobs (whatever their sampler,
 * step count or conditioning) into one batch of at most max_batch queries, has a pool thread
 * evaluate it, then advances every task that was answered.  Jobs join and leave between
 * iterations.  A task's result never depends on its batch-mates (engine design), so a job's
 * output is bit-identical to running it alone. */
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codec.h"
#include "image.h"
#include "srv.h"

enum { TASK_PENDING = 0, TASK_FINISHED = 1, TASK_IN_BATCH = 2 };

void srv_wake(srv *s) { uv_async_send(&s->wake); }

static void queue_remove(srv_model *sm, job *j)
{
    job **pp = &sm->queued_head;
    job *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next_queued;
    }
    if (!*pp) return;
    *pp = j->next_queued;
    if (sm->queued_tail == j) sm->queued_tail = prev;
    j->next_queued = NULL;
}

static void running_remove(srv_model *sm, job *j)
{
    job **pp = &sm->running;
    while (*pp && *pp != j) pp = &(*pp)->next_queued;
    if (*pp) *pp = j->next_queued;
    j->next_queued = NULL;
}

static void number_queue(srv_model *sm)
{
    int pos = 0;
    for (job *q = sm->queued_head; q; q = q->next_queued) q->queue_position = pos++;
}

int sched_submit(srv *s, job *j, sc_error *err)
{
    if (s->queued_count >= s->cfg.queue_limit)
        return sc_fail(err, SRV_ERR_QUEUE_FULL, "the queue is full (%d jobs); retry later", s->queued_count);
    srv_model *sm = j->sm;
    j->next_queued = NULL;
    if (sm->queued_tail) sm->queued_tail->next_queued = j;
    else sm->queued_head = j;
    sm->queued_tail = j;
    s->queued_count++;
    number_queue(sm);
    job_table_add(s, j);
    return 0;
}

/* A job reaches a final state [locked]: it leaves its model's lists; async results stay. */
static void finish_locked(srv *s, job *j, job_status st)
{
    srv_model *sm = j->sm;
    if (j->status == JOB_QUEUED) {
        queue_remove(sm, j);
        s->queued_count--;
        number_queue(sm);
    } else if (j->status == JOB_RUNNING) {
        running_remove(sm, j);
        sm->running_items -= j->n;
        s->running_count--;
    }
    j->status = st;
    j->t_finished = srv_now();
    j->progress_seq++;
    if (j->async) job_retain_finished(s, j);
}

void sched_cancel(srv *s, job *j)
{
    if (job_is_final(j)) return;
    j->cancel_requested = 1;
    j->t_finished = srv_now(); /* when it was cancelled; the loop sets the time it stopped */
    if (j->status == JOB_QUEUED) {
        sc_fail(&j->error, SC_ERR_CANCELLED, "cancelled while queued");
        finish_locked(s, j, JOB_CANCELLED);
    }
}

void sched_notify(srv *s, job *j)
{
    struct MHD_Connection *conns[64];
    int n = 0;
    pthread_mutex_lock(&s->lock);
    if (j->waiter && job_is_final(j)) {
        conns[n++] = j->waiter;
        j->waiter = NULL;
    }
    for (sse_listener *l = j->listeners; l && n < 64; l = l->next)
        if (l->suspended) {
            l->suspended = 0;
            conns[n++] = l->conn;
        }
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) MHD_resume_connection(conns[i]);
}

/* ---- one iteration ---------------------------------------------------------------------- */

static void fail_job(srv *s, job *j, const sc_error *e)
{
    pthread_mutex_lock(&s->lock);
    j->error = *e;
    finish_locked(s, j, JOB_FAILED);
    pthread_mutex_unlock(&s->lock);
}

/* Admits queued jobs while their items fit beside the running ones (a job always runs when
 * nothing else does), and drops cancelled ones.  Returns the jobs whose state changed. */
static int admit(srv *s, srv_model *sm, job **changed, int cap)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (job *j = sm->running, *next; j; j = next) {
        next = j->next_queued;
        if (j->cancel_requested && !j->in_batch && n < cap) {
            sc_fail(&j->error, SC_ERR_CANCELLED, "cancelled while running");
            finish_locked(s, j, JOB_CANCELLED);
            changed[n++] = j;
            job_ref(j);
        }
    }
    while (sm->queued_head && n < cap && !s->stopping &&
           (!sm->running || sm->running_items + sm->queued_head->n <= s->cfg.max_batch)) {
        job *j = sm->queued_head;
        sm->queued_head = j->next_queued;
        if (!sm->queued_head) sm->queued_tail = NULL;
        s->queued_count--;
        j->next_queued = NULL;
        job **pp = &sm->running;
        while (*pp) pp = &(*pp)->next_queued;
        *pp = j;
        sm->running_items += j->n;
        s->running_count++;
        j->status = JOB_RUNNING;
        j->t_started = srv_now();
        j->progress_seq++;
        metrics_queue_wait(s->metrics, j->t_started - j->t_created);
        changed[n++] = j;
        job_ref(j);
    }
    number_queue(sm);
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* The current estimates of all the job's items as one PNG (a grid, as the result will be),
 * base64-encoded; NULL if unavailable.  Finished items show their result. */
static char *preview_png(const job *j)
{
    const sc_model *m = j->sm->model;
    const int C = m->shape[0], H = m->shape[1], W = m->shape[2], D = j->D;
    float *img = malloc(sizeof(float) * (size_t)j->n * D);
    uint8_t *pix = NULL, *png = NULL;
    size_t png_len = 0;
    int gw = W, gh = H;
    char *b64 = NULL;
    if (!img) return NULL;
    for (int i = 0; i < j->n; i++) {
        float *dst = img + (size_t)i * D;
        if (!j->tasks[i] || task_preview(j->tasks[i], dst) != 0) memcpy(dst, j->outputs + (size_t)i * D, sizeof(float) * D);
        for (int d = 0; d < D; d++) dst[d] = sc_model_to_unit(m, dst[d]);
    }
    int rc = 0;
    if (j->n > 1) rc = image_grid(img, j->n, C, H, W, 0, 2, &pix, &gw, &gh, NULL);
    else if ((pix = malloc((size_t)D))) image_float_to_u8(pix, img, W, H, C);
    else rc = -1;
    if (!rc && image_write_png_mem(pix, gw, gh, C, &png, &png_len, NULL) == 0) b64 = b64_encode(png, png_len);
    free(png);
    free(pix);
    free(img);
    return b64;
}

/* Progress of a job from its tasks [loop]; then [locked] publication. */
static void update_progress(srv *s, job *j)
{
    long step = -1, steps = 0, nfe = 0;
    for (int i = 0; i < j->n; i++) {
        const sc_task *t = j->tasks[i];
        long ts = t ? t->step : -1, tn = t ? t->nfe : 0;
        if (t && (step < 0 || ts < step)) step = ts;
        if (t && t->steps > steps) steps = t->steps;
        if (tn > nfe) nfe = tn;
    }
    char *b64 = NULL;
    if (j->preview_every > 0 && step >= 0 && (step / j->preview_every) > (j->preview_step / j->preview_every) &&
        sc_model_is_image(j->sm->model))
        b64 = preview_png(j);
    pthread_mutex_lock(&s->lock);
    if (step >= 0) j->step = step;
    j->steps = steps;
    if (nfe > j->nfe) j->nfe = nfe;
    j->progress_seq++;
    if (b64) {
        free(j->preview_b64);
        j->preview_b64 = b64;
        j->preview_seq++;
        j->preview_step = step;
    }
    pthread_mutex_unlock(&s->lock);
}

static void collect_result(job *j, int i)
{
    sc_task *t = j->tasks[i];
    if (j->kind == JOB_LIKELIHOOD || j->kind == JOB_ANOMALY) {
        flow_task_likelihood(t, &j->lik[i]);
        j->lik[i].latent = NULL; /* the task, which owns it, is freed below */
    } else if (j->kind == JOB_ENCODE) {
        memcpy(j->outputs + (size_t)i * j->D, flow_task_result(t), sizeof(float) * j->D);
        j->lik[i].nfe = t->nfe;
    } else {
        const float *x = j->scfg.kind == SAMPLER_PC ? pc_task_result(t) : flow_task_result(t);
        memcpy(j->outputs + (size_t)i * j->D, x, sizeof(float) * j->D);
        j->lik[i].nfe = t->nfe;
    }
}

static void kick(srv *s, srv_model *sm);

/* One chunk of the batch on a pool thread, in slices of at most max_batch queries. */
static void work_cb(uv_work_t *w)
{
    srv_model *sm = w->data;
    const int c = (int)(w - sm->work);
    const sc_model *m = sm->model;
    const int max = sm->server->cfg.max_batch, end = sm->chunk_off[c] + sm->chunk_len[c];
    sm->chunk_rc[c] = 0;
    for (int off = sm->chunk_off[c]; off < end && sm->chunk_rc[c] == 0; off += max) {
        int len = end - off < max ? end - off : max;
        sm->chunk_rc[c] = m->ops->eval(m, sm->batch + off, len, sm->scratch[c], &sm->chunk_err[c]);
    }
    /* The sampler's own step for this chunk's tasks runs here too, so it is spread over the
     * pool threads instead of queueing on the loop thread.  Each task is in exactly one
     * chunk and nothing else touches it while the batch is in flight. */
    for (int e = sm->chunk_entry[c]; e < sm->chunk_entry[c] + sm->chunk_entries[c]; e++) {
        sched_entry *en = &sm->entries[e];
        en->rc = sm->chunk_rc[c] ? sm->chunk_rc[c]
                                 : task_advance(sm->batch_jobs[en->job]->tasks[en->task], &en->err);
        if (sm->chunk_rc[c]) en->err = sm->chunk_err[c];
    }
}

static void after_cb(uv_work_t *w, int status)
{
    srv_model *sm = w->data;
    srv *s = sm->server;
    const int c = (int)(w - sm->work);
    if (status != 0) sm->chunk_rc[c] = sc_fail(&sm->chunk_err[c], SC_ERR_CANCELLED, "evaluation cancelled");
    if (--sm->in_flight > 0) return; /* other chunks still running */
    metrics_batch(s->metrics, sm->batch_n, srv_now() - sm->batch_t0, sm->batch_n);
    int e = 0;
    for (int b = 0; b < sm->batch_njobs; b++) {
        job *j = sm->batch_jobs[b];
        j->in_batch = 0;
        int failed = 0;
        sc_error err = {0};
        for (; e < sm->n_entries && sm->entries[e].job == b; e++) {
            const sched_entry *en = &sm->entries[e];
            const int i = en->task;
            j->task_done[i] = TASK_PENDING;
            if (failed || j->cancel_requested) continue;
            if (en->rc < 0) {
                snprintf(err.msg, sizeof err.msg, "item %d: %.480s", i, en->err.msg);
                err.code = en->rc;
                failed = 1;
            } else if (en->rc == TASK_DONE) {
                collect_result(j, i);
                j->task_done[i] = TASK_FINISHED;
                j->remaining--;
            }
        }
        if (failed) {
            fail_job(s, j, &err);
        } else if (!j->cancel_requested) {
            update_progress(s, j);
            if (j->remaining == 0) {
                j->seconds = srv_now() - j->t_started;
                if (results_build(s, j, &err)) fail_job(s, j, &err);
                else {
                    pthread_mutex_lock(&s->lock);
                    finish_locked(s, j, JOB_DONE);
                    pthread_mutex_unlock(&s->lock);
                }
            }
        }
        sched_notify(s, j);
        pthread_mutex_lock(&s->lock);
        job_unref(j); /* the batch's reference */
        pthread_mutex_unlock(&s->lock);
    }
    sm->n_entries = 0;
    sm->batch_njobs = 0;
    kick(s, sm);
}

/* Tasks of newly admitted jobs publish their first queries. */
static void start_job(srv *s, job *j)
{
    for (int i = 0; i < j->n; i++) {
        sc_error e = {0};
        int rc = task_advance(j->tasks[i], &e);
        if (rc < 0) {
            fail_job(s, j, &e);
            return;
        }
        if (rc == TASK_DONE) { /* cannot happen for sampling tasks; kept for safety */
            collect_result(j, i);
            j->task_done[i] = TASK_FINISHED;
            j->remaining--;
        }
    }
}

static void kick(srv *s, srv_model *sm)
{
    if (sm->in_flight) return;
    job *changed[256];
    int nc;
    while ((nc = admit(s, sm, changed, 256)) > 0) {
        for (int c = 0; c < nc; c++) {
            job *j = changed[c];
            if (j->status == JOB_RUNNING) start_job(s, j);
            sched_notify(s, j);
            pthread_mutex_lock(&s->lock);
            job_unref(j);
            pthread_mutex_unlock(&s->lock);
        }
        if (nc < 256) break;
    }
    /* Gather queries.  The first running job always gets in, however many queries its tasks
     * have (the pool thread evaluates them in chunks); later jobs while they fit. */
    sm->batch_n = 0;
    sm->batch_njobs = 0;
    sm->n_entries = 0;
    pthread_mutex_lock(&s->lock);
    for (job *j = sm->running; j; j = j->next_queued) {
        if (j->cancel_requested || job_is_final(j)) continue;
        int need = 0;
        for (int i = 0; i < j->n; i++)
            if (j->task_done[i] == TASK_PENDING && j->tasks[i]) need += j->tasks[i]->n_queries;
        if (need == 0) continue;
        if (sm->batch_n + need > sm->batch_cap) {
            if (sm->batch_n > 0) break;
            score_query *nb = realloc(sm->batch, sizeof *nb * (size_t)need);
            if (!nb) break;
            sm->batch = nb;
            sm->batch_cap = need;
        }
        if (sm->batch_njobs == sm->server->cfg.max_batch) break;
        for (int i = 0; i < j->n; i++) {
            sc_task *t = j->tasks[i];
            if (j->task_done[i] != TASK_PENDING || !t || t->n_queries == 0) continue;
            if (sm->n_entries == sm->cap_entries) {
                int cap = sm->cap_entries ? 2 * sm->cap_entries : 64;
                sched_entry *ne = realloc(sm->entries, sizeof *ne * (size_t)cap);
                SC_ASSERT(ne); /* a few KB; running out here leaves nothing sensible to do */
                sm->entries = ne;
                sm->cap_entries = cap;
            }
            sm->entries[sm->n_entries++] = (sched_entry){.job = sm->batch_njobs, .task = i,
                                                         .q_begin = sm->batch_n,
                                                         .q_end = sm->batch_n + t->n_queries};
            memcpy(sm->batch + sm->batch_n, t->queries, sizeof(score_query) * t->n_queries);
            sm->batch_n += t->n_queries;
            j->task_done[i] = TASK_IN_BATCH;
        }
        j->in_batch = 1;
        job_ref(j);
        sm->batch_jobs[sm->batch_njobs++] = j;
    }
    /* round robin: the first running job goes to the back, so no job waits forever */
    if (sm->running && sm->running->next_queued) {
        job *first = sm->running;
        sm->running = first->next_queued;
        job **pp = &sm->running;
        while (*pp) pp = &(*pp)->next_queued;
        *pp = first;
        first->next_queued = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (sm->batch_n == 0) return;
    /* Chunks for the pool threads: queries are independent, so how the batch is split
     * changes no result, only how many cores work on it. */
    int chunks = s->cfg.eval_threads < sm->n_entries ? s->cfg.eval_threads : sm->n_entries;
    memset(sm->chunk_len, 0, sizeof sm->chunk_len);
    sm->batch_t0 = srv_now();
    /* chunks end on task boundaries, each with about batch_n / chunks queries */
    int e = 0, used = 0;
    for (int c = 0; c < chunks; c++) {
        const int target = (int)((long)sm->batch_n * (c + 1) / chunks);
        sm->chunk_entry[c] = e;
        sm->chunk_off[c] = sm->entries[e].q_begin;
        int left = chunks - c - 1; /* keep at least one task for each later chunk */
        while (e < sm->n_entries - left && (e == sm->chunk_entry[c] || sm->entries[e].q_end <= target)) e++;
        if (c == chunks - 1) e = sm->n_entries;
        sm->chunk_entries[c] = e - sm->chunk_entry[c];
        sm->chunk_len[c] = sm->entries[e - 1].q_end - sm->chunk_off[c];
        used++;
        sm->work[c].data = sm;
    }
    sm->in_flight = used;
    for (int c = 0; c < used; c++) uv_queue_work(s->loop, &sm->work[c], work_cb, after_cb);
}

void sched_kick_all(srv *s)
{
    pthread_mutex_lock(&s->lock);
    srv_model *list[2][256];
    int n[2] = {0, 0};
    for (srv_model *sm = s->models; sm && n[0] < 256; sm = sm->next) list[0][n[0]++] = sm;
    for (srv_model *sm = s->retired; sm && n[1] < 256; sm = sm->next) list[1][n[1]++] = sm;
    /* hold references so a reload cannot free them under us */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n[k]; i++) list[k][i]->refs++;
    pthread_mutex_unlock(&s->lock);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n[k]; i++) kick(s, list[k][i]);
    pthread_mutex_lock(&s->lock);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n[k]; i++) srv_model_unref(list[k][i]);
    pthread_mutex_unlock(&s->lock);
}
