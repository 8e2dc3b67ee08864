/* Unit tests for engine/npy.c: round trips, the exact bytes numpy.save writes, hand-written
 * headers (format 2.0/3.0, big-endian, odd spacing), refusals with their codes, and, when
 * /usr/bin/python3 has numpy, files exchanged with numpy itself in a mkdtemp directory. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"

/* ---- helpers ------------------------------------------------------------------------------ */


static void tnpy_write_bytes(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A hand-made .npy: magic, version major.0, header length (2 bytes for 1.0, else 4), the dict
 * text (padded with spaces and '\n' to a multiple of 64 when pad is set), then data.
 * Returns a malloc'd buffer of *len bytes. */
static uint8_t *tnpy_make(int major, const char *dict, bool pad, const void *data,
                          size_t data_len, size_t *len)
{
    size_t dl = strlen(dict);
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = dl;
    if (pad) hlen += 64 - (pre + dl + 1) % 64 + 1;
    uint8_t *b = malloc(pre + hlen + data_len + 1);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    if (major != 1) b[10] = (uint8_t)(hlen >> 16), b[11] = (uint8_t)(hlen >> 24);
    memcpy(b + pre, dict, dl);
    if (pad) {
        memset(b + pre + dl, ' ', hlen - dl - 1);
        b[pre + hlen - 1] = '\n';
    }
    if (data_len) memcpy(b + pre + hlen, data, data_len);
    *len = pre + hlen + data_len;
    return b;
}

/* Little-endian / big-endian bytes of floats and doubles. */
static void tnpy_f32_bytes(uint8_t *dst, const float *v, size_t n, bool big)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) dst[i * 4 + (big ? 3 - k : k)] = (uint8_t)(u >> (8 * k));
    }
}

static void tnpy_f64_bytes(uint8_t *dst, const double *v, size_t n, bool big)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        for (int k = 0; k < 8; k++) dst[i * 8 + (big ? 7 - k : k)] = (uint8_t)(u >> (8 * k));
    }
}

/* Reads buf expecting code; on success checks nothing else.  Returns the error message. */
static void tnpy_expect(const uint8_t *buf, size_t len, int code, const char *msg_part)
{
    sc_array a;
    sc_error err = {0};
    int rc = npy_read_mem(buf, len, 0, &a, &err);
    if (rc != code) fail_msg("rc %d, want %d (%s)", rc, code, err.msg);
    if (code != SC_OK) {
        assert_int_equal(err.code, code);
        assert_null(a.data);
        assert_int_equal(a.ndim, 0);
        assert_int_equal(a.count, 0);
        if (msg_part && !strstr(err.msg, msg_part))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg_part);
    }
    npy_free(&a);
}

static void tnpy_expect_dict(const char *dict, int code, const char *msg_part)
{
    uint8_t data[64] = {0};
    size_t len;
    uint8_t *b = tnpy_make(1, dict, true, data, sizeof data, &len);
    tnpy_expect(b, len, code, msg_part);
    free(b);
}

