/* Base64 (RFC 4648, standard alphabet "A-Za-z0-9+/", '=' padding) for the HTTP server: binary
 * payloads (PNG, .npy) travel in JSON as strings.  Not a general codec library: no URL-safe
 * alphabet, no streaming. */
#ifndef SCORED_CODEC_H
#define SCORED_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* data: n bytes.  Returns a malloc'd, NUL-terminated string of 4*ceil(n/3) characters with
 * padding, no line breaks; NULL when out of memory.  The caller frees it. */
char *b64_encode(const uint8_t *data, size_t n);

/* Decodes s[0..len) (need not be NUL-terminated).  Accepts:
 *   - an optional "data:<mime>;base64," prefix (RFC 2397; "data:" and ";base64" in any case),
 *   - ASCII whitespace (space, \t, \n, \v, \f, \r) anywhere, which is skipped,
 *   - correct '=' padding, or none at all when the count of characters mod 4 is 0, 2 or 3.
 * Refuses any other character, misplaced or wrong padding, and a lone trailing character
 * (SC_ERR_FORMAT; the message names the offset in s), and output longer than max_out bytes
 * (SC_ERR_TOO_LARGE, checked before allocating).  Leftover bits in the last character are
 * ignored, as most decoders do.
 * On success *out is malloc'd (never NULL, even for 0 bytes; the caller frees it) and *out_len
 * is its length; on failure *out is NULL and *out_len 0. */
int b64_decode(const char *s, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
               sc_error *err);

#endif
