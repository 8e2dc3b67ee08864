/* Unit tests for the request-body codecs of the HTTP server: base64 (server/codec.c),
 * multipart/form-data (server/multipart.c) and JSON tensors (server/tensor_json.c), with
 * RFC test vectors, round trips, and malformed input refused with the right codes. */
#include "testutil.h"

#include <ctype.h>
#include <float.h>

#include "codec.h"
#include "multipart.h"
#include "tensor_json.h"

/* xorshift64*, local to each test. */
static uint64_t tb_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* ---- base64 ------------------------------------------------------------------------------- */

/* Decodes a C string, expecting success and exactly want[0..want_n). */
static void tb_decode_ok(const char *s, const char *want, size_t want_n)
{
    uint8_t *out = NULL;
    size_t n = 99;
    sc_error err = {0};
    int rc = b64_decode(s, strlen(s), 1 << 20, &out, &n, &err);
    if (rc) fail_msg("b64_decode(\"%s\"): %s", s, err.msg);
    assert_non_null(out);
    assert_int_equal(n, want_n);
    if (want_n) assert_memory_equal(out, want, want_n);
    free(out);
}

/* Decodes s[0..len), expecting code and a message containing needle (if non-NULL). */
static void tb_decode_fails(const char *s, size_t len, size_t max_out, int code,
                            const char *needle)
{
    uint8_t *out = (uint8_t *)"x";
    size_t n = 99;
    sc_error err = {0};
    int rc = b64_decode(s, len, max_out, &out, &n, &err);
    if (rc != code) fail_msg("b64_decode(\"%.*s\"): rc %d, want %d (%s)", (int)len, s, rc, code,
                             err.msg);
    assert_int_equal(err.code, code);
    assert_null(out);
    assert_int_equal(n, 0);
    assert_null(strchr(err.msg, '\n'));
    if (needle && !strstr(err.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_b64_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                  "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = b64_encode((const uint8_t *)plain[i], strlen(plain[i]));
        assert_non_null(e);
        assert_string_equal(e, coded[i]);
        free(e);
        tb_decode_ok(coded[i], plain[i], strlen(plain[i]));
    }
    /* Unpadded forms are accepted when their length is valid. */
    tb_decode_ok("Zg", "f", 1);
    tb_decode_ok("Zm8", "fo", 2);
    tb_decode_ok("Zm9vYg", "foob", 4);
    tb_decode_ok("Zm9vYmE", "fooba", 5);
    /* All 64 symbols and binary bytes. */
    tb_decode_ok("+/+/", "\xfb\xff\xbf", 3);
    tb_decode_ok("AAEC/w==", "\x00\x01\x02\xff", 4);
}

static void test_b64_random_roundtrips(void **state)
{
    (void)state;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    uint8_t buf[300];
    for (size_t n = 0; n <= 300; n++) {
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)tb_rand(&seed);
        char *e = b64_encode(buf, n);
        assert_non_null(e);
        size_t el = strlen(e);
        assert_int_equal(el, (n + 2) / 3 * 4);
        for (size_t i = 0; i < el; i++)
            assert_true(isalnum((unsigned char)e[i]) || e[i] == '+' || e[i] == '/' ||
                        e[i] == '=');

        uint8_t *out = NULL;
        size_t out_n = 0;
        sc_error err = {0};
        assert_int_equal(b64_decode(e, el, n, &out, &out_n, &err), SC_OK);
        assert_int_equal(out_n, n);
        if (n) assert_memory_equal(out, buf, n);
        free(out);

        /* The same with the padding stripped and a line break every 76 characters, in a
         * buffer of exactly its length (no NUL), behind a data URL. */
        size_t pl = el;
        while (pl && e[pl - 1] == '=') pl--;
        const char *pre = "data:application/octet-stream;base64,";
        size_t cap = strlen(pre) + pl + pl / 76 * 2;
        char *w = malloc(cap ? cap : 1);
        size_t o = strlen(pre);
        memcpy(w, pre, o);
        for (size_t i = 0; i < pl; i++) {
            if (i && i % 76 == 0) {
                w[o++] = '\r';
                w[o++] = '\n';
            }
            w[o++] = e[i];
        }
        assert_true(o <= cap);
        assert_int_equal(b64_decode(w, o, n, &out, &out_n, &err), SC_OK);
        assert_int_equal(out_n, n);
        if (n) assert_memory_equal(out, buf, n);
        free(out);
        free(w);
        free(e);
    }
}