static int64_t tnpy_count(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip_f32_shapes(void **state)
{
    (void)state;
    static const int64_t shapes[][NPY_MAX_DIMS] = {
        {0}, {5}, {3, 4}, {2, 3, 4}, {1, 1, 1, 1, 1, 1, 1, 2}, {0}, {2, 0, 3}, {1}, {7, 1},
    };
    static const int ndims[] = {0, 1, 2, 3, 8, 1, 3, 1, 2};
    for (size_t s = 0; s < sizeof ndims / sizeof ndims[0]; s++) {
        int nd = ndims[s];
        int64_t n = tnpy_count(nd, shapes[s]);
        float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
        assert_non_null(v);
        for (int64_t i = 0; i < n; i++) v[i] = (float)i / 7.0f - 1.25f;

        uint8_t *buf = NULL;
        size_t len = 0;
        sc_error err = {0};
        assert_int_equal(npy_write_f32_mem(v, nd, shapes[s], &buf, &len, &err), SC_OK);
        assert_int_equal((len - (size_t)n * 4) % 64, 0); /* data starts 64-aligned */

        sc_array a;
        assert_int_equal(npy_read_mem(buf, len, 0, &a, &err), SC_OK);
        assert_int_equal(a.ndim, nd);
        assert_int_equal(a.count, n);
        assert_int_equal(a.source_is_f64, 0);
        assert_non_null(a.data);
        for (int d = 0; d < nd; d++) assert_int_equal(a.shape[d], shapes[s][d]);
        for (int64_t i = 0; i < n; i++) assert_true(a.data[i] == (double)v[i]);
        npy_free(&a);
        free(buf);
        free(v);
    }
}

static void test_roundtrip_f64_special_values(void **state)
{
    (void)state;
    const double v[8] = {0.1, -0.0, INFINITY, -INFINITY, NAN, 4.9e-324, 1.7976931348623157e308,
                         -3.0};
    const int64_t shape[2] = {2, 4};
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error err = {0};
    assert_int_equal(npy_write_f64_mem(v, 2, shape, &buf, &len, &err), SC_OK);
    sc_array a;
    assert_int_equal(npy_read_mem(buf, len, 0, &a, &err), SC_OK);
    assert_int_equal(a.source_is_f64, 1);
    assert_int_equal(a.count, 8);
    assert_memory_equal(a.data, v, sizeof v); /* bit for bit, NaN and -0 included */
    npy_free(&a);
    free(buf);

    /* float32 specials widen exactly. */
    const float f[5] = {1e-45f, -0.0f, INFINITY, 3.4028235e38f, 0.1f};
    const int64_t n5 = 5;
    assert_int_equal(npy_write_f32_mem(f, 1, &n5, &buf, &len, &err), SC_OK);
    assert_int_equal(npy_read_mem(buf, len, 0, &a, &err), SC_OK);
    for (int i = 0; i < 5; i++) {
        double w = f[i];
        assert_memory_equal(&a.data[i], &w, sizeof w);
    }
    npy_free(&a);
    free(buf);
}

static void test_roundtrip_file(void **state)
{
    char path[256];
    test_dir_path(state, "rt.npy", path, sizeof path);
    enum { N = 3000 }; /* several of the writer's 4 KiB chunks */
    double *v = malloc(sizeof(double) * N);
    float *f = malloc(sizeof(float) * N);
    assert_non_null(v);
    assert_non_null(f);
    for (int i = 0; i < N; i++) v[i] = sin(i * 0.01) * 1e3, f[i] = (float)v[i];
    const int64_t shape[3] = {10, 30, 10};
    sc_error err = {0};
    sc_array a;

    assert_int_equal(npy_write_f64_file(path, v, 3, shape, &err), SC_OK);
    assert_int_equal(npy_read_file(path, N, &a, &err), SC_OK);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[1], 30);
    assert_int_equal(a.source_is_f64, 1);
    assert_memory_equal(a.data, v, sizeof(double) * N);
    npy_free(&a);

    assert_int_equal(npy_write_f32_file(path, f, 3, shape, &err), SC_OK);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_OK);
    assert_int_equal(a.source_is_f64, 0);
    for (int i = 0; i < N; i++) assert_true(a.data[i] == (double)f[i]);
    npy_free(&a);

    /* The file is byte-identical to the memory encoding. */
    uint8_t *mem = NULL;
    size_t len = 0;
    assert_int_equal(npy_write_f32_mem(f, 3, shape, &mem, &len, &err), SC_OK);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    uint8_t *disk = malloc(len + 1);
    assert_non_null(disk);
    assert_int_equal(fread(disk, 1, len + 1, fp), len);
    fclose(fp);
    assert_memory_equal(disk, mem, len);
    free(disk);
    free(mem);

    /* 0-d through a file. */
    const float one = 1.5f;
    assert_int_equal(npy_write_f32_file(path, &one, 0, NULL, &err), SC_OK);
    assert_int_equal(npy_read_file(path, 1, &a, &err), SC_OK);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    assert_true(a.data[0] == 1.5);
    npy_free(&a);
    free(v);
    free(f);
}

