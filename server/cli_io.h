/* Files in and out of the scored CLI: .npy arrays and PNG images turned into a model's items
 * (data units, checked against the model's shape), inpainting masks, and outputs written
 * atomically (PATH.tmp, then rename) as .npy arrays or PNG grids. */
#ifndef SCORED_CLI_IO_H
#define SCORED_CLI_IO_H

#include <stdint.h>

#include "err.h"
#include "model.h"

#define CLI_MAX_ITEMS 65536         /* items in one input file                      */
#define CLI_MAX_PNG_PIXELS (1 << 24)

typedef enum cli_format { CLI_FORMAT_NPY, CLI_FORMAT_PNG } cli_format;

/* The format a file name's extension names (.npy or .png, any case).  opt names the option
 * in the message, e.g. "--out". */
int cli_format_of(const char *opt, const char *path, cli_format *fmt, sc_error *err);

/* Everything about an output that can be checked before the work starts: the extension
 * (PNG only when allow_png, and only for image models), the directory exists and is
 * writable, the path is not a directory. */
int cli_output_check(const char *opt, const char *path, const sc_model *m, int allow_png,
                     cli_format *fmt, sc_error *err);

/* A model's items read from a file. */
typedef struct cli_items {
    int n;           /* items                                                         */
    int batched;     /* 1: the file had a leading item axis; outputs keep one          */
    int from_png;    /* 1: one image read from a PNG (8-bit values)                    */
    float *x;        /* (n, D) in data units, owned                                   */
} cli_items;

/* .npy of shape [*shape] (one item) or [n, *shape], float32/float64, finite; or, when
 * allow_png, one PNG of the model's size (batched = 1, n = 1). */
int cli_items_read(const sc_model *m, const char *opt, const char *path, int allow_png,
                   cli_items *out, sc_error *err);
void cli_items_free(cli_items *it);

/* One PNG of exactly the model's width and height into x (D, data units).  A gray image for a
 * 3-channel model is replicated, an RGB image for a 1-channel model becomes its channel mean.
 * alpha: when non-NULL, receives the PNG's alpha plane (H*W, malloc'd) or NULL if it has none. */
int cli_image_read(const sc_model *m, const char *path, float *x, uint8_t **alpha,
                   sc_error *err);

/* An inpainting mask of width x height into keep (H*W): 1 keep, 0 generate.  A pixel is kept
 * when its gray value (or channel mean) is >= 128; a mask with transparent pixels is read by
 * its alpha instead (alpha < 128 = generate, as in OpenAI's image edits). */
int cli_mask_read(const char *path, int width, int height, float *keep, sc_error *err);

/* Writes n items (n, D) in data units to path: .npy float32 of shape [n, *shape] ([*shape]
 * when !batched and n == 1), or a PNG grid for image models (ceil(sqrt(n)) columns, 2 px
 * white padding; the bare image when n == 1).  Nothing is left at path on failure. */
int cli_items_write(const sc_model *m, const char *path, const float *x, int n, int batched,
                    sc_error *err);

/* Writes an array (n, D) as .npy float32 of shape [n, *shape] ([*shape] when !batched) via
 * path.tmp and rename. */
int cli_npy_write(const sc_model *m, const char *path, const float *x, int n, int batched,
                  sc_error *err);

#endif
