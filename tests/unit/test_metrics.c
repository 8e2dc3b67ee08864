/* Unit tests for server/metrics.c: counter and histogram values after known observations, the
 * rendered text checked line by line against the Prometheus text format (cumulative buckets,
 * _count equal to the +Inf bucket), label escaping, series overflow into "other", and exact
 * totals after concurrent updates from four threads. */
#include "testutil.h"

#include <pthread.h>

#include "metrics.h"

/* ---- a small parser for the exposition format --------------------------------------------- */

#define TM_MAX_LABELS 4
#define TM_MAX_SAMPLES 4096

typedef struct tm_sample {
    char name[128];
    int n_labels;
    char key[TM_MAX_LABELS][64];
    char val[TM_MAX_LABELS][256];   /* unescaped */
    double value;
} tm_sample;

static int tm_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int tm_name_char(char c) { return tm_name_start(c) || (c >= '0' && c <= '9') || c == ':'; }

/* Parses one sample line `name{k="v",...} value` or `name value`; fails the test otherwise. */
static void tm_parse_line(const char *line, size_t n, tm_sample *s)
{
    char buf[1024];
    assert_true(n < sizeof buf);
    memcpy(buf, line, n);
    buf[n] = '\0';
    memset(s, 0, sizeof *s);
    size_t i = 0, o = 0;
    if (!tm_name_start(buf[0]) && buf[0] != ':') fail_msg("bad metric name: %s", buf);
    while (tm_name_char(buf[i])) {
        assert_true(o + 1 < sizeof s->name);
        s->name[o++] = buf[i++];
    }
    if (buf[i] == '{') {
        i++;
        while (buf[i] != '}') {
            assert_true(s->n_labels < TM_MAX_LABELS);
            int l = s->n_labels++;
            o = 0;
            if (!tm_name_start(buf[i])) fail_msg("bad label name in: %s", buf);
            while (tm_name_start(buf[i]) || (buf[i] >= '0' && buf[i] <= '9'))
                s->key[l][o++] = buf[i++];
            if (buf[i] != '=' || buf[i + 1] != '"') fail_msg("bad label in: %s", buf);
            i += 2;
            o = 0;
            while (buf[i] != '"') {
                if (buf[i] == '\0') fail_msg("unterminated label value: %s", buf);
                char c = buf[i++];
                if (c == '\\') {
                    c = buf[i++];
                    if (c == 'n') c = '\n';
                    else if (c != '\\' && c != '"') fail_msg("bad escape in: %s", buf);
                }
                assert_true(o + 1 < sizeof s->val[l]);
                s->val[l][o++] = c;
            }
            i++;
            if (buf[i] == ',') i++;
            else if (buf[i] != '}') fail_msg("expected ',' or '}' in: %s", buf);
        }
        i++;
    }
    if (buf[i] != ' ') fail_msg("expected one space before the value: %s", buf);
    i++;
    const char *v = buf + i;
    if (strcmp(v, "+Inf") == 0) s->value = INFINITY;
    else if (strcmp(v, "-Inf") == 0) s->value = -INFINITY;
    else {
        char *end;
        s->value = strtod(v, &end);
        if (end == v || *end != '\0') fail_msg("bad value in: %s", buf);
    }
}

/* Every line of text: a # HELP / # TYPE comment or a sample.  Returns the samples. */
static int tm_parse(const char *text, tm_sample *out, int cap)
{
    int n = 0;
    const char *p = text;
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        size_t len = (size_t)(nl - p);
        assert_true(len > 0);
        if (p[0] == '#') {
            assert_true(strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0);
            if (strncmp(p, "# TYPE ", 7) == 0) {
                const char *t = memchr(p + 7, ' ', len - 7);
                assert_non_null(t);
                size_t tl = (size_t)(nl - t - 1);
                assert_true((tl == 7 && !strncmp(t + 1, "counter", 7)) ||
                            (tl == 5 && !strncmp(t + 1, "gauge", 5)) ||
                            (tl == 9 && !strncmp(t + 1, "histogram", 9)));
            }
        } else {
            assert_true(n < cap);
            tm_parse_line(p, len, &out[n++]);
        }
        p = nl + 1;
    }
    return n;
}

