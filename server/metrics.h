/* The server's Prometheus metrics: request counters and latency histograms, queue wait,
 * batched compute time and batch sizes, rendered in the text exposition format (0.0.4) for
 * GET /metrics.  One mutex inside; every function may be called from any thread. */
#ifndef SCORED_METRICS_H
#define SCORED_METRICS_H

typedef struct metrics metrics;

/* Batch-size histogram buckets are 1, 2, 4, ... up to the first power of two >= max_batch
 * (values <= 0 count as 1), then +Inf.  Returns NULL when out of memory. */
metrics *metrics_create(int max_batch);
void metrics_free(metrics *m);   /* NULL is fine */

/* One finished HTTP request.  endpoint: a short route name such as "samples" (borrowed; copied,
 * at most 63 bytes kept).  The first 64 distinct (endpoint, status) pairs get their own series;
 * later new pairs are counted under endpoint "other" with their status, and so is an endpoint
 * literally named "other" or NULL.  Negative or NaN seconds count as 0. */
void metrics_request(metrics *m, const char *endpoint, int status, double seconds);

/* One batched score evaluation loop: batch_size items, compute_seconds of work,
 * score_evaluations network/score calls. */
void metrics_batch(metrics *m, int batch_size, double compute_seconds, long score_evaluations);

/* Time one job waited in the queue before a worker took it. */
void metrics_queue_wait(metrics *m, double seconds);

/* Renders everything; gauges passed in by the caller (resident memory is read from
 * /proc/self/statm here and left out when unreadable).  Returns malloc'd text, NULL when out of
 * memory. */
char *metrics_render(metrics *m, long queue_length, long running_jobs, long models_loaded);

#endif
