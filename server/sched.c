/* Continuous batching.  Each model's scheduler runs on the loop thread: it admits queued
 * jobs, gathers the pending score queries of its running jobs (whatever their sampler, step
 * count or conditioning) into batches of at most max_batch queries, one per free pool
 * thread, and once a batch is evaluated (its tasks advanced on the same pool thread) it
 * publishes the progress and results.  Jobs join and leave between iterations.  A task's result never depends on its batch-mates (engine design), so a job's
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

/* Steps planned for a job: the most of its tasks' (0 = unknown in advance: adaptive rk45). */
static long planned_steps(const job *j)
{
    long steps = 0;
    for (int i = 0; i < j->n; i++)
        if (j->tasks[i] && j->tasks[i]->steps > steps) steps = j->tasks[i]->steps;
    return steps;
}

int sched_submit(srv *s, job *j, sc_error *err)
{
    if (s->queued_count >= s->cfg.queue_limit)
        return sc_fail(err, SRV_ERR_QUEUE_FULL, "the queue is full (%d jobs); retry later", s->queued_count);
    srv_model *sm = j->sm;
    j->steps = planned_steps(j); /* known before the job runs */
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
    long step = -1, nfe = 0;
    for (int i = 0; i < j->n; i++) {
        const sc_task *t = j->tasks[i];
        long ts = t ? t->step : -1, tn = t ? t->nfe : 0;
        if (t && (step < 0 || ts < step)) step = ts;
        if (tn > nfe) nfe = tn;
    }
    char *b64 = NULL;
    if (j->preview_every > 0 && step >= 0 && (step / j->preview_every) > (j->preview_step / j->preview_every) &&
        sc_model_is_image(j->sm->model))
        b64 = preview_png(j);
    pthread_mutex_lock(&s->lock);
    if (step >= 0) j->step = step;
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

/* A batch on a pool thread: evaluate its queries (in slices of at most max_batch), then take
 * each answered task's next step here too, so the samplers' own work is spread over the pool
 * threads.  Nothing else touches these tasks while the batch is in flight. */
static void work_cb(uv_work_t *w)
{
    sched_batch *b = w->data;
    const sc_model *m = b->sm->model;
    const int max = b->sm->server->cfg.max_batch;
    b->rc = 0;
    for (int off = 0; off < b->nq && b->rc == 0; off += max) {
        int len = b->nq - off < max ? b->nq - off : max;
        b->rc = m->ops->eval(m, b->q + off, len, b->scratch, &b->err);
    }
    for (int e = 0; e < b->n_entries; e++) {
        sched_entry *en = &b->entries[e];
        en->rc = b->rc ? b->rc : task_advance(b->jobs[en->job]->tasks[en->task], &en->err);
        if (b->rc) en->err = b->err;
    }
}

static void after_cb(uv_work_t *w, int status)
{
    sched_batch *b = w->data;
    srv_model *sm = b->sm;
    srv *s = sm->server;
    if (status != 0)
        for (int e = 0; e < b->n_entries; e++)
            b->entries[e].rc = sc_fail(&b->entries[e].err, SC_ERR_CANCELLED, "evaluation cancelled");
    metrics_batch(s->metrics, b->nq, srv_now() - b->t0, b->nq);
    int e = 0;
    for (int k = 0; k < b->njobs; k++) {
        job *j = b->jobs[k];
        j->in_batch--;
        int failed = 0;
        sc_error err = {0};
        for (; e < b->n_entries && b->entries[e].job == k; e++) {
            const sched_entry *en = &b->entries[e];
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
            if (!j->in_batch) update_progress(s, j); /* once all its batches are back */
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
    b->njobs = b->n_entries = b->nq = 0;
    b->busy = 0;
    sm->in_flight--;
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
    /* Fill the free batches with about an equal share of the pending queries each (at most
     * max_batch; a single task with more queries still goes in whole: its batch is evaluated
     * in slices).  A job's tasks may spread over the batches of one round, but a job goes out
     * again only when all of its batches are back, so its items stay in step (progress and
     * previews are per step). */
    sm->round++;
    for (int slot = 0; slot < sm->n_batches; slot++) {
        sched_batch *b = &sm->batches[slot];
        if (b->busy) continue;
        pthread_mutex_lock(&s->lock);
        int pending = 0, free_slots = 0;
        for (int k = 0; k < sm->n_batches; k++) free_slots += !sm->batches[k].busy;
        for (job *j = sm->running; j; j = j->next_queued) {
            if (j->cancel_requested || job_is_final(j) || (j->in_batch && j->batch_round != sm->round)) continue;
            for (int i = 0; i < j->n; i++)
                if (j->task_done[i] == TASK_PENDING && j->tasks[i]) pending += j->tasks[i]->n_queries;
        }
        int target = (pending + free_slots - 1) / (free_slots ? free_slots : 1);
        if (target > s->cfg.max_batch) target = s->cfg.max_batch;
        for (job *j = sm->running; j && pending && b->nq < target; j = j->next_queued) {
            if (j->cancel_requested || job_is_final(j) || (j->in_batch && j->batch_round != sm->round)) continue;
            int taken = 0; /* tasks of j in this batch; a job may spread over several batches */
            for (int i = 0; i < j->n && b->nq < target; i++) {
                sc_task *t = j->tasks[i];
                if (j->task_done[i] != TASK_PENDING || !t || t->n_queries == 0) continue;
                if (b->nq > 0 && b->nq + t->n_queries > target) break;
                if (!taken && b->njobs == b->cap_jobs) {
                    job **nj = realloc(b->jobs, sizeof *nj * (size_t)(2 * b->cap_jobs));
                    if (!nj) break;
                    b->jobs = nj;
                    b->cap_jobs *= 2;
                }
                if (b->nq + t->n_queries > b->cap_q) {
                    score_query *nq = realloc(b->q, sizeof *nq * (size_t)(b->nq + t->n_queries));
                    if (!nq) break;
                    b->q = nq;
                    b->cap_q = b->nq + t->n_queries;
                }
                if (b->n_entries == b->cap_entries) {
                    sched_entry *ne = realloc(b->entries, sizeof *ne * (size_t)(2 * b->cap_entries));
                    if (!ne) break;
                    b->entries = ne;
                    b->cap_entries *= 2;
                }
                b->entries[b->n_entries++] = (sched_entry){.job = b->njobs, .task = i};
                memcpy(b->q + b->nq, t->queries, sizeof(score_query) * t->n_queries);
                b->nq += t->n_queries;
                j->task_done[i] = TASK_IN_BATCH;
                taken++;
            }
            if (taken) {
                j->in_batch++;
                j->batch_round = sm->round;
                job_ref(j);
                b->jobs[b->njobs++] = j;
            }
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
        if (b->nq == 0) break;
        b->busy = 1;
        b->t0 = srv_now();
        b->work.data = b;
        sm->in_flight++;
        uv_queue_work(s->loop, &b->work, work_cb, after_cb);
    }
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