static const char *tm_label(const tm_sample *s, const char *key)
{
    for (int i = 0; i < s->n_labels; i++)
        if (strcmp(s->key[i], key) == 0) return s->val[i];
    return NULL;
}

/* The value of the sample with this name and exactly these labels (NULL-terminated key, value
 * pairs); fails the test when absent. */
static double tm_get(const tm_sample *s, int n, const char *name, ...)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].name, name) != 0) continue;
        va_list ap;
        va_start(ap, name);
        int matched = 0, ok = 1;
        const char *k;
        while ((k = va_arg(ap, const char *))) {
            const char *v = va_arg(ap, const char *);
            const char *have = tm_label(&s[i], k);
            if (!have || strcmp(have, v) != 0) ok = 0;
            matched++;
        }
        va_end(ap);
        if (ok && matched == s[i].n_labels) return s[i].value;
    }
    fail_msg("no sample %s with those labels", name);
    return NAN;
}

static int tm_has(const tm_sample *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0) return 1;
    return 0;
}

static int tm_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The series key of a histogram sample: base name plus labels other than le. */
static void tm_series_key(const tm_sample *s, const char *suffix, char *key, size_t cap)
{
    size_t bl = strlen(s->name) - strlen(suffix);
    int o = snprintf(key, cap, "%.*s", (int)bl, s->name);
    for (int i = 0; i < s->n_labels; i++)
        if (strcmp(s->key[i], "le") != 0)
            o += snprintf(key + o, cap - (size_t)o, "|%s=%s", s->key[i], s->val[i]);
}

/* Histogram invariants over all samples: buckets in increasing le with non-decreasing
 * counts, ending at +Inf, and _count equal to the +Inf bucket.  Returns the series checked. */
static int tm_check_histograms(const tm_sample *s, int n)
{
    char key[512], cur[512] = "";
    double last_le = -INFINITY, last_count = 0, inf_count = -1;
    int series = 0;
    for (int i = 0; i < n; i++) {
        if (tm_ends_with(s[i].name, "_bucket")) {
            tm_series_key(&s[i], "_bucket", key, sizeof key);
            const char *le = tm_label(&s[i], "le");
            assert_non_null(le);
            double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
            if (strcmp(key, cur) != 0) {
                snprintf(cur, sizeof cur, "%s", key);
                last_le = -INFINITY;
                last_count = 0;
                inf_count = -1;
                series++;
            }
            assert_true(lev > last_le);
            assert_true(s[i].value >= last_count);
            last_le = lev;
            last_count = s[i].value;
            if (isinf(lev)) inf_count = s[i].value;
        } else if (tm_ends_with(s[i].name, "_count")) {
            tm_series_key(&s[i], "_count", key, sizeof key);
            assert_string_equal(key, cur);
            assert_true(inf_count >= 0);
            assert_true(s[i].value == inf_count);
        } else if (tm_ends_with(s[i].name, "_sum")) {
            tm_series_key(&s[i], "_sum", key, sizeof key);
            assert_string_equal(key, cur);
            assert_true(s[i].value >= 0);
        }
    }
    return series;
}

