/* multipart/form-data parsing over a complete body: find delimiter lines, split each part into
 * headers and data, read Content-Disposition (name, filename) and Content-Type.  Every index is
 * checked against the body's length; the body is never copied or modified. */
#include "multipart.h"

#include <string.h>
#include <strings.h>

#define MP_MAX_HEADER 4096   /* one unfolded Content-Disposition or Content-Type line */

/* A slice of a header value: a parameter's name or value. */
typedef struct mp_span {
    const char *p;
    size_t n;
    int quoted;   /* value was a quoted-string; p..p+n is between the quotes, still escaped */
} mp_span;

static int mp_is_ows(char c) { return c == ' ' || c == '\t'; }

static int mp_span_is(mp_span s, const char *word)
{
    return s.n == strlen(word) && strncasecmp(s.p, word, s.n) == 0;
}

/* The leading token of a header value (media type, disposition type), after OWS. */
static mp_span mp_first_token(const char *v, size_t n, size_t *pos)
{
    size_t i = 0;
    while (i < n && mp_is_ows(v[i])) i++;
    size_t b = i;
    while (i < n && v[i] != ';' && !mp_is_ows(v[i])) i++;
    *pos = i;
    return (mp_span){v + b, i - b, 0};
}

/* The next `; name=value` parameter of v[*pos..n).  Returns 1 with name and val set, 0 at the
 * end, -1 when malformed.  A stray or trailing ';' is tolerated. */
static int mp_next_param(const char *v, size_t n, size_t *pos, mp_span *name, mp_span *val)
{
    size_t i = *pos;
    for (;;) {
        while (i < n && mp_is_ows(v[i])) i++;
        if (i == n) return *pos = i, 0;
        if (v[i] != ';') return -1;
        i++;
        while (i < n && mp_is_ows(v[i])) i++;
        if (i == n) return *pos = i, 0;
        if (v[i] != ';') break;
    }
    size_t b = i;
    while (i < n && v[i] != '=' && v[i] != ';' && !mp_is_ows(v[i]) && v[i] != '"') i++;
    if (i == b) return -1;
    *name = (mp_span){v + b, i - b, 0};
    while (i < n && mp_is_ows(v[i])) i++;
    if (i == n || v[i] != '=') return -1;
    i++;
    while (i < n && mp_is_ows(v[i])) i++;
    if (i < n && v[i] == '"') {
        b = ++i;
        for (;;) {
            if (i >= n) return -1;   /* unterminated quoted-string */
            if (v[i] == '"') break;
            /* Only \" and \\ are escapes: browsers send Windows paths with bare backslashes. */
            if (v[i] == '\\' && i + 1 < n && (v[i + 1] == '"' || v[i + 1] == '\\')) i++;
            i++;
        }
        *val = (mp_span){v + b, i - b, 1};
        i++;
    } else {
        b = i;
        while (i < n && v[i] != ';' && !mp_is_ows(v[i])) i++;
        if (i == b) return -1;
        *val = (mp_span){v + b, i - b, 0};
    }
    *pos = i;
    return 1;
}

/* Copies a parameter value into dst[cap] (NUL-terminated), undoing quoted-string escapes.
 * Returns its length, or -1 when it does not fit. */
