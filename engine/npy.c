/* NumPy .npy reader and writer for float32/float64 arrays (see npy.h for what is refused).
 * The header dict is parsed by a small tokenizer for the Python literal subset numpy writes;
 * element bytes are decoded explicitly, so the host byte order does not matter. */
#include "npy.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

enum {
    NPY_PREFIX_MAX = 12,          /* magic 6 + version 2 + length 4 (format 2.0 / 3.0)    */
    NPY_HEADER_MAX = 1 << 20,     /* refuse longer header dicts: they are never legitimate */
    NPY_ALIGN = 64,               /* numpy pads the header so data starts on this boundary */
    NPY_GROWTH_AXIS_DIGITS = 21,  /* numpy >= 1.23 leaves room to grow shape[0] in place   */
};

/* What the header dict says. */
typedef struct npy_header {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t count;  /* product of shape          */
    int itemsize;   /* 4 or 8                    */
    int big_endian; /* 1 for '>f4' / '>f8'       */
} npy_header;

/* ---- header dict parsing ---------------------------------------------------------------- */

typedef struct npy_cursor {
    const char *s; /* header text, not NUL-terminated, borrowed */
    size_t len, pos;
} npy_cursor;

static void npy_skip_ws(npy_cursor *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                               c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
        c->pos++;
}

