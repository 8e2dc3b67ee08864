/* Reading the CLI's inputs into a model's items and writing its outputs atomically.  Decoding
 * and encoding proper (libpng, the .npy format) is the engine's (image.c, npy.c); this file
 * only checks sizes and shapes against the model and converts channels and units. */
#include "cli_io.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "image_model.h"
#include "npy.h"

/* At most this many elements are read from one .npy (1 GiB of doubles). */
#define CLI_MAX_NPY_COUNT ((int64_t)1 << 27)

/* ---- names and output checks ------------------------------------------------------------- */

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

int cli_format_of(const char *opt, const char *path, cli_format *fmt, sc_error *err)
{
    if (has_ext(path, ".npy")) *fmt = CLI_FORMAT_NPY;
    else if (has_ext(path, ".png")) *fmt = CLI_FORMAT_PNG;
    else
        return sc_fail(err, SC_ERR_INVALID, "%s %.200s: the name must end in .npy or .png", opt,
                       path);
    return 0;
}

int cli_output_check(const char *opt, const char *path, const sc_model *m, int allow_png,
                     cli_format *fmt, sc_error *err)
{
    int rc = cli_format_of(opt, path, fmt, err);
    if (rc) return rc;
    if (*fmt == CLI_FORMAT_PNG && !allow_png)
        return sc_fail(err, SC_ERR_INVALID, "%s %.200s: this output is written as .npy only", opt,
                       path);
    if (*fmt == CLI_FORMAT_PNG && !sc_model_is_image(m)) {
        char shape[48];
        sc_model_shape_str(m, shape, sizeof shape);
        return sc_fail(err, SC_ERR_INVALID,
                       "%s %.200s: model %s is not an image model (shape %s); write .npy instead",
                       opt, path, m->name, shape);
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return sc_fail(err, SC_ERR_IO, "%s %.200s is a directory", opt, path);

    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sc_fail(err, SC_ERR_IO, "%s %.200s: directory %.200s does not exist", opt, path,
                       dir);
    if (access(dir, W_OK) != 0)
        return sc_fail(err, SC_ERR_IO, "%s %.200s: directory %.200s is not writable (%s)", opt,
                       path, dir, strerror(errno));
    return 0;
}

/* ---- images ------------------------------------------------------------------------------ */

int cli_image_read(const sc_model *m, const char *path, float *x, uint8_t **alpha,
                   sc_error *err)
{
    if (alpha) *alpha = NULL;
    if (!sc_model_is_image(m)) {
        char shape[48];
        sc_model_shape_str(m, shape, sizeof shape);
        return sc_fail(err, SC_ERR_INVALID,
                       "%.200s: model %s is not an image model (shape %s); give a .npy file",
                       path, m->name, shape);
    }
    sc_image img = {0};
    int rc = image_read_png_file(path, CLI_MAX_PNG_PIXELS, &img, err);
    if (rc) return rc;
    rc = image_to_model(m, &img, path, x, err);
    if (!rc && alpha) {
        *alpha = img.alpha; /* handed over */
        img.alpha = NULL;
    }
    image_free(&img);
    return rc;
}

int cli_mask_read(const char *path, int width, int height, float *keep, sc_error *err)
{
    sc_image img = {0};
    int rc = image_read_png_file(path, CLI_MAX_PNG_PIXELS, &img, err);
    if (rc) return rc;
    rc = image_mask_keep(&img, width, height, path, keep, err);
    image_free(&img);
    return rc;
}

/* ---- items ------------------------------------------------------------------------------- */

void cli_items_free(cli_items *it)
{
    free(it->x);
    memset(it, 0, sizeof *it);
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "%s)", ndim == 1 ? "," : "");
}

static void model_shape_text(const sc_model *m, int with_n, char *buf, size_t len)
{
    if (m->ndim == 1)
        snprintf(buf, len, with_n ? "[n, %d]" : "[%d]", m->shape[0]);
    else
        snprintf(buf, len, with_n ? "[n, %d, %d, %d]" : "[%d, %d, %d]", m->shape[0], m->shape[1],
                 m->shape[2]);
}

