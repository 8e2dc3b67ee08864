/* 8-bit PNG input/output (libpng) and the float tensor <-> 8-bit conversions and sample grids.
 * Decoding never prints, never aborts: bad input comes back as SC_ERR_FORMAT with a message.
 * No resampling or colour management here; 16-bit PNGs are refused. */
#ifndef SCORED_IMAGE_H
#define SCORED_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sc_image {
    int width, height;
    int channels;    /* 1 (gray) or 3 (RGB): colour data without alpha                        */
    uint8_t *pixels; /* (height, width, channels) interleaved, owned (free with image_free)    */
    uint8_t *alpha;  /* (height, width), owned; NULL when the PNG had no alpha channel nor tRNS */
} sc_image;

/* Decode a PNG.  Accepts 8-bit gray, gray+alpha, RGB, RGBA, palette (expanded to RGB, tRNS
 * becoming alpha) and gray at bit depth 1/2/4 (expanded to 8); interlaced files too.
 * max_pixels > 0 refuses width*height above it (SC_ERR_TOO_LARGE) from the header alone.
 * On failure *out is zeroed.  Errors: SC_ERR_IO (file), SC_ERR_FORMAT, SC_ERR_TOO_LARGE,
 * SC_ERR_NOMEM. */
int image_read_png_file(const char *path, int max_pixels, sc_image *out, sc_error *err);
int image_read_png_mem(const uint8_t *buf, size_t len, int max_pixels, sc_image *out,
                       sc_error *err);
void image_free(sc_image *img); /* safe on a zeroed struct; zeroes it again */

/* Encode pixels (height, width, channels) interleaved; channels 1 (gray), 3 (RGB) or 4 (RGBA).
 * The file variant removes a partly written file on failure.  The mem variant sets *out to a
 * malloc'd buffer of *out_len bytes that the caller frees.
 * Errors: SC_ERR_INVALID (arguments), SC_ERR_IO (file), SC_ERR_NOMEM. */
int image_write_png_file(const char *path, const uint8_t *pixels, int width, int height,
                         int channels, sc_error *err);
int image_write_png_mem(const uint8_t *pixels, int width, int height, int channels,
                        uint8_t **out, size_t *out_len, sc_error *err);

/* Float tensor <-> 8 bit.  data: (C,H,W) planar floats in [0,1]; pixels: (H,W,C) interleaved.
 * to_u8 clips to [0,1] (NaN becomes 0) and rounds as floor(v*255 + 0.5), so
 * u8 -> float -> u8 is exact. */
void image_u8_to_float(float *data, const uint8_t *pixels, int width, int height, int channels);
void image_float_to_u8(uint8_t *pixels, const float *data, int width, int height, int channels);

/* Grid of n images, each (C,H,W) floats in [0,1], laid out consecutively in `data` (n,C,H,W).
 * ncols columns (0 = ceil(sqrt(n)); more than n is clamped to n), `pad` pixels of white (255)
 * border between and around the cells; cells past n stay white.
 * grid_width  = ncols*width  + (ncols+1)*pad,  grid_height = nrows*height + (nrows+1)*pad.
 * *pixels is malloc'd (grid_height, grid_width, C) interleaved; the caller frees it.
 * n == 1 and pad == 0 gives the image itself.
 * Errors: SC_ERR_INVALID (arguments), SC_ERR_TOO_LARGE (grid over INT_MAX), SC_ERR_NOMEM. */
int image_grid(const float *data, int n, int channels, int height, int width, int ncols, int pad,
               uint8_t **pixels, int *grid_width, int *grid_height, sc_error *err);

#endif
