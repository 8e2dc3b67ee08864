/* Error codes and the error record shared by every engine module.
 * Recoverable failures return a negative sc_code and fill an sc_error with one readable line;
 * programmer invariants use SC_ASSERT, which stays on in release builds. */
#ifndef SCORED_ERR_H
#define SCORED_ERR_H

#include <stdio.h>
#include <stdlib.h>

typedef enum sc_code {
    SC_OK = 0,
    SC_ERR_NOMEM = -1,       /* allocation failed                                  */
    SC_ERR_IO = -2,          /* file missing, unreadable or unwritable             */
    SC_ERR_FORMAT = -3,      /* malformed file or payload (PNG, npy, model JSON)   */
    SC_ERR_INVALID = -4,     /* well-formed but out-of-range or unknown value      */
    SC_ERR_UNSUPPORTED = -5, /* refused combination (e.g. ancestral + sub-VP)      */
    SC_ERR_SHAPE = -6,       /* size does not match the model or the other input   */
    SC_ERR_NUMERIC = -7,     /* NaN/Inf appeared, or a solver could not proceed    */
    SC_ERR_CANCELLED = -8,   /* stopped on request                                 */
    SC_ERR_TOO_LARGE = -9,   /* over a configured limit (body, image, batch)       */
    SC_ERR_CODE_COUNT_ = 10  /* number of codes including SC_OK                    */
} sc_code;

typedef struct sc_error {
    int code;        /* an sc_code; SC_OK when nothing failed */
    char msg[512];   /* one line, no trailing newline         */
} sc_error;

/* Fills *err (if non-NULL) with code and a printf-style message; returns code, so callers can
 * write `return sc_fail(err, SC_ERR_IO, "cannot open %s", path);`. */
int sc_fail(sc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *sc_code_name(int code);   /* "io_error", "invalid_argument", ... (stable API codes) */
int sc_code_http_status(int code);    /* 400, 404, 413, 415, 422, 500 ...                    */

#define SC_ASSERT(cond)                                                                   \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