/* The bytes numpy 1.24's np.save writes: dict, 21 - len(str(shape[0])) spare spaces, padding,
 * '\n', with data at a multiple of 64. */
static void test_header_bytes_exact(void **state)
{
    (void)state;
    struct {
        int ndim;
        int64_t shape[2];
        int f64;
        const char *dict;
        size_t total;
    } cases[] = {
        {2, {3, 4}, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 128},
        {1, {5, 0}, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", 128},
        {0, {0, 0}, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 128},
        {2, {1234567, 0}, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1234567, 0), }",
         128},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t n = tnpy_count(cases[k].ndim, cases[k].shape);
        double *zeros = calloc((size_t)(n ? n : 1), sizeof(double));
        assert_non_null(zeros);
        uint8_t *buf = NULL;
        size_t len = 0;
        sc_error err = {0};
        int rc = cases[k].f64
                     ? npy_write_f64_mem(zeros, cases[k].ndim, cases[k].shape, &buf, &len, &err)
                     : npy_write_f32_mem((const float *)zeros, cases[k].ndim, cases[k].shape,
                                         &buf, &len, &err);
        assert_int_equal(rc, SC_OK);
        size_t total = cases[k].total;
        assert_int_equal(len, total + (size_t)n * (cases[k].f64 ? 8 : 4));
        assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
        assert_int_equal(buf[8] | buf[9] << 8, total - 10);

        char want[256];
        size_t dl = strlen(cases[k].dict);
        memcpy(want, cases[k].dict, dl);
        memset(want + dl, ' ', total - 10 - dl - 1);
        want[total - 11] = '\n';
        /* The spare space for shape[0] is part of the padding run, so it is enough that the
         * dict is followed only by spaces and a final newline. */
        assert_memory_equal(buf + 10, want, total - 10);
        free(buf);
        free(zeros);
    }
}

/* ---- hand-written headers ------------------------------------------------------------------- */

static void test_version_2_and_3(void **state)
{
    (void)state;
    const double v[3] = {1.0, -2.5, 1e-300};
    uint8_t data[24];
    tnpy_f64_bytes(data, v, 3, false);
    for (int major = 2; major <= 3; major++) {
        size_t len;
        uint8_t *b = tnpy_make(major, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                               true, data, sizeof data, &len);
        sc_array a;
        sc_error err = {0};
        assert_int_equal(npy_read_mem(b, len, 0, &a, &err), SC_OK);
        assert_int_equal(a.ndim, 1);
        assert_int_equal(a.shape[0], 3);
        assert_memory_equal(a.data, v, sizeof v);
        npy_free(&a);
        free(b);
    }
}

static void test_big_endian(void **state)
{
    (void)state;
    const float f[6] = {1.0f, -2.0f, 0.1f, 3.5e-40f, 1e30f, -0.0f};
    uint8_t data[48];
    tnpy_f32_bytes(data, f, 6, true);
    size_t len;
    uint8_t *b = tnpy_make(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", true,
                           data, 24, &len);
    sc_array a;
    sc_error err = {0};
    assert_int_equal(npy_read_mem(b, len, 0, &a, &err), SC_OK);
    assert_int_equal(a.source_is_f64, 0);
    for (int i = 0; i < 6; i++) {
        double w = f[i];
        assert_memory_equal(&a.data[i], &w, sizeof w);
    }
    npy_free(&a);
    free(b);

    const double d[2] = {3.141592653589793, -1e-310};
    tnpy_f64_bytes(data, d, 2, true);
    b = tnpy_make(2, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", true, data, 16,
                  &len);
    assert_int_equal(npy_read_mem(b, len, 0, &a, &err), SC_OK);
    assert_int_equal(a.source_is_f64, 1);
    assert_memory_equal(a.data, d, sizeof d);
    npy_free(&a);
    free(b);
}

