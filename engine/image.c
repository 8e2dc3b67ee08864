/* 8-bit PNG decode/encode through libpng, float (C,H,W) <-> u8 (H,W,C) conversion and grids.
 * libpng reports errors by longjmp; every setjmp lives in a small function whose cleanup state
 * sits in a struct owned by its caller, so nothing the caller frees is a clobbered local. */
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

/* What our libpng error handler saw before it longjmp'd. */
typedef struct img_err {
    char msg[256]; /* libpng's (or our I/O callback's) message                      */
    int code;      /* sc_code to report; 0 means "malformed data" (reader) / invalid */
} img_err;

/* Reader state.  Owned by image_read_png_*; img_decode only fills it. */
typedef struct img_decoder {
    img_err e;         /* must stay the first member: it is libpng's error pointer */
    const uint8_t *mem; /* memory source (NULL when reading fp)                  */
    size_t mem_len, mem_pos;
    FILE *fp;          /* file source, borrowed                                    */
    int max_pixels;
    int width, height;
    int nch;           /* channels after libpng's expansion: 1, 2, 3 or 4          */
    uint8_t *buf;      /* (height, width, nch) decoded pixels, owned until handed over */
    png_bytep *rows;   /* (height) pointers into buf, owned                        */
} img_decoder;

/* Writer state.  Owned by image_write_png_*. */
typedef struct img_encoder {
    img_err e;     /* must stay the first member: it is libpng's error pointer */
    FILE *fp;      /* file sink, borrowed; NULL for the memory sink            */
    uint8_t *buf;  /* memory sink: (cap) bytes, owned, first len in use       */
    size_t len, cap;
} img_encoder;

/* ---- libpng callbacks ---------------------------------------------------------------- */

