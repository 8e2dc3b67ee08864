/* Prometheus text-format registry: fixed-size tables of counters and histograms behind one
 * mutex, rendered on demand.  Nothing is allocated after metrics_create except the rendered
 * text, so recording never fails. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MET_MAX_PAIRS 64      /* tracked (endpoint, status) series             */
#define MET_NAME_CAP 64       /* endpoint name bytes kept, with the NUL        */
#define MET_MAX_BUCKETS 32    /* finite bounds + the +Inf bucket               */
#define MET_N_STATUS 1000     /* statuses 0..999 for endpoint "other"          */
#define MET_OTHER "other"

/* Seconds histograms: request duration, queue wait, compute. */
static const double met_time_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,  5,     10,   30,  60};
#define MET_N_TIME_BOUNDS ((int)(sizeof met_time_bounds / sizeof met_time_bounds[0]))
_Static_assert(MET_N_TIME_BOUNDS < MET_MAX_BUCKETS, "time buckets fit a histogram");

/* counts[i]: observations in bucket i alone (le bounds[i], above bounds[i-1]); the last used
 * entry (index n_bounds) is the +Inf bucket.  Rendering makes them cumulative. */
typedef struct met_hist {
    uint64_t counts[MET_MAX_BUCKETS];
    double sum;
    uint64_t count;
} met_hist;

typedef struct met_endpoint {
    char name[MET_NAME_CAP];
    met_hist duration;
} met_endpoint;

typedef struct met_pair {
    int endpoint;   /* index into metrics.endpoints */
    int status;
    uint64_t count;
} met_pair;

struct metrics {
    pthread_mutex_t mu;   /* guards everything below */
    met_endpoint endpoints[MET_MAX_PAIRS];   /* never more endpoints than pairs */
    int n_endpoints;
    met_pair pairs[MET_MAX_PAIRS];
    int n_pairs;
    uint64_t other_status[MET_N_STATUS];   /* endpoint "other", by status (out of range: 0) */
    met_hist other_duration;
    met_hist queue_wait, compute, batch_size;
    double batch_bounds[MET_MAX_BUCKETS - 1];   /* 1, 2, 4, ..., >= max_batch */
    int n_batch_bounds;
    uint64_t score_evaluations, batches;
};

metrics *metrics_create(int max_batch)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    if (max_batch < 1) max_batch = 1;
    double b = 1;
    for (;;) {
        m->batch_bounds[m->n_batch_bounds++] = b;
        if (b >= max_batch || m->n_batch_bounds == MET_MAX_BUCKETS - 1) break;
        b *= 2;
    }
    return m;
}