static void test_header_variants(void **state)
{
    (void)state;
    static const struct {
        const char *dict;
        bool pad;
        int ndim;
        int64_t shape[3];
    } ok[] = {
        {"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", true, 2, {2, 3, 0}},
        {"{'fortran_order': False, 'descr': '<f4', 'shape': (2, 3,), }", true, 2, {2, 3, 0}},
        {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (6,)}", true, 1, {6, 0, 0}},
        {"  {  'descr' :'<f4' ,'fortran_order':False,'shape':( 1 , 2 , 3 ) , }  ", true, 3,
         {1, 2, 3}},
        {"{'descr': '<f4',\n\t'fortran_order': False,\n\t'shape': (6L,),}", true, 1, {6, 0, 0}},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", true, 2, {2, 3, 0}},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", false, 1, {6, 0, 0}},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", true, 0, {0, 0, 0}},
    };
    float v[6];
    for (int i = 0; i < 6; i++) v[i] = (float)i * 0.5f;
    uint8_t data[24];
    tnpy_f32_bytes(data, v, 6, false);
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        size_t len;
        uint8_t *b = tnpy_make(1, ok[k].dict, ok[k].pad, data, sizeof data, &len);
        sc_array a;
        sc_error err = {0};
        int rc = npy_read_mem(b, len, 0, &a, &err);
        if (rc != SC_OK) fail_msg("dict %zu (%s): %s", k, ok[k].dict, err.msg);
        assert_int_equal(a.ndim, ok[k].ndim);
        for (int d = 0; d < ok[k].ndim; d++) assert_int_equal(a.shape[d], ok[k].shape[d]);
        for (int64_t i = 0; i < a.count; i++) assert_true(a.data[i] == (double)v[i]);
        npy_free(&a);
        free(b);
    }
}

/* ---- refusals -------------------------------------------------------------------------------- */

static void test_refuse_fortran_order(void **state)
{
    (void)state;
    tnpy_expect_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", SC_ERR_FORMAT,
                     "fortran_order");
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': True, 'shape': (4,), }", SC_ERR_FORMAT,
                     "fortran_order");
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': 1, 'shape': (4,), }", SC_ERR_FORMAT,
                     "fortran_order");
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': Falsey, 'shape': (4,), }",
                     SC_ERR_FORMAT, "fortran_order");
}

static void test_refuse_dtypes(void **state)
{
    (void)state;
    tnpy_expect_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", SC_ERR_FORMAT,
                     "'<i4'");
    tnpy_expect_dict("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", SC_ERR_FORMAT,
                     "'|u1'");
    tnpy_expect_dict("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", SC_ERR_FORMAT,
                     "'<f2'");
    tnpy_expect_dict("{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", SC_ERR_FORMAT,
                     "'<c16'");
    tnpy_expect_dict("{'descr': '<f4 ', 'fortran_order': False, 'shape': (2,), }", SC_ERR_FORMAT,
                     "dtype");
    tnpy_expect_dict("{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, "
                     "'shape': (2,), }",
                     SC_ERR_FORMAT, "[('x', '<f4'), ('y', '<f4')]");
}

static void test_refuse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }",    /* int, not a tuple */
        "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3,,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }",
        "{'descr': '<f4', 'fortran_order': False, }",                  /* missing key */
        "{'descr': '<f4', 'shape': (2,), }",
        "{'fortran_order': False, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",      /* unclosed dict */
        "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
        "'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
        "{descr: '<f4', fortran_order: False, shape: (2,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 1, 1, 1, 1, 1, 1), }",
        "",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint8_t data[64] = {0};
        size_t len;
        uint8_t *b = tnpy_make(1, bad[k], true, data, sizeof data, &len);
        sc_array a;
        sc_error err = {0};
        int rc = npy_read_mem(b, len, 0, &a, &err);
        if (rc != SC_ERR_FORMAT) fail_msg("dict %zu (%s): rc %d (%s)", k, bad[k], rc, err.msg);
        assert_null(a.data);
        free(b);
    }
    /* More than NPY_MAX_DIMS is named as such. */
    tnpy_expect_dict(bad[19], SC_ERR_FORMAT, "dimensions");
}

