/* Unit tests for engine/image.c: PNG round trips, PNG variants written here with libpng itself,
 * refusal of 16-bit / corrupt / truncated / oversized input, float<->u8 conversion and grids.
 * Files go to a fresh mkdtemp directory that the group teardown removes. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <png.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image.h"

/* ---- helpers ------------------------------------------------------------------------------ */


/* Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
static void timg_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        p[i] = (uint8_t)(s >> 24);
    }
}

/* A PNG the test describes chunk by chunk, encoded with libpng directly (independent of
 * image_write_png_*).  rows: packed rows as libpng expects for bit_depth / color_type. */
typedef struct timg_spec {
    int width, height, bit_depth, color_type, interlace;
    const uint8_t *rows;         /* height rows of `stride` bytes */
    size_t stride;
    const png_color *palette;    /* PLTE, or NULL */
    int npalette;
    const uint8_t *trans_alpha;  /* tRNS for palettes, or NULL */
    int ntrans;
    const png_color_16 *trans_color; /* tRNS for gray / RGB, or NULL */
} timg_spec;

typedef struct timg_buf {
    uint8_t *data;
    size_t len, cap;
} timg_buf;

static void timg_write_cb(png_structp png, png_bytep data, size_t n)
{
    timg_buf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void timg_flush_cb(png_structp png)
{
    (void)png;
}

static void timg_encode_spec(const timg_spec *s, timg_buf *out)
{
    memset(out, 0, sizeof *out);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    assert_non_null(png);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fail_msg("libpng failed to encode the test PNG");
    }
    png_set_write_fn(png, out, timg_write_cb, timg_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->bit_depth,
                 s->color_type, s->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->npalette);
    if (s->trans_alpha || s->trans_color)
        png_set_tRNS(png, info, s->trans_alpha, s->ntrans, s->trans_color);
    png_write_info(png, info);
    int passes = s->interlace == PNG_INTERLACE_ADAM7 ? png_set_interlace_handling(png) : 1;
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->height; y++) png_write_row(png, s->rows + (size_t)y * s->stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
}

/* Standard CRC-32 (as in PNG chunks), bit by bit. */
static uint32_t timg_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void timg_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A valid 8-bit RGB PNG of w x h from image_write_png_mem; caller frees. */
static uint8_t *timg_sample_png(int w, int h, size_t *len)
{
    uint8_t *pix = malloc((size_t)w * h * 3);
    assert_non_null(pix);
    timg_fill(pix, (size_t)w * h * 3, 42);
    uint8_t *png = NULL;
    sc_error err = {0};
    assert_int_equal(image_write_png_mem(pix, w, h, 3, &png, len, &err), SC_OK);
    free(pix);
    return png;
}

static void timg_assert_zeroed(const sc_image *img)
{
    assert_null(img->pixels);
    assert_null(img->alpha);
    assert_int_equal(img->width, 0);
    assert_int_equal(img->height, 0);
    assert_int_equal(img->channels, 0);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void timg_roundtrip(int w, int h, int channels, uint32_t seed)
{
    size_t n = (size_t)w * h * channels;
    uint8_t *pix = malloc(n);
    assert_non_null(pix);
    timg_fill(pix, n, seed);

    uint8_t *png = NULL;
    size_t len = 0;
    sc_error err = {0};
    assert_int_equal(image_write_png_mem(pix, w, h, channels, &png, &len, &err), SC_OK);
    assert_non_null(png);
    assert_true(len > 8);

    sc_image img;
    int rc = image_read_png_mem(png, len, 0, &img, &err);
    assert_int_equal(rc, SC_OK);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
    int colour = channels == 4 ? 3 : channels;
    assert_int_equal(img.channels, colour);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        for (int c = 0; c < colour; c++)
            assert_int_equal(img.pixels[i * colour + c], pix[i * channels + c]);
    }
    if (channels == 4) {
        assert_non_null(img.alpha);
        for (size_t i = 0; i < (size_t)w * h; i++) assert_int_equal(img.alpha[i], pix[i * 4 + 3]);
    } else {
        assert_null(img.alpha);
    }
    image_free(&img);
    timg_assert_zeroed(&img);
    free(png);
    free(pix);
}

