/* safetensors reader (see safetensors.h for what is refused).  The file is mapped read-only, the
 * header is parsed with jansson and checked tensor by tensor, then the strings we keep are
 * copied into one pool so the JSON tree can be freed; tensor data stays in the mapping. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    ST_PREFIX = 8,     /* little-endian u64 header length                            */
    ST_SHAPE_STR = 200 /* "[d0, d1, ...]": 8 dims of up to 20 digits plus separators  */
};

typedef struct st_meta {
    const char *key, *value; /* in the pool */
} st_meta;

struct st_file {
    const char *path;          /* as given to st_open, in the pool (for messages)       */
    const uint8_t *map;        /* (map_len) the whole file, PROT_READ                    */
    size_t map_len;
    int count;
    st_tensor *tensors;        /* (count) owned, sorted by data offset                   */
    const st_tensor **by_name; /* (count) owned array of borrowed pointers into tensors,
                                  sorted by strcmp of name                                */
    int meta_count;
    st_meta *meta;             /* (meta_count) owned, sorted by key                      */
    char *pool;                /* owned: every name, dtype name, metadata string, path   */
};

/* ---- dtypes ------------------------------------------------------------------------------- */

static const char *const st_dtype_names[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64",
                                                            "I64", "I32", NULL};
static const size_t st_dtype_sizes[ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 0};
_Static_assert(sizeof st_dtype_names / sizeof st_dtype_names[0] == ST_DTYPE_COUNT,
               "every st_dtype needs a name");
_Static_assert(sizeof st_dtype_sizes / sizeof st_dtype_sizes[0] == ST_DTYPE_COUNT,
               "every st_dtype needs an element size");

/* Dtypes we keep as ST_OTHER but whose element size is known, so their offsets are still
 * checked against the shape.  Sub-byte types (F4, F6_*) are packed and left unchecked. */
static const struct {
    const char *name;
    size_t size;
} st_other_sizes[] = {
    {"BOOL", 1},    {"U8", 1},      {"I8", 1},      {"F8_E4M3", 1}, {"F8_E5M2", 1},
    {"F8_E8M0", 1}, {"I16", 2},     {"U16", 2},     {"U32", 4},     {"U64", 8},
    {"C64", 8},
};

st_dtype st_dtype_from_str(const char *s)
{
    if (!s) return ST_OTHER;
    for (int d = 0; d < ST_OTHER; d++)
        if (strcmp(s, st_dtype_names[d]) == 0) return (st_dtype)d;
    return ST_OTHER;
}

/* Element size in bytes; 0 when unknown. */
static size_t st_elem_size(st_dtype d, const char *name)
{
    if (d != ST_OTHER) return st_dtype_sizes[d];
    for (size_t i = 0; i < sizeof st_other_sizes / sizeof st_other_sizes[0]; i++)
        if (strcmp(name, st_other_sizes[i].name) == 0) return st_other_sizes[i].size;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* "[128, 64, 3, 3]", "[]" for a scalar. */
static void st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static bool st_json_int(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v)) return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static uint64_t st_read_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* ---- header parsing ----------------------------------------------------------------------- */

/* One tensor entry.  t->name and t->dtype_name borrow from the JSON tree until the pool copy.
 * data: (data_len) the data section. */
