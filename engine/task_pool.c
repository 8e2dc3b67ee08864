/* Tasks run on several lanes, the queries of each round shared out evenly (task_pool.h).
 *
 * A run is rounds of three phases separated by barriers; lane 0 is the calling thread:
 *   A  each lane advances its contiguous share of the tasks (all of them in round 0, then
 *      those whose queries were answered), recording a failure in its own adv_rc;
 *   G  lane 0 alone gathers the pending queries of every task into one array (or ends the
 *      run: a failure in A, or no queries left);
 *   E  each lane answers its contiguous share of the gathered queries, lane_batch at a time,
 *      recording a failure in its own eval_rc; the next round begins by every lane reading
 *      all eval_rc (so all of them stop together).
 * Each per-lane field is written in one phase and read only in a later one, past a barrier,
 * and not written again until every lane has passed the next barrier. */
#include "task_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct task_pool {
    const sc_model *m;  /* borrowed                        */
    int threads;        /* lanes wanted                    */
    int lane_batch;     /* queries per evaluation, at most */
    void **scratch;     /* (threads) owned, lane_batch each */
};

typedef struct run_state run_state;

typedef struct lane_state {
    run_state *run;  /* borrowed                                   */
    int index;       /* 0..run->lanes-1                            */
    int adv_rc;      /* phase A's failure (negative sc_code) or 0  */
    int adv_item;    /* the task that failed in phase A            */
    int eval_rc;     /* phase E's failure or 0                     */
    sc_error err;    /* the failure's message                      */
} lane_state;

struct run_state {
    const task_pool *pool;
    sc_task **tasks;        /* (n) borrowed                                    */
    int n;
    int lanes;              /* lanes taking part: the threads started, plus 1 */
    lane_state *lane;       /* (pool->threads)                                 */
    score_query *queries;   /* (cap) owned: this round's gathered queries      */
    int nq, cap;
    int done;               /* written by lane 0 in phase G                    */
    int gather_rc;          /* lane 0's own failure in phase G                 */
    sc_error gather_err;
    pthread_barrier_t barrier;
    pthread_mutex_t gate_mu;  /* the start gate: lanes 1.. wait for go != 0    */
    pthread_cond_t gate_cv;
    int go;                   /* 1: run, -1: leave without running             */
};

/* The contiguous share [*first, *first + *count) of total items for lane k of lanes. */
static void share_of(int total, int lanes, int k, int *first, int *count)
{
    const int base = total / lanes, extra = total % lanes;
    *first = k * base + (k < extra ? k : extra);
    *count = base + (k < extra);
}

static void advance_share(lane_state *l, int round)
{
    run_state *r = l->run;
    int first, count;
    share_of(r->n, r->lanes, l->index, &first, &count);
    for (int i = first; i < first + count; i++) {
        sc_task *t = r->tasks[i];
        if (round > 0 && !t->n_queries) continue; /* done */
        int st = task_advance(t, &l->err);
        if (st < 0) {
            l->adv_rc = st;
            l->adv_item = i;
            return;
        }
    }
}

/* Phase G, lane 0 only. */
static void gather(run_state *r)
{
    for (int k = 0; k < r->lanes; k++)
        if (r->lane[k].adv_rc) {
            r->done = 1;
            return;
        }
    int nq = 0;
    for (int i = 0; i < r->n; i++) nq += r->tasks[i]->n_queries;
    if (nq > r->cap) {
        score_query *q = realloc(r->queries, sizeof *q * (size_t)nq);
        if (!q) {
            r->gather_rc = sc_fail(&r->gather_err, SC_ERR_NOMEM, "out of memory for %d score queries", nq);
            r->done = 1;
            return;
        }
        r->queries = q;
        r->cap = nq;
    }
    /* a task's queries stay contiguous, but a share may split them: queries are independent */
    int fill = 0;
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < r->tasks[i]->n_queries; j++) r->queries[fill++] = r->tasks[i]->queries[j];
    r->nq = nq;
    r->done = nq == 0;
}

static void eval_share(lane_state *l)
{
    run_state *r = l->run;
    const task_pool *p = r->pool;
    int first, count;
    share_of(r->nq, r->lanes, l->index, &first, &count);
    for (int q = first; q < first + count; q += p->lane_batch) {
        const int k = first + count - q < p->lane_batch ? first + count - q : p->lane_batch;
        int rc = p->m->ops->eval(p->m, r->queries + q, k, p->scratch[l->index], &l->err);
        if (rc) {
            l->eval_rc = rc;
            return;
        }
    }
}