static void img_error_fn(png_structp png, png_const_charp msg)
{
    img_err *e = (img_err *)png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void img_warning_fn(png_structp png, png_const_charp msg)
{
    /* Warnings (bad ancillary CRC, unknown chunks...) are not the caller's business. */
    (void)png;
    (void)msg;
}

static void img_read_fn(png_structp png, png_bytep data, size_t n)
{
    img_decoder *d = (img_decoder *)png_get_io_ptr(png);
    if (d->fp) {
        size_t got = fread(data, 1, n, d->fp);
        if (got == n) return;
        if (ferror(d->fp)) {
            char msg[200];
            snprintf(msg, sizeof msg, "read error: %s", strerror(errno));
            d->e.code = SC_ERR_IO;
            png_error(png, msg);
        }
        png_error(png, "unexpected end of data (truncated PNG)");
    }
    if (n > d->mem_len - d->mem_pos) png_error(png, "unexpected end of data (truncated PNG)");
    memcpy(data, d->mem + d->mem_pos, n);
    d->mem_pos += n;
}

static void img_write_fn(png_structp png, png_bytep data, size_t n)
{
    img_encoder *enc = (img_encoder *)png_get_io_ptr(png);
    if (enc->fp) {
        if (fwrite(data, 1, n, enc->fp) != n) {
            char msg[200];
            snprintf(msg, sizeof msg, "write error: %s", strerror(errno));
            enc->e.code = SC_ERR_IO;
            png_error(png, msg);
        }
        return;
    }
    if (n > enc->cap - enc->len) {
        size_t need = enc->len + n;
        size_t cap = enc->cap ? enc->cap : 4096;
        if (need < enc->len) {
            enc->e.code = SC_ERR_NOMEM;
            png_error(png, "PNG output too large");
        }
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *grown = realloc(enc->buf, cap);
        if (!grown) {
            enc->e.code = SC_ERR_NOMEM;
            png_error(png, "out of memory growing the PNG buffer");
        }
        enc->buf = grown;
        enc->cap = cap;
    }
    memcpy(enc->buf + enc->len, data, n);
    enc->len += n;
}

static void img_flush_fn(png_structp png)
{
    img_encoder *enc = (img_encoder *)png_get_io_ptr(png);
    if (enc->fp) fflush(enc->fp);
}

/* ---- decoding -------------------------------------------------------------------------- */

/* Runs libpng over d's source (signature already consumed) into d->buf.  Any libpng error
 * lands back here through longjmp; d->buf / d->rows are then freed by the caller. */
static int img_decode(img_decoder *d, png_structp png, png_infop info, sc_error *err)
{
    if (setjmp(png_jmpbuf(png)))
        return sc_fail(err, d->e.code ? d->e.code : SC_ERR_FORMAT, "invalid PNG: %s", d->e.msg);

    png_set_read_fn(png, d, img_read_fn);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    int color_type = png_get_color_type(png, info);

    if (bit_depth == 16)
        return sc_fail(err, SC_ERR_FORMAT,
                       "16-bit PNGs are not supported (convert to 8-bit)");
    if (w == 0 || h == 0 || w > INT_MAX || h > INT_MAX)
        return sc_fail(err, SC_ERR_FORMAT, "invalid PNG: bad dimensions %lux%lu",
                       (unsigned long)w, (unsigned long)h);
    uint64_t npix = (uint64_t)w * h;
    if (d->max_pixels > 0 && npix > (uint64_t)d->max_pixels)
        return sc_fail(err, SC_ERR_TOO_LARGE,
                       "PNG is %lux%lu = %llu pixels, over the limit of %d",
                       (unsigned long)w, (unsigned long)h, (unsigned long long)npix,
                       d->max_pixels);

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int nch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (png_get_bit_depth(png, info) != 8 || nch < 1 || nch > 4 || rowbytes != (size_t)w * nch)
        return sc_fail(err, SC_ERR_FORMAT, "invalid PNG: unexpected layout after expansion");
    /* buf needs npix*nch <= npix*4 bytes and rows h <= npix pointers. */
    if (npix > SIZE_MAX / 8)
        return sc_fail(err, SC_ERR_TOO_LARGE, "PNG too large for memory");

    d->buf = malloc((size_t)h * rowbytes);
    d->rows = malloc((size_t)h * sizeof(png_bytep));
    if (!d->buf || !d->rows)
        return sc_fail(err, SC_ERR_NOMEM, "out of memory decoding a %lux%lu PNG",
                       (unsigned long)w, (unsigned long)h);
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->buf + (size_t)y * rowbytes;

    png_read_image(png, d->rows);
    png_read_end(png, NULL); /* reads through IEND, so a file cut after IDAT is refused */

    d->width = (int)w;
    d->height = (int)h;
    d->nch = nch;
    return SC_OK;
}

/* Shared tail of both readers: d has its source set; the 8-byte signature is in sig. */
static int img_read_common(img_decoder *d, const uint8_t sig[8], sc_image *out, sc_error *err)
{
    if (png_sig_cmp(sig, 0, 8) != 0)
        return sc_fail(err, SC_ERR_FORMAT, "not a PNG file (bad signature)");

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->e, img_error_fn,
                                             img_warning_fn);
    if (!png) return sc_fail(err, SC_ERR_NOMEM, "cannot create PNG reader");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sc_fail(err, SC_ERR_NOMEM, "cannot create PNG info");
    }

    int rc = img_decode(d, png, info, err);
    png_destroy_read_struct(&png, &info, NULL);
    free(d->rows);
    d->rows = NULL;
    if (rc != SC_OK) {
        free(d->buf);
        d->buf = NULL;
        return rc;
    }

    size_t npix = (size_t)d->width * (size_t)d->height;
    out->width = d->width;
    out->height = d->height;
    if (d->nch == 1 || d->nch == 3) {
        out->channels = d->nch;
        out->pixels = d->buf;
        out->alpha = NULL;
        d->buf = NULL;
        return SC_OK;
    }

    /* Split (H,W,C+1) into colour (H,W,C) and alpha (H,W). */
    int c = d->nch - 1;
    uint8_t *pix = malloc(npix * (size_t)c);
    uint8_t *alpha = malloc(npix);
    if (!pix || !alpha) {
        free(pix);
        free(alpha);
        free(d->buf);
        d->buf = NULL;
        memset(out, 0, sizeof *out);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory splitting PNG alpha");
    }
    const uint8_t *src = d->buf;
    for (size_t i = 0; i < npix; i++) {
        for (int k = 0; k < c; k++) pix[i * (size_t)c + k] = src[k];
        alpha[i] = src[c];
        src += d->nch;
    }
    free(d->buf);
    d->buf = NULL;
    out->channels = c;
    out->pixels = pix;
    out->alpha = alpha;
    return SC_OK;
}

int image_read_png_mem(const uint8_t *buf, size_t len, int max_pixels, sc_image *out,
                       sc_error *err)
{
    if (!out) return sc_fail(err, SC_ERR_INVALID, "image_read_png_mem: NULL output");
    memset(out, 0, sizeof *out);
    if (!buf && len > 0) return sc_fail(err, SC_ERR_INVALID, "image_read_png_mem: NULL buffer");
    if (len < 8)
        return sc_fail(err, SC_ERR_FORMAT, "not a PNG file (only %zu bytes)", len);

    img_decoder d;
    memset(&d, 0, sizeof d);
    d.mem = buf;
    d.mem_len = len;
    d.mem_pos = 8;
    d.max_pixels = max_pixels;
    return img_read_common(&d, buf, out, err);
}