/* Renders m and parses it into a malloc'd sample array. */
static tm_sample *tm_render(metrics *m, long q, long r, long models, int *n)
{
    char *text = metrics_render(m, q, r, models);
    assert_non_null(text);
    tm_sample *s = malloc(TM_MAX_SAMPLES * sizeof *s);
    assert_non_null(s);
    *n = tm_parse(text, s, TM_MAX_SAMPLES);
    free(text);
    return s;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_counts_and_buckets(void **state)
{
    (void)state;
    metrics *m = metrics_create(8);
    assert_non_null(m);
    metrics_request(m, "samples", 200, 0.003);
    metrics_request(m, "samples", 200, 0.003);
    metrics_request(m, "samples", 200, 0.2);
    metrics_request(m, "samples", 422, 0.07);
    metrics_request(m, "health", 200, 0.001);
    metrics_request(m, "samples", 200, 100.0);   /* only in +Inf */
    metrics_batch(m, 1, 0.02, 10);
    metrics_batch(m, 3, 0.5, 30);
    metrics_batch(m, 8, 1.5, 80);
    metrics_batch(m, 9, 0.004, 90);
    metrics_queue_wait(m, 0.02);
    metrics_queue_wait(m, 45);
    metrics_queue_wait(m, 0.005);   /* le is inclusive */

    int n;
    tm_sample *s = tm_render(m, 5, 2, 3, &n);
    const char *rt = "scored_requests_total";
    assert_true(tm_get(s, n, rt, "endpoint", "samples", "status", "200", NULL) == 4);
    assert_true(tm_get(s, n, rt, "endpoint", "samples", "status", "422", NULL) == 1);
    assert_true(tm_get(s, n, rt, "endpoint", "health", "status", "200", NULL) == 1);

    const char *db = "scored_request_duration_seconds_bucket";
    struct { const char *le; double v; } want[] = {
        {"0.005", 2}, {"0.01", 2}, {"0.05", 2}, {"0.1", 3}, {"0.25", 4},
        {"30", 4},    {"60", 4},   {"+Inf", 5},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_true(tm_get(s, n, db, "endpoint", "samples", "le", want[i].le, NULL) ==
                    want[i].v);
    assert_true(tm_get(s, n, "scored_request_duration_seconds_count", "endpoint", "samples",
                       NULL) == 5);
    assert_true(fabs(tm_get(s, n, "scored_request_duration_seconds_sum", "endpoint", "samples",
                            NULL) - 100.276) < 1e-9);
    assert_true(tm_get(s, n, db, "endpoint", "health", "le", "0.005", NULL) == 1);

    /* batch sizes 1, 3, 8, 9 with max_batch 8: buckets 1, 2, 4, 8, +Inf */
    const char *bb = "scored_batch_size_bucket";
    assert_true(tm_get(s, n, bb, "le", "1", NULL) == 1);
    assert_true(tm_get(s, n, bb, "le", "2", NULL) == 1);
    assert_true(tm_get(s, n, bb, "le", "4", NULL) == 2);
    assert_true(tm_get(s, n, bb, "le", "8", NULL) == 3);
    assert_true(tm_get(s, n, bb, "le", "+Inf", NULL) == 4);
    assert_true(tm_get(s, n, "scored_batch_size_sum", NULL) == 21);
    assert_true(tm_get(s, n, "scored_compute_seconds_bucket", "le", "0.005", NULL) == 1);
    assert_true(tm_get(s, n, "scored_compute_seconds_bucket", "le", "0.025", NULL) == 2);
    assert_true(tm_get(s, n, "scored_compute_seconds_bucket", "le", "1", NULL) == 3);
    assert_true(tm_get(s, n, "scored_compute_seconds_bucket", "le", "2.5", NULL) == 4);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "0.005", NULL) == 1);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "0.025", NULL) == 2);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "30", NULL) == 2);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "60", NULL) == 3);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_count", NULL) == 3);
    assert_true(tm_get(s, n, "scored_score_evaluations_total", NULL) == 210);
    assert_true(tm_get(s, n, "scored_batches_total", NULL) == 4);

    assert_true(tm_get(s, n, "scored_queue_length", NULL) == 5);
    assert_true(tm_get(s, n, "scored_running_jobs", NULL) == 2);
    assert_true(tm_get(s, n, "scored_models_loaded", NULL) == 3);
    assert_true(tm_get(s, n, "scored_resident_memory_bytes", NULL) > 0);
    assert_true(tm_get(s, n, "scored_up", NULL) == 1);
    assert_int_equal(tm_check_histograms(s, n), 2 + 3);
    free(s);
    metrics_free(m);
}

