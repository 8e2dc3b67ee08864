/* HTTP with libmicrohttpd: one polling thread, request bodies gathered up to the limit,
 * routing, API keys, JSON errors, synchronous requests parked as suspended connections
 * until their job finishes, server-sent events, static files and the operations endpoints.
 * Not here: body parsing (api.c), scheduling (sched.c), results (results.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "srv.h"

typedef struct req_ctx {
    srv *s;
    uint8_t *body;            /* owned */
    size_t len, cap;
    int too_large;
    double t0;
    const char *endpoint;     /* metrics label */
    int status;               /* the status sent */
    job *job;                 /* a synchronous request's job (holds a reference) */
} req_ctx;

int srv_error_status(int code)
{
    switch (code) {
    case SRV_ERR_QUEUE_FULL: return 429;
    case SRV_ERR_MEDIA_TYPE: return 415;
    case SRV_ERR_NOT_READY:
    case SRV_ERR_SHUTTING_DOWN: return 503;
    case SRV_ERR_NOT_FOUND: return 404;
    case SRV_ERR_UNAUTHORIZED: return 401;
    case SRV_ERR_METHOD: return 405;
    case SRV_ERR_GONE: return 410;
    case SRV_ERR_CONFLICT: return 409;
    case SC_ERR_FORMAT:
    case SC_ERR_IO: return 400;
    case SC_ERR_INVALID:
    case SC_ERR_UNSUPPORTED:
    case SC_ERR_SHAPE: return 422;
    case SC_ERR_TOO_LARGE: return 413;
    case SC_ERR_CANCELLED: return 409;
    default: return 500;
    }
}

const char *srv_error_name(int code)
{
    switch (code) {
    case SRV_ERR_QUEUE_FULL: return "queue_full";
    case SRV_ERR_MEDIA_TYPE: return "unsupported_media_type";
    case SRV_ERR_NOT_READY: return "not_ready";
    case SRV_ERR_SHUTTING_DOWN: return "shutting_down";
    case SRV_ERR_NOT_FOUND: return "not_found";
    case SRV_ERR_UNAUTHORIZED: return "unauthorized";
    case SRV_ERR_METHOD: return "method_not_allowed";
    case SRV_ERR_GONE: return "gone";
    case SRV_ERR_CONFLICT: return "conflict";
    case SC_ERR_IO: return "malformed_input";
    case SC_ERR_NOMEM:
    case SC_ERR_NUMERIC: return "internal_error";
    default: return sc_code_name(code);
    }
}

/* ---- responses --------------------------------------------------------------------------- */

static enum MHD_Result send_response(req_ctx *r, struct MHD_Connection *c, int status,
                                     struct MHD_Response *resp)
{
    if (!resp) return MHD_NO;
    r->status = status;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static struct MHD_Response *buffer_response(const void *data, size_t len, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp && type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return resp;
}

static enum MHD_Result send_json(req_ctx *r, struct MHD_Connection *c, int status, const char *text)
{
    return send_response(r, c, status, buffer_response(text, strlen(text), "application/json"));
}

static enum MHD_Result send_error_ex(req_ctx *r, struct MHD_Connection *c, int code, const char *msg,
                                     const char *hname, const char *hvalue)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", srv_error_name(code), "message", msg);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct MHD_Response *resp = buffer_response(text, strlen(text), "application/json");
    free(text);
    if (resp && hname) MHD_add_response_header(resp, hname, hvalue);
    if (resp && code == SRV_ERR_UNAUTHORIZED) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    return send_response(r, c, srv_error_status(code), resp);
}

static enum MHD_Result send_error(req_ctx *r, struct MHD_Connection *c, int code, const char *msg)
{
    return send_error_ex(r, c, code, msg, NULL, NULL);
}

/* ---- static files ------------------------------------------------------------------------ */

static const char *mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".png", "image/png"}, {".svg", "image/svg+xml"}, {".json", "application/json"},
        {".yaml", "application/yaml"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0) return map[i][1];
    return "application/octet-stream";
}

