/* Nested JSON number arrays <-> flat row-major float32 tensors, for request and response
 * bodies.  Shapes are taken from the nesting; no dtype or shape fields are read here. */
#ifndef SCORED_TENSOR_JSON_H
#define SCORED_TENSOR_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

/* v: a JSON number (ndim 0) or nested arrays of numbers, e.g. [[1,2],[3,4]] -> shape (2,2).
 * shape: caller's array of at least max_ndim entries; *ndim entries are filled.  Empty arrays
 * give a 0 in the shape (count 0).  Refused, with the path in the message ("data[3][1]"):
 *   ragged arrays, non-numbers, numbers outside float32's finite range, nesting deeper than
 *   max_ndim                                              -> SC_ERR_FORMAT
 *   more than max_count numbers                           -> SC_ERR_TOO_LARGE
 * On success *data is malloc'd (row-major, never NULL; the caller frees it); on failure *data
 * is NULL. */
int tensor_from_json(const json_t *v, int max_ndim, int64_t max_count, float **data,
                     int64_t *shape, int *ndim, sc_error *err);

/* data: (shape[0], ..., shape[ndim-1]) row-major, or one value when ndim is 0.  Returns a new
 * reference to nested arrays of json_real (float32 widened exactly to double, so dumping with
 * JSON_REAL_PRECISION(9) round-trips), or NULL when out of memory or a value is NaN/Inf
 * (which JSON cannot hold). */
json_t *tensor_to_json(const float *data, int ndim, const int64_t *shape);

#endif
