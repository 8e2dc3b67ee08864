/* JSON nested arrays <-> float tensors.  Reading takes the shape from the first element at each
 * depth, checks the count against the limit, allocates once, then walks the tree filling and
 * checking that every array has the expected length and every leaf is a float32-finite number. */
#include "tensor_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TJ_ROOT "data"   /* the path's root in messages: data[3][1] */

static const char *tj_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "a number";
    }
}

/* Appends "[i]" to path (truncating quietly when it is very deep). */
static void tj_path_push(char *path, size_t cap, size_t at, size_t i)
{
    if (at < cap) snprintf(path + at, cap - at, "[%zu]", i);
}

/* Fills out[*pos..] from v at depth d (the shape is known); path names v. */
static int tj_fill(const json_t *v, int d, int ndim, const int64_t *shape, float *out,
                   int64_t *pos, char *path, size_t cap, sc_error *err)
{
    if (d == ndim) {
        if (!json_is_number(v))
            return sc_fail(err, SC_ERR_FORMAT, "%s is %s, expected a number", path,
                           tj_type_name(v));
        double x = json_number_value(v);
        /* Doubles from FLT_MAX up to half an ulp above it still round to FLT_MAX (they come
         * back from a 9-digit dump of FLT_MAX); anything larger would become Inf. */
        if (!isfinite(x) || fabs(x) >= 0x1.ffffffp127)
            return sc_fail(err, SC_ERR_FORMAT, "%s is not a finite float32 number (%g)", path,
                           x);
        out[(*pos)++] = (float)x;
        return SC_OK;
    }
    if (!json_is_array(v))
        return sc_fail(err, SC_ERR_FORMAT, "%s is %s, expected an array of %" PRId64
                       " (ragged array)", path, tj_type_name(v), shape[d]);
    size_t n = json_array_size(v);
    if ((int64_t)n != shape[d])
        return sc_fail(err, SC_ERR_FORMAT, "%s has %zu elements, expected %" PRId64
                       " (ragged array)", path, n, shape[d]);
    size_t at = strlen(path);
    for (size_t i = 0; i < n; i++) {
        tj_path_push(path, cap, at, i);
        int rc = tj_fill(json_array_get(v, i), d + 1, ndim, shape, out, pos, path, cap, err);
        if (rc) return rc;
    }
    if (at < cap) path[at] = '\0';
    return SC_OK;
}

int tensor_from_json(const json_t *v, int max_ndim, int64_t max_count, float **data,
                     int64_t *shape, int *ndim, sc_error *err)
{
    *data = NULL;
    *ndim = 0;
    if (!v) return sc_fail(err, SC_ERR_FORMAT, TJ_ROOT " is missing");

    /* Shape from the first element at each depth. */
    int nd = 0;
    char path[256] = TJ_ROOT;
    const json_t *cur = v;
    while (json_is_array(cur)) {
        if (nd >= max_ndim)
            return sc_fail(err, SC_ERR_FORMAT, TJ_ROOT " is nested more than %d deep",
                           max_ndim < 0 ? 0 : max_ndim);
        size_t n = json_array_size(cur);
        shape[nd++] = (int64_t)n;
        if (n == 0) break;
        cur = json_array_get(cur, 0);
    }

    int64_t count = 1;
    for (int d = 0; d < nd; d++)
        if (shape[d] == 0) count = 0;
    for (int d = 0; d < nd && count; d++) {
        if (count > max_count / shape[d]) {
            count = -1;   /* over the limit (and maybe over int64) */
            break;
        }
        count *= shape[d];
    }
    if (count < 0 || count > max_count)
        return sc_fail(err, SC_ERR_TOO_LARGE, TJ_ROOT " has more than %" PRId64 " numbers",
                       max_count < 0 ? 0 : max_count);

    float *out = malloc(count ? (size_t)count * sizeof *out : 1);
    if (!out)
        return sc_fail(err, SC_ERR_NOMEM, "out of memory for %" PRId64 " numbers", count);
    int64_t pos = 0;
    int rc = tj_fill(v, 0, nd, shape, out, &pos, path, sizeof path, err);
    if (rc) {
        free(out);
        return rc;
    }
    SC_ASSERT(pos == count);
    *data = out;
    *ndim = nd;
    return SC_OK;
}

/* The subtree at depth d, consuming data from *pos. */
static json_t *tj_build(const float *data, int d, int ndim, const int64_t *shape, int64_t *pos)
{
    if (d == ndim) return json_real((double)data[(*pos)++]);   /* NULL for NaN/Inf */
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (int64_t i = 0; i < shape[d]; i++) {
        json_t *child = tj_build(data, d + 1, ndim, shape, pos);
        if (!child || json_array_append_new(arr, child)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *tensor_to_json(const float *data, int ndim, const int64_t *shape)
{
    if (ndim < 0) return NULL;
    int64_t pos = 0;
    return tj_build(data, 0, ndim, shape, &pos);
}