static void test_refuse_bad_prefix(void **state)
{
    (void)state;
    uint8_t data[8] = {0};
    size_t len;
    uint8_t *b = tnpy_make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", true,
                           data, sizeof data, &len);
    tnpy_expect(b, len, SC_OK, NULL);

    b[1] = 'n'; /* bad magic */
    tnpy_expect(b, len, SC_ERR_FORMAT, "magic");
    b[1] = 'N';
    b[6] = 4; /* version 4.0 */
    tnpy_expect(b, len, SC_ERR_FORMAT, "version 4.0");
    b[6] = 0;
    tnpy_expect(b, len, SC_ERR_FORMAT, "version");
    b[6] = 1;
    b[7] = 1; /* version 1.1 */
    tnpy_expect(b, len, SC_ERR_FORMAT, "version");
    b[7] = 0;
    b[9] = 0x7f; /* header length past the end */
    tnpy_expect(b, len, SC_ERR_FORMAT, "truncated");
    free(b);

    const char *text = "just some text, long enough to have a prefix";
    tnpy_expect((const uint8_t *)text, strlen(text), SC_ERR_FORMAT, "magic");
    tnpy_expect(NULL, 0, SC_ERR_FORMAT, NULL);

    /* A 2.0 header claiming 4 GiB is refused without trying to read it. */
    b = tnpy_make(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", true, data,
                  sizeof data, &len);
    b[8] = b[9] = b[10] = b[11] = 0xff;
    tnpy_expect(b, len, SC_ERR_FORMAT, "too long");
    free(b);
}

static void test_refuse_overflow(void **state)
{
    (void)state;
    tnpy_expect_dict("{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (4294967296, 4294967296), }",
                     SC_ERR_FORMAT, "overflow");
    tnpy_expect_dict("{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (4611686018427387904, 2), }",
                     SC_ERR_FORMAT, "overflow");
    tnpy_expect_dict("{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (99999999999999999999,), }",
                     SC_ERR_FORMAT, "overflow");
    /* 2^61 elements fit int64 but not 8-byte items. */
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': False, "
                     "'shape': (2305843009213693952,), }",
                     SC_ERR_FORMAT, NULL);
    /* Plausible count, absent data: truncated, without allocating. */
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000), }",
                     SC_ERR_FORMAT, "truncated");
    /* A zero dimension makes the rest irrelevant: an empty array. */
    tnpy_expect_dict("{'descr': '<f8', 'fortran_order': False, "
                     "'shape': (0, 4294967296, 4294967296), }",
                     SC_OK, NULL);
}

static void test_truncated_data(void **state)
{
    float v[12];
    for (int i = 0; i < 12; i++) v[i] = (float)i;
    const int64_t shape[2] = {3, 4};
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error err = {0};
    assert_int_equal(npy_write_f32_mem(v, 2, shape, &buf, &len, &err), SC_OK);
    tnpy_expect(buf, len - 1, SC_ERR_FORMAT, "truncated data");
    tnpy_expect(buf, len - 4, SC_ERR_FORMAT, "truncated data");

    char path[256];
    test_dir_path(state, "short.npy", path, sizeof path);
    tnpy_write_bytes(path, buf, len - 3);
    sc_array a;
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_non_null(strstr(err.msg, path));
    assert_null(a.data);

    /* Trailing bytes after the data are ignored, as numpy does. */
    uint8_t *longer = malloc(len + 5);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    memset(longer + len, 0xAB, 5);
    tnpy_expect(longer, len + 5, SC_OK, NULL);
    free(longer);
    free(buf);
}

