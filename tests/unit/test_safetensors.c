/* Unit tests for engine/safetensors.c.  Files are written byte by byte into a mkdtemp directory:
 * round trips of F32/F16/BF16/F64 (every half and bfloat16 bit pattern), lookups, st_expect's
 * messages, every refusal with its code, every truncated prefix and random header byte flips.
 * Run it under valgrind to check that nothing reads outside the mapping. */
#include "testutil.h"

#include <float.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "safetensors.h"

/* ---- a growable string -------------------------------------------------------------------- */

typedef struct tst_str {
    char *s; /* owned, NUL-terminated */
    size_t len, cap;
} tst_str;

static void tst_cat(tst_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tst_cat(tst_str *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- the writer --------------------------------------------------------------------------- */

/* bytes: 8-byte little-endian hlen, then the header text (hlen bytes), then data. */
static uint8_t *tst_bytes(uint64_t hlen, const char *hdr, size_t hdr_len, const void *data,
                          size_t data_len, size_t *len)
{
    *len = 8 + hdr_len + data_len;
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    if (hdr_len) memcpy(b + 8, hdr, hdr_len);
    if (data_len) memcpy(b + 8 + hdr_len, data, data_len);
    return b;
}

static void tst_write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A file with this header text and data_len bytes of data (0, 1, 2, ... mod 256). */
static void tst_write_header(const char *path, const char *hdr, size_t data_len)
{
    uint8_t *data = malloc(data_len + 1);
    assert_non_null(data);
    for (size_t i = 0; i < data_len; i++) data[i] = (uint8_t)i;
    size_t n;
    uint8_t *b = tst_bytes(strlen(hdr), hdr, strlen(hdr), data, data_len, &n);
    tst_write_file(path, b, n);
    free(b);
    free(data);
}

/* One tensor for tst_pack: its bytes are laid out in spec order, back to back. */
typedef struct tst_spec {
    const char *name;  /* JSON-escaped already */
    const char *dtype;
    int ndim;
    int64_t shape[8];
    const void *bytes; /* (nbytes) little-endian elements; NULL: zero bytes */
    size_t nbytes;
} tst_spec;

/* A whole file: header {"__metadata__": meta (if non-NULL), tensors...}, padded with spaces to
 * hlen % 8 == pad_to (pad_to < 0: no padding), then the data.  Returns malloc'd bytes. */
static uint8_t *tst_pack(const tst_spec *sp, int n, const char *meta, int pad_to, size_t *len)
{
    tst_str h = {0};
    tst_cat(&h, "{");
    if (meta) tst_cat(&h, "\"__metadata__\":%s%s", meta, n ? "," : "");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        tst_cat(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", sp[i].name,
                sp[i].dtype);
        for (int d = 0; d < sp[i].ndim; d++)
            tst_cat(&h, "%s%lld", d ? "," : "", (long long)sp[i].shape[d]);
        tst_cat(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + sp[i].nbytes);
        off += sp[i].nbytes;
    }
    tst_cat(&h, "}");
    while (pad_to >= 0 && (int)(h.len % 8) != pad_to) tst_cat(&h, " ");
    uint8_t *data = calloc(1, off + 1);
    assert_non_null(data);
    off = 0;
    for (int i = 0; i < n; i++) {
        if (sp[i].bytes) memcpy(data + off, sp[i].bytes, sp[i].nbytes);
        off += sp[i].nbytes;
    }
    uint8_t *b = tst_bytes(h.len, h.s, h.len, data, off, len);
    free(data);
    free(h.s);
    return b;
}

static st_file *tst_open_ok(const char *path)
{
    st_file *f = NULL;
    sc_error err = {0};
    int rc = st_open(path, &f, &err);
    if (rc) fail_msg("st_open(%s): %s", path, err.msg);
    assert_non_null(f);
    return f;
}

static st_file *tst_pack_open(void **state, const char *file, const tst_spec *sp, int n,
                              const char *meta, int pad_to)
{
    char path[256];
    test_dir_path(state, file, path, sizeof path);
    size_t len;
    uint8_t *b = tst_pack(sp, n, meta, pad_to, &len);
    tst_write_file(path, b, len);
    free(b);
    return tst_open_ok(path);
}

/* st_open of path must fail with code and a message containing want. */
static void tst_expect_refusal(const char *path, int code, const char *want, const char *what)
{
    st_file *f = (st_file *)(uintptr_t)1;
    sc_error err = {0};
    int rc = st_open(path, &f, &err);
    if (rc != code || err.code != code || !strstr(err.msg, want))
        fail_msg("%s: rc %d code %d message '%s'; wanted rc %d and '%s'", what, rc, err.code,
                 err.msg, code, want);
    assert_null(f);
    assert_null(strchr(err.msg, '\n'));
}

static void tst_refuse_header(void **state, const char *hdr, size_t data_len, const char *want)
{
    char path[256];
    test_dir_path(state, "bad.safetensors", path, sizeof path);
    tst_write_header(path, hdr, data_len);
    tst_expect_refusal(path, SC_ERR_FORMAT, want, hdr);
}

static void tst_f32_le(uint8_t *dst, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) dst[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
}

static void tst_f64_le(uint8_t *dst, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        for (int k = 0; k < 8; k++) dst[8 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
}

static void tst_u16_le(uint8_t *dst, const uint16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[2 * i] = (uint8_t)v[i], dst[2 * i + 1] = (uint8_t)(v[i] >> 8);
}

static uint32_t tst_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* Same value, or both NaN with the same bits. */
static void tst_assert_same_float(float got, float want, const char *what, unsigned idx)
{
    if (tst_bits(got) != tst_bits(want))
        fail_msg("%s[%u]: got %a (0x%08x), want %a (0x%08x)", what, idx, (double)got,
                 tst_bits(got), (double)want, tst_bits(want));
}

/* Independent reference for a binary16 value: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
 * 2^-14 * m/1024.  NaN handled by the caller. */
static double tst_half_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* xorshift64*: explicit state, no globals. */
static uint64_t tst_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_f32_roundtrip(void **state)
{
    const float v[] = {0.0f, -0.0f, 1.0f, -2.5f, FLT_MIN, 1e-45f, FLT_MAX, -FLT_MAX,
                       INFINITY, -INFINITY, NAN, 3.14159274f};
    enum { N = sizeof v / sizeof v[0] };
    uint8_t b[4 * N];
    tst_f32_le(b, v, N);
    /* pad_to 3: the data section starts at an odd address, so every read is unaligned */
    tst_spec sp[] = {{"x", "F32", 2, {3, 4}, b, sizeof b}};
    st_file *f = tst_pack_open(state, "f32.safetensors", sp, 1, NULL, 3);
    assert_int_equal(st_count(f), 1);
    const st_tensor *t = st_at(f, 0);
    assert_string_equal(t->name, "x");
    assert_int_equal(t->dtype, ST_F32);
    assert_string_equal(t->dtype_name, "F32");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 4);
    assert_int_equal(t->shape[2], 0);
    assert_int_equal(t->count, 12);
    assert_int_equal(t->nbytes, sizeof b);
    assert_int_equal((uintptr_t)t->data % 2, 1);
    assert_memory_equal(t->data, b, sizeof b);
    float out[N];
    sc_error err = {0};
    assert_int_equal(st_to_f32(t, out, &err), SC_OK);
    for (unsigned i = 0; i < N; i++) tst_assert_same_float(out[i], v[i], "f32", i);
    st_close(f);
}

static void test_f16_values(void **state)
{
    static const struct {
        uint16_t h;
        float want;
    } cases[] = {
        {0x3C00, 1.0f},          {0x7BFF, 65504.0f},      {0x0001, 0x1p-24f},
        {0x8001, -0x1p-24f},     {0x03FF, 0x3FFp-24f},    {0x0400, 0x1p-14f},
        {0x0200, 0x1p-15f},      {0x0000, 0.0f},          {0x8000, -0.0f},
        {0xC000, -2.0f},         {0x3555, 0x1.554p-2f},   {0x7C00, INFINITY},
        {0xFC00, -INFINITY},     {0x3BFF, 0x1.ffcp-1f},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    uint16_t h[N + 2];
    for (unsigned i = 0; i < N; i++) h[i] = cases[i].h;
    h[N] = 0x7E00;     /* quiet NaN */
    h[N + 1] = 0xFD01; /* negative signalling NaN with a payload */
    uint8_t b[2 * (N + 2)];
    tst_u16_le(b, h, N + 2);
    tst_spec sp[] = {{"h", "F16", 1, {N + 2}, b, sizeof b}};
    st_file *f = tst_pack_open(state, "f16.safetensors", sp, 1, NULL, 1);
    const st_tensor *t = st_find(f, "h");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F16);
    float out[N + 2];
    sc_error err = {0};
    assert_int_equal(st_to_f32(t, out, &err), SC_OK);
    for (unsigned i = 0; i < N; i++) tst_assert_same_float(out[i], cases[i].want, "f16", i);
    assert_true(isnan(out[N]) && !signbit(out[N]));
    assert_true(isnan(out[N + 1]) && signbit(out[N + 1]));
    assert_int_equal(tst_bits(out[N]), 0x7FC00000u);
    assert_int_equal(tst_bits(out[N + 1]), 0xFFA02000u); /* payload moved up, not quieted */
    st_close(f);
}

/* Every one of the 65536 halves against an independent formula. */
static void test_f16_every_value(void **state)
{
    enum { N = 65536 };
    uint16_t *h = malloc(sizeof *h * N);
    uint8_t *b = malloc(2 * N);
    float *out = malloc(sizeof *out * N);
    assert_true(h && b && out);
    for (unsigned i = 0; i < N; i++) h[i] = (uint16_t)i;
    tst_u16_le(b, h, N);
    tst_spec sp[] = {{"all", "F16", 2, {256, 256}, b, 2 * N}};
    st_file *f = tst_pack_open(state, "f16all.safetensors", sp, 1, NULL, 5);
    sc_error err = {0};
    assert_int_equal(st_to_f32(st_at(f, 0), out, &err), SC_OK);
    for (unsigned i = 0; i < N; i++) {
        bool nan = ((i >> 10) & 31) == 31 && (i & 1023);
        if (nan) {
            assert_true(isnan(out[i]));
            assert_int_equal(signbit(out[i]) != 0, (i >> 15) != 0);
        } else {
            tst_assert_same_float(out[i], (float)tst_half_ref((uint16_t)i), "f16 all", i);
        }
    }
    st_close(f);
    free(h);
    free(b);
    free(out);
}

static void test_bf16_every_value(void **state)
{
    enum { N = 65536 };
    uint16_t *h = malloc(sizeof *h * N);
    uint8_t *b = malloc(2 * N);
    float *out = malloc(sizeof *out * N);
    assert_true(h && b && out);
    for (unsigned i = 0; i < N; i++) h[i] = (uint16_t)i;
    tst_u16_le(b, h, N);
    tst_spec sp[] = {{"all", "BF16", 1, {N}, b, 2 * N}};
    st_file *f = tst_pack_open(state, "bf16.safetensors", sp, 1, NULL, 7);
    const st_tensor *t = st_at(f, 0);
    assert_int_equal(t->dtype, ST_BF16);
    sc_error err = {0};
    assert_int_equal(st_to_f32(t, out, &err), SC_OK);
    for (unsigned i = 0; i < N; i++) assert_int_equal(tst_bits(out[i]), (uint32_t)i << 16);
    assert_true(out[0x3F80] == 1.0f);
    assert_true(out[0xC000] == -2.0f);
    assert_true(out[0x7F80] == INFINITY);
    assert_true(out[0x0001] == 0x1p-133f);
    assert_true(isnan(out[0x7FC0]));
    st_close(f);
    free(h);
    free(b);
    free(out);
}

static void test_f64_rounding(void **state)
{
    const double v[] = {1.0 / 3.0, 1e300, -1e300, 1e-50, -1e-50, 0x1p-149, 0x1p-150 * 3,
                        -0.0, 0.1, 16777217.0, NAN, -INFINITY, (double)FLT_MAX};
    const float want[] = {(float)(1.0 / 3.0), INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p-149f,
                          0x1p-148f, -0.0f, 0.1f, 16777216.0f, NAN, -INFINITY, FLT_MAX};
    enum { N = sizeof v / sizeof v[0] };
    _Static_assert(sizeof want / sizeof want[0] == N, "one expected value per input");
    uint8_t b[8 * N];
    tst_f64_le(b, v, N);
    tst_spec sp[] = {{"d", "F64", 0, {0}, b, 8}, /* a scalar: shape [] */
                     {"v", "F64", 1, {N}, b, sizeof b}};
    st_file *f = tst_pack_open(state, "f64.safetensors", sp, 2, NULL, -1);
    const st_tensor *s = st_find(f, "d");
    assert_non_null(s);
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->count, 1);
    float one;
    sc_error err = {0};
    assert_int_equal(st_to_f32(s, &one, &err), SC_OK);
    assert_true(one == (float)(1.0 / 3.0));
    const st_tensor *t = st_find(f, "v");
    assert_int_equal(t->dtype, ST_F64);
    float out[N];
    assert_int_equal(st_to_f32(t, out, &err), SC_OK);
    for (unsigned i = 0; i < N; i++) {
        if (isnan(want[i])) assert_true(isnan(out[i]));
        else tst_assert_same_float(out[i], want[i], "f64", i);
    }
    st_close(f);
}