static void lane_loop(lane_state *l)
{
    run_state *r = l->run;
    for (int round = 0;; round++) {
        for (int k = 0; round > 0 && k < r->lanes; k++)
            if (r->lane[k].eval_rc) return; /* every lane sees the same and stops */
        advance_share(l, round);
        pthread_barrier_wait(&r->barrier);
        if (l->index == 0) gather(r);
        pthread_barrier_wait(&r->barrier);
        if (r->done) return;
        eval_share(l);
        pthread_barrier_wait(&r->barrier);
    }
}

static void *lane_thread(void *arg)
{
    lane_state *l = arg;
    run_state *r = l->run;
    pthread_mutex_lock(&r->gate_mu);
    while (!r->go) pthread_cond_wait(&r->gate_cv, &r->gate_mu);
    const int go = r->go;
    pthread_mutex_unlock(&r->gate_mu);
    if (go > 0) lane_loop(l);
    return NULL;
}

static void open_gate(run_state *r, int go)
{
    pthread_mutex_lock(&r->gate_mu);
    r->go = go;
    pthread_cond_broadcast(&r->gate_cv);
    pthread_mutex_unlock(&r->gate_mu);
}

/* The run's failure: the first lane's, an advance failure naming its item. */
static int run_result(const run_state *r, sc_error *err)
{
    if (r->gather_rc) {
        if (err) *err = r->gather_err;
        return r->gather_rc;
    }
    for (int k = 0; k < r->lanes; k++) {
        const lane_state *l = &r->lane[k];
        if (!l->adv_rc && !l->eval_rc) continue;
        if (err) {
            *err = l->err;
            if (l->adv_rc) snprintf(err->msg, sizeof err->msg, "item %d: %.480s", l->adv_item, l->err.msg);
        }
        return l->adv_rc ? l->adv_rc : l->eval_rc;
    }
    return 0;
}

int task_pool_run(task_pool *p, sc_task **tasks, int n, sc_error *err)
{
    if (n <= 0) return 0;
    const int want = p->threads < n ? p->threads : n; /* a lane per task at most */
    run_state r = {.pool = p, .tasks = tasks, .n = n};
    r.lane = calloc((size_t)want, sizeof *r.lane);
    pthread_t *tid = calloc((size_t)want, sizeof *tid);
    if (!r.lane || !tid) {
        free(r.lane);
        free(tid);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory for %d lanes", want);
    }
    pthread_mutex_init(&r.gate_mu, NULL);
    pthread_cond_init(&r.gate_cv, NULL);
    /* lanes 1..: started threads wait at the gate until the lane count is known */
    int lanes = 1;
    for (int k = 1; k < want; k++) {
        r.lane[lanes] = (lane_state){.run = &r, .index = lanes};
        if (pthread_create(&tid[lanes], NULL, lane_thread, &r.lane[lanes]) == 0) lanes++;
    }
    r.lane[0] = (lane_state){.run = &r, .index = 0};
    r.lanes = lanes;
    int rc = pthread_barrier_init(&r.barrier, NULL, (unsigned)lanes);
    if (rc) {
        open_gate(&r, -1);
        for (int k = 1; k < lanes; k++) pthread_join(tid[k], NULL);
        rc = sc_fail(err, SC_ERR_NOMEM, "cannot set up %d lanes", lanes);
    } else {
        open_gate(&r, 1);
        lane_loop(&r.lane[0]);
        for (int k = 1; k < lanes; k++) pthread_join(tid[k], NULL);
        pthread_barrier_destroy(&r.barrier);
        rc = run_result(&r, err);
    }
    pthread_cond_destroy(&r.gate_cv);
    pthread_mutex_destroy(&r.gate_mu);
    free(r.queries);
    free(r.lane);
    free(tid);
    return rc;
}

task_pool *task_pool_create(const sc_model *m, int threads, int lane_batch, sc_error *err)
{
    SC_ASSERT(threads >= 1 && lane_batch >= 1);
    task_pool *p = calloc(1, sizeof *p);
    void **scratch = calloc((size_t)threads, sizeof *scratch);
    if (!p || !scratch) {
        free(p);
        free(scratch);
        sc_fail(err, SC_ERR_NOMEM, "out of memory for %d lanes", threads);
        return NULL;
    }
    *p = (task_pool){.m = m, .threads = threads, .lane_batch = lane_batch, .scratch = scratch};
    for (int k = 0; k < threads; k++)
        if (!(scratch[k] = sc_model_scratch_alloc(m, lane_batch))) {
            task_pool_free(p);
            sc_fail(err, SC_ERR_NOMEM, "out of memory for %d lanes of %d queries", threads, lane_batch);
            return NULL;
        }
    return p;
}

int task_pool_threads(const task_pool *p)
{
    return p->threads;
}

void task_pool_free(task_pool *p)
{
    if (!p) return;
    for (int k = 0; k < p->threads; k++) free(p->scratch[k]);
    free(p->scratch);
    free(p);
}
