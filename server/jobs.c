/* Jobs: allocation and reference counting, the table by id with tombstones for expired ids,
 * retention of finished async results (TTL and a count limit), and the job's JSON view.
 * Not here: scheduling (sched.c) or result encoding (results.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srv.h"

static const char *const kind_names[] = {"samples", "inpaint", "colorize", "likelihood",
                                         "anomaly", "encode", "decode"};
static const char *const status_names[] = {"queued", "running", "done", "failed", "cancelled"};
_Static_assert(sizeof kind_names / sizeof *kind_names == JOB_KIND_COUNT, "job kinds");
_Static_assert(sizeof status_names / sizeof *status_names == JOB_STATUS_COUNT, "job states");

const char *job_kind_name(job_kind k) { return (unsigned)k < JOB_KIND_COUNT ? kind_names[k] : "?"; }
const char *job_status_name(job_status s) { return (unsigned)s < JOB_STATUS_COUNT ? status_names[s] : "?"; }

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int job_is_final(const job *j)
{
    return j->status == JOB_DONE || j->status == JOB_FAILED || j->status == JOB_CANCELLED;
}

/* 32 hex digits: a counter mixed with a per-process salt (splitmix64), so ids do not repeat
 * and are not guessable from one another. */
static void make_id(srv *s, char *out)
{
    uint64_t x = ++s->id_counter ^ s->id_salt, y = x + 0x9E3779B97F4A7C15ull;
    for (int r = 0; r < 2; r++) {
        uint64_t *v = r ? &y : &x;
        *v = (*v ^ (*v >> 30)) * 0xBF58476D1CE4E5B9ull;
        *v = (*v ^ (*v >> 27)) * 0x94D049BB133111EBull;
        *v ^= *v >> 31;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)x, (unsigned long long)y);
}

job *job_new(srv *s, srv_model *sm, job_kind kind, int n, sc_error *err)
{
    job *j = calloc(1, sizeof *j);
    const int D = sm->model->D;
    if (!j) goto oom;
    j->kind = kind;
    j->status = JOB_QUEUED;
    j->sm = sm;
    j->server = s;
    j->n = n;
    j->D = D;
    j->refs = 1;
    j->cond.label = -1;
    j->t_created = srv_now();
    j->tasks = calloc((size_t)n, sizeof *j->tasks);
    j->task_done = calloc((size_t)n, 1);
    j->outputs = calloc((size_t)n * D, sizeof(float));
    j->lik = calloc((size_t)n, sizeof *j->lik);
    if (!j->tasks || !j->task_done || !j->outputs || !j->lik) goto oom;
    make_id(s, j->id);
    return j;
oom:
    if (j) {
        free(j->tasks);
        free(j->task_done);
        free(j->outputs);
        free(j->lik);
        free(j);
    }
    sc_fail(err, SC_ERR_NOMEM, "out of memory for a job of %d items", n);
    return NULL;
}

void job_ref(job *j) { j->refs++; }

void job_discard(job *j)
{
    for (int i = 0; i < j->n; i++) task_free(j->tasks[i]);
    free(j->tasks);
    free(j->task_done);
    free(j->outputs);
    free(j->lik);
    free(j->inputs);
    free(j->mask);
    free(j->complexity);
    free(j->preview_b64);
    free(j->body);
    free(j->result_json);
    free(j);
}

void job_unref(job *j)
{
    if (--j->refs > 0) return;
    srv_model *sm = j->sm;
    job_discard(j);
    srv_model_unref(sm);
}

static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++) h = (h ^ (unsigned char)*id) * 16777619u;
    return h % JOB_BUCKETS;
}

void job_table_add(srv *s, job *j)
{
    unsigned b = bucket_of(j->id);
    j->hash_next = s->jobs[b];
    s->jobs[b] = j;
    j->in_table = 1;
    job_ref(j);
}

void job_table_remove(srv *s, job *j)
{
    if (!j->in_table) return;
    job **pp = &s->jobs[bucket_of(j->id)];
    while (*pp && *pp != j) pp = &(*pp)->hash_next;
    if (*pp) *pp = j->hash_next;
    j->in_table = 0;
    if (j->async) {
        memcpy(s->tombstones[s->tombstone_next], j->id, 33);
        s->tombstone_next = (s->tombstone_next + 1) % TOMBSTONES;
    }
    job_unref(j);
}

job *job_find(srv *s, const char *id, int *expired)
{
    *expired = 0;
    if (strlen(id) != 32) return NULL;
    for (job *j = s->jobs[bucket_of(id)]; j; j = j->hash_next)
        if (strcmp(j->id, id) == 0) return j;
    for (int i = 0; i < TOMBSTONES; i++)
        if (s->tombstones[i][0] && strcmp(s->tombstones[i], id) == 0) {
            *expired = 1;
            break;
        }
    return NULL;
}

void job_retain_finished(srv *s, job *j)
{
    j->retained_next = NULL;
    if (s->retained_tail) s->retained_tail->retained_next = j;
    else s->retained_head = j;
    s->retained_tail = j;
    s->retained_count++;
}

/* Drops finished async jobs past their TTL, and the oldest beyond the count limit. */
void job_expire(srv *s, double now)
{
    while (s->retained_head) {
        job *j = s->retained_head;
        int too_old = now - j->t_finished > s->cfg.job_ttl;
        int too_many = s->retained_count > s->cfg.max_retained;
        if (!too_old && !too_many) break;
        if (j->listeners) break; /* still streaming; try again later */
        s->retained_head = j->retained_next;
        if (!s->retained_head) s->retained_tail = NULL;
        s->retained_count--;
        job_table_remove(s, j);
    }
}

static json_t *opt_time(double t) { return t > 0 ? json_real(t) : json_null(); }

char *job_to_json(const job *j)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:o, s:I}, s:o, s:o, s:o}", "id", j->id,
                          "model", j->sm->id, "kind", job_kind_name(j->kind), "status",
                          job_status_name(j->cancel_requested && !job_is_final(j) ? JOB_CANCELLED : j->status), "progress", "step", (json_int_t)j->step,
                          "steps", j->steps > 0 ? json_integer(j->steps) : json_null(), "nfe", (json_int_t)j->nfe, "created",
                          opt_time(j->t_created), "started", opt_time(j->t_started), "finished",
                          opt_time(j->t_finished));
    if (j->status == JOB_QUEUED) json_object_set_new(o, "queue_position", json_integer(j->queue_position));
    if (j->status == JOB_DONE && j->result_json) {
        json_t *r = json_loads(j->result_json, 0, NULL);
        if (r) json_object_set_new(o, "result", r);
    }
    if (j->status == JOB_FAILED || j->status == JOB_CANCELLED)
        json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code",
                                                  j->status == JOB_CANCELLED ? "cancelled" : sc_code_name(j->error.code),
                                                  "message", j->error.msg[0] ? j->error.msg : "cancelled"));
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    return text;
}