static long mp_copy_value(mp_span s, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (s.quoted && c == '\\' && i + 1 < s.n && (s.p[i + 1] == '"' || s.p[i + 1] == '\\'))
            c = s.p[++i];
        if (o + 1 >= cap) return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* The boundary parameter of the request's Content-Type, checked against RFC 2046. */
static int mp_boundary(const char *ct, char *out, size_t cap, size_t *out_len, sc_error *err)
{
    size_t n = strlen(ct), pos;
    mp_span type = mp_first_token(ct, n, &pos);
    if (!mp_span_is(type, "multipart/form-data"))
        return sc_fail(err, SC_ERR_FORMAT, "multipart: Content-Type '%.*s' is not "
                       "multipart/form-data", (int)(type.n > 64 ? 64 : type.n), type.p);
    mp_span name, val;
    int rc;
    while ((rc = mp_next_param(ct, n, &pos, &name, &val)) == 1) {
        if (!mp_span_is(name, "boundary")) continue;
        long bl = mp_copy_value(val, out, cap);
        if (bl < 0 || bl > MP_MAX_BOUNDARY)
            return sc_fail(err, SC_ERR_FORMAT,
                           "multipart: boundary longer than %d characters", MP_MAX_BOUNDARY);
        if (bl == 0) return sc_fail(err, SC_ERR_FORMAT, "multipart: empty boundary");
        for (long i = 0; i < bl; i++)
            if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
                return sc_fail(err, SC_ERR_FORMAT,
                               "multipart: boundary has a non-printable character");
        if (out[bl - 1] == ' ')
            return sc_fail(err, SC_ERR_FORMAT, "multipart: boundary ends with a space");
        *out_len = (size_t)bl;
        return SC_OK;
    }
    if (rc < 0)
        return sc_fail(err, SC_ERR_FORMAT, "multipart: malformed parameter in Content-Type");
    return sc_fail(err, SC_ERR_FORMAT, "multipart: no boundary parameter in Content-Type");
}

/* Whether a delimiter line starts at b[j]: "--boundary" then "--" (close delimiter) or
 * transport padding (spaces, tabs) and a line break.  Sets *next just past it. */
static int mp_delim_at(const uint8_t *b, size_t len, size_t j, const char *delim, size_t dlen,
                       size_t *next, int *close)
{
    if (j > len || len - j < dlen || memcmp(b + j, delim, dlen) != 0) return 0;
    size_t k = j + dlen;
    if (len - k >= 2 && b[k] == '-' && b[k + 1] == '-') {
        *close = 1;
        *next = k + 2;
        return 1;
    }
    while (k < len && (b[k] == ' ' || b[k] == '\t')) k++;
    if (k < len && b[k] == '\n') {
        *close = 0;
        *next = k + 1;
        return 1;
    }
    if (len - k >= 2 && b[k] == '\r' && b[k + 1] == '\n') {
        *close = 0;
        *next = k + 2;
        return 1;
    }
    return 0;   /* "--boundary" followed by anything else is data, not a delimiter */
}

/* The first delimiter line at or after `from` that starts a line (or starts at `from` when
 * at_from, for a body without preamble).  *seg_end: where the data before it ends, without the
 * line break that belongs to the delimiter.  Returns 1 when found. */
static int mp_find_delim(const uint8_t *b, size_t len, size_t from, int at_from,
                         const char *delim, size_t dlen, size_t *seg_end, size_t *next,
                         int *close)
{
    size_t j = from;
    int found = (at_from || (from > 0 && b[from - 1] == '\n')) &&
                mp_delim_at(b, len, from, delim, dlen, next, close);
    while (!found && j < len) {
        const uint8_t *nl = memchr(b + j, '\n', len - j);
        if (!nl) return 0;
        j = (size_t)(nl - b) + 1;
        found = mp_delim_at(b, len, j, delim, dlen, next, close);
    }
    if (!found) return 0;
    size_t e = from;
    if (j > from) {   /* b[j-1] is the '\n' before the delimiter; drop it and a '\r' */
        e = j - 1;
        if (e > from && b[e - 1] == '\r') e--;
    }
    *seg_end = e;
    return 1;
}

/* Applies one unfolded header (value v[0..n)) to the part. */
static int mp_header(const char *hname, const char *v, size_t n, int idx, mp_part *part,
                     int *have_cd, int *have_ct, sc_error *err)
{
    if (strcasecmp(hname, "content-type") == 0) {
        if ((*have_ct)++)
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d has two Content-Type "
                           "headers", idx + 1);
        while (n && mp_is_ows(v[0])) v++, n--;
        while (n && mp_is_ows(v[n - 1])) n--;
        if (n >= sizeof part->content_type)
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: Content-Type longer than "
                           "%zu characters", idx + 1, sizeof part->content_type - 1);
        memcpy(part->content_type, v, n);
        part->content_type[n] = '\0';
        return SC_OK;
    }
    /* content-disposition */
    if ((*have_cd)++)
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d has two Content-Disposition "
                       "headers", idx + 1);
    size_t pos;
    mp_span type = mp_first_token(v, n, &pos);
    if (!mp_span_is(type, "form-data"))
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: Content-Disposition is not "
                       "form-data", idx + 1);
    int have_name = 0, have_file = 0, rc;
    mp_span pn, pv;
    while ((rc = mp_next_param(v, n, &pos, &pn, &pv)) == 1) {
        if (mp_span_is(pn, "name") && !have_name) {
            if (mp_copy_value(pv, part->name, sizeof part->name) < 0)
                return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: name longer than %zu "
                               "characters", idx + 1, sizeof part->name - 1);
            have_name = 1;
        } else if (mp_span_is(pn, "filename") && !have_file) {
            if (mp_copy_value(pv, part->filename, sizeof part->filename) < 0)
                return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: filename longer than "
                               "%zu characters", idx + 1, sizeof part->filename - 1);
            have_file = 1;
        }
    }
    if (rc < 0)
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: malformed parameter in "
                       "Content-Disposition", idx + 1);
    if (!have_name)
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d has no name in "
                       "Content-Disposition", idx + 1);
    return SC_OK;
}

/* One part: seg[0..n) is everything between its delimiter line and the next one's line
 * break: header lines, a blank line, then the data. */