static void test_batch_bucket_bounds(void **state)
{
    (void)state;
    struct { int max_batch; int n_buckets; const char *top; } cases[] = {
        {1, 2, "1"}, {0, 2, "1"}, {2, 3, "2"}, {10, 6, "16"}, {64, 8, "64"}, {1000, 12, "1024"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        metrics *m = metrics_create(cases[c].max_batch);
        assert_non_null(m);
        int n, buckets = 0;
        tm_sample *s = tm_render(m, 0, 0, 0, &n);
        for (int i = 0; i < n; i++) buckets += strcmp(s[i].name, "scored_batch_size_bucket") == 0;
        assert_int_equal(buckets, cases[c].n_buckets);
        assert_true(tm_get(s, n, "scored_batch_size_bucket", "le", cases[c].top, NULL) == 0);
        assert_true(tm_get(s, n, "scored_batch_size_bucket", "le", "+Inf", NULL) == 0);
        tm_check_histograms(s, n);
        free(s);
        metrics_free(m);
    }
}

static void test_empty_registry_format(void **state)
{
    (void)state;
    metrics *m = metrics_create(4);
    char *text = metrics_render(m, 0, 0, 0);
    assert_non_null(text);
    /* Every metric announces its type, even with no series yet. */
    const char *names[] = {"scored_requests_total", "scored_request_duration_seconds",
                           "scored_queue_wait_seconds", "scored_compute_seconds",
                           "scored_batch_size", "scored_score_evaluations_total",
                           "scored_batches_total", "scored_queue_length", "scored_running_jobs",
                           "scored_models_loaded", "scored_resident_memory_bytes", "scored_up"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char type[128], help[128];
        snprintf(type, sizeof type, "# TYPE %s ", names[i]);
        snprintf(help, sizeof help, "# HELP %s ", names[i]);
        assert_non_null(strstr(text, type));
        assert_non_null(strstr(text, help));
    }
    tm_sample *s = malloc(TM_MAX_SAMPLES * sizeof *s);
    int n = tm_parse(text, s, TM_MAX_SAMPLES);
    assert_false(tm_has(s, n, "scored_requests_total"));
    assert_true(tm_get(s, n, "scored_batches_total", NULL) == 0);
    assert_int_equal(tm_check_histograms(s, n), 3);
    free(s);
    free(text);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_label_escaping(void **state)
{
    (void)state;
    metrics *m = metrics_create(4);
    const char *ugly = "a\"b\\c\nd";
    metrics_request(m, ugly, 404, 0.01);
    char *text = metrics_render(m, 0, 0, 0);
    assert_non_null(strstr(text, "scored_requests_total{endpoint=\"a\\\"b\\\\c\\nd\","
                                 "status=\"404\"} 1\n"));
    tm_sample *s = malloc(TM_MAX_SAMPLES * sizeof *s);
    int n = tm_parse(text, s, TM_MAX_SAMPLES);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", ugly, "status", "404",
                       NULL) == 1);
    assert_true(tm_get(s, n, "scored_request_duration_seconds_count", "endpoint", ugly,
                       NULL) == 1);
    tm_check_histograms(s, n);
    free(s);
    free(text);
    metrics_free(m);
}