static void test_b64_data_url_and_whitespace(void **state)
{
    (void)state;
    tb_decode_ok("data:image/png;base64,Zm9vYmFy", "foobar", 6);
    tb_decode_ok("  DATA:text/plain;charset=utf-8;BASE64,Zm9v", "foo", 3);
    tb_decode_ok("data:;base64,", "", 0);
    tb_decode_ok("Zm9v\r\nYmFy\n", "foobar", 6);
    tb_decode_ok(" Zm 9v\tYg= = \n", "foob", 4);
    tb_decode_ok("\n\n", "", 0);
    tb_decode_fails("data:text/plain,hello", 21, 100, SC_ERR_FORMAT, "base64");
    tb_decode_fails("data:image/png;base64Zm9v", 25, 100, SC_ERR_FORMAT, "','");
    /* A data URL is only recognised at the start. */
    tb_decode_fails("Zm9vdata:;base64,Zm9v", 21, 100, SC_ERR_FORMAT, "offset 8");
}

static void test_b64_refusals(void **state)
{
    (void)state;
    tb_decode_fails("Zm9v!", 5, 100, SC_ERR_FORMAT, "offset 4");
    tb_decode_fails("Zm9v-_", 6, 100, SC_ERR_FORMAT, "'-' at offset 4");   /* URL-safe */
    tb_decode_fails("Zm9v\x80", 5, 100, SC_ERR_FORMAT, "0x80");
    tb_decode_fails("Zm\0v", 4, 100, SC_ERR_FORMAT, "0x00 at offset 2");
    tb_decode_fails("Zg=", 3, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("Zg===", 5, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("Zm8==", 5, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("Zm9v=", 5, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("Z===", 4, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("=", 1, 100, SC_ERR_FORMAT, "padding");
    tb_decode_fails("Zm9=v", 5, 100, SC_ERR_FORMAT, "offset 4");
    tb_decode_fails("Zg==Zg==", 8, 100, SC_ERR_FORMAT, "offset 4");
    tb_decode_fails("Z", 1, 100, SC_ERR_FORMAT, "truncated");
    tb_decode_fails("Zm9vY", 5, 100, SC_ERR_FORMAT, "truncated");
    /* Limits: exactly max_out is fine, one byte over is too large. */
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(b64_decode("Zm9vYmFy", 8, 6, &out, &n, NULL), SC_OK);
    assert_int_equal(n, 6);
    free(out);
    tb_decode_fails("Zm9vYmFy", 8, 5, SC_ERR_TOO_LARGE, "limit of 5");
    tb_decode_fails("Zm9vYg==", 8, 3, SC_ERR_TOO_LARGE, "4 bytes");
    assert_int_equal(b64_decode("", 0, 0, &out, &n, NULL), SC_OK);
    assert_non_null(out);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(b64_decode(NULL, 0, 0, &out, &n, NULL), SC_OK);
    free(out);
}

/* ---- multipart ---------------------------------------------------------------------------- */

typedef struct tb_buf {
    uint8_t *p;
    size_t n, cap;
} tb_buf;

static void tb_put(tb_buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void tb_puts(tb_buf *b, const char *s) { tb_put(b, s, strlen(s)); }

/* Binary data with CR, LF, NUL, "--", a boundary missing its last character, the boundary
 * followed by a character that makes it no delimiter, and (for CRLF bodies) a final lone CR:
 * only the CRLF before the delimiter is taken off.  (With bare LF line breaks a CR before the
 * delimiter's LF is taken for a CRLF, so those bodies end their data in "\n".) */
static size_t tb_binary(const char *boundary, const char *eol, uint8_t *out, size_t cap)
{
    tb_buf b = {0};
    static const uint8_t head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0xff, '-',
                                   '-', '\r', '\n', '-', '-', '\n'};
    tb_put(&b, head, sizeof head);
    tb_puts(&b, "\r\n--");
    tb_put(&b, boundary, strlen(boundary) - 1);
    tb_puts(&b, "\r\n\r\n--");
    tb_puts(&b, boundary);
    tb_puts(&b, "X\r\n--");
    tb_puts(&b, boundary);
    tb_puts(&b, strcmp(eol, "\r\n") == 0 ? "-\n\r" : "-\r\n");
    assert_true(b.n <= cap);
    memcpy(out, b.p, b.n);
    free(b.p);
    return b.n;
}

typedef struct tb_style {
    const char *eol;        /* "\r\n" or "\n" */
    const char *preamble;   /* NULL for none */
    const char *epilogue;   /* NULL for none */
    int odd_case;           /* header names in odd case */
} tb_style;

/* A body with parts "prompt" (text), "steps" (text) and "image" (binary, with a filename and
 * content type).  Returns it malloc'd at exactly *len bytes. */
static uint8_t *tb_body(const char *boundary, tb_style st, size_t *len)
{
    tb_buf b = {0};
    const char *eol = st.eol;
    const char *cd = st.odd_case ? "content-DISPOSITION" : "Content-Disposition";
    const char *ct = st.odd_case ? "CONTENT-TYPE" : "Content-Type";
    char line[512];
    if (st.preamble) {
        tb_puts(&b, st.preamble);
        tb_puts(&b, eol);
    }
    snprintf(line, sizeof line, "--%s%s%s: form-data; name=\"prompt\"%s%s", boundary, eol, cd,
             eol, eol);
    tb_puts(&b, line);
    tb_puts(&b, "a cat\r\non two lines");
    snprintf(line, sizeof line, "%s--%s%s%s: form-data; name=steps%s%s: text/plain; "
             "charset=utf-8%s%s", eol, boundary, eol, cd, eol, ct, eol, eol);
    tb_puts(&b, line);
    tb_puts(&b, "50");
    snprintf(line, sizeof line, "%s--%s%sX-Custom: 1%s%s: form-data; name=\"image\"; "
             "filename=\"cat.png\"%s%s: image/png%s%s", eol, boundary, eol, eol, cd, eol, ct,
             eol, eol);
    tb_puts(&b, line);
    uint8_t bin[512];
    size_t bn = tb_binary(boundary, eol, bin, sizeof bin);
    tb_put(&b, bin, bn);
    snprintf(line, sizeof line, "%s--%s--", eol, boundary);
    tb_puts(&b, line);
    if (st.epilogue) {
        tb_puts(&b, eol);
        tb_puts(&b, st.epilogue);
    }
    uint8_t *exact = malloc(b.n);
    memcpy(exact, b.p, b.n);
    free(b.p);
    *len = b.n;
    return exact;
}

static void tb_check_parts(const mp_part *parts, int n, const char *boundary, const char *eol)
{
    assert_int_equal(n, 3);
    assert_string_equal(parts[0].name, "prompt");
    assert_string_equal(parts[0].filename, "");
    assert_string_equal(parts[0].content_type, "");
    assert_int_equal(parts[0].len, strlen("a cat\r\non two lines"));
    assert_memory_equal(parts[0].data, "a cat\r\non two lines", parts[0].len);
    assert_string_equal(parts[1].name, "steps");
    assert_string_equal(parts[1].content_type, "text/plain; charset=utf-8");
    assert_int_equal(parts[1].len, 2);
    assert_memory_equal(parts[1].data, "50", 2);
    assert_string_equal(parts[2].name, "image");
    assert_string_equal(parts[2].filename, "cat.png");
    assert_string_equal(parts[2].content_type, "image/png");
    uint8_t bin[512];
    size_t bn = tb_binary(boundary, eol, bin, sizeof bin);
    assert_int_equal(parts[2].len, bn);
    assert_memory_equal(parts[2].data, bin, bn);
    assert_ptr_equal(multipart_find(parts, n, "steps", 0), &parts[1]);
    assert_null(multipart_find(parts, n, "steps", 1));
    assert_null(multipart_find(parts, n, "missing", 0));
}

static int tb_parse(const uint8_t *body, size_t len, const char *ct, mp_part *parts, int max,
                    int *n, sc_error *err)
{
    memset(err, 0, sizeof *err);
    int rc = multipart_parse(body, len, ct, parts, max, n, err);
    if (rc) {
        assert_int_equal(err->code, rc);
        assert_true(strncmp(err->msg, "multipart: ", 11) == 0);
        assert_null(strchr(err->msg, '\n'));
    }
    return rc;
}

static void test_mp_three_parts(void **state)
{
    (void)state;
    const char *bd = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    tb_style styles[] = {
        {"\r\n", NULL, NULL, 0},
        {"\r\n", "This is the preamble.\r\n--not-it", "epilogue\r\n--" "x--\r\n", 1},
        {"\n", "preamble", "epilogue", 0},
        {"\n", NULL, NULL, 1},
    };
    const char *cts[] = {
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "multipart/form-data; boundary=\"----WebKitFormBoundary7MA4YWxkTrZu0gW\"",
        "Multipart/Form-Data;charset=utf-8;BOUNDARY=\"----WebKitFormBoundary7MA4YWxkTrZu0gW\"",
        "  multipart/form-data ; boundary = ----WebKitFormBoundary7MA4YWxkTrZu0gW ; x=y ",
    };
    for (size_t s = 0; s < sizeof styles / sizeof styles[0]; s++) {
        size_t len;
        uint8_t *body = tb_body(bd, styles[s], &len);
        for (size_t c = 0; c < sizeof cts / sizeof cts[0]; c++) {
            mp_part parts[8];
            int n = -1;
            sc_error err;
            if (tb_parse(body, len, cts[c], parts, 8, &n, &err))
                fail_msg("style %zu, content type %zu: %s", s, c, err.msg);
            tb_check_parts(parts, n, bd, styles[s].eol);
            for (int i = 0; i < n; i++)   /* borrowed slices of the body */
                assert_true(parts[i].data >= body && parts[i].data + parts[i].len <= body + len);
        }
        free(body);
    }
}

static void test_mp_every_truncated_prefix_fails(void **state)
{
    (void)state;
    const char *bd = "xYz";
    tb_style styles[] = {{"\r\n", "pre", NULL, 0}, {"\n", NULL, NULL, 0}};
    for (size_t s = 0; s < 2; s++) {
        size_t len;
        uint8_t *body = tb_body(bd, styles[s], &len);
        for (size_t k = 0; k < len; k++) {
            /* An exact-size copy so that any read past the end is caught by valgrind. */
            uint8_t *p = malloc(k ? k : 1);
            memcpy(p, body, k);
            mp_part parts[8];
            int n = -1;
            sc_error err;
            int rc = tb_parse(p, k, "multipart/form-data; boundary=xYz", parts, 8, &n, &err);
            if (rc != SC_ERR_FORMAT) fail_msg("prefix of %zu/%zu bytes: rc %d", k, len, rc);
            assert_int_equal(n, 0);
            free(p);
        }
        mp_part parts[8];
        int n;
        sc_error err;
        assert_int_equal(tb_parse(body, len, "multipart/form-data; boundary=xYz", parts, 8, &n,
                                  &err), SC_OK);
        tb_check_parts(parts, n, bd, styles[s].eol);
        free(body);
    }
}

static void test_mp_content_type_refused(void **state)
{
    (void)state;
    const uint8_t body[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--";
    size_t len = sizeof body - 1;
    mp_part parts[4];
    int n;
    sc_error err;
    struct { const char *ct; const char *needle; } cases[] = {
        {"multipart/form-data", "no boundary parameter in Content-Type"},
        {"multipart/form-data; charset=utf-8", "no boundary parameter"},
        {"application/json", "not multipart/form-data"},
        {"multipart/mixed; boundary=b", "not multipart/form-data"},
        {"", "not multipart/form-data"},
        {"multipart/form-data; boundary=\"\"", "empty boundary"},
        {"multipart/form-data; boundary=", "malformed parameter"},
        {"multipart/form-data; boundary=\"b", "malformed parameter"},
        {"multipart/form-data; boundary", "malformed parameter"},
        {"multipart/form-data; boundary=\"b \"", "ends with a space"},
        {"multipart/form-data; boundary=\"b\x01\"", "non-printable"},
        {"multipart/form-data; boundary=c", "boundary not found in body"},
        {NULL, "no Content-Type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(tb_parse(body, len, cases[i].ct, parts, 4, &n, &err), SC_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].needle);
    }

    /* 70 characters is the longest boundary; 71 is refused. */
    char b70[71], ct[160];
    memset(b70, 'q', 70);
    b70[70] = '\0';
    size_t blen;
    uint8_t *big = tb_body(b70, (tb_style){"\r\n", NULL, NULL, 0}, &blen);
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=\"%s\"", b70);
    assert_int_equal(tb_parse(big, blen, ct, parts, 4, &n, &err), SC_OK);
    tb_check_parts(parts, n, b70, "\r\n");
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%sq", b70);
    assert_int_equal(tb_parse(big, blen, ct, parts, 4, &n, &err), SC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "boundary longer than 70 characters"));
    free(big);
}

static void test_mp_too_many_parts(void **state)
{
    (void)state;
    size_t len;
    uint8_t *body = tb_body("bnd", (tb_style){"\r\n", NULL, NULL, 0}, &len);
    const char *ct = "multipart/form-data; boundary=bnd";
    mp_part parts[3];
    int n = -1;
    sc_error err;
    assert_int_equal(tb_parse(body, len, ct, parts, 2, &n, &err), SC_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "more than 2 parts"));
    assert_int_equal(n, 0);
    assert_int_equal(tb_parse(body, len, ct, NULL, 0, &n, &err), SC_ERR_TOO_LARGE);
    assert_int_equal(tb_parse(body, len, ct, parts, 3, &n, &err), SC_OK);
    assert_int_equal(n, 3);
    free(body);
}

/* Parses a C-string body with boundary "b". */
static int tb_parse_str(const char *body, mp_part *parts, int *n, sc_error *err)
{
    size_t len = strlen(body);
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, body, len);
    int rc = tb_parse(p, len, "multipart/form-data; boundary=b", parts, 8, n, err);
    /* Keep the slices valid for the caller: parts point into p, so copy them back into the
     * caller's string (same offsets) before freeing. */
    for (int i = 0; rc == SC_OK && i < *n; i++)
        parts[i].data = (const uint8_t *)body + (parts[i].data - p);
    free(p);
    return rc;
}

static void tb_refused(const char *body, const char *needle)
{
    mp_part parts[8];
    int n = -1;
    sc_error err;
    int rc = tb_parse_str(body, parts, &n, &err);
    if (rc != SC_ERR_FORMAT) fail_msg("accepted or wrong code %d: %s", rc, body);
    assert_int_equal(n, 0);
    if (!strstr(err.msg, needle)) fail_msg("\"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_mp_malformed_bodies(void **state)
{
    (void)state;
    const char *cd = "Content-Disposition: form-data; name=a\r\n";
    char body[512];
    snprintf(body, sizeof body, "--b\r\n%s\r\nx\r\n--b\r\n", cd);
    tb_refused(body, "without the closing boundary");
    snprintf(body, sizeof body, "--b\r\n%s\r\nx\r\n--b", cd);
    tb_refused(body, "without the closing boundary");
    snprintf(body, sizeof body, "--b\r\n%s\r\nx", cd);
    tb_refused(body, "without the closing boundary");
    tb_refused("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "no Content-Disposition");
    tb_refused("--b\r\n\r\nx\r\n--b--", "no Content-Disposition");
    tb_refused("--b\r\n--b--", "no Content-Disposition");
    tb_refused("--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", "no name");
    tb_refused("--b\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--b--",
               "no name");
    tb_refused("--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
               "not form-data");
    tb_refused("--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
               "malformed parameter in Content-Disposition");
    tb_refused("--b\r\nContent-Disposition form-data; name=a\r\n\r\nx\r\n--b--", "without ':'");
    tb_refused("--b\r\n: x\r\n\r\nx\r\n--b--", "without a name");
    tb_refused("--b\r\nContent-Disposition: form-data; name=a\r\nx\r\n--b--", "blank line");
    tb_refused("--b\r\nContent-Disposition: form-data; name=a\r\n--b--", "blank line");
    tb_refused("--b\r\nContent-Disposition: form-data; name=a\r\n"
               "content-disposition: form-data; name=b\r\n\r\nx\r\n--b--", "two Content-Disp");
    tb_refused("--b\r\nContent-Disposition: form-data; name=a\r\nContent-Type: a\r\n"
               "Content-Type: b\r\n\r\nx\r\n--b--", "two Content-Type");
    tb_refused("--b\r\nContent-Disposition: form-data; name=a\x01\r\n\r\nx\r\n--b--",
               "control character");
    tb_refused("--b\r\n Content-Disposition: form-data; name=a\r\n\r\nx\r\n--b--",
               "starts with whitespace");
    tb_refused("--b--\r\n", "no parts");
    tb_refused("", "boundary not found");
    tb_refused("no delimiter here at all", "boundary not found");
    tb_refused("--bX\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--bX--",
               "boundary not found");
    /* "--b" not at a line start is no delimiter, so only the closing one is seen. */
    tb_refused("x--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--",
               "no parts");

    char longname[600];
    snprintf(longname, sizeof longname, "--b\r\nContent-Disposition: form-data; name=%0*d"
             "\r\n\r\nx\r\n--b--", 64, 0);
    tb_refused(longname, "name longer than 63");
    snprintf(longname, sizeof longname, "--b\r\nContent-Disposition: form-data; name=a; "
             "filename=%0*d\r\n\r\nx\r\n--b--", 256, 0);
    tb_refused(longname, "filename longer than 255");
    snprintf(longname, sizeof longname, "--b\r\nContent-Disposition: form-data; name=a\r\n"
             "Content-Type: %0*d\r\n\r\nx\r\n--b--", 128, 0);
    tb_refused(longname, "Content-Type longer than 127");
}

static void test_mp_edge_cases_accepted(void **state)
{
    (void)state;
    mp_part p[8];
    int n = -1;
    sc_error err;

    /* Empty parts, empty names and filenames, transport padding after delimiters, an
     * epilogue that looks like another part, a continued (folded) header. */
    assert_int_equal(tb_parse_str("--b  \t\r\nContent-Disposition: form-data; name=\"\"; "
                                  "filename=\"\"\r\n\r\n\r\n--b\r\ncontent-disposition:"
                                  "form-data;\r\n\tname=\"second\"\r\n\r\n\r\n--b--\r\n"
                                  "--b\r\nContent-Disposition: form-data; name=c\r\n\r\n",
                                  p, &n, &err), SC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].name, "");
    assert_string_equal(p[0].filename, "");
    assert_int_equal(p[0].len, 0);
    assert_string_equal(p[1].name, "second");
    assert_int_equal(p[1].len, 0);
    assert_ptr_equal(multipart_find(p, n, "", 0), &p[0]);

    /* Quoted-string escapes; Windows paths keep their backslashes; filename* is ignored;
     * parameter names in any case; duplicate names are both kept, in order. */
    assert_int_equal(tb_parse_str("--b\r\nContent-Disposition: form-data; NAME=\"a\\\"q\\\\\"; "
                                  "filename=\"C:\\dir\\f.png\"; filename*=UTF-8''x\r\n\r\n1\r\n"
                                  "--b\r\nContent-Disposition: form-data; name=\"a\\\"q\\\\\"\r\n"
                                  "\r\n2\r\n--b--", p, &n, &err), SC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].name, "a\"q\\");
    assert_string_equal(p[0].filename, "C:\\dir\\f.png");
    assert_ptr_equal(multipart_find(p, n, "a\"q\\", 1), &p[1]);
    assert_memory_equal(multipart_find(p, n, "a\"q\\", 1)->data, "2", 1);
    assert_null(multipart_find(p, n, "a\"q\\", 2));
    assert_null(multipart_find(p, n, "a\"q\\", -1));

    /* Data that is nothing but line breaks and dashes. */
    assert_int_equal(tb_parse_str("--b\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                                  "\r\n--\r\n-\r\n\r\n--b--", p, &n, &err), SC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].len, 9);
    assert_memory_equal(p[0].data, "\r\n--\r\n-\r\n", 9);

    /* Data holding the full boundary not at a line start, or followed by other bytes. */
    assert_int_equal(tb_parse_str("--b\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                                  "x--b\r\n--bb\r\n--b-\r\n--b--", p, &n, &err), SC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].len, 16);
    assert_memory_equal(p[0].data, "x--b\r\n--bb\r\n--b-", 16);
}

/* ---- tensors ------------------------------------------------------------------------------ */

static json_t *tb_json(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v) fail_msg("bad test JSON %s: %s", text, jerr.text);
    return v;
}

/* Parses text, expecting failure with code and needle in the message. */
static void tb_tensor_fails(const char *text, int max_ndim, int64_t max_count, int code,
                            const char *needle)
{
    json_t *v = tb_json(text);
    float *data = (float *)&max_count;
    int64_t shape[8];
    int ndim = -1;
    sc_error err = {0};
    int rc = tensor_from_json(v, max_ndim, max_count, &data, shape, &ndim, &err);
    json_decref(v);
    if (rc != code) fail_msg("%s: rc %d, want %d (%s)", text, rc, code, err.msg);
    assert_null(data);
    assert_null(strchr(err.msg, '\n'));
    if (!strstr(err.msg, needle)) fail_msg("%s: \"%s\" lacks \"%s\"", text, err.msg, needle);
}

static void test_tensor_shapes(void **state)
{
    (void)state;
    float *d;
    int64_t shape[8];
    int ndim;
    sc_error err;

    json_t *v = json_real(2.5);
    assert_int_equal(tensor_from_json(v, 0, 1, &d, shape, &ndim, &err), SC_OK);
    assert_int_equal(ndim, 0);
    assert_true(d[0] == 2.5f);
    free(d);
    json_decref(v);
    v = json_integer(-3);
    assert_int_equal(tensor_from_json(v, 4, 1, &d, shape, &ndim, &err), SC_OK);
    assert_true(d[0] == -3.0f);
    free(d);
    json_decref(v);

    v = tb_json("[1, 2.5, -3e2]");
    assert_int_equal(tensor_from_json(v, 1, 3, &d, shape, &ndim, &err), SC_OK);
    assert_int_equal(ndim, 1);
    assert_int_equal(shape[0], 3);
    assert_true(d[0] == 1.0f && d[1] == 2.5f && d[2] == -300.0f);
    free(d);
    json_decref(v);

    /* (2,3,4) holding 0..23 in row-major order */
    char text[512];
    int o = 0;
    o += snprintf(text + o, sizeof text - (size_t)o, "[");
    for (int i = 0; i < 2; i++) {
        o += snprintf(text + o, sizeof text - (size_t)o, "%s[", i ? "," : "");
        for (int j = 0; j < 3; j++) {
            o += snprintf(text + o, sizeof text - (size_t)o, "%s[", j ? "," : "");
            for (int k = 0; k < 4; k++)
                o += snprintf(text + o, sizeof text - (size_t)o, "%s%d", k ? "," : "",
                              i * 12 + j * 4 + k);
            o += snprintf(text + o, sizeof text - (size_t)o, "]");
        }
        o += snprintf(text + o, sizeof text - (size_t)o, "]");
    }
    snprintf(text + o, sizeof text - (size_t)o, "]");
    v = tb_json(text);
    assert_int_equal(tensor_from_json(v, 3, 24, &d, shape, &ndim, &err), SC_OK);
    assert_int_equal(ndim, 3);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    assert_int_equal(shape[2], 4);
    for (int i = 0; i < 24; i++) assert_true(d[i] == (float)i);
    free(d);
    assert_int_equal(tensor_from_json(v, 3, 23, &d, shape, &ndim, &err), SC_ERR_TOO_LARGE);
    assert_null(d);
    assert_int_equal(tensor_from_json(v, 2, 24, &d, shape, &ndim, &err), SC_ERR_FORMAT);
    json_decref(v);

    /* Empty arrays give a zero in the shape. */
    v = tb_json("[]");
    assert_int_equal(tensor_from_json(v, 2, 10, &d, shape, &ndim, &err), SC_OK);
    assert_int_equal(ndim, 1);
    assert_int_equal(shape[0], 0);
    assert_non_null(d);
    free(d);
    json_decref(v);
    v = tb_json("[[],[]]");
    assert_int_equal(tensor_from_json(v, 2, 0, &d, shape, &ndim, &err), SC_OK);
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 0);
    free(d);
    json_decref(v);
}

static void test_tensor_refusals(void **state)
{
    (void)state;
    tb_tensor_fails("[[0,0],[0,0],[0,0],[0,[1]]]", 4, 100, SC_ERR_FORMAT,
                    "data[3][1] is an array, expected a number");
    tb_tensor_fails("[[1,2],[3]]", 4, 100, SC_ERR_FORMAT, "data[1] has 1 elements, expected 2");
    tb_tensor_fails("[[[1],[2]],[[3],[4,5]]]", 4, 100, SC_ERR_FORMAT, "data[1][1] has 2");
    tb_tensor_fails("[[1,2],3]", 4, 100, SC_ERR_FORMAT, "data[1] is a number, expected an array");
    tb_tensor_fails("[[],[1]]", 4, 100, SC_ERR_FORMAT, "data[1] has 1 elements, expected 0");
    tb_tensor_fails("[1,\"2\"]", 4, 100, SC_ERR_FORMAT, "data[1] is a string");
    tb_tensor_fails("[1,null]", 4, 100, SC_ERR_FORMAT, "data[1] is null");
    tb_tensor_fails("[true]", 4, 100, SC_ERR_FORMAT, "data[0] is a boolean");
    tb_tensor_fails("[[1,{}]]", 4, 100, SC_ERR_FORMAT, "data[0][1] is an object");
    tb_tensor_fails("\"abc\"", 4, 100, SC_ERR_FORMAT, "data is a string");
    tb_tensor_fails("[1, 1e39]", 4, 100, SC_ERR_FORMAT, "data[1] is not a finite float32");
    tb_tensor_fails("[-1e300]", 4, 100, SC_ERR_FORMAT, "data[0] is not a finite float32");
    tb_tensor_fails("[[[1]]]", 2, 100, SC_ERR_FORMAT, "more than 2 deep");
    tb_tensor_fails("[1]", 0, 100, SC_ERR_FORMAT, "more than 0 deep");
    tb_tensor_fails("[1,2,3]", 4, 2, SC_ERR_TOO_LARGE, "more than 2 numbers");
    tb_tensor_fails("5", 4, 0, SC_ERR_TOO_LARGE, "more than 0 numbers");
    /* A claimed shape whose product overflows int64 is refused before allocating. */
    json_t *row = json_array(), *v = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(row, json_integer(i));
    for (int i = 0; i < 3; i++) json_array_append(v, row);
    json_decref(row);
    float *d;
    int64_t shape[8];
    int ndim;
    sc_error err;
    assert_int_equal(tensor_from_json(v, 2, INT64_MAX, &d, shape, &ndim, &err), SC_OK);
    free(d);
    json_decref(v);
    assert_int_equal(tensor_from_json(NULL, 2, 10, &d, shape, &ndim, &err), SC_ERR_FORMAT);
    /* JSON itself has no NaN or Infinity, and jansson will not hold one. */
    json_error_t jerr;
    assert_null(json_loads("[NaN]", 0, &jerr));
    assert_null(json_real(NAN));
}

/* tensor_to_json, dumped with JSON_REAL_PRECISION(9), parsed and read back bit for bit. */
static void tb_roundtrip(const float *x, int ndim, const int64_t *shape, int64_t count)
{
    json_t *v = tensor_to_json(x, ndim, shape);
    assert_non_null(v);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
    assert_non_null(text);
    json_decref(v);
    v = tb_json(text);
    free(text);
    float *d;
    int64_t sh[8];
    int nd;
    sc_error err;
    if (tensor_from_json(v, 8, count, &d, sh, &nd, &err)) fail_msg("%s", err.msg);
    assert_int_equal(nd, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(sh[i], shape[i]);
    for (int64_t i = 0; i < count; i++) {
        uint32_t a, b;
        memcpy(&a, &x[i], 4);
        memcpy(&b, &d[i], 4);
        if (a != b) fail_msg("element %lld: %.9g became %.9g", (long long)i, x[i], d[i]);
    }
    free(d);
    json_decref(v);
}

static void test_tensor_roundtrip(void **state)
{
    (void)state;
    uint64_t seed = 42;
    float x[2 * 3 * 5];
    const float special[] = {0.0f, -0.0f, 1.0f / 3.0f, FLT_MAX, -FLT_MAX, FLT_MIN,
                             1e-45f, 16777217.0f, 0.1f, -2.5e-38f};
    for (int i = 0; i < 30; i++) {
        if (i < 10) {
            x[i] = special[i];
        } else {
            uint32_t bits = (uint32_t)tb_rand(&seed);
            memcpy(&x[i], &bits, 4);
            if (!isfinite(x[i])) x[i] = (float)i;
        }
    }
    int64_t s3[3] = {2, 3, 5}, s1[1] = {30}, s2[2] = {30, 1};
    tb_roundtrip(x, 3, s3, 30);
    tb_roundtrip(x, 1, s1, 30);
    tb_roundtrip(x, 2, s2, 30);
    for (int i = 0; i < 10; i++) tb_roundtrip(&x[i], 0, NULL, 1);

    json_t *v = tensor_to_json(x, 3, s3);
    assert_true(json_is_array(v) && json_array_size(v) == 2);
    assert_true(json_array_size(json_array_get(json_array_get(v, 1), 2)) == 5);
    assert_true(json_is_real(json_array_get(json_array_get(json_array_get(v, 0), 0), 0)));
    json_decref(v);
    int64_t s0[2] = {2, 0};
    v = tensor_to_json(x, 2, s0);
    assert_true(json_array_size(v) == 2 && json_array_size(json_array_get(v, 0)) == 0);
    json_decref(v);

    float bad[3] = {1.0f, NAN, 2.0f};
    int64_t s[1] = {3};
    assert_null(tensor_to_json(bad, 1, s));
    bad[1] = INFINITY;
    assert_null(tensor_to_json(bad, 1, s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc4648_vectors),
        cmocka_unit_test(test_b64_random_roundtrips),
        cmocka_unit_test(test_b64_data_url_and_whitespace),
        cmocka_unit_test(test_b64_refusals),
        cmocka_unit_test(test_mp_three_parts),
        cmocka_unit_test(test_mp_every_truncated_prefix_fails),
        cmocka_unit_test(test_mp_content_type_refused),
        cmocka_unit_test(test_mp_too_many_parts),
        cmocka_unit_test(test_mp_malformed_bodies),
        cmocka_unit_test(test_mp_edge_cases_accepted),
        cmocka_unit_test(test_tensor_shapes),
        cmocka_unit_test(test_tensor_refusals),
        cmocka_unit_test(test_tensor_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