/* Integer and unknown dtypes open fine; only conversion refuses them, naming the tensor. */
static void test_other_dtypes(void **state)
{
    uint8_t b[64] = {0};
    tst_spec sp[] = {
        {"i64", "I64", 1, {2}, b, 16},  {"i32", "I32", 1, {2}, b, 8},
        {"u8", "U8", 2, {2, 3}, b, 6},  {"flag", "BOOL", 1, {3}, b, 3},
        {"f4", "F4", 1, {8}, b, 4},     /* packed nibbles: size unknown to us, unchecked */
        {"odd", "Q4_K", 1, {5}, b, 11}, {"empty", "F32", 2, {0, 7}, NULL, 0},
    };
    st_file *f = tst_pack_open(state, "other.safetensors", sp, 7, NULL, -1);
    assert_int_equal(st_count(f), 7);
    static const struct {
        const char *name;
        st_dtype dtype;
        const char *dtype_name;
    } want[] = {{"i64", ST_I64, "I64"}, {"i32", ST_I32, "I32"},  {"u8", ST_OTHER, "U8"},
                {"flag", ST_OTHER, "BOOL"}, {"f4", ST_OTHER, "F4"}, {"odd", ST_OTHER, "Q4_K"}};
    float out[16];
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_tensor *t = st_find(f, want[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, want[i].dtype);
        assert_string_equal(t->dtype_name, want[i].dtype_name);
        sc_error err = {0};
        assert_int_equal(st_to_f32(t, out, &err), SC_ERR_FORMAT);
        assert_int_equal(err.code, SC_ERR_FORMAT);
        char expect[128];
        snprintf(expect, sizeof expect, "tensor %s has dtype %s", want[i].name,
                 want[i].dtype_name);
        assert_non_null(strstr(err.msg, expect));
    }
    const st_tensor *e = st_find(f, "empty");
    assert_int_equal(e->count, 0);
    assert_int_equal(e->nbytes, 0);
    sc_error err = {0};
    assert_int_equal(st_to_f32(e, NULL, &err), SC_OK);
    assert_int_equal(st_dtype_from_str("BF16"), ST_BF16);
    assert_int_equal(st_dtype_from_str("bf16"), ST_OTHER);
    assert_int_equal(st_dtype_from_str(NULL), ST_OTHER);
    st_close(f);
}

