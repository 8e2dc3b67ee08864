/* multipart/form-data (RFC 7578 over RFC 2046) parsing of a complete request body already in
 * memory.  Parts are borrowed slices of the body, not copies; nothing is decoded
 * (no Content-Transfer-Encoding, no charset conversion).  No streaming. */
#ifndef SCORED_MULTIPART_H
#define SCORED_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MP_MAX_BOUNDARY 70   /* RFC 2046 limit on the boundary's length */

typedef struct mp_part {
    char name[64];          /* from Content-Disposition name="..." */
    char filename[256];     /* "" when absent */
    char content_type[128]; /* "" when absent */
    const uint8_t *data;    /* borrowed: points into the body */
    size_t len;
} mp_part;

/* body: len bytes, the whole request body.  content_type: the request's Content-Type header
 * value (must be multipart/form-data with a boundary parameter, quoted or not).  Fills up to
 * max_parts parts in body order and sets *n_parts; more parts -> SC_ERR_TOO_LARGE.
 * Line breaks may be CRLF or bare LF.  A preamble before the first boundary and an epilogue
 * after the closing one are ignored.  Every part needs a Content-Disposition: form-data with a
 * name; a name, filename or content type too long for its field is refused, not truncated.
 * Everything else wrong (no closing "--boundary--", no parts, a header without ':') is
 * SC_ERR_FORMAT with a one-line message starting "multipart: ".
 * The parts' data pointers are only valid while body is. */
int multipart_parse(const uint8_t *body, size_t len, const char *content_type, mp_part *parts,
                    int max_parts, int *n_parts, sc_error *err);

/* The nth part (0-based) named name among parts[0..n), or NULL. */
const mp_part *multipart_find(const mp_part *parts, int n, const char *name, int nth);

#endif