static enum MHD_Result serve_static(req_ctx *r, struct MHD_Connection *c, const char *url)
{
    srv *s = r->s;
    r->endpoint = "static";
    const char *rel = strcmp(url, "/") == 0 ? "index.html" : url + 1;
    for (const char *p = rel; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '.' || *p == '-' || *p == '_' || *p == '/';
        if (!ok) return send_error(r, c, SRV_ERR_NOT_FOUND, "no such file");
    }
    if (strstr(rel, "..") || strstr(rel, "/.") || rel[0] == '.' || !s->cfg.static_dir[0])
        return send_error(r, c, SRV_ERR_NOT_FOUND, "no such file");
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", s->cfg.static_dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return send_error(r, c, SRV_ERR_NOT_FOUND, "no such file");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime_of(path));
    return send_response(r, c, 200, resp);
}

/* ---- operations -------------------------------------------------------------------------- */

static enum MHD_Result serve_metrics(req_ctx *r, struct MHD_Connection *c)
{
    srv *s = r->s;
    pthread_mutex_lock(&s->lock);
    long queued = s->queued_count, running = s->running_count, models = 0;
    for (srv_model *sm = s->models; sm; sm = sm->next) models++;
    pthread_mutex_unlock(&s->lock);
    char *text = metrics_render(s->metrics, queued, running, models);
    if (!text) return MHD_NO;
    struct MHD_Response *resp = buffer_response(text, strlen(text), "text/plain; version=0.0.4; charset=utf-8");
    free(text);
    return send_response(r, c, 200, resp);
}

static int authorized(srv *s, struct MHD_Connection *c)
{
    if (!s->api_keys) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) key = auth + 7;
    if (!key) return 0;
    int ok = 0;
    for (char **k = s->api_keys; *k; k++) {
        size_t a = strlen(*k), b = strlen(key);
        unsigned diff = (unsigned)(a ^ b);
        for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned)((*k)[i] ^ key[i]);
        ok |= diff == 0;
    }
    return ok;
}

/* ---- jobs -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    job_kind kind;
} job_routes[] = {
    {"samples", JOB_SAMPLES},       {"inpaint", JOB_INPAINT}, {"colorize", JOB_COLORIZE},
    {"likelihood", JOB_LIKELIHOOD}, {"anomaly", JOB_ANOMALY}, {"encode", JOB_ENCODE},
    {"decode", JOB_DECODE},
};

static uint64_t fresh_seed(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    if (!v) v = (uint64_t)(srv_now() * 1e6);
    return v & SRV_SEED_MAX; /* exact in every JSON reader */
}

/* Query-string options as JSON: integers, numbers and true/false are typed, the rest strings. */
static enum MHD_Result add_query_value(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    json_t *o = cls;
    if (!value) value = "";
    char *end;
    long long iv = strtoll(value, &end, 10);
    json_t *v;
    if (*value && !*end) v = json_integer(iv);
    else {
        double dv = strtod(value, &end);
        if (*value && !*end) v = json_real(dv);
        else if (strcmp(value, "true") == 0) v = json_true();
        else if (strcmp(value, "false") == 0) v = json_false();
        else v = json_string(value);
    }
    json_object_set_new(o, key, v);
    return MHD_YES;
}

static enum MHD_Result post_job(req_ctx *r, struct MHD_Connection *c, const char *model_id, job_kind kind)
{
    srv *s = r->s;
    pthread_mutex_lock(&s->lock);
    int closing = s->shutting_down;
    srv_model *sm = closing ? NULL : registry_find(s, model_id);
    if (sm) sm->refs++;
    pthread_mutex_unlock(&s->lock);
    if (closing) return send_error(r, c, SRV_ERR_SHUTTING_DOWN, "the server is shutting down");
    if (!sm) return send_error(r, c, SRV_ERR_NOT_FOUND, "no such model");