static int st_parse_tensor(const char *path, const char *name, const json_t *v,
                           const uint8_t *data, size_t data_len, st_tensor *t, sc_error *err)
{
    if (!json_is_object(v))
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s is not an object", path, name);
    t->name = name;

    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s has no \"%s\"", path, name,
                       !jd ? "dtype" : !js ? "shape" : "data_offsets");

    if (!json_is_string(jd))
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s: \"dtype\" is not a string", path,
                       name);
    t->dtype_name = json_string_value(jd);
    t->dtype = st_dtype_from_str(t->dtype_name);

    if (!json_is_array(js))
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s: \"shape\" is not an array", path,
                       name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s has %zu dims (at most %d)", path, name,
                       nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    bool has_zero = false;
    for (size_t i = 0; i < nd; i++) {
        int64_t d;
        if (!st_json_int(json_array_get(js, i), &d) || d < 0)
            return sc_fail(err, SC_ERR_FORMAT,
                           "%s: tensor %s: shape[%zu] is not a non-negative integer", path, name,
                           i);
        t->shape[i] = d;
        has_zero |= d == 0;
    }
    char shp[ST_SHAPE_STR];
    t->count = 1;
    if (has_zero) {
        t->count = 0;
    } else {
        for (int i = 0; i < t->ndim; i++) {
            if (t->count > INT64_MAX / t->shape[i]) {
                st_shape_str(shp, sizeof shp, t->ndim, t->shape);
                return sc_fail(err, SC_ERR_FORMAT,
                               "%s: tensor %s: shape %s has too many elements", path, name, shp);
            }
            t->count *= t->shape[i];
        }
    }

    int64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !st_json_int(json_array_get(jo, 0), &begin) ||
        !st_json_int(json_array_get(jo, 1), &end))
        return sc_fail(err, SC_ERR_FORMAT,
                       "%s: tensor %s: \"data_offsets\" is not [begin, end] in integers", path,
                       name);
    if (begin < 0 || end < begin)
        return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s: data_offsets [%lld, %lld] are invalid",
                       path, name, (long long)begin, (long long)end);
    size_t es = st_elem_size(t->dtype, t->dtype_name);
    if (es) {
        st_shape_str(shp, sizeof shp, t->ndim, t->shape);
        if (t->count > INT64_MAX / (int64_t)es)
            return sc_fail(err, SC_ERR_FORMAT, "%s: tensor %s: shape %s has too many elements",
                           path, name, shp);
        if (end - begin != t->count * (int64_t)es)
            return sc_fail(err, SC_ERR_FORMAT,
                           "%s: tensor %s: data_offsets [%lld, %lld] hold %lld bytes, but %s %s "
                           "needs %lld",
                           path, name, (long long)begin, (long long)end,
                           (long long)(end - begin), t->dtype_name, shp,
                           (long long)(t->count * (int64_t)es));
    }
    if ((uint64_t)end > data_len)
        return sc_fail(err, SC_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%lld, %lld] run past the data section "
                       "(%zu bytes)",
                       path, name, (long long)begin, (long long)end, data_len);
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return SC_OK;
}

/* File order: by begin, then size (empty tensors first), then name (names are unique). */
static int st_cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    const uint8_t *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int st_cmp_name(const void *a, const void *b)
{
    const st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int st_cmp_meta(const void *a, const void *b)
{
    const st_meta *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Empty tensors take no bytes, so they overlap nothing. */
static int st_check_overlap(const st_file *f, const char *path, const uint8_t *data,
                            sc_error *err)
{
    const st_tensor *reach = NULL; /* the non-empty tensor seen so far that ends furthest */
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->nbytes == 0) continue;
        const uint8_t *t_end = (const uint8_t *)t->data + t->nbytes;
        const uint8_t *r_end = reach ? (const uint8_t *)reach->data + reach->nbytes : NULL;
        if (reach && (const uint8_t *)t->data < r_end)
            return sc_fail(err, SC_ERR_FORMAT,
                           "%s: tensors %s [%td, %td] and %s [%td, %td] overlap", path,
                           reach->name, (const uint8_t *)reach->data - data, r_end - data,
                           t->name, (const uint8_t *)t->data - data, t_end - data);
        if (!reach || t_end > r_end) reach = t;
    }
    return SC_OK;
}

static char *st_pool_put(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = memcpy(*cursor, s, n);
    *cursor += n;
    return p;
}

/* Fills f (whose map, map_len and path are set) from the header.  On failure the caller
 * frees whatever f holds. */