/* ---- lookups ------------------------------------------------------------------------------ */

static void test_metadata(void **state)
{
    float one = 1.0f;
    uint8_t b[4];
    tst_f32_le(b, &one, 1);
    tst_spec sp[] = {{"format", "F32", 1, {1}, b, 4}};
    st_file *f = tst_pack_open(
        state, "meta.safetensors", sp, 1,
        "{\"format\":\"pt\",\"note\":\"a \\\"quoted\\\" caf\\u00e9\",\"empty\":\"\"}", 0);
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "note"), "a \"quoted\" caf\xc3\xa9");
    assert_string_equal(st_metadata(f, "empty"), "");
    assert_null(st_metadata(f, "Format"));
    assert_null(st_metadata(f, ""));
    assert_null(st_metadata(f, "zzz"));
    assert_null(st_find(f, "__metadata__"));
    assert_int_equal(st_count(f), 1);
    assert_string_equal(st_at(f, 0)->name, "format");
    st_close(f);

    f = tst_pack_open(state, "nometa.safetensors", sp, 1, NULL, 0);
    assert_null(st_metadata(f, "format"));
    st_close(f);
    f = tst_pack_open(state, "emptymeta.safetensors", sp, 1, "{}", 0);
    assert_null(st_metadata(f, "format"));
    st_close(f);
}

