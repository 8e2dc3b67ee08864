/* Images as model data and masks.  Not here: PNG decoding (image.c). */
#include "image_model.h"

#include <stdlib.h>

int image_to_model(const sc_model *m, const sc_image *img, const char *what, float *x,
                   sc_error *err)
{
    if (!sc_model_is_image(m)) {
        char shape[48];
        sc_model_shape_str(m, shape, sizeof shape);
        return sc_fail(err, SC_ERR_INVALID, "%.200s: model %s is not an image model (shape %s)",
                       what, m->name, shape);
    }
    const int C = m->shape[0], H = m->shape[1], W = m->shape[2];
    if (img->width != W || img->height != H)
        return sc_fail(err, SC_ERR_SHAPE,
                       "%.200s is %dx%d pixels but model %s takes %dx%d images (no resizing is done)",
                       what, img->width, img->height, m->name, W, H);
    const size_t hw = (size_t)W * H;
    float *planes = malloc(sizeof(float) * hw * (size_t)img->channels);
    if (!planes) return sc_fail(err, SC_ERR_NOMEM, "out of memory reading %.200s", what);
    /* planes: (img channels, H, W) in [0,1]; x: (C, H, W) in data units */
    image_u8_to_float(planes, img->pixels, W, H, img->channels);
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < hw; i++) {
            float u;
            if (img->channels == C) u = planes[(size_t)c * hw + i];
            else if (img->channels == 1) u = planes[i]; /* gray -> RGB: replicate */
            else u = (planes[i] + planes[hw + i] + planes[2 * hw + i]) / 3.0f; /* RGB -> gray */
            x[(size_t)c * hw + i] = sc_model_from_unit(m, u);
        }
    free(planes);
    return 0;
}

int image_mask_keep(const sc_image *mask, int width, int height, const char *what, float *keep,
                    sc_error *err)
{
    if (mask->width != width || mask->height != height)
        return sc_fail(err, SC_ERR_SHAPE, "mask %.200s is %dx%d pixels but the image is %dx%d", what,
                       mask->width, mask->height, width, height);
    const size_t hw = (size_t)width * height;
    int transparent = 0;
    for (size_t i = 0; mask->alpha && i < hw && !transparent; i++) transparent = mask->alpha[i] < 255;
    for (size_t i = 0; i < hw; i++) {
        if (transparent) {
            keep[i] = mask->alpha[i] >= 128 ? 1.0f : 0.0f;
            continue;
        }
        unsigned sum = 0;
        for (int c = 0; c < mask->channels; c++) sum += mask->pixels[i * (size_t)mask->channels + c];
        keep[i] = sum >= 128u * (unsigned)mask->channels ? 1.0f : 0.0f; /* mean >= 128 */
    }
    return 0;
}

int image_alpha_keep(const sc_image *img, const char *what, float *keep, sc_error *err)
{
    if (!img->alpha)
        return sc_fail(err, SC_ERR_INVALID,
                       "%.200s has no alpha channel: give a mask (white = keep, black = generate) "
                       "or an RGBA image whose transparent pixels mark the area to generate", what);
    const size_t hw = (size_t)img->width * img->height;
    for (size_t i = 0; i < hw; i++) keep[i] = img->alpha[i] >= 128 ? 1.0f : 0.0f;
    return 0;
}