static void test_every_truncated_prefix(void **state)
{
    const double v[5] = {1, 2, 3, 4, 5};
    const int64_t shape[1] = {5};
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error err = {0};
    assert_int_equal(npy_write_f64_mem(v, 1, shape, &buf, &len, &err), SC_OK);
    for (size_t n = 0; n < len; n++) tnpy_expect(buf, n, SC_ERR_FORMAT, NULL);
    tnpy_expect(buf, len, SC_OK, NULL);

    /* Same through files, at every length too (the file reader has its own paths). */
    char path[256];
    test_dir_path(state, "prefix.npy", path, sizeof path);
    for (size_t n = 0; n < len; n++) {
        tnpy_write_bytes(path, buf, n);
        sc_array a;
        int rc = npy_read_file(path, 0, &a, &err);
        if (rc != SC_ERR_FORMAT) fail_msg("file prefix %zu/%zu: rc %d (%s)", n, len, rc, err.msg);
        assert_null(a.data);
    }
    free(buf);
}

static void test_max_count(void **state)
{
    char path[256];
    test_dir_path(state, "max.npy", path, sizeof path);
    float v[12] = {0};
    const int64_t shape[2] = {3, 4};
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error err = {0};
    assert_int_equal(npy_write_f32_mem(v, 2, shape, &buf, &len, &err), SC_OK);
    sc_array a;
    assert_int_equal(npy_read_mem(buf, len, 11, &a, &err), SC_ERR_TOO_LARGE);
    assert_int_equal(err.code, SC_ERR_TOO_LARGE);
    assert_null(a.data);
    assert_int_equal(npy_read_mem(buf, len, 12, &a, &err), SC_OK);
    npy_free(&a);

    tnpy_write_bytes(path, buf, len);
    assert_int_equal(npy_read_file(path, 11, &a, &err), SC_ERR_TOO_LARGE);
    assert_int_equal(npy_read_file(path, 12, &a, &err), SC_OK);
    npy_free(&a);
    free(buf);

    /* The limit applies from the header, before the (absent) data is looked at. */
    uint8_t data[8] = {0};
    uint8_t *b = tnpy_make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }",
                           true, data, sizeof data, &len);
    assert_int_equal(npy_read_mem(b, len, 999999, &a, &err), SC_ERR_TOO_LARGE);
    assert_null(a.data);
    assert_int_equal(npy_read_mem(b, len, 1000000, &a, &err), SC_ERR_FORMAT); /* short data */
    free(b);
}

static void test_missing_file(void **state)
{
    char path[256];
    test_dir_path(state, "does-not-exist.npy", path, sizeof path);
    sc_array a;
    sc_error err = {0};
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_ERR_IO);
    assert_int_equal(err.code, SC_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_null(a.data);
}

static void test_write_invalid(void **state)
{
    char path[256];
    float v[4] = {0};
    const int64_t shape9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t neg[2] = {2, -2};
    const int64_t two[1] = {2};
    const int64_t huge[2] = {INT64_MAX / 2, 3};
    uint8_t *buf = (uint8_t *)v;
    size_t len = 7;
    sc_error err = {0};
    assert_int_equal(npy_write_f32_mem(v, 9, shape9, &buf, &len, &err), SC_ERR_INVALID);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(npy_write_f32_mem(v, -1, two, &buf, &len, &err), SC_ERR_INVALID);
    assert_int_equal(npy_write_f32_mem(v, 2, neg, &buf, &len, &err), SC_ERR_INVALID);
    assert_int_equal(npy_write_f32_mem(NULL, 1, two, &buf, &len, &err), SC_ERR_INVALID);
    assert_int_equal(npy_write_f64_mem((const double *)v, 1, NULL, &buf, &len, &err),
                     SC_ERR_INVALID);
    assert_int_equal(npy_write_f64_mem((const double *)v, 2, huge, &buf, &len, &err),
                     SC_ERR_TOO_LARGE);
    assert_int_equal(npy_write_f32_mem(v, 1, two, NULL, &len, &err), SC_ERR_INVALID);

    /* NULL data is fine for an empty array. */
    const int64_t empty[2] = {0, 5};
    assert_int_equal(npy_write_f32_mem(NULL, 2, empty, &buf, &len, &err), SC_OK);
    sc_array a;
    assert_int_equal(npy_read_mem(buf, len, 0, &a, &err), SC_OK);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.shape[1], 5);
    assert_non_null(a.data);
    npy_free(&a);
    free(buf);

    test_dir_path(state, "no-such-dir/x.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, v, 1, two, &err), SC_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    test_dir_path(state, "bad-args.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, v, 2, neg, &err), SC_ERR_INVALID);
    assert_int_equal(access(path, F_OK), -1); /* nothing created for bad arguments */
}