    const char *prefer = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Prefer");
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    api_request ar = {
        .server = s, .sm = sm, .model = sm->model,
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .accept_npy = accept && strstr(accept, "application/x-npy") != NULL,
        .prefer_async = prefer && strstr(prefer, "respond-async") != NULL,
        .body = r->body, .len = r->len, .max_body = s->cfg.max_body, .max_items = s->cfg.max_items,
        .max_steps = s->cfg.max_steps, .random_seed = fresh_seed(),
    };
    json_t *query = json_object();
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_query_value, query);
    ar.query = json_object_size(query) ? query : NULL;
    job *j = NULL;
    int async = 0;
    sc_error err = {0};
    int rc = api_job_from_request(&ar, kind, &j, &async, &err);
    json_decref(query);
    if (rc) {
        pthread_mutex_lock(&s->lock);
        srv_model_unref(sm);
        pthread_mutex_unlock(&s->lock);
        return send_error(r, c, rc, err.msg);
    }
    /* j now owns the model reference */
    pthread_mutex_lock(&s->lock);
    if (s->shutting_down) rc = sc_fail(&err, SRV_ERR_SHUTTING_DOWN, "the server is shutting down");
    else rc = sched_submit(s, j, &err);
    if (rc) {
        job_unref(j);
        pthread_mutex_unlock(&s->lock);
        if (rc == SRV_ERR_QUEUE_FULL) return send_error_ex(r, c, rc, err.msg, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return send_error(r, c, rc, err.msg);
    }
    j->async = async;
    char id[33];
    memcpy(id, j->id, sizeof id);
    if (!async) {
        j->waiter = c;
        r->job = j; /* the creator's reference */
        MHD_suspend_connection(c);
    } else {
        job_unref(j); /* the table keeps it */
    }
    pthread_mutex_unlock(&s->lock);
    srv_wake(s);
    if (!async) return MHD_YES;

    char url[64], text[160];
    snprintf(url, sizeof url, "/v1/jobs/%s", id);
    snprintf(text, sizeof text, "{\"id\":\"%s\",\"status\":\"queued\",\"url\":\"%s\"}", id, url);
    struct MHD_Response *resp = buffer_response(text, strlen(text), "application/json");
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, url);
    return send_response(r, c, 202, resp);
}

/* A suspended synchronous request comes back: its job is final. */
static enum MHD_Result answer_job(req_ctx *r, struct MHD_Connection *c)
{
    srv *s = r->s;
    pthread_mutex_lock(&s->lock);
    job *j = r->job;
    r->job = NULL;
    struct MHD_Response *resp = NULL;
    int status;
    char msg[600];
    int code = 0;
    if (j->status == JOB_DONE) {
        status = 200;
        resp = buffer_response(j->body, j->body_len, j->content_type);
        if (resp) {
            char v[64];
            MHD_add_response_header(resp, "X-Job-Id", j->id);
            snprintf(v, sizeof v, "%llu", (unsigned long long)j->seed);
            MHD_add_response_header(resp, "X-Seed", v);
            snprintf(v, sizeof v, "%ld", j->nfe);
            MHD_add_response_header(resp, "X-NFE", v);
        }
    } else {
        code = j->status == JOB_CANCELLED ? (s->shutting_down ? SRV_ERR_SHUTTING_DOWN : SC_ERR_CANCELLED) : j->error.code;
        snprintf(msg, sizeof msg, "%s", j->status == JOB_CANCELLED && s->shutting_down
                                            ? "the server is shutting down"
                                            : (j->error.msg[0] ? j->error.msg : "cancelled"));
        status = 0;
    }
    job_table_remove(s, j);
    job_unref(j);
    pthread_mutex_unlock(&s->lock);
    if (status) return send_response(r, c, status, resp);
    return send_error(r, c, code, msg);
}

static enum MHD_Result get_job(req_ctx *r, struct MHD_Connection *c, const char *id)
{
    srv *s = r->s;
    int expired;
    pthread_mutex_lock(&s->lock);
    job *j = job_find(s, id, &expired);
    char *text = j ? job_to_json(j) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (!j) return send_error(r, c, expired ? SRV_ERR_GONE : SRV_ERR_NOT_FOUND,
                              expired ? "the job's result has expired" : "no such job");
    enum MHD_Result ok = send_json(r, c, 200, text);
    free(text);
    return ok;
}