static void test_roundtrip_gray(void **state)
{
    (void)state;
    timg_roundtrip(1, 1, 1, 1);
    timg_roundtrip(7, 5, 1, 2);
    timg_roundtrip(31, 17, 1, 3);
    timg_roundtrip(1, 33, 1, 4);
}

static void test_roundtrip_rgb(void **state)
{
    (void)state;
    timg_roundtrip(1, 1, 3, 5);
    timg_roundtrip(13, 9, 3, 6);
    timg_roundtrip(29, 3, 3, 7);
}

static void test_roundtrip_rgba(void **state)
{
    (void)state;
    timg_roundtrip(1, 1, 4, 8);
    timg_roundtrip(11, 7, 4, 9);
    timg_roundtrip(5, 23, 4, 10);
}

static void test_roundtrip_file(void **state)
{
    char path[256];
    test_dir_path(state, "rt.png", path, sizeof path);
    enum { W = 9, H = 7 };
    uint8_t pix[W * H * 3];
    timg_fill(pix, sizeof pix, 11);
    sc_error err = {0};
    assert_int_equal(image_write_png_file(path, pix, W, H, 3, &err), SC_OK);

    sc_image img;
    assert_int_equal(image_read_png_file(path, W * H, &img, &err), SC_OK);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.channels, 3);
    assert_null(img.alpha);
    assert_memory_equal(img.pixels, pix, sizeof pix);
    image_free(&img);

    /* The file holds exactly what the mem encoder produces. */
    uint8_t *mem = NULL;
    size_t len = 0;
    assert_int_equal(image_write_png_mem(pix, W, H, 3, &mem, &len, &err), SC_OK);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    uint8_t *disk = malloc(len + 1);
    assert_non_null(disk);
    assert_int_equal(fread(disk, 1, len + 1, fp), len);
    fclose(fp);
    assert_memory_equal(disk, mem, len);
    free(disk);
    free(mem);
}

/* ---- PNG variants written with libpng ------------------------------------------------------- */

static void test_palette_with_trns(void **state)
{
    (void)state;
    enum { W = 5, H = 3 };
    const png_color pal[4] = {{10, 20, 30}, {200, 0, 100}, {0, 255, 0}, {7, 8, 9}};
    const uint8_t trans[2] = {0, 128}; /* entries 2 and 3 stay opaque */
    uint8_t idx[W * H];
    for (int i = 0; i < W * H; i++) idx[i] = (uint8_t)((i * 3 + i / W) % 4);
    timg_spec s = {W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, W, pal, 4, trans, 2,
                   NULL};
    timg_buf b;
    timg_encode_spec(&s, &b);

    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 3);
    assert_non_null(img.alpha);
    for (int i = 0; i < W * H; i++) {
        const png_color *c = &pal[idx[i]];
        assert_int_equal(img.pixels[i * 3 + 0], c->red);
        assert_int_equal(img.pixels[i * 3 + 1], c->green);
        assert_int_equal(img.pixels[i * 3 + 2], c->blue);
        assert_int_equal(img.alpha[i], idx[i] < 2 ? trans[idx[i]] : 255);
    }
    image_free(&img);
    free(b.data);
}