static int st_parse(st_file *f, const char *path, sc_error *err)
{
    uint64_t hlen = st_read_u64le(f->map);
    if (hlen > ST_HEADER_MAX)
        return sc_fail(err, SC_ERR_FORMAT,
                       "%s: header length %llu is over the %u-byte limit (not a safetensors "
                       "file?)",
                       path, (unsigned long long)hlen, ST_HEADER_MAX);
    if (hlen > f->map_len - ST_PREFIX)
        return sc_fail(err, SC_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)hlen, f->map_len);
    const char *htext = (const char *)f->map + ST_PREFIX;
    const uint8_t *data = f->map + ST_PREFIX + hlen;
    size_t data_len = f->map_len - ST_PREFIX - (size_t)hlen;

    json_error_t jerr;
    json_t *root = json_loadb(htext, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sc_fail(err, SC_ERR_FORMAT, "%s: header is not valid JSON: %s (at byte %d)", path,
                       jerr.text, jerr.position);
    int rc = SC_OK;
    if (!json_is_object(root)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }

    json_t *jmeta = json_object_get(root, "__metadata__");
    if (jmeta && !json_is_object(jmeta)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
        goto done;
    }
    size_t ntensor = json_object_size(root) - (jmeta ? 1 : 0);
    size_t nmeta = jmeta ? json_object_size(jmeta) : 0;
    if (ntensor > INT_MAX || nmeta > INT_MAX) { /* cannot happen under ST_HEADER_MAX */
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: too many header entries", path);
        goto done;
    }
    f->tensors = calloc(ntensor ? ntensor : 1, sizeof *f->tensors);
    f->by_name = calloc(ntensor ? ntensor : 1, sizeof *f->by_name);
    f->meta = calloc(nmeta ? nmeta : 1, sizeof *f->meta);
    if (!f->tensors || !f->by_name || !f->meta) {
        rc = sc_fail(err, SC_ERR_NOMEM, "%s: out of memory for %zu tensors", path, ntensor);
        goto done;
    }

    size_t pool_len = strlen(path) + 1;
    const char *key;
    json_t *v;
    if (jmeta) {
        json_object_foreach(jmeta, key, v) {
            if (!json_is_string(v)) {
                rc = sc_fail(err, SC_ERR_FORMAT,
                             "%s: \"__metadata__\" value of %s is not a string", path, key);
                goto done;
            }
            f->meta[f->meta_count++] = (st_meta){key, json_string_value(v)};
            pool_len += strlen(key) + 1 + strlen(json_string_value(v)) + 1;
        }
    }
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->count];
        rc = st_parse_tensor(path, key, v, data, data_len, t, err);
        if (rc) goto done;
        f->count++;
        pool_len += strlen(t->name) + 1 + strlen(t->dtype_name) + 1;
    }
    SC_ASSERT((size_t)f->count == ntensor);

    qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, st_cmp_offset);
    rc = st_check_overlap(f, path, data, err);
    if (rc) goto done;

    /* Copy every string out of the JSON tree, which is freed below. */
    f->pool = malloc(pool_len);
    if (!f->pool) {
        rc = sc_fail(err, SC_ERR_NOMEM, "%s: out of memory for the header strings", path);
        goto done;
    }
    char *cur = f->pool;
    f->path = st_pool_put(&cur, path);
    for (int i = 0; i < f->count; i++) {
        f->tensors[i].name = st_pool_put(&cur, f->tensors[i].name);
        f->tensors[i].dtype_name = st_pool_put(&cur, f->tensors[i].dtype_name);
        f->by_name[i] = &f->tensors[i];
    }
    for (int i = 0; i < f->meta_count; i++) {
        f->meta[i].key = st_pool_put(&cur, f->meta[i].key);
        f->meta[i].value = st_pool_put(&cur, f->meta[i].value);
    }
    SC_ASSERT((size_t)(cur - f->pool) == pool_len);
    qsort(f->by_name, (size_t)f->count, sizeof *f->by_name, st_cmp_name);
    qsort(f->meta, (size_t)f->meta_count, sizeof *f->meta, st_cmp_meta);

done:
    json_decref(root);
    return rc;
}

/* ---- public API --------------------------------------------------------------------------- */

