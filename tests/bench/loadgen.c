/* A small HTTP/1.1 load generator for the server benchmark (tests/bench/bench_server.sh).
 *
 *   loadgen --host 127.0.0.1 --port P --clients C (--requests-per-client R | --duration S)
 *           [--path /v1/...] [--body 'JSON with %d'] [--method POST] [--expect TEXT]
 *           [--timeout S]
 *
 * One thread per client, each on its own keep-alive connection (reconnecting when the server
 * closes it or a request fails).  Every "%d" in the body becomes a seed distinct over all the
 * requests of the run.  Each response's status line, headers and body (Content-Length,
 * chunked, or up to the close) are read in full; an answer other than 200 (or, with --expect,
 * a 200 body lacking TEXT), a connection failure or a timeout counts as an error.
 *
 * Warm-up: the first request of each client is not timed.  Then all clients start together
 * (a barrier); seconds runs from the first timed request's start to the last one's end.
 * Prints one line on stdout:
 *   clients=C requests=N errors=E seconds=T throughput_rps=X p50_ms=Y p99_ms=Z
 * requests counts timed requests; throughput counts the successful ones; the percentiles are
 * over the successful ones (nearest rank).  Diagnostics (mean, max, the first error) go to
 * stderr. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *host;
    const char *port;
    const char *path;
    const char *method;
    const char *body;   /* template, or NULL */
    const char *expect; /* substring a 200 body must contain, or NULL */
    int clients;
    long requests;      /* per client, timed; 0 in duration mode */
    double duration;    /* seconds, 0 in requests mode */
    double timeout;
} options;

static options opt;
static pthread_barrier_t start_barrier;
static atomic_long next_seed;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];

typedef struct {
    int id;
    double *lat;        /* seconds, successful timed requests */
    long nlat, caplat;
    long timed, errors;
    long warmup_errors;
    long reconnects;
    double t_start, t_end;
} client;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void note_error(int id, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&err_lock);
    if (!first_error[0]) {
        char what[400];
        snprintf(what, sizeof what, fmt, detail);
        snprintf(first_error, sizeof first_error, "client %d: %s", id, what);
    }
    pthread_mutex_unlock(&err_lock);
}

/* Case-insensitive substring test (strcasestr is a GNU extension). */
static int has_token(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return 1;
    return 0;
}

/* ---- connection with a read buffer ----------------------------------------------------- */

typedef struct {
    int fd;
    char buf[65536];
    size_t off, len;
    int eof;            /* the peer closed (or reset) the connection */
} conn;

static int conn_open(conn *c)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(opt.host, opt.port, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv;
    tv.tv_sec = (time_t)opt.timeout;
    tv.tv_usec = (suseconds_t)((opt.timeout - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->fd = fd;
    c->off = c->len = 0;
    c->eof = 0;
    return 0;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->off = c->len = 0;
}

static int send_all(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Refills the buffer; 1 on data, 0 on EOF, -1 on error or timeout. */
static int fill(conn *c)
{
    if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
    if (c->off > 0 && c->len == sizeof c->buf) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof c->buf) return -1; /* a line longer than the buffer */
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == ECONNRESET) c->eof = 1;
        if (r < 0) return -1;
        if (r == 0) {
            c->eof = 1;
            return 0;
        }
        c->len += (size_t)r;
        return 1;
    }
}

/* One CRLF- (or LF-) terminated line into out (NUL-terminated, without the terminator).
 * 0 on success, -1 on error or EOF. */
static int read_line(conn *c, char *out, size_t cap)
{
    for (;;) {
        char *start = c->buf + c->off;
        char *nl = memchr(start, '\n', c->len - c->off);
        if (nl) {
            size_t n = (size_t)(nl - start);
            if (n > 0 && start[n - 1] == '\r') n--;
            if (n >= cap) n = cap - 1;
            memcpy(out, start, n);
            out[n] = 0;
            c->off = (size_t)(nl - c->buf) + 1;
            return 0;
        }
        if (fill(c) <= 0) return -1;
    }
}