static void test_palette_2bit_no_trns(void **state)
{
    (void)state;
    enum { W = 7, H = 3 };
    const png_color pal[3] = {{1, 2, 3}, {100, 110, 120}, {250, 251, 252}};
    /* 2-bit indices packed 4 per byte, most significant first. */
    uint8_t idx[W * H];
    uint8_t rows[H * 2] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t v = (uint8_t)((x + 2 * y) % 3);
            idx[y * W + x] = v;
            rows[y * 2 + x / 4] |= (uint8_t)(v << (6 - 2 * (x % 4)));
        }
    timg_spec s = {W, H, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, rows, 2, pal, 3, NULL, 0,
                   NULL};
    timg_buf b;
    timg_encode_spec(&s, &b);

    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 3);
    assert_null(img.alpha);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(img.pixels[i * 3 + 0], pal[idx[i]].red);
        assert_int_equal(img.pixels[i * 3 + 1], pal[idx[i]].green);
        assert_int_equal(img.pixels[i * 3 + 2], pal[idx[i]].blue);
    }
    image_free(&img);
    free(b.data);
}

static void test_gray_alpha(void **state)
{
    (void)state;
    enum { W = 6, H = 5 };
    uint8_t ga[W * H * 2];
    timg_fill(ga, sizeof ga, 21);
    timg_spec s = {W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, W * 2, NULL, 0,
                   NULL, 0, NULL};
    timg_buf b;
    timg_encode_spec(&s, &b);

    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 1);
    assert_non_null(img.alpha);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(img.pixels[i], ga[i * 2]);
        assert_int_equal(img.alpha[i], ga[i * 2 + 1]);
    }
    image_free(&img);
    free(b.data);
}

/* Gray at bit depth 1, 2, 4 expands to 0..255 by replicating bits (v * 255 / (2^bd - 1)). */
static void test_gray_low_bit_depths(void **state)
{
    (void)state;
    enum { W = 11, H = 4 };
    for (int bd = 1; bd <= 4; bd *= 2) {
        int maxv = (1 << bd) - 1;
        int per_byte = 8 / bd;
        size_t stride = (size_t)(W + per_byte - 1) / per_byte;
        uint8_t rows[H * 8] = {0};
        int vals[W * H];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x * 5 + y * 3) % (maxv + 1);
                vals[y * W + x] = v;
                int shift = 8 - bd * (x % per_byte + 1);
                rows[y * stride + x / per_byte] |= (uint8_t)(v << shift);
            }
        timg_spec s = {W, H, bd, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, rows, stride, NULL, 0,
                       NULL, 0, NULL};
        timg_buf b;
        timg_encode_spec(&s, &b);

        sc_image img;
        sc_error err = {0};
        assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
        assert_int_equal(img.width, W);
        assert_int_equal(img.channels, 1);
        assert_null(img.alpha);
        for (int i = 0; i < W * H; i++)
            assert_int_equal(img.pixels[i], vals[i] * 255 / maxv);
        image_free(&img);
        free(b.data);
    }
}

static void test_gray_and_rgb_trns_become_alpha(void **state)
{
    (void)state;
    enum { W = 4, H = 2 };
    /* 1-bit gray where value 1 (white) is transparent. */
    uint8_t bits[H] = {0xA0, 0x50}; /* row0: 1 0 1 0, row1: 0 1 0 1 */
    png_color_16 tg = {0, 0, 0, 0, 1};
    timg_spec s = {W, H, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, 1, NULL, 0, NULL, 0,
                   &tg};
    timg_buf b;
    timg_encode_spec(&s, &b);
    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 1);
    assert_non_null(img.alpha);
    const uint8_t want_px[W * H] = {255, 0, 255, 0, 0, 255, 0, 255};
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(img.pixels[i], want_px[i]);
        assert_int_equal(img.alpha[i], want_px[i] ? 0 : 255);
    }
    image_free(&img);
    free(b.data);

    /* RGB where (1,2,3) is transparent. */
    uint8_t rgb[W * H * 3];
    timg_fill(rgb, sizeof rgb, 5);
    rgb[0] = 1, rgb[1] = 2, rgb[2] = 3;
    rgb[15] = 1, rgb[16] = 2, rgb[17] = 3;
    png_color_16 tc = {0, 1, 2, 3, 0};
    timg_spec s2 = {W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb, W * 3, NULL, 0, NULL, 0,
                    &tc};
    timg_encode_spec(&s2, &b);
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 3);
    assert_non_null(img.alpha);
    assert_memory_equal(img.pixels, rgb, sizeof rgb);
    for (int i = 0; i < W * H; i++) {
        int t = rgb[i * 3] == 1 && rgb[i * 3 + 1] == 2 && rgb[i * 3 + 2] == 3;
        assert_int_equal(img.alpha[i], t ? 0 : 255);
    }
    image_free(&img);
    free(b.data);
}