static void test_series_overflow(void **state)
{
    (void)state;
    metrics *m = metrics_create(4);
    char name[32];
    for (int i = 0; i < 70; i++) {
        snprintf(name, sizeof name, "ep%d", i);
        metrics_request(m, name, 200, 0.01);
        metrics_request(m, name, 200, 0.01);
    }
    metrics_request(m, "ep0", 500, 0.01);    /* a new pair once the table is full */
    metrics_request(m, "other", 200, 0.01);  /* the literal name shares the overflow series */
    metrics_request(m, NULL, 503, 0.01);
    metrics_request(m, "x", 1234, -1.0);     /* odd status, negative time */
    metrics_request(m, "y", 200, NAN);

    int n;
    tm_sample *s = tm_render(m, 0, 0, 0, &n);
    int series = 0;
    double total = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, "scored_requests_total") == 0) {
            series++;
            total += s[i].value;
        }
    assert_int_equal(total, 145);
    /* 64 tracked pairs + other with statuses 0, 200, 500, 503 */
    assert_int_equal(series, 64 + 4);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "ep63", "status", "200",
                       NULL) == 2);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "other", "status", "200",
                       NULL) == 6 * 2 + 2);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "other", "status", "500",
                       NULL) == 1);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "other", "status", "503",
                       NULL) == 1);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "other", "status", "0",
                       NULL) == 1);
    assert_true(tm_get(s, n, "scored_request_duration_seconds_count", "endpoint", "other",
                       NULL) == 17);
    assert_true(tm_get(s, n, "scored_request_duration_seconds_bucket", "endpoint", "other",
                       "le", "0.005", NULL) == 2);   /* -1 and NaN counted as 0 */
    assert_int_equal(tm_check_histograms(s, n), 64 + 1 + 3);
    free(s);
    metrics_free(m);
}

#define TM_THREADS 4
#define TM_ITERS 20000

static void *tm_worker(void *arg)
{
    metrics *m = arg;
    for (int i = 0; i < TM_ITERS; i++) {
        metrics_request(m, i % 2 ? "samples" : "score", 200, 0.001 * (i % 7));
        metrics_batch(m, 1 + i % 5, 0.01, 3);
        metrics_queue_wait(m, 0.5);
        if (i % 1000 == 0) free(metrics_render(m, i, 0, 0));   /* readers run concurrently */
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    metrics *m = metrics_create(4);
    pthread_t th[TM_THREADS];
    for (int i = 0; i < TM_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, tm_worker, m), 0);
    for (int i = 0; i < TM_THREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    int n;
    tm_sample *s = tm_render(m, 0, 0, 0, &n);
    double half = TM_THREADS * TM_ITERS / 2;
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "samples", "status", "200",
                       NULL) == half);
    assert_true(tm_get(s, n, "scored_requests_total", "endpoint", "score", "status", "200",
                       NULL) == half);
    assert_true(tm_get(s, n, "scored_batches_total", NULL) == TM_THREADS * TM_ITERS);
    assert_true(tm_get(s, n, "scored_score_evaluations_total", NULL) ==
                3.0 * TM_THREADS * TM_ITERS);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_count", NULL) == TM_THREADS * TM_ITERS);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "0.25", NULL) == 0);
    assert_true(tm_get(s, n, "scored_queue_wait_seconds_bucket", "le", "0.5", NULL) ==
                TM_THREADS * TM_ITERS);
    assert_true(fabs(tm_get(s, n, "scored_queue_wait_seconds_sum", NULL) -
                     0.5 * TM_THREADS * TM_ITERS) < 1e-6);
    /* batch sizes 1..5 in equal shares (TM_ITERS is a multiple of 5) */
    assert_true(tm_get(s, n, "scored_batch_size_bucket", "le", "1", NULL) ==
                TM_THREADS * TM_ITERS / 5);
    assert_true(tm_get(s, n, "scored_batch_size_bucket", "le", "4", NULL) ==
                4.0 * TM_THREADS * TM_ITERS / 5);
    assert_true(tm_get(s, n, "scored_batch_size_sum", NULL) == 3.0 * TM_THREADS * TM_ITERS);
    tm_check_histograms(s, n);
    free(s);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_buckets),
        cmocka_unit_test(test_batch_bucket_bounds),
        cmocka_unit_test(test_empty_registry_format),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_series_overflow),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