int image_read_png_file(const char *path, int max_pixels, sc_image *out, sc_error *err)
{
    if (!out) return sc_fail(err, SC_ERR_INVALID, "image_read_png_file: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return sc_fail(err, SC_ERR_INVALID, "image_read_png_file: NULL path");

    FILE *fp = fopen(path, "rb");
    if (!fp) return sc_fail(err, SC_ERR_IO, "cannot open %s: %s", path, strerror(errno));

    uint8_t sig[8];
    size_t got = fread(sig, 1, sizeof sig, fp);
    if (got != sizeof sig) {
        int rc = ferror(fp)
                     ? sc_fail(err, SC_ERR_IO, "cannot read %s: %s", path, strerror(errno))
                     : sc_fail(err, SC_ERR_FORMAT, "%s: not a PNG file (only %zu bytes)",
                               path, got);
        fclose(fp);
        return rc;
    }

    img_decoder d;
    memset(&d, 0, sizeof d);
    d.fp = fp;
    d.max_pixels = max_pixels;
    sc_error inner = {0};
    int rc = img_read_common(&d, sig, out, &inner);
    fclose(fp);
    if (rc != SC_OK) return sc_fail(err, rc, "%s: %s", path, inner.msg);
    return SC_OK;
}

void image_free(sc_image *img)
{
    if (!img) return;
    free(img->pixels);
    free(img->alpha);
    memset(img, 0, sizeof *img);
}

/* ---- encoding -------------------------------------------------------------------------- */

static int img_encode(img_encoder *enc, png_structp png, png_infop info, const uint8_t *pixels,
                      int width, int height, int channels, sc_error *err)
{
    if (setjmp(png_jmpbuf(png)))
        return sc_fail(err, enc->e.code ? enc->e.code : SC_ERR_INVALID, "PNG encode failed: %s",
                       enc->e.msg);

    int color_type = channels == 1   ? PNG_COLOR_TYPE_GRAY
                     : channels == 3 ? PNG_COLOR_TYPE_RGB
                                     : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_write_fn(png, enc, img_write_fn, img_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * stride);
    png_write_end(png, NULL);
    return SC_OK;
}

static int img_check_write_args(const uint8_t *pixels, int width, int height, int channels,
                                sc_error *err)
{
    if (!pixels) return sc_fail(err, SC_ERR_INVALID, "PNG write: NULL pixels");
    if (width <= 0 || height <= 0)
        return sc_fail(err, SC_ERR_INVALID, "PNG write: bad size %dx%d", width, height);
    if (channels != 1 && channels != 3 && channels != 4)
        return sc_fail(err, SC_ERR_INVALID, "PNG write: channels must be 1, 3 or 4, got %d",
                       channels);
    return SC_OK;
}

static int img_write_common(img_encoder *enc, const uint8_t *pixels, int width, int height,
                            int channels, sc_error *err)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &enc->e, img_error_fn,
                                              img_warning_fn);
    if (!png) return sc_fail(err, SC_ERR_NOMEM, "cannot create PNG writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return sc_fail(err, SC_ERR_NOMEM, "cannot create PNG info");
    }
    int rc = img_encode(enc, png, info, pixels, width, height, channels, err);
    png_destroy_write_struct(&png, &info);
    return rc;
}

int image_write_png_mem(const uint8_t *pixels, int width, int height, int channels,
                        uint8_t **out, size_t *out_len, sc_error *err)
{
    if (!out || !out_len) return sc_fail(err, SC_ERR_INVALID, "image_write_png_mem: NULL output");
    *out = NULL;
    *out_len = 0;

    int rc = img_check_write_args(pixels, width, height, channels, err);
    if (rc != SC_OK) return rc;

    img_encoder enc;
    memset(&enc, 0, sizeof enc);
    rc = img_write_common(&enc, pixels, width, height, channels, err);
    if (rc != SC_OK) {
        free(enc.buf);
        return rc;
    }
    *out = enc.buf;
    *out_len = enc.len;
    return SC_OK;
}