/* Appends n body bytes to *body (growing it); n < 0: up to EOF. */
static int read_body(conn *c, long n, char **body, size_t *blen, size_t *bcap)
{
    while (n != 0) {
        if (c->off == c->len) {
            int r = fill(c);
            if (r < 0) return -1;
            if (r == 0) return n < 0 ? 0 : -1;
        }
        size_t avail = c->len - c->off;
        size_t take = n < 0 || (size_t)n > avail ? avail : (size_t)n;
        if (*blen + take + 1 > *bcap) {
            size_t nc = *bcap ? *bcap : 4096;
            while (nc < *blen + take + 1) nc *= 2;
            char *nb = realloc(*body, nc);
            if (!nb) return -1;
            *body = nb;
            *bcap = nc;
        }
        memcpy(*body + *blen, c->buf + c->off, take);
        *blen += take;
        (*body)[*blen] = 0;
        c->off += take;
        if (n > 0) n -= (long)take;
    }
    return 0;
}

typedef struct {
    int status;
    int close_after;     /* the server will close (or closed) the connection */
    char *body;
    size_t blen, bcap;
} response;

/* Reads one full response.  0 on success, -1 on a protocol or connection failure (what is
 * put in *why). */
static int read_response(conn *c, response *rsp, const char **why)
{
    char line[8192];
    for (;;) { /* skips 1xx interim answers */
        if (read_line(c, line, sizeof line)) return *why = "connection closed or timed out before the status line", -1;
        int major = 0, minor = 0, status = 0;
        if (sscanf(line, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 999)
            return *why = "malformed status line", -1;
        rsp->status = status;
        rsp->close_after = major == 1 && minor == 0;
        long content_length = -1;
        int chunked = 0;
        for (;;) {
            if (read_line(c, line, sizeof line)) return *why = "connection closed in the headers", -1;
            if (!line[0]) break;
            char *colon = strchr(line, ':');
            if (!colon) return *why = "malformed header line", -1;
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            if (!strcasecmp(line, "Content-Length")) {
                char *end;
                errno = 0;
                content_length = strtol(v, &end, 10);
                if (errno || end == v || content_length < 0) return *why = "bad Content-Length", -1;
            } else if (!strcasecmp(line, "Transfer-Encoding")) {
                if (has_token(v, "chunked")) chunked = 1;
            } else if (!strcasecmp(line, "Connection")) {
                if (has_token(v, "close")) rsp->close_after = 1;
                else if (has_token(v, "keep-alive")) rsp->close_after = 0;
            }
        }
        if (status >= 100 && status < 200) continue;
        rsp->blen = 0;
        if (rsp->body) rsp->body[0] = 0;
        if (status == 204 || status == 304) return 0;
        if (chunked) {
            for (;;) {
                if (read_line(c, line, sizeof line)) return *why = "connection closed in a chunk size", -1;
                char *end;
                errno = 0;
                long size = strtol(line, &end, 16);
                if (errno || end == line || size < 0 || (*end && *end != ';' && *end != ' '))
                    return *why = "malformed chunk size", -1;
                if (size == 0) break;
                if (read_body(c, size, &rsp->body, &rsp->blen, &rsp->bcap))
                    return *why = "connection closed in a chunk", -1;
                if (read_line(c, line, sizeof line) || line[0]) return *why = "missing CRLF after a chunk", -1;
            }
            for (;;) { /* trailers */
                if (read_line(c, line, sizeof line)) return *why = "connection closed in the trailers", -1;
                if (!line[0]) break;
            }
        } else if (content_length >= 0) {
            if (read_body(c, content_length, &rsp->body, &rsp->blen, &rsp->bcap))
                return *why = "connection closed before Content-Length bytes", -1;
        } else {
            rsp->close_after = 1;
            if (read_body(c, -1, &rsp->body, &rsp->blen, &rsp->bcap)) return *why = "read error in a body up to close", -1;
        }
        return 0;
    }
}

/* ---- requests ---------------------------------------------------------------------------- */

/* The request text for one seed; malloc'd. */
static char *build_request(long seed, size_t *len)
{
    char seedtxt[32];
    int sl = snprintf(seedtxt, sizeof seedtxt, "%ld", seed);
    size_t tl = opt.body ? strlen(opt.body) : 0;
    char *body = malloc(tl + 32 * (tl / 2 + 1) + 1);
    if (!body) return NULL;
    size_t bl = 0;
    for (size_t i = 0; i < tl; i++) {
        if (opt.body[i] == '%' && opt.body[i + 1] == 'd') {
            memcpy(body + bl, seedtxt, (size_t)sl);
            bl += (size_t)sl;
            i++;
        } else {
            body[bl++] = opt.body[i];
        }
    }
    body[bl] = 0;
    size_t cap = bl + strlen(opt.path) + strlen(opt.host) + 512;
    char *req = malloc(cap);
    if (!req) {
        free(body);
        return NULL;
    }
    int hl;
    if (opt.body)
        hl = snprintf(req, cap,
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: scored-loadgen\r\nAccept: */*\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                      opt.method, opt.path, opt.host, opt.port, bl);
    else
        hl = snprintf(req, cap,
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: scored-loadgen\r\nAccept: */*\r\n"
                      "Connection: keep-alive\r\n\r\n",
                      opt.method, opt.path, opt.host, opt.port);
    memcpy(req + hl, body, bl);
    *len = (size_t)hl + bl;
    free(body);
    return req;
}

/* One request and its response on c (opening it if needed).  Returns 1 for a success, 0 for
 * an error (noted). */
static int do_request(client *cl, conn *c, response *rsp)
{
    size_t len;
    char *req = build_request(atomic_fetch_add(&next_seed, 1), &len);
    if (!req) {
        note_error(cl->id, "%s", "out of memory");
        return 0;
    }
    const char *why = NULL;
    int ok = 0;
    /* a keep-alive connection the server closed while idle: one retry on a fresh one */
    for (int attempt = 0; attempt < 2 && !ok; attempt++) {
        int reused = c->fd >= 0;
        if (c->fd < 0) {
            if (conn_open(c)) {
                why = "cannot connect";
                break;
            }
            cl->reconnects++;
        }
        if (send_all(c, req, len)) {
            why = "send failed";
            conn_close(c);
            if (reused) continue; /* EPIPE/ECONNRESET on a connection closed while idle */
            break;
        }
        c->off = c->len = 0;
        if (read_response(c, rsp, &why)) {
            int idle_closed = c->len == 0 && c->eof;
            conn_close(c);
            if (reused && idle_closed) continue;
            break;
        }
        ok = 1;
    }
    free(req);
    if (!ok) {
        note_error(cl->id, "%s", why ? why : "request failed");
        return 0;
    }
    if (rsp->close_after) conn_close(c);
    if (rsp->status != 200) {
        char msg[300];
        snprintf(msg, sizeof msg, "HTTP %d: %.200s", rsp->status, rsp->body ? rsp->body : "");
        note_error(cl->id, "%s", msg);
        return 0;
    }
    if (opt.expect && (!rsp->body || !strstr(rsp->body, opt.expect))) {
        note_error(cl->id, "200 without the expected text: %.200s", rsp->body ? rsp->body : "");
        return 0;
    }
    return 1;
}

static void *client_main(void *arg)
{
    client *cl = arg;
    conn c = {.fd = -1};
    response rsp = {0};
    if (!do_request(cl, &c, &rsp)) cl->warmup_errors++; /* warm-up, not timed */
    pthread_barrier_wait(&start_barrier);
    cl->t_start = now();
    double deadline = cl->t_start + opt.duration;
    for (long i = 0;; i++) {
        if (opt.requests > 0 ? i >= opt.requests : now() >= deadline) break;
        double t0 = now();
        int ok = do_request(cl, &c, &rsp);
        double t1 = now();
        cl->timed++;
        if (!ok) {
            cl->errors++;
            continue;
        }
        if (cl->nlat == cl->caplat) {
            long nc = cl->caplat ? 2 * cl->caplat : 1024;
            double *nl = realloc(cl->lat, sizeof(double) * (size_t)nc);
            if (!nl) {
                cl->errors++;
                continue;
            }
            cl->lat = nl;
            cl->caplat = nc;
        }
        cl->lat[cl->nlat++] = t1 - t0;
    }
    cl->t_end = now();
    conn_close(&c);
    free(rsp.body);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, long n, double p)
{
    if (n == 0) return NAN;
    long k = (long)ceil(p * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return sorted[k];
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--clients C] (--requests-per-client R | --duration S)\n"
            "               [--path /...] [--body 'TEXT with %%d for the seed'] [--method POST|GET]\n"
            "               [--expect TEXT] [--timeout S]\n");
}