int st_open(const char *path, st_file **out, sc_error *err)
{
    SC_ASSERT(path && out);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sc_fail(err, SC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sc_fail(err, SC_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sc_fail(err, SC_ERR_IO, "cannot read %s: not a regular file", path);
    }
    if (sb.st_size < ST_PREFIX) {
        close(fd);
        return sc_fail(err, SC_ERR_FORMAT,
                       "%s: %lld bytes is too short for a safetensors file (the header length "
                       "alone is 8)",
                       path, (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return sc_fail(err, SC_ERR_IO, "cannot map %s: file too large", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return sc_fail(err, SC_ERR_IO, "cannot map %s: %s", path, strerror(map_errno));

    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(map, len);
        return sc_fail(err, SC_ERR_NOMEM, "%s: out of memory", path);
    }
    f->map = map;
    f->map_len = len;
    int rc = st_parse(f, path, err);
    if (rc) {
        st_close(f);
        return rc;
    }
    *out = f;
    return SC_OK;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->map_len);
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f->pool);
    free(f);
}

int st_count(const st_file *f)
{
    SC_ASSERT(f);
    return f->count;
}

const st_tensor *st_at(const st_file *f, int i)
{
    SC_ASSERT(f && i >= 0 && i < f->count);
    return &f->tensors[i];
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    SC_ASSERT(f && name);
    int lo = 0, hi = f->count; /* search [lo, hi) */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key)
{
    SC_ASSERT(f && key);
    int lo = 0, hi = f->meta_count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta[mid].key);
        if (c == 0) return f->meta[mid].value;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* ---- conversion --------------------------------------------------------------------------- */

static float st_f32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* IEEE binary16 -> binary32, exact: subnormal halves become normal floats. */
static float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return st_f32_from_bits(sign | 0x7f800000u | mant << 13); /* inf, NaN */
    if (exp == 0) {
        if (mant == 0) return st_f32_from_bits(sign); /* +-0 */
        /* mant * 2^-24: shift the leading one up to bit 10, one exponent step per shift. */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400));
        return st_f32_from_bits(sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ff) << 13);
    }
    return st_f32_from_bits(sign | (exp + 127 - 15) << 23 | mant << 13);
}

int st_to_f32(const st_tensor *t, float *out, sc_error *err)
{
    SC_ASSERT(t && (out || t->count == 0));
    const uint8_t *p = t->data; /* (count * element size), unaligned */
    size_t n = (size_t)t->count;
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < n; i++, p += 4)
            out[i] = st_f32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                      (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        return SC_OK;
    case ST_F16:
        for (size_t i = 0; i < n; i++, p += 2)
            out[i] = st_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        return SC_OK;
    case ST_BF16:
        for (size_t i = 0; i < n; i++, p += 2)
            out[i] = st_f32_from_bits((uint32_t)p[0] << 16 | (uint32_t)p[1] << 24);
        return SC_OK;
    case ST_F64:
        for (size_t i = 0; i < n; i++, p += 8) {
            uint64_t u = st_read_u64le(p);
            double d;
            memcpy(&d, &u, 8);
            out[i] = (float)d;
        }
        return SC_OK;
    default:
        return sc_fail(err, SC_ERR_FORMAT,
                       "tensor %s has dtype %s; only F32, F16, BF16 and F64 convert to float32",
                       t->name, t->dtype_name);
    }
}

int st_expect(const st_file *f, const char *name, int ndim, const int64_t *shape,
              const st_tensor **out, sc_error *err)
{
    SC_ASSERT(f && name && out && ndim >= 0 && ndim <= ST_MAX_DIMS && (shape || ndim == 0));
    *out = NULL;
    char want[ST_SHAPE_STR];
    st_shape_str(want, sizeof want, ndim, shape);
    const st_tensor *t = st_find(f, name);
    if (!t)
        return sc_fail(err, SC_ERR_FORMAT, "%s: missing tensor %s (expected %s)", f->path, name,
                       want);
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[ST_SHAPE_STR];
        st_shape_str(have, sizeof have, t->ndim, t->shape);
        return sc_fail(err, SC_ERR_SHAPE, "%s: tensor %s has shape %s, expected %s", f->path,
                       name, have, want);
    }
    *out = t;
    return SC_OK;
}