/* 200 tensors listed in one order, stored in another: st_at follows the data, st_find the name. */
static void test_find_200(void **state)
{
    enum { N = 200 };
    tst_spec sp[N];
    char names[N][32];
    float vals[N][5];
    uint8_t bytes[N][20];
    for (int j = 0; j < N; j++) {
        int i = (j * 37 + 11) % N; /* spec j (the j-th in the data) is tensor i */
        snprintf(names[j], sizeof names[j], "blocks.%d.weight", i);
        int len = i % 5 + 1;
        for (int k = 0; k < len; k++) vals[j][k] = (float)i + 0.25f * (float)k;
        tst_f32_le(bytes[j], vals[j], (size_t)len);
        sp[j] = (tst_spec){names[j], "F32", 1, {len}, bytes[j], 4 * (size_t)len};
    }
    st_file *f = tst_pack_open(state, "many.safetensors", sp, N, "{\"n\":\"200\"}", 0);
    assert_int_equal(st_count(f), N);
    for (int j = 0; j < N; j++) {
        const st_tensor *t = st_at(f, j);
        assert_string_equal(t->name, names[j]); /* file order = data order */
        if (j) assert_true((const uint8_t *)t->data > (const uint8_t *)st_at(f, j - 1)->data);
    }
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.weight", i);
        const st_tensor *t = st_find(f, name);
        if (!t) fail_msg("st_find(%s) is NULL", name);
        assert_string_equal(t->name, name);
        assert_int_equal(t->shape[0], i % 5 + 1);
        float out[5];
        sc_error err = {0};
        assert_int_equal(st_to_f32(t, out, &err), SC_OK);
        for (int k = 0; k <= i % 5; k++) assert_true(out[k] == (float)i + 0.25f * (float)k);
    }
    const char *absent[] = {"blocks.200.weight", "blocks.1", "blocks.1.weightx", "", "a",
                            "zzz", "blocks.-1.weight", "n"};
    for (unsigned i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_null(st_find(f, absent[i]));
    assert_string_equal(st_metadata(f, "n"), "200");
    st_close(f);
}

