/* Task dispatch and the plain batching driver used by the CLI and tests. */
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int task_advance(sc_task *t, sc_error *err)
{
    if (t->cancel_requested) return sc_fail(err, SC_ERR_CANCELLED, "cancelled");
    int rc = t->ops->advance(t, err);
    if (rc == TASK_DONE) t->n_queries = 0;
    return rc;
}

int task_preview(const sc_task *t, float *out)
{
    if (!t->ops->preview) return -1;
    t->ops->preview(t, out);
    return 0;
}

void task_free(sc_task *t)
{
    if (t) t->ops->destroy(t);
}

int task_run_batched(const sc_model *m, sc_task **tasks, int n, int max_batch, void *scratch,
                     sc_error *err)
{
    SC_ASSERT(max_batch >= 1);
    for (int i = 0; i < n; i++) {
        int rc = task_advance(tasks[i], err);
        if (rc < 0) return rc;
    }
    /* Gather pointers to pending queries, then answer them chunk by chunk.  The queries of
     * one task stay contiguous, but a chunk may split them: items are independent. */
    score_query *batch = malloc(sizeof(score_query) * (size_t)max_batch);
    if (!batch) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        int active = 0;
        int fill = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            sc_task *t = tasks[i];
            for (int j = 0; j < t->n_queries; j++) {
                batch[fill++] = t->queries[j];
                if (fill == max_batch) {
                    rc = m->ops->eval(m, batch, fill, scratch, err);
                    fill = 0;
                    if (rc) break;
                }
            }
            active += t->n_queries > 0;
        }
        if (rc == 0 && fill) rc = m->ops->eval(m, batch, fill, scratch, err);
        if (rc || !active) break;
        for (int i = 0; i < n; i++) {
            if (!tasks[i]->n_queries) continue;
            int st = task_advance(tasks[i], err);
            if (st < 0) {
                rc = st;
                if (err) {
                    char msg[sizeof err->msg];
                    snprintf(msg, sizeof msg, "item %d: %.480s", i, err->msg);
                    memcpy(err->msg, msg, sizeof msg);
                }
                break;
            }
        }
        if (rc) break;
    }
    free(batch);
    return rc;
}
