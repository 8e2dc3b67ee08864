/* NumPy .npy files: read float32/float64 arrays (format 1.0, 2.0, 3.0; either byte order) into
 * doubles, and write float32/float64 arrays as format 1.0 byte-for-byte as numpy.save does.
 * Not here: .npz archives, integer or structured dtypes, Fortran order, memory mapping. */
#ifndef SCORED_NPY_H
#define SCORED_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NPY_MAX_DIMS 8

typedef struct sc_array {
    int ndim;
    int64_t shape[NPY_MAX_DIMS]; /* first ndim used, the rest 0                          */
    int64_t count;               /* product of shape (1 for ndim 0, 0 if a dim is 0)      */
    double *data;                /* (count) row-major, owned, never NULL on success;
                                    float32 files are widened exactly                      */
    int source_is_f64;           /* 1 if the file stored float64                          */
} sc_array;

/* Read a .npy.  max_count > 0 refuses arrays with more elements (SC_ERR_TOO_LARGE) before the
 * data is allocated.  Trailing bytes after the data are ignored, as numpy does.
 * On failure *out is zeroed.  Errors: SC_ERR_IO (file), SC_ERR_FORMAT (bad magic, version,
 * header, dtype other than <f4 <f8 >f4 >f8, fortran_order True, short data, shape overflow,
 * more than NPY_MAX_DIMS dims), SC_ERR_TOO_LARGE, SC_ERR_NOMEM. */
int npy_read_file(const char *path, int64_t max_count, sc_array *out, sc_error *err);
int npy_read_mem(const uint8_t *buf, size_t len, int64_t max_count, sc_array *out,
                 sc_error *err);
void npy_free(sc_array *a); /* safe on a zeroed struct; zeroes it again */

/* Write data (prod(shape)) row-major as a little-endian '<f4' / '<f8' format 1.0 file.
 * ndim 0..NPY_MAX_DIMS; shape may be NULL when ndim is 0; data may be NULL when the count is 0.
 * The file variants remove a partly written file on failure; the mem variants set *out to a
 * malloc'd buffer of *out_len bytes that the caller frees.
 * Errors: SC_ERR_INVALID (arguments), SC_ERR_TOO_LARGE (size overflow), SC_ERR_IO,
 * SC_ERR_NOMEM. */
int npy_write_f32_file(const char *path, const float *data, int ndim, const int64_t *shape,
                       sc_error *err);
int npy_write_f64_file(const char *path, const double *data, int ndim, const int64_t *shape,
                       sc_error *err);
int npy_write_f32_mem(const float *data, int ndim, const int64_t *shape, uint8_t **out,
                      size_t *out_len, sc_error *err);
int npy_write_f64_mem(const double *data, int ndim, const int64_t *shape, uint8_t **out,
                      size_t *out_len, sc_error *err);

#endif