static void test_interlaced(void **state)
{
    (void)state;
    enum { W = 13, H = 11 };
    uint8_t rgba[W * H * 4];
    timg_fill(rgba, sizeof rgba, 77);
    timg_spec s = {W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, rgba, W * 4, NULL, 0,
                   NULL, 0, NULL};
    timg_buf b;
    timg_encode_spec(&s, &b);

    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.channels, 3);
    assert_non_null(img.alpha);
    for (int i = 0; i < W * H; i++) {
        for (int c = 0; c < 3; c++) assert_int_equal(img.pixels[i * 3 + c], rgba[i * 4 + c]);
        assert_int_equal(img.alpha[i], rgba[i * 4 + 3]);
    }
    image_free(&img);

    /* Interlaced 8-bit gray too. */
    uint8_t gray[W * H];
    timg_fill(gray, sizeof gray, 78);
    timg_spec s2 = {W, H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, gray, W, NULL, 0, NULL, 0,
                    NULL};
    free(b.data);
    timg_encode_spec(&s2, &b);
    assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_OK);
    assert_int_equal(img.channels, 1);
    assert_memory_equal(img.pixels, gray, sizeof gray);
    image_free(&img);
    free(b.data);
}

/* ---- refusals -------------------------------------------------------------------------------- */

static void test_16bit_refused(void **state)
{
    enum { W = 3, H = 2 };
    uint8_t px16[W * H * 2 * 3];
    timg_fill(px16, sizeof px16, 3);
    const int types[2] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_RGB};
    for (int t = 0; t < 2; t++) {
        int ch = types[t] == PNG_COLOR_TYPE_GRAY ? 1 : 3;
        timg_spec s = {W, H, 16, types[t], PNG_INTERLACE_NONE, px16, (size_t)W * 2 * ch, NULL, 0,
                       NULL, 0, NULL};
        timg_buf b;
        timg_encode_spec(&s, &b);
        sc_image img;
        sc_error err = {0};
        assert_int_equal(image_read_png_mem(b.data, b.len, 0, &img, &err), SC_ERR_FORMAT);
        assert_int_equal(err.code, SC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "16-bit PNGs are not supported"));
        assert_non_null(strstr(err.msg, "8-bit"));
        timg_assert_zeroed(&img);

        /* Same through a file, where the message also names the path. */
        char path[256];
        test_dir_path(state, "sixteen.png", path, sizeof path);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
        fclose(fp);
        assert_int_equal(image_read_png_file(path, 0, &img, &err), SC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "16-bit"));
        assert_non_null(strstr(err.msg, path));
        free(b.data);
    }
}

static void test_truncated_prefixes(void **state)
{
    size_t len = 0;
    uint8_t *png = timg_sample_png(9, 7, &len);
    for (size_t n = 0; n < len; n++) {
        sc_image img;
        sc_error err = {0};
        int rc = image_read_png_mem(png, n, 0, &img, &err);
        if (rc != SC_ERR_FORMAT)
            fail_msg("prefix of %zu/%zu bytes: rc %d (%s)", n, len, rc, err.msg);
        assert_true(err.msg[0] != '\0');
        timg_assert_zeroed(&img);
    }
    /* A few prefixes through the file reader too. */
    char path[256];
    test_dir_path(state, "trunc.png", path, sizeof path);
    const size_t cuts[] = {0, 4, 8, 20, 33, len / 2, len - 12, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(png, 1, cuts[k], fp), cuts[k]);
        fclose(fp);
        sc_image img;
        sc_error err = {0};
        assert_int_equal(image_read_png_file(path, 0, &img, &err), SC_ERR_FORMAT);
        timg_assert_zeroed(&img);
    }
    free(png);
}