static enum MHD_Result delete_job(req_ctx *r, struct MHD_Connection *c, const char *id)
{
    srv *s = r->s;
    int expired;
    pthread_mutex_lock(&s->lock);
    job *j = job_find(s, id, &expired);
    if (!j) {
        pthread_mutex_unlock(&s->lock);
        return send_error(r, c, expired ? SRV_ERR_GONE : SRV_ERR_NOT_FOUND, expired ? "the job has expired" : "no such job");
    }
    if (j->status == JOB_DONE || j->status == JOB_FAILED) {
        pthread_mutex_unlock(&s->lock);
        return send_error(r, c, SRV_ERR_CONFLICT, "the job has already finished");
    }
    sched_cancel(s, j);
    job_ref(j);
    char *text = job_to_json(j);
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, j);
    srv_wake(s);
    pthread_mutex_lock(&s->lock);
    job_unref(j);
    pthread_mutex_unlock(&s->lock);
    enum MHD_Result ok = send_json(r, c, 200, text);
    free(text);
    return ok;
}

/* ---- server-sent events ------------------------------------------------------------------ */

static void append(sse_listener *l, const char *event, const char *data)
{
    size_t add = strlen(event) + strlen(data) + 32; /* "event: " "\ndata: " "\n\n" and the NUL */
    char *p = realloc(l->pending, l->pending_len + add);
    if (!p) return;
    l->pending = p;
    l->pending_len += (size_t)snprintf(p + l->pending_len, add, "event: %s\ndata: %s\n\n", event, data);
}

