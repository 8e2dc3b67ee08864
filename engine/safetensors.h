/* safetensors checkpoints: map a file read-only, validate its JSON header and every tensor's
 * extent, look tensors up by name, and widen F32/F16/BF16/F64 data to float32.
 * Element bytes are decoded explicitly, so the host byte order does not matter.
 * Not here: writing files, sharded checkpoints (model.safetensors.index.json). */
#ifndef SCORED_SAFETENSORS_H
#define SCORED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ST_MAX_DIMS 8
#define ST_HEADER_MAX 100000000u /* header JSON longer than this is refused (as the reference
                                    implementation does): 100 MB                           */

/* The dtypes this reader converts, plus two integer types callers may want to recognise.
 * Every other dtype string (I8, U8, BOOL, F8_E4M3, ... or one never seen) is ST_OTHER, its
 * text kept in st_tensor.dtype_name. */
typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_OTHER, ST_DTYPE_COUNT } st_dtype;

/* "F32" -> ST_F32 ...; anything else (including NULL) -> ST_OTHER. Case-sensitive, as written
 * by the safetensors library. */
st_dtype st_dtype_from_str(const char *s);

typedef struct st_tensor {
    const char *name;       /* owned by the file, NUL-terminated                          */
    st_dtype dtype;
    const char *dtype_name; /* as written, e.g. "F16"; owned by the file                  */
    int ndim;               /* 0..ST_MAX_DIMS                                             */
    int64_t shape[ST_MAX_DIMS]; /* first ndim used, the rest 0                           */
    int64_t count;          /* elements: product of shape (1 for ndim 0)                  */
    const void *data;       /* (count) row-major little-endian, points into the mapping;
                               NOT aligned in general: read it with memcpy or st_to_f32   */
    size_t nbytes;          /* data_offsets end - begin                                   */
} st_tensor;

/* An open file: the read-only mapping plus the parsed header. Immutable after st_open, so one
 * st_file may be read from any number of threads at once. */
typedef struct st_file st_file;

/* Maps path read-only and validates the whole header: every tensor's dtype, shape and
 * data_offsets (size matches count * element size, inside the data section, no two tensors
 * overlap) and "__metadata__" (string -> string). Gaps between tensors and bytes after the last
 * one are allowed. A dtype this reader does not know is kept (ST_OTHER); if its element size is
 * unknown too, its byte size is not checked against the shape.
 * On failure *out is NULL. Errors: SC_ERR_IO (missing, unreadable, not a regular file),
 * SC_ERR_FORMAT (anything malformed; the message names the path and the tensor),
 * SC_ERR_NOMEM. The file must not be truncated by others while open (that is SIGBUS). */
int st_open(const char *path, st_file **out, sc_error *err);
void st_close(st_file *f); /* NULL-safe; every pointer obtained from f dies with it */

int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i); /* 0 <= i < st_count; in file order (by
                                                    data offset)                           */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent; O(log n)   */
const char *st_metadata(const st_file *f, const char *key);   /* NULL if absent; O(log n)   */

/* Converts to float32: F32 copied, F16 and BF16 widened exactly (subnormals, infinities and
 * NaN payloads kept), F64 rounded to nearest (out of range -> +-inf). Other dtypes ->
 * SC_ERR_FORMAT naming the tensor. out holds t->count floats (may be NULL when count is 0). */
int st_to_f32(const st_tensor *t, float *out, sc_error *err);

/* The tensor `name` with exactly this shape (ndim 0..ST_MAX_DIMS; shape may be NULL when ndim
 * is 0). Errors name the path, the key and both shapes:
 *   SC_ERR_SHAPE  "model.safetensors: tensor a.weight has shape [128, 64, 3, 3], expected [128, 128, 3, 3]"
 *   SC_ERR_FORMAT "model.safetensors: missing tensor a.weight (expected [128, 128, 3, 3])"
 * The dtype is not checked here: st_to_f32 does that. *out is NULL on failure. */
int st_expect(const st_file *f, const char *name, int ndim, const int64_t *shape,
              const st_tensor **out, sc_error *err);

#endif