/* Flipping any byte of a PNG made only of IHDR, IDAT and IEND breaks a signature, a length,
 * a chunk name or a CRC, so every copy must be refused; libpng must print nothing. */
static void test_byte_flips(void **state)
{
    size_t len = 0;
    uint8_t *png = timg_sample_png(8, 6, &len);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);

    /* Capture stderr to check that nothing is printed. */
    char errpath[256];
    test_dir_path(state, "stderr.txt", errpath, sizeof errpath);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    FILE *cap = fopen(errpath, "w");
    assert_non_null(cap);
    assert_true(dup2(fileno(cap), STDERR_FILENO) >= 0);

    int refused = 0;
    for (size_t i = 0; i < len; i++) {
        static const uint8_t masks[3] = {0x01, 0x80, 0xff};
        for (int m = 0; m < 3; m++) {
            memcpy(copy, png, len);
            copy[i] ^= masks[m];
            sc_image img;
            sc_error err = {0};
            int rc = image_read_png_mem(copy, len, 0, &img, &err);
            if (rc == SC_OK) {
                /* Never expected here, but whatever came back must be sane. */
                assert_non_null(img.pixels);
                image_free(&img);
            } else {
                assert_int_equal(rc, SC_ERR_FORMAT);
                timg_assert_zeroed(&img);
                refused++;
            }
        }
    }
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    fclose(cap);

    assert_int_equal(refused, (int)len * 3);
    FILE *fp = fopen(errpath, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    assert_int_equal(ftell(fp), 0); /* libpng printed nothing */
    fclose(fp);
    free(copy);
    free(png);
}

static void test_garbage_and_empty(void **state)
{
    (void)state;
    sc_image img;
    sc_error err = {0};
    const char *text = "this is definitely not a PNG file";
    assert_int_equal(image_read_png_mem((const uint8_t *)text, strlen(text), 0, &img, &err),
                     SC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a PNG"));
    assert_int_equal(image_read_png_mem(NULL, 0, 0, &img, &err), SC_ERR_FORMAT);
    timg_assert_zeroed(&img);

    /* Valid signature followed by garbage. */
    uint8_t buf[64];
    timg_fill(buf, sizeof buf, 9);
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(image_read_png_mem(buf, sizeof buf, 0, &img, &err), SC_ERR_FORMAT);
    timg_assert_zeroed(&img);
}

static void test_too_large(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *png = timg_sample_png(20, 10, &len);
    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_mem(png, len, 199, &img, &err), SC_ERR_TOO_LARGE);
    assert_int_equal(err.code, SC_ERR_TOO_LARGE);
    timg_assert_zeroed(&img);
    assert_int_equal(image_read_png_mem(png, len, 200, &img, &err), SC_OK);
    image_free(&img);

    /* A header claiming 100000 x 100000 over a tiny IDAT: refused from the header, before any
     * decoding or allocation for the pixels (the fixed-up CRC keeps libpng happy). */
    timg_put_be32(png + 16, 100000);
    timg_put_be32(png + 20, 100000);
    timg_put_be32(png + 29, timg_crc32(png + 12, 17));
    assert_int_equal(image_read_png_mem(png, len, 1000000, &img, &err), SC_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "100000"));
    timg_assert_zeroed(&img);
    /* A header claiming 64 x 64 within the limit: the short pixel data is what fails. */
    timg_put_be32(png + 16, 64);
    timg_put_be32(png + 20, 64);
    timg_put_be32(png + 29, timg_crc32(png + 12, 17));
    assert_int_equal(image_read_png_mem(png, len, 0, &img, &err), SC_ERR_FORMAT);
    timg_assert_zeroed(&img);
    free(png);
}