static void test_expect_messages(void **state)
{
    tst_spec sp[] = {{"all_modules.4.Conv_0.weight", "F16", 4, {128, 64, 3, 3}, NULL,
                      2 * 128 * 64 * 9},
                     {"all_modules.4.Conv_0.bias", "F32", 1, {128}, NULL, 4 * 128},
                     {"sigma", "F32", 0, {0}, NULL, 4}};
    char path[256];
    test_dir_path(state, "model.safetensors", path, sizeof path);
    st_file *f = tst_pack_open(state, "model.safetensors", sp, 3, NULL, 0);
    const st_tensor *t = (const st_tensor *)(uintptr_t)1;
    sc_error err = {0};
    char want[512];

    const int64_t w_ok[] = {128, 64, 3, 3}, w_bad[] = {128, 128, 3, 3};
    assert_int_equal(st_expect(f, "all_modules.4.Conv_0.weight", 4, w_ok, &t, &err), SC_OK);
    assert_ptr_equal(t, st_find(f, "all_modules.4.Conv_0.weight"));

    assert_int_equal(st_expect(f, "all_modules.4.Conv_0.weight", 4, w_bad, &t, &err),
                     SC_ERR_SHAPE);
    assert_null(t);
    assert_int_equal(err.code, SC_ERR_SHAPE);
    snprintf(want, sizeof want,
             "%s: tensor all_modules.4.Conv_0.weight has shape [128, 64, 3, 3], expected "
             "[128, 128, 3, 3]",
             path);
    assert_string_equal(err.msg, want);

    assert_int_equal(st_expect(f, "all_modules.5.Conv_0.weight", 4, w_bad, &t, &err),
                     SC_ERR_FORMAT);
    assert_null(t);
    snprintf(want, sizeof want,
             "%s: missing tensor all_modules.5.Conv_0.weight (expected [128, 128, 3, 3])", path);
    assert_string_equal(err.msg, want);

    /* rank mismatch both ways, and scalars */
    const int64_t b2[] = {128, 1};
    assert_int_equal(st_expect(f, "all_modules.4.Conv_0.bias", 2, b2, &t, &err), SC_ERR_SHAPE);
    snprintf(want, sizeof want,
             "%s: tensor all_modules.4.Conv_0.bias has shape [128], expected [128, 1]", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(st_expect(f, "all_modules.4.Conv_0.bias", 0, NULL, &t, &err),
                     SC_ERR_SHAPE);
    snprintf(want, sizeof want,
             "%s: tensor all_modules.4.Conv_0.bias has shape [128], expected []", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(st_expect(f, "sigma", 0, NULL, &t, &err), SC_OK);
    assert_string_equal(t->name, "sigma");
    const int64_t one[] = {1};
    assert_int_equal(st_expect(f, "sigma", 1, one, &t, &err), SC_ERR_SHAPE);
    snprintf(want, sizeof want, "%s: tensor sigma has shape [], expected [1]", path);
    assert_string_equal(err.msg, want);
    st_close(f);
}

/* ---- what is accepted --------------------------------------------------------------------- */

static void test_zero_tensors(void **state)
{
    char path[256];
    test_dir_path(state, "zero.safetensors", path, sizeof path);
    const char *headers[] = {"{}", "{}      ", " \n{ }\t", "{\"__metadata__\":{\"k\":\"v\"}}",
                             "{\"__metadata__\":{}}"};
    for (unsigned i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        tst_write_header(path, headers[i], i); /* trailing data bytes are allowed */
        st_file *f = tst_open_ok(path);
        assert_int_equal(st_count(f), 0);
        assert_null(st_find(f, "x"));
        assert_null(st_metadata(f, "x"));
        if (i == 3) assert_string_equal(st_metadata(f, "k"), "v");
        st_close(f);
    }
    st_close(NULL);
}

/* Gaps, trailing bytes, extra fields, empty tensors inside others, any key order. */
static void test_lenient_layouts(void **state)
{
    char path[256];
    test_dir_path(state, "lenient.safetensors", path, sizeof path);
    tst_write_header(path,
                     "{\"b\":{\"shape\":[2],\"data_offsets\":[12,20],\"dtype\":\"F32\","
                     "\"extra\":[1,2]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[14,14]},"
                     "\"z\":{\"dtype\":\"F16\",\"shape\":[1,0,3],\"data_offsets\":[0,0]}}",
                     32);
    st_file *f = tst_open_ok(path);
    assert_int_equal(st_count(f), 4);
    /* by begin, empty first at a tie */
    assert_string_equal(st_at(f, 0)->name, "z");
    assert_string_equal(st_at(f, 1)->name, "a");
    assert_string_equal(st_at(f, 2)->name, "b");
    assert_string_equal(st_at(f, 3)->name, "e");
    assert_int_equal(st_at(f, 0)->count, 0);
    assert_int_equal((const uint8_t *)st_at(f, 2)->data - (const uint8_t *)st_at(f, 1)->data,
                     12);
    assert_int_equal(((const uint8_t *)st_at(f, 2)->data)[0], 12); /* data byte i is i */
    st_close(f);
}

/* ---- refusals ----------------------------------------------------------------------------- */

static void test_refuse_short_and_lengths(void **state)
{
    char path[256];
    test_dir_path(state, "short.safetensors", path, sizeof path);
    const uint8_t zeros[8] = {0};
    for (size_t n = 0; n < 8; n++) {
        tst_write_file(path, zeros, n);
        tst_expect_refusal(path, SC_ERR_FORMAT, "too short", "short file");
    }
    size_t len;
    uint8_t *b;
    /* header length over 100 MB (checked before the file size), and absurd */
    const uint64_t huge[] = {100000001ull, 1ull << 40, UINT64_MAX, 1ull << 63};
    for (unsigned i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        b = tst_bytes(huge[i], "{}", 2, NULL, 0, &len);
        tst_write_file(path, b, len);
        free(b);
        tst_expect_refusal(path, SC_ERR_FORMAT, "over the 100000000-byte limit", "huge hlen");
    }
    /* header length beyond the file */
    const uint64_t past[] = {3, 50, 100000000};
    for (unsigned i = 0; i < sizeof past / sizeof past[0]; i++) {
        b = tst_bytes(past[i], "{}", 2, NULL, 0, &len);
        tst_write_file(path, b, len);
        free(b);
        tst_expect_refusal(path, SC_ERR_FORMAT, "runs past the end of the file", "past hlen");
    }
    /* a header length one short cuts the JSON */
    b = tst_bytes(1, "{}", 2, NULL, 0, &len);
    tst_write_file(path, b, len);
    free(b);
    tst_expect_refusal(path, SC_ERR_FORMAT, "not valid JSON", "cut JSON");
}

static void test_refuse_json(void **state)
{
    tst_refuse_header(state, "", 0, "not valid JSON");
    tst_refuse_header(state, "{", 0, "not valid JSON");
    tst_refuse_header(state, "{} x", 0, "not valid JSON");
    tst_refuse_header(state, "{}{}", 0, "not valid JSON");
    tst_refuse_header(state, "{'a':1}", 0, "not valid JSON");
    tst_refuse_header(state, "{\"\xff\xfe\":{}}", 0, "not valid JSON"); /* bad UTF-8 */
    tst_refuse_header(state, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],"
                             "\"data_offsets\":[0,4]}}",
                      4, "not valid JSON"); /* NUL in a name */
    tst_refuse_header(state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
                      8, "not valid JSON"); /* duplicate name */
    tst_refuse_header(state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e400],"
                             "\"data_offsets\":[0,4]}}",
                      4, "not valid JSON");
    tst_refuse_header(state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                             "\"data_offsets\":[0,4]}}",
                      4, "not valid JSON"); /* integer too big for jansson */
    tst_refuse_header(state, "[]", 0, "not a JSON object");
    tst_refuse_header(state, "[{\"a\":1}]", 0, "not a JSON object");
    tst_refuse_header(state, "\"text\"", 0, "not valid JSON");
    /* 3000 nested arrays: refused by jansson's depth limit, not a stack overflow */
    tst_str deep = {0};
    tst_cat(&deep, "{\"a\":");
    for (int i = 0; i < 3000; i++) tst_cat(&deep, "[");
    for (int i = 0; i < 3000; i++) tst_cat(&deep, "]");
    tst_cat(&deep, "}");
    tst_refuse_header(state, deep.s, 0, "not valid JSON");
    free(deep.s);
}