static int npy_items(const sc_model *m, const char *path, cli_items *out, sc_error *err)
{
    sc_array arr = {0};
    int rc = npy_read_file(path, CLI_MAX_NPY_COUNT, &arr, err);
    if (rc) return rc;
    int match_one = arr.ndim == m->ndim, match_many = arr.ndim == m->ndim + 1;
    for (int i = 0; i < m->ndim; i++) {
        if (match_one && arr.shape[i] != m->shape[i]) match_one = 0;
        if (match_many && arr.shape[i + 1] != m->shape[i]) match_many = 0;
    }
    if (!match_one && !match_many) {
        char got[160], one[48], many[48];
        shape_text(arr.shape, arr.ndim, got, sizeof got);
        model_shape_text(m, 0, one, sizeof one);
        model_shape_text(m, 1, many, sizeof many);
        npy_free(&arr);
        return sc_fail(err, SC_ERR_SHAPE,
                       "%.200s has shape %s but model %s takes items of shape %s (give %s or %s)",
                       path, got, m->name, one, one, many);
    }
    int64_t n = match_one ? 1 : arr.shape[0];
    if (n < 1 || n > CLI_MAX_ITEMS) {
        npy_free(&arr);
        return sc_fail(err, n < 1 ? SC_ERR_SHAPE : SC_ERR_TOO_LARGE,
                       "%.200s holds %lld items; between 1 and %d are accepted", path,
                       (long long)n, CLI_MAX_ITEMS);
    }
    const size_t D = (size_t)m->D;
    float *x = malloc(sizeof(float) * D * (size_t)n);
    if (!x) {
        npy_free(&arr);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory for %lld items", (long long)n);
    }
    for (size_t i = 0; i < D * (size_t)n; i++) {
        double v = arr.data[i];
        if (!isfinite(v) || fabs(v) > FLT_MAX) {
            free(x);
            npy_free(&arr);
            return sc_fail(err, SC_ERR_INVALID, "%.200s: item %zu holds a non-finite value (%g)",
                           path, i / D, v);
        }
        x[i] = (float)v;
    }
    npy_free(&arr);
    out->n = (int)n;
    out->batched = match_many;
    out->from_png = 0;
    out->x = x;
    return 0;
}

int cli_items_read(const sc_model *m, const char *opt, const char *path, int allow_png,
                   cli_items *out, sc_error *err)
{
    memset(out, 0, sizeof *out);
    cli_format fmt;
    int rc = cli_format_of(opt, path, &fmt, err);
    if (rc) return rc;
    if (fmt == CLI_FORMAT_NPY) return npy_items(m, path, out, err);
    if (!allow_png)
        return sc_fail(err, SC_ERR_INVALID, "%s %.200s: give a .npy file here", opt, path);
    float *x = malloc(sizeof(float) * (size_t)m->D);
    if (!x) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    rc = cli_image_read(m, path, x, NULL, err);
    if (rc) {
        free(x);
        return rc;
    }
    out->n = 1;
    out->batched = 1;
    out->from_png = 1;
    out->x = x;
    return 0;
}

/* ---- outputs ----------------------------------------------------------------------------- */

/* path + ".tmp" into buf; SC_ERR_INVALID if it does not fit. */
static int tmp_path(const char *path, char *buf, size_t len, sc_error *err)
{
    int k = snprintf(buf, len, "%s.tmp", path);
    if (k < 0 || (size_t)k >= len)
        return sc_fail(err, SC_ERR_INVALID, "output path is too long");
    return 0;
}

/* Moves the finished tmp file onto path, or removes it. */
static int commit(const char *tmp, const char *path, sc_error *err)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sc_fail(err, SC_ERR_IO, "cannot write %.200s: %s", path, strerror(e));
    }
    return 0;
}

int cli_npy_write(const sc_model *m, const char *path, const float *x, int n, int batched,
                  sc_error *err)
{
    char tmp[4200];
    int rc = tmp_path(path, tmp, sizeof tmp, err);
    if (rc) return rc;
    int64_t shape[4];
    int nd = 0;
    if (batched || n != 1) shape[nd++] = n;
    for (int i = 0; i < m->ndim; i++) shape[nd++] = m->shape[i];
    rc = npy_write_f32_file(tmp, x, nd, shape, err);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return commit(tmp, path, err);
}

int cli_items_write(const sc_model *m, const char *path, const float *x, int n, int batched,
                    sc_error *err)
{
    cli_format fmt;
    int rc = cli_format_of("--out", path, &fmt, err);
    if (rc) return rc;
    if (fmt == CLI_FORMAT_NPY) return cli_npy_write(m, path, x, n, batched, err);
    if (!sc_model_is_image(m))
        return sc_fail(err, SC_ERR_INVALID, "model %s is not an image model; write .npy", m->name);

    const int C = m->shape[0], H = m->shape[1], W = m->shape[2];
    const size_t total = (size_t)n * (size_t)m->D;
    float *unit = malloc(sizeof(float) * total);
    if (!unit) return sc_fail(err, SC_ERR_NOMEM, "out of memory writing %.200s", path);
    for (size_t i = 0; i < total; i++) unit[i] = sc_model_to_unit(m, x[i]);
    uint8_t *pixels = NULL;
    int gw = 0, gh = 0;
    rc = image_grid(unit, n, C, H, W, 0, n == 1 ? 0 : 2, &pixels, &gw, &gh, err);
    free(unit);
    if (rc) return rc;
    char tmp[4200];
    rc = tmp_path(path, tmp, sizeof tmp, err);
    if (!rc) {
        rc = image_write_png_file(tmp, pixels, gw, gh, C, err);
        if (rc) unlink(tmp);
        else rc = commit(tmp, path, err);
    }
    free(pixels);
    return rc;
}