/* A write that fails half way (file size limit, in a child process) is SC_ERR_IO naming the
 * path, and the partial file is removed. */
static void test_write_failure_removes_partial_file(void **state)
{
    char path[256];
    test_dir_path(state, "partial.npy", path, sizeof path);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG from write() instead of being killed */
        struct rlimit rl = {1000, 1000};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        enum { N = 10000 };
        float *v = calloc(N, sizeof *v);
        if (!v) _exit(3);
        const int64_t shape[1] = {N};
        sc_error err = {0};
        int rc = npy_write_f32_file(path, v, 1, shape, &err);
        free(v);
        _exit(rc == SC_ERR_IO && access(path, F_OK) != 0 && strstr(err.msg, path) ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_free_zeroed(void **state)
{
    (void)state;
    sc_array a;
    memset(&a, 0, sizeof a);
    npy_free(&a);
    npy_free(&a);
    npy_free(NULL);
    assert_null(a.data);
}

/* ---- numpy itself ---------------------------------------------------------------------------- */

static bool tnpy_have_numpy(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    fflush(stdout);
    return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

static const char tnpy_script[] =
    "import io, sys\n"
    "import numpy as np\n"
    "d = sys.argv[1]\n"
    "def check(name, want):\n"
    "    got = np.load(d + '/' + name)\n"
    "    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)\n"
    "    assert np.array_equal(got, want), name\n"
    "    b = io.BytesIO()\n"
    "    np.save(b, want)\n"
    "    assert b.getvalue() == open(d + '/' + name, 'rb').read(), name + ': bytes differ'\n"
    "check('c_f32.npy', (np.arange(12, dtype=np.float32) / np.float32(7)).reshape(3, 4))\n"
    "check('c_f64.npy', (np.arange(30) / 3.0).reshape(2, 3, 5))\n"
    "check('c_0d.npy', np.array(1.5, dtype=np.float32))\n"
    "check('c_1d.npy', np.arange(7) * 0.1)\n"
    "check('c_empty.npy', np.zeros((2, 0), dtype=np.float32))\n"
    "check('c_long.npy', np.arange(1000, dtype=np.float32).reshape(1000, 1))\n"
    "a = (np.arange(24, dtype=np.float32) / np.float32(7)).reshape(2, 3, 4)\n"
    "np.save(d + '/py_f32.npy', a)\n"
    "np.save(d + '/py_f64_be.npy', (np.arange(6) / 3.0).astype('>f8'))\n"
    "np.save(d + '/py_0d.npy', np.float64(2.5))\n"
    "with open(d + '/py_v2.npy', 'wb') as f:\n"
    "    np.lib.format.write_array(f, np.linspace(0, 1, 5), version=(2, 0))\n"
    "with open(d + '/py_v3.npy', 'wb') as f:\n"
    "    np.lib.format.write_array(f, np.linspace(0, 1, 5).astype('<f4'), version=(3, 0))\n"
    "np.save(d + '/py_fortran.npy', np.asfortranarray(np.ones((2, 3))))\n"
    "np.save(d + '/py_i4.npy', np.arange(3, dtype='<i4'))\n";

static void test_numpy_interop(void **state)
{
    if (!tnpy_have_numpy()) return; /* no numpy here: nothing to compare against */
    const test_dir *dir = *state;
    char path[256];
    sc_error err = {0};

    float f34[12];
    for (int i = 0; i < 12; i++) f34[i] = (float)i / 7.0f;
    const int64_t s34[2] = {3, 4};
    test_dir_path(state, "c_f32.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, f34, 2, s34, &err), SC_OK);

    double d235[30];
    for (int i = 0; i < 30; i++) d235[i] = i / 3.0;
    const int64_t s235[3] = {2, 3, 5};
    test_dir_path(state, "c_f64.npy", path, sizeof path);
    assert_int_equal(npy_write_f64_file(path, d235, 3, s235, &err), SC_OK);

    const float half = 1.5f;
    test_dir_path(state, "c_0d.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, &half, 0, NULL, &err), SC_OK);

    double d7[7];
    for (int i = 0; i < 7; i++) d7[i] = i * 0.1;
    const int64_t s7[1] = {7};
    test_dir_path(state, "c_1d.npy", path, sizeof path);
    assert_int_equal(npy_write_f64_file(path, d7, 1, s7, &err), SC_OK);

    const int64_t s20[2] = {2, 0};
    test_dir_path(state, "c_empty.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, NULL, 2, s20, &err), SC_OK);

    float f1000[1000];
    for (int i = 0; i < 1000; i++) f1000[i] = (float)i;
    const int64_t s1000[2] = {1000, 1};
    test_dir_path(state, "c_long.npy", path, sizeof path);
    assert_int_equal(npy_write_f32_file(path, f1000, 2, s1000, &err), SC_OK);

    test_dir_path(state, "check.py", path, sizeof path);
    tnpy_write_bytes(path, (const uint8_t *)tnpy_script, sizeof tnpy_script - 1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", path, dir->path);
    fflush(stdout);
    assert_int_equal(system(cmd), 0); /* numpy loads ours, equal values, identical bytes */

    /* Files numpy wrote, read by us. */
    sc_array a;
    test_dir_path(state, "py_f32.npy", path, sizeof path);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_OK);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.shape[2], 4);
    assert_int_equal(a.source_is_f64, 0);
    for (int i = 0; i < 24; i++) assert_true(a.data[i] == (double)((float)i / 7.0f));
    npy_free(&a);

    test_dir_path(state, "py_f64_be.npy", path, sizeof path);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_OK);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.count, 6);
    assert_int_equal(a.source_is_f64, 1);
    for (int i = 0; i < 6; i++) assert_true(a.data[i] == i / 3.0);
    npy_free(&a);

    test_dir_path(state, "py_0d.npy", path, sizeof path);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_OK);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    assert_true(a.data[0] == 2.5);
    npy_free(&a);

    const char *versioned[2] = {"py_v2.npy", "py_v3.npy"};
    for (int k = 0; k < 2; k++) {
        test_dir_path(state, versioned[k], path, sizeof path);
        assert_int_equal(npy_read_file(path, 0, &a, &err), SC_OK);
        assert_int_equal(a.count, 5);
        assert_int_equal(a.source_is_f64, k == 0);
        for (int i = 0; i < 5; i++) assert_true(a.data[i] == i * 0.25);
        npy_free(&a);
    }

    test_dir_path(state, "py_fortran.npy", path, sizeof path);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "fortran_order"));
    test_dir_path(state, "py_i4.npy", path, sizeof path);
    assert_int_equal(npy_read_file(path, 0, &a, &err), SC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "<i4"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_f32_shapes),
        cmocka_unit_test(test_roundtrip_f64_special_values),
        cmocka_unit_test(test_roundtrip_file),
        cmocka_unit_test(test_header_bytes_exact),
        cmocka_unit_test(test_version_2_and_3),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_header_variants),
        cmocka_unit_test(test_refuse_fortran_order),
        cmocka_unit_test(test_refuse_dtypes),
        cmocka_unit_test(test_refuse_malformed),
        cmocka_unit_test(test_refuse_bad_prefix),
        cmocka_unit_test(test_refuse_overflow),
        cmocka_unit_test(test_truncated_data),
        cmocka_unit_test(test_every_truncated_prefix),
        cmocka_unit_test(test_max_count),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_write_invalid),
        cmocka_unit_test(test_write_failure_removes_partial_file),
        cmocka_unit_test(test_free_zeroed),
        cmocka_unit_test(test_numpy_interop),
    };
    return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