void metrics_free(metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static double met_clean_seconds(double s) { return isfinite(s) && s > 0 ? s : 0; }

static void met_observe(met_hist *h, const double *bounds, int n_bounds, double v)
{
    int i = 0;
    while (i < n_bounds && v > bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void metrics_request(metrics *m, const char *endpoint, int status, double seconds)
{
    seconds = met_clean_seconds(seconds);
    pthread_mutex_lock(&m->mu);
    met_pair *pair = NULL;
    int is_other = !endpoint || strcmp(endpoint, MET_OTHER) == 0;
    if (!is_other) {
        for (int i = 0; i < m->n_pairs && !pair; i++) {
            met_pair *p = &m->pairs[i];
            if (p->status == status &&
                strncmp(m->endpoints[p->endpoint].name, endpoint, MET_NAME_CAP - 1) == 0)
                pair = p;
        }
        if (!pair && m->n_pairs < MET_MAX_PAIRS) {
            int ep = 0;
            while (ep < m->n_endpoints &&
                   strncmp(m->endpoints[ep].name, endpoint, MET_NAME_CAP - 1) != 0)
                ep++;
            if (ep == m->n_endpoints) {
                /* endpoints <= pairs < MET_MAX_PAIRS, so there is room */
                snprintf(m->endpoints[ep].name, MET_NAME_CAP, "%s", endpoint);
                m->n_endpoints++;
            }
            pair = &m->pairs[m->n_pairs++];
            *pair = (met_pair){.endpoint = ep, .status = status};
        }
    }
    if (pair) {
        pair->count++;
        met_observe(&m->endpoints[pair->endpoint].duration, met_time_bounds, MET_N_TIME_BOUNDS,
                    seconds);
    } else {
        m->other_status[status >= 0 && status < MET_N_STATUS ? status : 0]++;
        met_observe(&m->other_duration, met_time_bounds, MET_N_TIME_BOUNDS, seconds);
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_batch(metrics *m, int batch_size, double compute_seconds, long score_evaluations)
{
    compute_seconds = met_clean_seconds(compute_seconds);
    pthread_mutex_lock(&m->mu);
    met_observe(&m->batch_size, m->batch_bounds, m->n_batch_bounds,
                batch_size > 0 ? batch_size : 0);
    met_observe(&m->compute, met_time_bounds, MET_N_TIME_BOUNDS, compute_seconds);
    if (score_evaluations > 0) m->score_evaluations += (uint64_t)score_evaluations;
    m->batches++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_queue_wait(metrics *m, double seconds)
{
    seconds = met_clean_seconds(seconds);
    pthread_mutex_lock(&m->mu);
    met_observe(&m->queue_wait, met_time_bounds, MET_N_TIME_BOUNDS, seconds);
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* A growing text buffer; after an allocation failure it stays failed and appends nothing. */
typedef struct met_buf {
    char *p;
    size_t n, cap;
    int failed;
} met_buf;

__attribute__((format(printf, 2, 3))) static void met_printf(met_buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)k + 1;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* The shortest text that reads back as v: "10", "0.005", "1e+20"; "+Inf" for infinity. */
static void met_fmt_double(char *out, size_t cap, double v)
{
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {   /* integers as integers: "10", not "1e+01" */
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* A label value escaped per the text format: \\, \" and \n. */
static void met_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 <= cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static void met_head(met_buf *b, const char *name, const char *type, const char *help)
{
    met_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The _bucket, _sum and _count samples of one histogram series; labels: "" or `k="v"`. */
static void met_hist_samples(met_buf *b, const char *name, const char *labels,
                             const double *bounds, int n_bounds, const met_hist *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    char le[40];
    for (int i = 0; i <= n_bounds; i++) {
        cum += h->counts[i];
        met_fmt_double(le, sizeof le, i < n_bounds ? bounds[i] : INFINITY);
        met_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, sep, le, cum);
    }
    char sum[40];
    met_fmt_double(sum, sizeof sum, h->sum);
    if (labels[0]) {
        met_printf(b, "%s_sum{%s} %s\n", name, labels, sum);
        met_printf(b, "%s_count{%s} %" PRIu64 "\n", name, labels, h->count);
    } else {
        met_printf(b, "%s_sum %s\n", name, sum);
        met_printf(b, "%s_count %" PRIu64 "\n", name, h->count);
    }
}

/* Resident set size from /proc/self/statm, or -1. */
static long long met_resident_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return -1;
    unsigned long long size, resident;
    int ok = fscanf(fp, "%llu %llu", &size, &resident) == 2;
    fclose(fp);
    long page = sysconf(_SC_PAGESIZE);
    if (!ok || page <= 0) return -1;
    return (long long)(resident * (unsigned long long)page);
}

char *metrics_render(metrics *m, long queue_length, long running_jobs, long models_loaded)
{
    long long rss = met_resident_bytes();
    met_buf b = {.cap = 8192};
    b.p = malloc(b.cap);
    if (!b.p) return NULL;
    b.p[0] = '\0';
    char esc[2 * MET_NAME_CAP + 1], labels[2 * MET_NAME_CAP + 16];

    pthread_mutex_lock(&m->mu);
    met_head(&b, "scored_requests_total", "counter", "HTTP requests answered, by endpoint "
             "and status.");
    for (int i = 0; i < m->n_pairs; i++) {
        met_escape(esc, sizeof esc, m->endpoints[m->pairs[i].endpoint].name);
        met_printf(&b, "scored_requests_total{endpoint=\"%s\",status=\"%d\"} %" PRIu64 "\n",
                   esc, m->pairs[i].status, m->pairs[i].count);
    }
    for (int s = 0; s < MET_N_STATUS; s++)
        if (m->other_status[s])
            met_printf(&b, "scored_requests_total{endpoint=\"" MET_OTHER "\",status=\"%d\"} %"
                       PRIu64 "\n", s, m->other_status[s]);

    met_head(&b, "scored_request_duration_seconds", "histogram", "Time to answer an HTTP "
             "request, by endpoint.");
    for (int i = 0; i < m->n_endpoints; i++) {
        met_escape(esc, sizeof esc, m->endpoints[i].name);
        snprintf(labels, sizeof labels, "endpoint=\"%s\"", esc);
        met_hist_samples(&b, "scored_request_duration_seconds", labels, met_time_bounds,
                         MET_N_TIME_BOUNDS, &m->endpoints[i].duration);
    }
    if (m->other_duration.count)
        met_hist_samples(&b, "scored_request_duration_seconds", "endpoint=\"" MET_OTHER "\"",
                         met_time_bounds, MET_N_TIME_BOUNDS, &m->other_duration);

    met_head(&b, "scored_queue_wait_seconds", "histogram", "Time jobs waited in the queue "
             "before a worker started them.");
    met_hist_samples(&b, "scored_queue_wait_seconds", "", met_time_bounds, MET_N_TIME_BOUNDS,
                     &m->queue_wait);
    met_head(&b, "scored_compute_seconds", "histogram", "Compute time of each batched "
             "evaluation.");
    met_hist_samples(&b, "scored_compute_seconds", "", met_time_bounds, MET_N_TIME_BOUNDS,
                     &m->compute);
    met_head(&b, "scored_batch_size", "histogram", "Items in each batched evaluation.");
    met_hist_samples(&b, "scored_batch_size", "", m->batch_bounds, m->n_batch_bounds,
                     &m->batch_size);

    met_head(&b, "scored_score_evaluations_total", "counter", "Score function evaluations.");
    met_printf(&b, "scored_score_evaluations_total %" PRIu64 "\n", m->score_evaluations);
    met_head(&b, "scored_batches_total", "counter", "Batched evaluations run.");
    met_printf(&b, "scored_batches_total %" PRIu64 "\n", m->batches);
    pthread_mutex_unlock(&m->mu);

    met_head(&b, "scored_queue_length", "gauge", "Jobs waiting in the queue.");
    met_printf(&b, "scored_queue_length %ld\n", queue_length);
    met_head(&b, "scored_running_jobs", "gauge", "Jobs being computed.");
    met_printf(&b, "scored_running_jobs %ld\n", running_jobs);
    met_head(&b, "scored_models_loaded", "gauge", "Models loaded.");
    met_printf(&b, "scored_models_loaded %ld\n", models_loaded);
    if (rss >= 0) {
        met_head(&b, "scored_resident_memory_bytes", "gauge", "Resident memory of the server "
                 "process.");
        met_printf(&b, "scored_resident_memory_bytes %lld\n", rss);
    }
    met_head(&b, "scored_up", "gauge", "1 while the server is answering.");
    met_printf(&b, "scored_up 1\n");

    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