static int npy_peek(const npy_cursor *c)
{
    return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* A quoted Python string without escapes ('...' or "...").  Copies at most cap-1 bytes into
 * out (NUL-terminated); *too_long says whether it was cut.  Returns false if malformed. */
static bool npy_parse_str(npy_cursor *c, char *out, size_t cap, bool *too_long)
{
    int q = npy_peek(c);
    if (q != '\'' && q != '"') return false;
    size_t start = ++c->pos;
    while (c->pos < c->len && c->s[c->pos] != q) {
        if (c->s[c->pos] == '\\' || c->s[c->pos] == '\n') return false;
        c->pos++;
    }
    if (c->pos >= c->len) return false;
    size_t n = c->pos - start;
    c->pos++; /* closing quote */
    *too_long = n >= cap;
    if (*too_long) n = cap - 1;
    memcpy(out, c->s + start, n);
    out[n] = '\0';
    return true;
}

/* Copies the raw text of whatever value starts here (up to the next ',' or '}' outside
 * brackets and quotes) for an error message, and skips it. */
static void npy_skip_value(npy_cursor *c, char *out, size_t cap)
{
    size_t start = c->pos;
    int depth = 0;
    while (c->pos < c->len) {
        char ch = c->s[c->pos];
        if (ch == '\'' || ch == '"') {
            c->pos++;
            while (c->pos < c->len && c->s[c->pos] != ch) c->pos++;
        } else if (ch == '(' || ch == '[' || ch == '{') {
            depth++;
        } else if (ch == ')' || ch == ']' || ch == '}') {
            if (depth == 0) break;
            depth--;
        } else if (ch == ',' && depth == 0) {
            break;
        }
        if (c->pos < c->len) c->pos++;
    }
    size_t n = c->pos - start;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c->s[start + i];
        out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = '\0';
}

static bool npy_is_ident_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Python True/False.  Returns false if neither. */
static bool npy_parse_bool(npy_cursor *c, int *value)
{
    static const char *const words[2] = {"False", "True"};
    for (int v = 0; v < 2; v++) {
        size_t n = strlen(words[v]);
        if (c->len - c->pos >= n && memcmp(c->s + c->pos, words[v], n) == 0) {
            size_t end = c->pos + n;
            if (end < c->len && npy_is_ident_char((unsigned char)c->s[end])) return false;
            c->pos = end;
            *value = v;
            return true;
        }
    }
    return false;
}

/* A shape tuple: (), (3,), (3, 4) or (3, 4,); Python 2 longs like 3L are accepted. */
static int npy_parse_shape(npy_cursor *c, npy_header *h, sc_error *err)
{
    if (npy_peek(c) != '(')
        return sc_fail(err, SC_ERR_FORMAT, "npy header: 'shape' is not a tuple");
    c->pos++;
    int n = 0;
    bool saw_comma = false;
    for (;;) {
        npy_skip_ws(c);
        int ch = npy_peek(c);
        if (ch == ')') {
            c->pos++;
            break;
        }
        if (ch < '0' || ch > '9')
            return sc_fail(err, SC_ERR_FORMAT,
                           "npy header: 'shape' must hold non-negative integers");
        int64_t v = 0;
        while ((ch = npy_peek(c)) >= '0' && ch <= '9') {
            if (v > (INT64_MAX - (ch - '0')) / 10)
                return sc_fail(err, SC_ERR_FORMAT, "npy header: shape entry overflows int64");
            v = v * 10 + (ch - '0');
            c->pos++;
        }
        if (npy_peek(c) == 'L') c->pos++;
        if (n == NPY_MAX_DIMS)
            return sc_fail(err, SC_ERR_FORMAT, "npy: more than %d dimensions are not supported",
                           NPY_MAX_DIMS);
        h->shape[n++] = v;
        npy_skip_ws(c);
        ch = npy_peek(c);
        if (ch == ',') {
            c->pos++;
            saw_comma = true;
        } else if (ch == ')') {
            c->pos++;
            break;
        } else {
            return sc_fail(err, SC_ERR_FORMAT, "npy header: malformed 'shape' tuple");
        }
    }
    /* (3) is the integer 3 in Python, not a tuple; numpy refuses it too. */
    if (n == 1 && !saw_comma)
        return sc_fail(err, SC_ERR_FORMAT, "npy header: 'shape' (n) needs a trailing comma");
    h->ndim = n;
    return SC_OK;
}

static int npy_parse_descr(npy_cursor *c, npy_header *h, sc_error *err)
{
    char descr[48];
    bool too_long = false;
    if (!npy_parse_str(c, descr, sizeof descr, &too_long)) {
        /* A list (structured dtype) or something stranger: name it in the message. */
        npy_skip_value(c, descr, sizeof descr);
        return sc_fail(err, SC_ERR_FORMAT,
                       "npy: unsupported dtype %s (only float32/float64: <f4 <f8 >f4 >f8)",
                       descr);
    }
    if (!too_long && strlen(descr) == 3 && (descr[0] == '<' || descr[0] == '>') &&
        descr[1] == 'f' && (descr[2] == '4' || descr[2] == '8')) {
        h->big_endian = descr[0] == '>';
        h->itemsize = descr[2] - '0';
        return SC_OK;
    }
    return sc_fail(err, SC_ERR_FORMAT,
                   "npy: unsupported dtype '%s%s' (only float32/float64: <f4 <f8 >f4 >f8)",
                   descr, too_long ? "..." : "");
}

/* Parses the dict text `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` in any
 * key order, then checks the shape product. */
static int npy_parse_dict(const char *text, size_t len, npy_header *h, sc_error *err)
{
    npy_cursor cur = {text, len, 0};
    npy_cursor *c = &cur;
    bool have_descr = false, have_order = false, have_shape = false;
    int fortran = 0;

    memset(h, 0, sizeof *h);
    npy_skip_ws(c);
    if (npy_peek(c) != '{')
        return sc_fail(err, SC_ERR_FORMAT, "npy header: not a dict (no opening '{')");
    c->pos++;
    for (;;) {
        npy_skip_ws(c);
        if (npy_peek(c) == '}') {
            c->pos++;
            break;
        }
        char key[32];
        bool too_long = false;
        if (!npy_parse_str(c, key, sizeof key, &too_long))
            return sc_fail(err, SC_ERR_FORMAT, "npy header: malformed dict (expected a key)");
        npy_skip_ws(c);
        if (npy_peek(c) != ':')
            return sc_fail(err, SC_ERR_FORMAT, "npy header: malformed dict (expected ':')");
        c->pos++;
        npy_skip_ws(c);

        int rc;
        if (!too_long && strcmp(key, "descr") == 0) {
            if (have_descr) return sc_fail(err, SC_ERR_FORMAT, "npy header: duplicate 'descr'");
            have_descr = true;
            if ((rc = npy_parse_descr(c, h, err)) != SC_OK) return rc;
        } else if (!too_long && strcmp(key, "fortran_order") == 0) {
            if (have_order)
                return sc_fail(err, SC_ERR_FORMAT, "npy header: duplicate 'fortran_order'");
            have_order = true;
            if (!npy_parse_bool(c, &fortran))
                return sc_fail(err, SC_ERR_FORMAT,
                               "npy header: 'fortran_order' must be True or False");
        } else if (!too_long && strcmp(key, "shape") == 0) {
            if (have_shape) return sc_fail(err, SC_ERR_FORMAT, "npy header: duplicate 'shape'");
            have_shape = true;
            if ((rc = npy_parse_shape(c, h, err)) != SC_OK) return rc;
        } else {
            return sc_fail(err, SC_ERR_FORMAT, "npy header: unexpected key '%s%s'", key,
                           too_long ? "..." : "");
        }

        npy_skip_ws(c);
        int ch = npy_peek(c);
        if (ch == ',') {
            c->pos++;
        } else if (ch == '}') {
            c->pos++;
            break;
        } else {
            return sc_fail(err, SC_ERR_FORMAT, "npy header: malformed dict (expected ',' or '}')");
        }
    }
    npy_skip_ws(c);
    if (c->pos != c->len)
        return sc_fail(err, SC_ERR_FORMAT, "npy header: unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape)
        return sc_fail(err, SC_ERR_FORMAT, "npy header: missing key '%s'",
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return sc_fail(err, SC_ERR_FORMAT,
                       "npy: fortran_order True (column-major) arrays are not supported; "
                       "save with numpy.ascontiguousarray first");

    /* A zero dimension makes the product 0 however large the others are. */
    int64_t count = 1;
    bool has_zero = false;
    for (int i = 0; i < h->ndim; i++) has_zero |= h->shape[i] == 0;
    if (has_zero) {
        count = 0;
    } else {
        for (int i = 0; i < h->ndim; i++) {
            if (count > INT64_MAX / h->shape[i])
                return sc_fail(err, SC_ERR_FORMAT, "npy: shape product overflows");
            count *= h->shape[i];
        }
        if (count > INT64_MAX / 8 || (uint64_t)count > SIZE_MAX / 8)
            return sc_fail(err, SC_ERR_FORMAT, "npy: shape too large (%lld elements)",
                           (long long)count);
    }
    h->count = count;
    return SC_OK;
}

/* Magic and version from the first 8 bytes; *len_bytes gets the size of the header-length
 * field that follows (2 for format 1.0, 4 for 2.0 and 3.0). */
static int npy_parse_magic(const uint8_t *b, size_t len, int *len_bytes, sc_error *err)
{
    if (len < 6 || memcmp(b, npy_magic, 6) != 0)
        return sc_fail(err, SC_ERR_FORMAT, "not a .npy file (bad magic)");
    if (len < 8) return sc_fail(err, SC_ERR_FORMAT, "npy: truncated header");
    if (b[7] != 0 || b[6] < 1 || b[6] > 3)
        return sc_fail(err, SC_ERR_FORMAT, "npy: unsupported format version %d.%d", b[6], b[7]);
    *len_bytes = b[6] == 1 ? 2 : 4;
    return SC_OK;
}

static size_t npy_header_len(const uint8_t *b, int len_bytes)
{
    size_t n = (size_t)b[0] | (size_t)b[1] << 8;
    if (len_bytes == 4) n |= (size_t)b[2] << 16 | (size_t)b[3] << 24;
    return n;
}

/* Decodes count elements of raw (itemsize bytes each, little or big endian) into out.
 * Walks from the last element down and reads each before writing it, so raw may be the
 * start of out itself (in-place widening of float32). */
static void npy_decode(double *out, const uint8_t *raw, int64_t count, int itemsize,
                       int big_endian)
{
    for (int64_t i = count - 1; i >= 0; i--) {
        const uint8_t *p = raw + (size_t)i * (size_t)itemsize;
        uint64_t bits = 0;
        for (int k = 0; k < itemsize; k++) {
            int shift = big_endian ? 8 * (itemsize - 1 - k) : 8 * k;
            bits |= (uint64_t)p[k] << shift;
        }
        double v;
        if (itemsize == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, sizeof f);
            v = f;
        } else {
            memcpy(&v, &bits, sizeof v);
        }
        memcpy(&out[i], &v, sizeof v);
    }
}

/* The caller's limit, applied from the header before the data is looked at. */
static int npy_check_limit(const npy_header *h, int64_t max_count, sc_error *err)
{
    if (max_count > 0 && h->count > max_count)
        return sc_fail(err, SC_ERR_TOO_LARGE, "npy: %lld elements, over the limit of %lld",
                       (long long)h->count, (long long)max_count);
    return SC_OK;
}

/* Sets out from h, allocating out->data for max(count, 1) doubles. */
static int npy_alloc(const npy_header *h, sc_array *out, sc_error *err)
{
    out->data = malloc((size_t)(h->count > 0 ? h->count : 1) * sizeof(double));
    if (!out->data)
        return sc_fail(err, SC_ERR_NOMEM, "npy: out of memory for %lld elements",
                       (long long)h->count);
    out->ndim = h->ndim;
    for (int i = 0; i < h->ndim; i++) out->shape[i] = h->shape[i];
    out->count = h->count;
    out->source_is_f64 = h->itemsize == 8;
    return SC_OK;
}

int npy_read_mem(const uint8_t *buf, size_t len, int64_t max_count, sc_array *out,
                 sc_error *err)
{
    if (!out) return sc_fail(err, SC_ERR_INVALID, "npy_read_mem: NULL output");
    memset(out, 0, sizeof *out);
    if (!buf && len > 0) return sc_fail(err, SC_ERR_INVALID, "npy_read_mem: NULL buffer");

    int len_bytes;
    int rc = npy_parse_magic(buf, len, &len_bytes, err);
    if (rc != SC_OK) return rc;
    if (len < 8 + (size_t)len_bytes) return sc_fail(err, SC_ERR_FORMAT, "npy: truncated header");
    size_t hlen = npy_header_len(buf + 8, len_bytes);
    size_t off = 8 + (size_t)len_bytes;
    if (hlen > NPY_HEADER_MAX)
        return sc_fail(err, SC_ERR_FORMAT, "npy: header of %zu bytes is too long", hlen);
    if (hlen > len - off) return sc_fail(err, SC_ERR_FORMAT, "npy: truncated header");

    npy_header h;
    rc = npy_parse_dict((const char *)buf + off, hlen, &h, err);
    if (rc == SC_OK) rc = npy_check_limit(&h, max_count, err);
    if (rc != SC_OK) return rc;
    off += hlen;
    size_t need = (size_t)h.count * (size_t)h.itemsize;
    if (need > len - off)
        return sc_fail(err, SC_ERR_FORMAT, "npy: truncated data (%zu of %zu bytes present)",
                       len - off, need);
    if ((rc = npy_alloc(&h, out, err)) != SC_OK) return rc;
    npy_decode(out->data, buf + off, h.count, h.itemsize, h.big_endian);
    return SC_OK;
}

/* fread exactly n bytes; SC_OK, or a FORMAT (short) / IO (error) failure naming what. */
static int npy_fread(FILE *fp, void *dst, size_t n, const char *what, sc_error *err)
{
    size_t got = fread(dst, 1, n, fp);
    if (got == n) return SC_OK;
    if (ferror(fp)) return sc_fail(err, SC_ERR_IO, "read error: %s", strerror(errno));
    return sc_fail(err, SC_ERR_FORMAT, "npy: truncated %s (%zu of %zu bytes present)", what,
                   got, n);
}

static int npy_read_stream(FILE *fp, int64_t max_count, sc_array *out, sc_error *err)
{
    uint8_t pre[NPY_PREFIX_MAX];
    size_t got = fread(pre, 1, 8, fp);
    if (ferror(fp)) return sc_fail(err, SC_ERR_IO, "read error: %s", strerror(errno));
    int len_bytes;
    int rc = npy_parse_magic(pre, got, &len_bytes, err);
    if (rc != SC_OK) return rc;
    if ((rc = npy_fread(fp, pre + 8, (size_t)len_bytes, "header", err)) != SC_OK) return rc;
    size_t hlen = npy_header_len(pre + 8, len_bytes);
    if (hlen > NPY_HEADER_MAX)
        return sc_fail(err, SC_ERR_FORMAT, "npy: header of %zu bytes is too long", hlen);

    char *text = malloc(hlen ? hlen : 1);
    if (!text) return sc_fail(err, SC_ERR_NOMEM, "npy: out of memory for the header");
    npy_header h;
    rc = npy_fread(fp, text, hlen, "header", err);
    if (rc == SC_OK) rc = npy_parse_dict(text, hlen, &h, err);
    if (rc == SC_OK) rc = npy_check_limit(&h, max_count, err);
    free(text);
    if (rc != SC_OK) return rc;

    size_t need = (size_t)h.count * (size_t)h.itemsize;
    /* For a regular file, refuse a short one before allocating what the header claims. */
    struct stat st;
    long pos = ftell(fp);
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && pos >= 0 &&
        (uint64_t)st.st_size >= (uint64_t)pos && need > (uint64_t)st.st_size - (uint64_t)pos)
        return sc_fail(err, SC_ERR_FORMAT, "npy: truncated data (%llu of %zu bytes present)",
                       (unsigned long long)((uint64_t)st.st_size - (uint64_t)pos), need);

    if ((rc = npy_alloc(&h, out, err)) != SC_OK) return rc;
    /* Read the raw bytes into the output array itself and widen in place. */
    rc = npy_fread(fp, out->data, need, "data", err);
    if (rc != SC_OK) return rc;
    npy_decode(out->data, (const uint8_t *)out->data, h.count, h.itemsize, h.big_endian);
    return SC_OK;
}

int npy_read_file(const char *path, int64_t max_count, sc_array *out, sc_error *err)
{
    if (!out) return sc_fail(err, SC_ERR_INVALID, "npy_read_file: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return sc_fail(err, SC_ERR_INVALID, "npy_read_file: NULL path");
    FILE *fp = fopen(path, "rb");
    if (!fp) return sc_fail(err, SC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    sc_error inner = {0};
    int rc = npy_read_stream(fp, max_count, out, &inner);
    fclose(fp);
    if (rc != SC_OK) {
        npy_free(out);
        return sc_fail(err, rc, "%s: %s", path, inner.msg);
    }
    return SC_OK;
}

void npy_free(sc_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Builds magic + version 1.0 + header into hdr (capacity cap) exactly as numpy.save does;
 * returns its length (a multiple of NPY_ALIGN) and the element count through *count. */
static int npy_build_header(char *hdr, size_t cap, int itemsize, int ndim, const int64_t *shape,
                            const void *data, size_t *hdr_len, size_t *data_bytes,
                            int64_t *count, sc_error *err)
{
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return sc_fail(err, SC_ERR_INVALID, "npy write: ndim must be 0..%d, got %d",
                       NPY_MAX_DIMS, ndim);
    if (ndim > 0 && !shape) return sc_fail(err, SC_ERR_INVALID, "npy write: NULL shape");
    int64_t n = 1;
    bool has_zero = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return sc_fail(err, SC_ERR_INVALID, "npy write: negative dimension %lld",
                           (long long)shape[i]);
        has_zero |= shape[i] == 0;
    }
    if (has_zero) {
        n = 0;
    } else {
        for (int i = 0; i < ndim; i++) {
            if (n > INT64_MAX / shape[i])
                return sc_fail(err, SC_ERR_TOO_LARGE, "npy write: shape product overflows");
            n *= shape[i];
        }
    }
    if ((uint64_t)n > (SIZE_MAX - 4096) / (size_t)itemsize)
        return sc_fail(err, SC_ERR_TOO_LARGE, "npy write: array too large");
    if (n > 0 && !data) return sc_fail(err, SC_ERR_INVALID, "npy write: NULL data");

    /* dict text: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
    char dict[400];
    size_t len = (size_t)snprintf(dict, sizeof dict, "{'descr': '<f%d', 'fortran_order': False, "
                                                     "'shape': (", itemsize);
    for (int i = 0; i < ndim; i++)
        len += (size_t)snprintf(dict + len, sizeof dict - len, "%s%lld", i ? ", " : "",
                                (long long)shape[i]);
    len += (size_t)snprintf(dict + len, sizeof dict - len, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        /* numpy leaves spare spaces so shape[0] can grow to 21 digits in place. */
        char digits[24];
        int nd = snprintf(digits, sizeof digits, "%lld", (long long)shape[0]);
        for (int i = nd; i < NPY_GROWTH_AXIS_DIGITS; i++) dict[len++] = ' ';
    }
    /* prefix 10 + dict + pad spaces + '\n' is a multiple of 64; pad is 1..64 as in numpy. */
    size_t pad = NPY_ALIGN - (10 + len + 1) % NPY_ALIGN;
    size_t total = 10 + len + pad + 1;
    SC_ASSERT(total <= cap && total - 10 <= 0xffff);
    memcpy(hdr, npy_magic, 6);
    hdr[6] = 1;
    hdr[7] = 0;
    hdr[8] = (char)((total - 10) & 0xff);
    hdr[9] = (char)((total - 10) >> 8);
    memcpy(hdr + 10, dict, len);
    memset(hdr + 10 + len, ' ', pad);
    hdr[total - 1] = '\n';

    *hdr_len = total;
    *data_bytes = (size_t)n * (size_t)itemsize;
    *count = n;
    return SC_OK;
}

/* Little-endian bytes of elements [first, first+n) into dst. */
static void npy_encode(uint8_t *dst, const void *data, int itemsize, int64_t first, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        if (itemsize == 4) {
            uint32_t b32;
            memcpy(&b32, (const float *)data + first + (int64_t)i, sizeof b32);
            bits = b32;
        } else {
            memcpy(&bits, (const double *)data + first + (int64_t)i, sizeof bits);
        }
        uint8_t *p = dst + i * (size_t)itemsize;
        for (int k = 0; k < itemsize; k++) p[k] = (uint8_t)(bits >> (8 * k));
    }
}

static int npy_write_mem(const void *data, int itemsize, int ndim, const int64_t *shape,
                         uint8_t **out, size_t *out_len, sc_error *err)
{
    if (!out || !out_len) return sc_fail(err, SC_ERR_INVALID, "npy write: NULL output");
    *out = NULL;
    *out_len = 0;
    char hdr[512];
    size_t hdr_len, data_bytes;
    int64_t count;
    int rc = npy_build_header(hdr, sizeof hdr, itemsize, ndim, shape, data, &hdr_len,
                              &data_bytes, &count, err);
    if (rc != SC_OK) return rc;
    uint8_t *buf = malloc(hdr_len + data_bytes);
    if (!buf) return sc_fail(err, SC_ERR_NOMEM, "npy write: out of memory");
    memcpy(buf, hdr, hdr_len);
    npy_encode(buf + hdr_len, data, itemsize, 0, (size_t)count);
    *out = buf;
    *out_len = hdr_len + data_bytes;
    return SC_OK;
}

static int npy_write_file(const char *path, const void *data, int itemsize, int ndim,
                          const int64_t *shape, sc_error *err)
{
    if (!path) return sc_fail(err, SC_ERR_INVALID, "npy write: NULL path");
    char hdr[512];
    size_t hdr_len, data_bytes;
    int64_t count;
    int rc = npy_build_header(hdr, sizeof hdr, itemsize, ndim, shape, data, &hdr_len,
                              &data_bytes, &count, err);
    if (rc != SC_OK) return rc;

    FILE *fp = fopen(path, "wb");
    if (!fp) return sc_fail(err, SC_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    /* Only a regular file is removed on failure, never a device or FIFO the path named. */
    struct stat st;
    bool regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
    bool ok = fwrite(hdr, 1, hdr_len, fp) == hdr_len;
    uint8_t chunk[4096]; /* encoded elements, written a chunk at a time */
    size_t per_chunk = sizeof chunk / (size_t)itemsize;
    for (int64_t i = 0; ok && i < count; i += (int64_t)per_chunk) {
        size_t n = (size_t)(count - i) < per_chunk ? (size_t)(count - i) : per_chunk;
        npy_encode(chunk, data, itemsize, i, n);
        ok = fwrite(chunk, 1, n * (size_t)itemsize, fp) == n * (size_t)itemsize;
    }
    int saved = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        if (regular) remove(path); /* never leave a half-written array behind */
        return sc_fail(err, SC_ERR_IO, "cannot write %s: %s", path, strerror(saved));
    }
    return SC_OK;
}

int npy_write_f32_file(const char *path, const float *data, int ndim, const int64_t *shape,
                       sc_error *err)
{
    return npy_write_file(path, data, 4, ndim, shape, err);
}

int npy_write_f64_file(const char *path, const double *data, int ndim, const int64_t *shape,
                       sc_error *err)
{
    return npy_write_file(path, data, 8, ndim, shape, err);
}

int npy_write_f32_mem(const float *data, int ndim, const int64_t *shape, uint8_t **out,
                      size_t *out_len, sc_error *err)
{
    return npy_write_mem(data, 4, ndim, shape, out, out_len, err);
}

int npy_write_f64_mem(const double *data, int ndim, const int64_t *shape, uint8_t **out,
                      size_t *out_len, sc_error *err)
{
    return npy_write_mem(data, 8, ndim, shape, out, out_len, err);
}