static int parse_args(int argc, char **argv)
{
    opt.host = "127.0.0.1";
    opt.path = "/";
    opt.clients = 1;
    opt.timeout = 120;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = v;
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--body")) opt.body = v;
        else if (!strcmp(a, "--method")) opt.method = v;
        else if (!strcmp(a, "--expect")) opt.expect = v;
        else if (!strcmp(a, "--clients")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 4096) return fprintf(stderr, "loadgen: bad --clients %s\n", v), -1;
            opt.clients = (int)n;
        } else if (!strcmp(a, "--requests-per-client")) {
            opt.requests = strtol(v, &end, 10);
            if (*end || opt.requests < 1) return fprintf(stderr, "loadgen: bad --requests-per-client %s\n", v), -1;
        } else if (!strcmp(a, "--duration")) {
            opt.duration = strtod(v, &end);
            if (*end || !(opt.duration > 0)) return fprintf(stderr, "loadgen: bad --duration %s\n", v), -1;
        } else if (!strcmp(a, "--timeout")) {
            opt.timeout = strtod(v, &end);
            if (*end || !(opt.timeout > 0)) return fprintf(stderr, "loadgen: bad --timeout %s\n", v), -1;
        } else {
            fprintf(stderr, "loadgen: unknown option %s\n", a);
            usage();
            return -1;
        }
    }
    if (!opt.port) return fprintf(stderr, "loadgen: --port is required\n"), -1;
    if ((opt.requests > 0) == (opt.duration > 0))
        return fprintf(stderr, "loadgen: give one of --requests-per-client and --duration\n"), -1;
    if (!opt.method) opt.method = opt.body ? "POST" : "GET";
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv)) return 2;
    signal(SIGPIPE, SIG_IGN);
    atomic_init(&next_seed, 1);
    client *cl = calloc((size_t)opt.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)opt.clients, sizeof *th);
    if (!cl || !th) return fprintf(stderr, "loadgen: out of memory\n"), 1;
    pthread_barrier_init(&start_barrier, NULL, (unsigned)opt.clients);
    for (int i = 0; i < opt.clients; i++) {
        cl[i].id = i;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int rc = pthread_create(&th[i], &attr, client_main, &cl[i]);
        pthread_attr_destroy(&attr);
        if (rc) return fprintf(stderr, "loadgen: cannot start client thread %d: %s\n", i, strerror(rc)), 1;
    }
    for (int i = 0; i < opt.clients; i++) pthread_join(th[i], NULL);

    long timed = 0, errors = 0, nok = 0, warm_err = 0, reconnects = 0;
    double t0 = INFINITY, t1 = -INFINITY;
    for (int i = 0; i < opt.clients; i++) {
        timed += cl[i].timed;
        errors += cl[i].errors;
        nok += cl[i].nlat;
        warm_err += cl[i].warmup_errors;
        reconnects += cl[i].reconnects;
        if (cl[i].t_start < t0) t0 = cl[i].t_start;
        if (cl[i].t_end > t1) t1 = cl[i].t_end;
    }
    double *all = malloc(sizeof(double) * (size_t)(nok ? nok : 1));
    if (!all) return fprintf(stderr, "loadgen: out of memory\n"), 1;
    long k = 0;
    double sum = 0;
    for (int i = 0; i < opt.clients; i++)
        for (long j = 0; j < cl[i].nlat; j++) {
            all[k++] = cl[i].lat[j];
            sum += cl[i].lat[j];
        }
    qsort(all, (size_t)nok, sizeof *all, cmp_double);
    double seconds = t1 - t0;
    printf("clients=%d requests=%ld errors=%ld seconds=%.3f throughput_rps=%.2f p50_ms=%.2f p99_ms=%.2f\n",
           opt.clients, timed, errors, seconds, seconds > 0 ? (double)nok / seconds : 0.0,
           1e3 * percentile(all, nok, 0.50), 1e3 * percentile(all, nok, 0.99));
    fprintf(stderr, "loadgen: clients=%d min_ms=%.2f mean_ms=%.2f max_ms=%.2f warmup_errors=%ld connections=%ld%s%s\n",
            opt.clients, nok ? 1e3 * all[0] : NAN, nok ? 1e3 * sum / (double)nok : NAN,
            nok ? 1e3 * all[nok - 1] : NAN, warm_err, reconnects, first_error[0] ? " first_error=" : "",
            first_error);
    fflush(stdout);
    for (int i = 0; i < opt.clients; i++) free(cl[i].lat);
    free(all);
    free(cl);
    free(th);
    pthread_barrier_destroy(&start_barrier);
    return 0;
}