static void test_missing_file(void **state)
{
    char path[256];
    test_dir_path(state, "does-not-exist.png", path, sizeof path);
    sc_image img;
    sc_error err = {0};
    assert_int_equal(image_read_png_file(path, 0, &img, &err), SC_ERR_IO);
    assert_int_equal(err.code, SC_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    timg_assert_zeroed(&img);
}

static void test_write_errors(void **state)
{
    char path[256];
    test_dir_path(state, "no-such-dir/out.png", path, sizeof path);
    uint8_t px[12] = {0};
    sc_error err = {0};
    assert_int_equal(image_write_png_file(path, px, 2, 2, 3, &err), SC_ERR_IO);
    assert_non_null(strstr(err.msg, path));

    uint8_t *out = (uint8_t *)px;
    size_t len = 99;
    assert_int_equal(image_write_png_mem(px, 2, 2, 2, &out, &len, &err), SC_ERR_INVALID);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(image_write_png_mem(px, 0, 2, 3, &out, &len, &err), SC_ERR_INVALID);
    assert_int_equal(image_write_png_mem(px, 2, -1, 3, &out, &len, &err), SC_ERR_INVALID);
    assert_int_equal(image_write_png_mem(NULL, 2, 2, 3, &out, &len, &err), SC_ERR_INVALID);
    assert_int_equal(image_write_png_mem(px, 2, 2, 5, &out, &len, &err), SC_ERR_INVALID);
    test_dir_path(state, "bad-args.png", path, sizeof path);
    assert_int_equal(image_write_png_file(path, px, 2, 2, 2, &err), SC_ERR_INVALID);
    assert_int_equal(access(path, F_OK), -1); /* nothing created for bad arguments */
}

/* A write that fails half way (file size limit, in a child process) is SC_ERR_IO naming the
 * path, and the partial file is removed. */
static void test_write_failure_removes_partial_file(void **state)
{
    char path[256];
    test_dir_path(state, "partial.png", path, sizeof path);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG from write() instead of being killed */
        struct rlimit rl = {1000, 1000};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        enum { W = 200, H = 100 };
        uint8_t *px = malloc((size_t)W * H * 3); /* noise does not compress below 1000 bytes */
        if (!px) _exit(3);
        timg_fill(px, (size_t)W * H * 3, 99);
        sc_error err = {0};
        int rc = image_write_png_file(path, px, W, H, 3, &err);
        free(px);
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
    sc_image img;
    memset(&img, 0, sizeof img);
    image_free(&img);
    image_free(&img);
    image_free(NULL);
    timg_assert_zeroed(&img);
}

/* ---- float <-> u8 ---------------------------------------------------------------------------- */

static void test_float_u8_all_values(void **state)
{
    (void)state;
    enum { W = 16, H = 16 };
    uint8_t px[W * H], back[W * H];
    float f[W * H];
    for (int i = 0; i < W * H; i++) px[i] = (uint8_t)i;
    image_u8_to_float(f, px, W, H, 1);
    for (int i = 0; i < W * H; i++) {
        assert_true(f[i] >= 0.0f && f[i] <= 1.0f);
        assert_float_equal(f[i], i / 255.0f, 1e-7);
    }
    image_float_to_u8(back, f, W, H, 1);
    assert_memory_equal(back, px, sizeof px);
}

static void test_float_u8_layout_and_clipping(void **state)
{
    (void)state;
    enum { W = 3, H = 2, C = 3 };
    /* pixels (H,W,C) <-> data (C,H,W) */
    uint8_t px[H * W * C], back[H * W * C];
    for (int i = 0; i < H * W * C; i++) px[i] = (uint8_t)(i * 11);
    float f[C * H * W];
    image_u8_to_float(f, px, W, H, C);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                assert_float_equal(f[(c * H + y) * W + x], px[(y * W + x) * C + c] / 255.0f,
                                   1e-7);
    image_float_to_u8(back, f, W, H, C);
    assert_memory_equal(back, px, sizeof px);

    const float in[8] = {-0.5f, 1.5f, NAN, 0.5f, 0.0f, 1.0f, 1.0f / 510.0f, INFINITY};
    const uint8_t want[8] = {0, 255, 0, 128, 0, 255, 1, 255};
    uint8_t out[8];
    image_float_to_u8(out, in, 8, 1, 1);
    assert_memory_equal(out, want, sizeof want);
}

/* ---- grid ------------------------------------------------------------------------------------ */

/* Value of image i, channel c, pixel (y,x): distinct, and never 255 (the padding colour). */
static uint8_t timg_cell_value(int i, int c, int y, int x)
{
    return (uint8_t)((i * 37 + c * 11 + y * 5 + x * 3) % 250);
}

static float *timg_grid_data(int n, int C, int H, int W)
{
    float *d = malloc(sizeof(float) * (size_t)n * C * H * W);
    assert_non_null(d);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    d[((i * C + c) * H + y) * W + x] = timg_cell_value(i, c, y, x) / 255.0f;
    return d;
}

/* Checks every grid pixel against the layout: cell (r,k) at (pad + r*(H+pad), pad + k*(W+pad)). */
static void timg_check_grid(const uint8_t *g, int gw, int gh, int n, int C, int H, int W,
                            int cols, int pad)
{
    for (int gy = 0; gy < gh; gy++)
        for (int gx = 0; gx < gw; gx++)
            for (int c = 0; c < C; c++) {
                int want = 255;
                int ry = gy - pad, rx = gx - pad;
                if (ry >= 0 && rx >= 0 && ry % (H + pad) < H && rx % (W + pad) < W) {
                    int r = ry / (H + pad), k = rx / (W + pad);
                    int i = r * cols + k;
                    if (k < cols && i < n)
                        want = timg_cell_value(i, c, ry % (H + pad), rx % (W + pad));
                }
                if (g[((size_t)gy * gw + gx) * C + c] != want)
                    fail_msg("grid pixel (%d,%d,%d) = %d, want %d", gy, gx, c,
                             g[((size_t)gy * gw + gx) * C + c], want);
            }
}

static void test_grid_layout(void **state)
{
    (void)state;
    enum { N = 5, C = 3, H = 2, W = 3 };
    float *d = timg_grid_data(N, C, H, W);
    uint8_t *g = NULL;
    int gw = 0, gh = 0;
    sc_error err = {0};

    /* ncols 0 -> ceil(sqrt(5)) = 3 columns, 2 rows; the sixth cell stays white. */
    assert_int_equal(image_grid(d, N, C, H, W, 0, 1, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(gw, 3 * W + 4 * 1);
    assert_int_equal(gh, 2 * H + 3 * 1);
    timg_check_grid(g, gw, gh, N, C, H, W, 3, 1);
    /* Spot checks written out by hand: top-left corner is padding, image 0 starts at (1,1),
     * image 4 (row 1, col 1) starts at (1 + H + 1, 1 + W + 1) = (4, 5). */
    assert_int_equal(g[0], 255);
    assert_int_equal(g[((size_t)1 * gw + 1) * C], timg_cell_value(0, 0, 0, 0));
    assert_int_equal(g[((size_t)4 * gw + 5) * C + 2], timg_cell_value(4, 2, 0, 0));
    free(g);

    /* Two explicit columns, wider padding. */
    assert_int_equal(image_grid(d, N, C, H, W, 2, 3, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(gw, 2 * W + 3 * 3);
    assert_int_equal(gh, 3 * H + 4 * 3);
    timg_check_grid(g, gw, gh, N, C, H, W, 2, 3);
    free(g);

    /* One row, no padding: images side by side. */
    assert_int_equal(image_grid(d, N, C, H, W, N, 0, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(gw, N * W);
    assert_int_equal(gh, H);
    timg_check_grid(g, gw, gh, N, C, H, W, N, 0);
    free(g);

    /* More columns than images are clamped to n. */
    assert_int_equal(image_grid(d, 2, C, H, W, 10, 1, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(gw, 2 * W + 3);
    free(g);
    free(d);
}

static void test_grid_single_is_identity(void **state)
{
    (void)state;
    enum { C = 1, H = 5, W = 7 };
    float *d = timg_grid_data(1, C, H, W);
    uint8_t *g = NULL;
    int gw = 0, gh = 0;
    sc_error err = {0};
    assert_int_equal(image_grid(d, 1, C, H, W, 0, 0, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(gw, W);
    assert_int_equal(gh, H);
    uint8_t direct[H * W];
    image_float_to_u8(direct, d, W, H, C);
    assert_memory_equal(g, direct, sizeof direct);
    free(g);
    free(d);
}

static void test_grid_invalid(void **state)
{
    (void)state;
    float d[12] = {0};
    uint8_t *g = (uint8_t *)d;
    int gw = 1, gh = 1;
    sc_error err = {0};
    assert_int_equal(image_grid(d, 0, 1, 2, 2, 0, 0, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_null(g);
    assert_int_equal(gw, 0);
    assert_int_equal(image_grid(d, 1, 0, 2, 2, 0, 0, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(d, 1, 1, 0, 2, 0, 0, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(d, 1, 1, 2, 2, -1, 0, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(d, 1, 1, 2, 2, 0, -1, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(NULL, 1, 1, 2, 2, 0, 0, &g, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(d, 1, 1, 2, 2, 0, 0, NULL, &gw, &gh, &err), SC_ERR_INVALID);
    assert_int_equal(image_grid(d, 1, 1, 2, 2, 0, 1 << 30, &g, &gw, &gh, &err), SC_ERR_TOO_LARGE);
    assert_null(g);
}

/* The grid output feeds straight into the PNG writer. */
static void test_grid_to_png(void **state)
{
    (void)state;
    enum { N = 4, C = 3, H = 3, W = 3 };
    float *d = timg_grid_data(N, C, H, W);
    uint8_t *g = NULL, *png = NULL;
    int gw, gh;
    size_t len;
    sc_error err = {0};
    assert_int_equal(image_grid(d, N, C, H, W, 0, 2, &g, &gw, &gh, &err), SC_OK);
    assert_int_equal(image_write_png_mem(g, gw, gh, C, &png, &len, &err), SC_OK);
    sc_image img;
    assert_int_equal(image_read_png_mem(png, len, 0, &img, &err), SC_OK);
    assert_int_equal(img.width, gw);
    assert_int_equal(img.height, gh);
    assert_memory_equal(img.pixels, g, (size_t)gw * gh * C);
    image_free(&img);
    free(png);
    free(g);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_gray),
        cmocka_unit_test(test_roundtrip_rgb),
        cmocka_unit_test(test_roundtrip_rgba),
        cmocka_unit_test(test_roundtrip_file),
        cmocka_unit_test(test_palette_with_trns),
        cmocka_unit_test(test_palette_2bit_no_trns),
        cmocka_unit_test(test_gray_alpha),
        cmocka_unit_test(test_gray_low_bit_depths),
        cmocka_unit_test(test_gray_and_rgb_trns_become_alpha),
        cmocka_unit_test(test_interlaced),
        cmocka_unit_test(test_16bit_refused),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_garbage_and_empty),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_write_failure_removes_partial_file),
        cmocka_unit_test(test_free_zeroed),
        cmocka_unit_test(test_float_u8_all_values),
        cmocka_unit_test(test_float_u8_layout_and_clipping),
        cmocka_unit_test(test_grid_layout),
        cmocka_unit_test(test_grid_single_is_identity),
        cmocka_unit_test(test_grid_invalid),
        cmocka_unit_test(test_grid_to_png),
    };
    return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