int image_write_png_file(const char *path, const uint8_t *pixels, int width, int height,
                         int channels, sc_error *err)
{
    if (!path) return sc_fail(err, SC_ERR_INVALID, "image_write_png_file: NULL path");
    /* Argument errors are reported before the file is created or truncated. */
    int rc = img_check_write_args(pixels, width, height, channels, err);
    if (rc != SC_OK) return rc;

    FILE *fp = fopen(path, "wb");
    if (!fp) return sc_fail(err, SC_ERR_IO, "cannot create %s: %s", path, strerror(errno));

    /* Only a regular file is removed on failure, never a device or FIFO the path named. */
    struct stat st;
    int regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);

    img_encoder enc;
    memset(&enc, 0, sizeof enc);
    enc.fp = fp;
    sc_error inner = {0};
    rc = img_write_common(&enc, pixels, width, height, channels, &inner);
    if (fclose(fp) != 0 && rc == SC_OK)
        rc = sc_fail(&inner, SC_ERR_IO, "close failed: %s", strerror(errno));
    if (rc != SC_OK) {
        if (regular) remove(path); /* never leave a half-written PNG behind */
        return sc_fail(err, rc, "cannot write %s: %s", path, inner.msg);
    }
    return SC_OK;
}

/* ---- float <-> u8, grids --------------------------------------------------------------- */

static uint8_t img_to_u8(float v)
{
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 1.0f) return 255;
    return (uint8_t)floorf(v * 255.0f + 0.5f);
}

void image_u8_to_float(float *data, const uint8_t *pixels, int width, int height, int channels)
{
    /* pixels: (H,W,C)  data: (C,H,W) */
    size_t plane = (size_t)width * (size_t)height;
    for (int c = 0; c < channels; c++) {
        float *dst = data + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) dst[i] = pixels[i * (size_t)channels + c] / 255.0f;
    }
}

void image_float_to_u8(uint8_t *pixels, const float *data, int width, int height, int channels)
{
    /* data: (C,H,W)  pixels: (H,W,C) */
    size_t plane = (size_t)width * (size_t)height;
    for (int c = 0; c < channels; c++) {
        const float *src = data + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) pixels[i * (size_t)channels + c] = img_to_u8(src[i]);
    }
}

int image_grid(const float *data, int n, int channels, int height, int width, int ncols, int pad,
               uint8_t **pixels, int *grid_width, int *grid_height, sc_error *err)
{
    if (!pixels || !grid_width || !grid_height)
        return sc_fail(err, SC_ERR_INVALID, "image_grid: NULL output");
    *pixels = NULL;
    *grid_width = *grid_height = 0;
    if (!data) return sc_fail(err, SC_ERR_INVALID, "image_grid: NULL data");
    if (n < 1)
        return sc_fail(err, SC_ERR_INVALID, "image_grid: need at least one image, got %d", n);
    if (channels < 1 || channels > 4)
        return sc_fail(err, SC_ERR_INVALID, "image_grid: channels must be 1..4, got %d", channels);
    if (height < 1 || width < 1)
        return sc_fail(err, SC_ERR_INVALID, "image_grid: bad cell size %dx%d", width, height);
    if (ncols < 0 || pad < 0)
        return sc_fail(err, SC_ERR_INVALID, "image_grid: negative ncols (%d) or pad (%d)", ncols,
                       pad);

    int64_t cols = ncols;
    if (cols == 0)
        while (cols * cols < n) cols++; /* ceil(sqrt(n)) without floating point */
    if (cols > n) cols = n;
    int64_t rows = (n + cols - 1) / cols;
    int64_t gw = cols * width + (cols + 1) * (int64_t)pad;
    int64_t gh = rows * height + (rows + 1) * (int64_t)pad;
    if (gw > INT_MAX || gh > INT_MAX || (uint64_t)gw * (uint64_t)gh > SIZE_MAX / 4)
        return sc_fail(err, SC_ERR_TOO_LARGE, "image_grid: grid %lldx%lld is too large",
                       (long long)gw, (long long)gh);

    size_t stride = (size_t)gw * (size_t)channels;
    uint8_t *grid = malloc((size_t)gh * stride);
    if (!grid) return sc_fail(err, SC_ERR_NOMEM, "image_grid: out of memory");
    memset(grid, 255, (size_t)gh * stride);

    size_t plane = (size_t)height * (size_t)width;
    for (int i = 0; i < n; i++) {
        /* img: (C,H,W) floats for image i; its cell's top-left pixel is (y0, x0). */
        const float *img = data + (size_t)i * (size_t)channels * plane;
        size_t x0 = (size_t)pad + (size_t)(i % cols) * (size_t)(width + (int64_t)pad);
        size_t y0 = (size_t)pad + (size_t)(i / cols) * (size_t)(height + (int64_t)pad);
        for (int y = 0; y < height; y++) {
            uint8_t *row = grid + (y0 + (size_t)y) * stride + x0 * (size_t)channels;
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++)
                    row[(size_t)x * channels + c] =
                        img_to_u8(img[(size_t)c * plane + (size_t)y * width + x]);
        }
    }
    *pixels = grid;
    *grid_width = (int)gw;
    *grid_height = (int)gh;
    return SC_OK;
}