/* Formats what the listener has not seen [locked]. */
static void sse_compose(sse_listener *l)
{
    job *j = l->job;
    if (l->pending_off == l->pending_len) {
        free(l->pending);
        l->pending = NULL;
        l->pending_len = l->pending_off = 0;
    }
    /* progress at most 10 times a second (the final state always goes out) */
    const double now = srv_now();
    if (j->progress_seq > l->sent_progress && (now - l->last_progress >= 0.1 || job_is_final(j))) {
        l->last_progress = now;
        char data[256], steps[32] = "null"; /* planned steps; null while unknown (rk45) */
        if (j->steps > 0) snprintf(steps, sizeof steps, "%ld", j->steps);
        snprintf(data, sizeof data, "{\"step\":%ld,\"steps\":%s,\"nfe\":%ld,\"status\":\"%s\"}", j->step,
                 steps, j->nfe, job_status_name(j->status));
        append(l, "progress", data);
        l->sent_progress = j->progress_seq;
    }
    if (j->preview_seq > l->sent_preview && j->preview_b64) {
        size_t n = strlen(j->preview_b64) + 64;
        char *data = malloc(n);
        if (data) {
            snprintf(data, n, "{\"step\":%ld,\"png_base64\":\"%s\"}", j->preview_step, j->preview_b64);
            append(l, "preview", data);
            free(data);
        }
        l->sent_preview = j->preview_seq;
    }
    if (job_is_final(j) && !l->sent_final) {
        char *text = job_to_json(j);
        if (text) append(l, job_status_name(j->status), text);
        free(text);
        l->sent_final = 1;
    }
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_listener *l = cls;
    srv *s = l->job->server;
    pthread_mutex_lock(&s->lock);
    sse_compose(l);
    if (l->pending_off < l->pending_len) {
        size_t n = l->pending_len - l->pending_off;
        if (n > max) n = max;
        memcpy(buf, l->pending + l->pending_off, n);
        l->pending_off += n;
        pthread_mutex_unlock(&s->lock);
        return (ssize_t)n;
    }
    if (l->sent_final) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    l->suspended = 1;
    MHD_suspend_connection(l->conn); /* resumed by sched_notify */
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void sse_free(void *cls)
{
    sse_listener *l = cls;
    srv *s = l->job->server;
    pthread_mutex_lock(&s->lock);
    sse_listener **pp = &l->job->listeners;
    while (*pp && *pp != l) pp = &(*pp)->next;
    if (*pp) *pp = l->next;
    job_unref(l->job);
    pthread_mutex_unlock(&s->lock);
    free(l->pending);
    free(l);
}

static enum MHD_Result job_events(req_ctx *r, struct MHD_Connection *c, const char *id)
{
    srv *s = r->s;
    int expired;
    pthread_mutex_lock(&s->lock);
    job *j = job_find(s, id, &expired);
    sse_listener *l = j ? calloc(1, sizeof *l) : NULL;
    if (l) {
        l->job = j;
        l->conn = c;
        l->sent_progress = -1;
        job_ref(j);
        l->next = j->listeners;
        j->listeners = l;
    }
    pthread_mutex_unlock(&s->lock);
    if (!j) return send_error(r, c, expired ? SRV_ERR_GONE : SRV_ERR_NOT_FOUND, expired ? "the job has expired" : "no such job");
    if (!l) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, l, sse_free);
    if (!resp) {
        sse_free(l);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return send_response(r, c, 200, resp);
}

/* ---- routing ----------------------------------------------------------------------------- */

static enum MHD_Result method_not_allowed(req_ctx *r, struct MHD_Connection *c, const char *allow)
{
    return send_error_ex(r, c, SRV_ERR_METHOD, "method not allowed", MHD_HTTP_HEADER_ALLOW, allow);
}

/* Splits "/v1/a/b/c" into at most 5 segments (copied into buf). */
static int split_path(const char *url, char *buf, size_t len, char **seg, int max)
{
    snprintf(buf, len, "%s", url);
    int n = 0;
    for (char *p = buf; *p && n < max;) {
        while (*p == '/') *p++ = '\0';
        if (!*p) break;
        seg[n++] = p;
        while (*p && *p != '/') p++;
    }
    return n;
}

static enum MHD_Result route(req_ctx *r, struct MHD_Connection *c, const char *url, const char *method)
{
    srv *s = r->s;
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const int post = strcmp(method, "POST") == 0, del = strcmp(method, "DELETE") == 0;
    if (strcmp(url, "/healthz") == 0) {
        r->endpoint = "healthz";
        return get ? send_json(r, c, 200, "{\"status\":\"ok\"}") : method_not_allowed(r, c, "GET");
    }
    if (strcmp(url, "/readyz") == 0) {
        r->endpoint = "readyz";
        if (!get) return method_not_allowed(r, c, "GET");
        pthread_mutex_lock(&s->lock);
        int ready = s->ready && !s->shutting_down, closing = s->shutting_down, n = 0;
        for (srv_model *sm = s->models; sm; sm = sm->next) n++;
        pthread_mutex_unlock(&s->lock);
        if (!ready)
            return send_error(r, c, closing ? SRV_ERR_SHUTTING_DOWN : SRV_ERR_NOT_READY,
                              closing ? "the server is shutting down" : "models are loading");
        char text[64];
        snprintf(text, sizeof text, "{\"status\":\"ready\",\"models\":%d}", n);
        return send_json(r, c, 200, text);
    }
    if (strcmp(url, "/metrics") == 0) {
        r->endpoint = "metrics";
        if (!get) return method_not_allowed(r, c, "GET");
        if (!authorized(s, c)) return send_error(r, c, SRV_ERR_UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY or X-API-Key)");
        return serve_metrics(r, c);
    }
    char buf[512], *seg[6];
    int n = split_path(url, buf, sizeof buf, seg, 6);
    if (n == 0 || strcmp(seg[0], "v1") != 0) {
        if (!get) return method_not_allowed(r, c, "GET");
        return serve_static(r, c, url);
    }
    r->endpoint = "api";
    if (!authorized(s, c)) return send_error(r, c, SRV_ERR_UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY or X-API-Key)");
    pthread_mutex_lock(&s->lock);
    int ready = s->ready;
    pthread_mutex_unlock(&s->lock);
    if (!ready) return send_error(r, c, SRV_ERR_NOT_READY, "models are loading");

    if (n >= 2 && strcmp(seg[1], "models") == 0) {
        if (n == 2) {
            r->endpoint = "models";
            if (!get) return method_not_allowed(r, c, "GET");
            pthread_mutex_lock(&s->lock);
            char *text = model_list_json(s);
            pthread_mutex_unlock(&s->lock);
            enum MHD_Result ok = send_json(r, c, 200, text);
            free(text);
            return ok;
        }
        if (n == 3) {
            r->endpoint = "model";
            if (!get) return method_not_allowed(r, c, "GET");
            pthread_mutex_lock(&s->lock);
            srv_model *sm = registry_find(s, seg[2]);
            char *text = sm ? model_info_json(sm) : NULL;
            pthread_mutex_unlock(&s->lock);
            if (!sm) return send_error(r, c, SRV_ERR_NOT_FOUND, "no such model");
            enum MHD_Result ok = send_json(r, c, 200, text);
            free(text);
            return ok;
        }
        if (n == 4) {
            for (size_t i = 0; i < sizeof job_routes / sizeof job_routes[0]; i++)
                if (strcmp(seg[3], job_routes[i].name) == 0) {
                    r->endpoint = job_routes[i].name;
                    if (!post) return method_not_allowed(r, c, "POST");
                    if (r->too_large) {
                        char msg[96];
                        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", s->cfg.max_body);
                        return send_error(r, c, SC_ERR_TOO_LARGE, msg);
                    }
                    return post_job(r, c, seg[2], job_routes[i].kind);
                }
        }
    }
    if (n >= 3 && strcmp(seg[1], "jobs") == 0) {
        if (n == 3) {
            r->endpoint = "job";
            if (get) return get_job(r, c, seg[2]);
            if (del) return delete_job(r, c, seg[2]);
            return method_not_allowed(r, c, "GET, DELETE");
        }
        if (n == 4 && strcmp(seg[3], "events") == 0) {
            r->endpoint = "job_events";
            return get ? job_events(r, c, seg[2]) : method_not_allowed(r, c, "GET");
        }
    }
    return send_error(r, c, SRV_ERR_NOT_FOUND, "no such endpoint");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv *s = cls;
    req_ctx *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->t0 = srv_now();
        r->endpoint = "other";
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", s->cfg.max_body);
            return send_error(r, c, SC_ERR_TOO_LARGE, msg);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large) {
            if (r->len + *upload_size > s->cfg.max_body) {
                r->too_large = 1;
                free(r->body);
                r->body = NULL;
                r->len = r->cap = 0;
            } else {
                if (r->len + *upload_size > r->cap) {
                    size_t cap = r->cap ? r->cap : 65536;
                    while (cap < r->len + *upload_size) cap *= 2;
                    uint8_t *nb = realloc(r->body, cap);
                    if (!nb) return MHD_NO;
                    r->body = nb;
                    r->cap = cap;
                }
                memcpy(r->body + r->len, upload, *upload_size);
                r->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->job) return answer_job(r, c);
    if (r->status) return MHD_YES; /* already answered (early 413) */
    return route(r, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    srv *s = cls;
    req_ctx *r = *con_cls;
    if (!r) return;
    if (r->job) { /* the connection ended while its job was pending */
        pthread_mutex_lock(&s->lock);
        job *j = r->job;
        if (j->waiter == c) j->waiter = NULL;
        sched_cancel(s, j);
        job_table_remove(s, j);
        job_unref(j);
        pthread_mutex_unlock(&s->lock);
        srv_wake(s);
    }
    metrics_request(s->metrics, r->endpoint, r->status ? r->status : 499, srv_now() - r->t0);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

int http_start(srv *s, sc_error *err)
{
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->cfg.port);
    if (inet_pton(AF_INET, s->cfg.host, &addr.sin_addr) != 1)
        return sc_fail(err, SC_ERR_INVALID, "--host must be an IPv4 address, got %s", s->cfg.host);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                                     MHD_USE_ERROR_LOG,
                                 (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
    if (!s->daemon)
        return sc_fail(err, SC_ERR_IO, "cannot listen on %s:%d (%s)", s->cfg.host, s->cfg.port, strerror(errno));
    return 0;
}

void http_quiesce(srv *s)
{
    if (!s->daemon) return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void http_stop(srv *s)
{
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

/* The port actually bound (for --port 0). */
int http_port(srv *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : s->cfg.port;
}