static void test_refuse_entries(void **state)
{
    static const struct {
        const char *hdr;
        size_t data_len;
        const char *want;
    } cases[] = {
        {"{\"a\":1}", 0, "tensor a is not an object"},
        {"{\"a\":[\"F32\",[1],[0,4]]}", 4, "tensor a is not an object"},
        {"{\"a\":null}", 4, "tensor a is not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a has no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor a has no \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor a has no \"data_offsets\""},
        {"{\"a\":{}}", 4, "tensor a has no \"dtype\""},
        {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor a: \"dtype\" is not a string"},
        {"{\"a\":{\"dtype\":null,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor a: \"dtype\" is not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
         "tensor a: \"shape\" is not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
         "tensor a: \"shape\" is not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         "tensor a: shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4,
         "tensor a: shape[1] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "tensor a: shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4,
         "tensor a: shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
         "tensor a: shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4,
         "tensor a: shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "tensor a has 9 dims (at most 8)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
         "\"data_offsets\":[0,4]}}",
         4, "tensor a: shape [4294967296, 4294967296, 4] has too many elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952,2],\"data_offsets\":[0,4]}}",
         4, "tensor a: shape [2305843009213693952, 2] has too many elements"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[9223372036854775807],\"data_offsets\":[0,8]}}",
         8, "has too many elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "tensor a: \"data_offsets\" is not [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
         "tensor a: \"data_offsets\" is not [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.0,4]}}", 4,
         "tensor a: \"data_offsets\" is not [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4,
         "tensor a: \"data_offsets\" is not [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"0\":4}}}", 4,
         "tensor a: \"data_offsets\" is not [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         "tensor a: data_offsets [-4, 0] are invalid"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
         "tensor a: data_offsets [8, 4] are invalid"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
         "tensor a: data_offsets [0, 4] hold 4 bytes, but F32 [2] needs 8"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24,
         "tensor a: data_offsets [0, 24] hold 24 bytes, but F16 [2, 3] needs 12"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4,
         "hold 4 bytes, but U8 [3] needs 3"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 4,
         "hold 0 bytes, but F32 [] needs 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
         "tensor a: data_offsets [0, 8] run past the data section (4 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[5,5]}}", 4,
         "run past the data section (4 bytes)"},
        {"{\"a\":{\"dtype\":\"WEIRD\",\"shape\":[2],\"data_offsets\":[0,9]}}", 8,
         "run past the data section (8 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,"
         "9223372036854775804]}}",
         4, "run past the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensors a [0, 8] and b [4, 12] overlap"},
        {"{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, "tensors a [0, 8] and b [0, 8] overlap"},
        {"{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"after\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
         "\"inside\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         20, "tensors big [0, 16] and inside [8, 12] overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
         "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
         16, "tensors a [0, 16] and b [4, 8] overlap"},
        {"{\"__metadata__\":\"x\"}", 0, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":null}", 0, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "\"__metadata__\" value of k is not a string"},
        {"{\"__metadata__\":{\"ok\":\"v\",\"k\":null}}", 0,
         "\"__metadata__\" value of k is not a string"},
        {"{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}", 0,
         "\"__metadata__\" value of k is not a string"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tst_refuse_header(state, cases[i].hdr, cases[i].data_len, cases[i].want);
}

static void test_refuse_io(void **state)
{
    char path[256];
    test_dir_path(state, "does-not-exist.safetensors", path, sizeof path);
    tst_expect_refusal(path, SC_ERR_IO, "No such file or directory", "missing file");
    sc_error err = {0};
    st_file *f = NULL;
    assert_int_equal(st_open(path, &f, &err), SC_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    const test_dir *d = *state;
    tst_expect_refusal(d->path, SC_ERR_IO, "not a regular file", "directory");
    test_dir_path(state, "no-such-dir/x.safetensors", path, sizeof path);
    tst_expect_refusal(path, SC_ERR_IO, "cannot open", "missing directory");
}

/* ---- damaged files ------------------------------------------------------------------------ */

/* A valid file of three dtypes and metadata, packed tightly (the last tensor ends the file). */
static uint8_t *tst_sample_file(size_t *len)
{
    static const float v[6] = {1, -2, 0.5f, 3, 1e-3f, -7};
    static const uint16_t h[4] = {0x3C00, 0x7BFF, 0x0001, 0xC000};
    static uint8_t fb[24], hb[8];
    tst_f32_le(fb, v, 6);
    tst_u16_le(hb, h, 4);
    tst_spec sp[] = {{"net.w", "F32", 2, {2, 3}, fb, 24},
                     {"net.h", "F16", 1, {4}, hb, 8},
                     {"net.e", "BF16", 2, {2, 2}, hb, 8}};
    return tst_pack(sp, 3, "{\"format\":\"pt\"}", -1, len);
}

/* Everything an opened file offers must be readable; valgrind checks the reads. */
static void tst_touch(const st_file *f, size_t file_len)
{
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        assert_ptr_equal(st_find(f, t->name), t);
        assert_true(t->nbytes <= file_len);
        assert_true(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        if (t->dtype == ST_OTHER || t->dtype == ST_I32 || t->dtype == ST_I64) continue;
        float *out = malloc(sizeof(float) * ((size_t)t->count + 1));
        assert_non_null(out);
        sc_error err = {0};
        assert_int_equal(st_to_f32(t, out, &err), SC_OK);
        free(out);
        const st_tensor *e = NULL;
        assert_int_equal(st_expect(f, t->name, t->ndim, t->shape, &e, &err), SC_OK);
    }
    (void)st_metadata(f, "format");
}

static void test_every_truncated_prefix(void **state)
{
    char path[256];
    test_dir_path(state, "prefix.safetensors", path, sizeof path);
    size_t len;
    uint8_t *b = tst_sample_file(&len);
    tst_write_file(path, b, len);
    st_file *f = tst_open_ok(path);
    assert_int_equal(st_count(f), 3);
    tst_touch(f, len);
    st_close(f);
    for (size_t n = 0; n < len; n++) {
        tst_write_file(path, b, n);
        f = (st_file *)(uintptr_t)1;
        sc_error err = {0};
        int rc = st_open(path, &f, &err);
        if (rc != SC_ERR_FORMAT) fail_msg("prefix of %zu/%zu bytes: rc %d (%s)", n, len, rc,
                                          err.msg);
        assert_null(f);
    }
    free(b);
}

/* Every single-byte flip of the prefix and header with a few masks, then random multi-byte
 * flips: st_open either refuses with SC_ERR_FORMAT or gives a file that is safe to read. */
static void test_header_byte_flips(void **state)
{
    char path[256];
    test_dir_path(state, "flip.safetensors", path, sizeof path);
    size_t len;
    uint8_t *b = tst_sample_file(&len);
    size_t hend = 8 + (size_t)b[0] + ((size_t)b[1] << 8); /* prefix + header */
    uint8_t *c = malloc(len);
    assert_non_null(c);
    int opened = 0, refused = 0;
    const uint8_t masks[] = {0x01, 0x02, 0x10, 0x20, 0x80, 0xff};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int rounds = (int)(hend * sizeof masks) + 2000;
    for (int r = 0; r < rounds; r++) {
        memcpy(c, b, len);
        if (r < (int)(hend * sizeof masks)) {
            c[(size_t)r / sizeof masks] ^= masks[(size_t)r % sizeof masks];
        } else {
            int nflip = 1 + (int)(tst_rand(&rng) % 4);
            for (int k = 0; k < nflip; k++) {
                size_t pos = (size_t)(tst_rand(&rng) % hend);
                uint8_t x = (uint8_t)tst_rand(&rng);
                c[pos] ^= x ? x : 1;
            }
        }
        tst_write_file(path, c, len);
        st_file *f = NULL;
        sc_error err = {0};
        int rc = st_open(path, &f, &err);
        if (rc == SC_OK) {
            opened++;
            tst_touch(f, len);
            st_close(f);
        } else {
            if (rc != SC_ERR_FORMAT) fail_msg("round %d: rc %d (%s)", r, rc, err.msg);
            assert_null(f);
            assert_true(err.msg[0] != '\0');
            refused++;
        }
    }
    assert_true(refused > 0);
    assert_true(opened > 0); /* some flips only change a name or a metadata value */
    free(c);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_roundtrip),
        cmocka_unit_test(test_f16_values),
        cmocka_unit_test(test_f16_every_value),
        cmocka_unit_test(test_bf16_every_value),
        cmocka_unit_test(test_f64_rounding),
        cmocka_unit_test(test_other_dtypes),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_find_200),
        cmocka_unit_test(test_expect_messages),
        cmocka_unit_test(test_zero_tensors),
        cmocka_unit_test(test_lenient_layouts),
        cmocka_unit_test(test_refuse_short_and_lengths),
        cmocka_unit_test(test_refuse_json),
        cmocka_unit_test(test_refuse_entries),
        cmocka_unit_test(test_refuse_io),
        cmocka_unit_test(test_every_truncated_prefix),
        cmocka_unit_test(test_header_byte_flips),
    };
    return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
