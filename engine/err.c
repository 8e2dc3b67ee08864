/* Error records: message formatting and the code tables (API code string, HTTP status). */
#include "err.h"

#include <stdarg.h>

static const struct {
    int code;
    const char *name;
    int http;
} code_table[] = {
    {SC_OK, "ok", 200},
    {SC_ERR_NOMEM, "out_of_memory", 500},
    {SC_ERR_IO, "io_error", 404},
    {SC_ERR_FORMAT, "malformed_input", 400},
    {SC_ERR_INVALID, "invalid_argument", 422},
    {SC_ERR_UNSUPPORTED, "unsupported_combination", 422},
    {SC_ERR_SHAPE, "shape_mismatch", 422},
    {SC_ERR_NUMERIC, "numerical_error", 500},
    {SC_ERR_CANCELLED, "cancelled", 499},
    {SC_ERR_TOO_LARGE, "too_large", 413},
};
_Static_assert(sizeof code_table / sizeof code_table[0] == SC_ERR_CODE_COUNT_,
               "every sc_code needs a row in code_table");

int sc_fail(sc_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *sc_code_name(int code)
{
    for (size_t i = 0; i < sizeof code_table / sizeof code_table[0]; i++)
        if (code_table[i].code == code) return code_table[i].name;
    return "internal_error";
}

int sc_code_http_status(int code)
{
    for (size_t i = 0; i < sizeof code_table / sizeof code_table[0]; i++)
        if (code_table[i].code == code) return code_table[i].http;
    return 500;
}