static int mp_parse_part(const uint8_t *seg, size_t n, int idx, mp_part *part, sc_error *err)
{
    memset(part, 0, sizeof *part);
    char hname[32] = "";   /* the header being unfolded; "" when it is one we ignore */
    char hval[MP_MAX_HEADER];
    size_t hlen = 0;
    int have_cd = 0, have_ct = 0, rc;
    size_t i = 0;
    if (n == 0)   /* a delimiter right after another one */
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d has no Content-Disposition "
                       "header", idx + 1);
    for (;;) {
        const uint8_t *nl = i < n ? memchr(seg + i, '\n', n - i) : NULL;
        if (!nl)
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: headers do not end with "
                           "a blank line", idx + 1);
        size_t e = (size_t)(nl - seg), next = e + 1;
        if (e > i && seg[e - 1] == '\r') e--;
        const char *line = (const char *)seg + i;
        size_t ll = e - i;
        for (size_t k = 0; k < ll; k++)
            if (((unsigned char)line[k] < 0x20 && line[k] != '\t') || line[k] == 0x7f)
                return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: control character "
                               "in headers", idx + 1);
        int folded = ll > 0 && mp_is_ows(line[0]);
        if (folded && (i == 0))
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: header starts with "
                           "whitespace", idx + 1);
        if (folded) {   /* obsolete line folding: continue the previous header */
            if (hname[0]) {
                if (hlen + 1 + ll > sizeof hval)
                    return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: %s header longer "
                                   "than %d bytes", idx + 1, hname, MP_MAX_HEADER);
                hval[hlen++] = ' ';
                memcpy(hval + hlen, line, ll);
                hlen += ll;
            }
            i = next;
            continue;
        }
        if (hname[0] && (rc = mp_header(hname, hval, hlen, idx, part, &have_cd, &have_ct, err)))
            return rc;
        hname[0] = '\0';
        i = next;
        if (ll == 0) break;   /* blank line: the data follows */

        const char *colon = memchr(line, ':', ll);
        if (!colon)
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: header line without ':'",
                           idx + 1);
        size_t nl_len = (size_t)(colon - line);
        while (nl_len && mp_is_ows(line[nl_len - 1])) nl_len--;
        if (nl_len == 0)
            return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: header line without a "
                           "name", idx + 1);
        static const char *const wanted[] = {"content-disposition", "content-type"};
        for (size_t w = 0; w < 2; w++) {
            if (nl_len == strlen(wanted[w]) && strncasecmp(line, wanted[w], nl_len) == 0) {
                size_t vl = ll - (size_t)(colon + 1 - line);
                if (vl > sizeof hval)
                    return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d: %s header longer "
                                   "than %d bytes", idx + 1, wanted[w], MP_MAX_HEADER);
                memcpy(hname, wanted[w], strlen(wanted[w]) + 1);
                memcpy(hval, colon + 1, vl);
                hlen = vl;
            }
        }
    }
    if (!have_cd)
        return sc_fail(err, SC_ERR_FORMAT, "multipart: part %d has no Content-Disposition "
                       "header", idx + 1);
    part->data = seg + i;
    part->len = n - i;
    return SC_OK;
}

int multipart_parse(const uint8_t *body, size_t len, const char *content_type, mp_part *parts,
                    int max_parts, int *n_parts, sc_error *err)
{
    *n_parts = 0;
    if (!content_type) return sc_fail(err, SC_ERR_FORMAT, "multipart: no Content-Type");
    if (!body && len) return sc_fail(err, SC_ERR_FORMAT, "multipart: no body");
    char delim[2 + MP_MAX_BOUNDARY + 2] = "--";
    size_t blen = 0;
    int rc = mp_boundary(content_type, delim + 2, sizeof delim - 2, &blen, err);
    if (rc) return rc;
    size_t dlen = blen + 2;

    size_t seg_end, next;
    int close;
    if (len == 0 || !mp_find_delim(body, len, 0, 1, delim, dlen, &seg_end, &next, &close))
        return sc_fail(err, SC_ERR_FORMAT, "multipart: boundary not found in body");
    if (close) return sc_fail(err, SC_ERR_FORMAT, "multipart: body has no parts");
    int count = 0;
    for (;;) {
        size_t start = next;
        if (!mp_find_delim(body, len, start, 0, delim, dlen, &seg_end, &next, &close))
            return sc_fail(err, SC_ERR_FORMAT, "multipart: body ends in part %d without the "
                           "closing boundary", count + 1);
        if (count >= max_parts)
            return sc_fail(err, SC_ERR_TOO_LARGE, "multipart: more than %d parts",
                           max_parts < 0 ? 0 : max_parts);
        rc = mp_parse_part(body + start, seg_end - start, count, &parts[count], err);
        if (rc) return rc;
        count++;
        if (close) break;
    }
    *n_parts = count;
    return SC_OK;
}

const mp_part *multipart_find(const mp_part *parts, int n, const char *name, int nth)
{
    if (!parts || !name || nth < 0) return NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0 && nth-- == 0) return &parts[i];
    return NULL;
}
