/* Decoded 8-bit images as a model's data: size checks, gray <-> RGB conversion, scaling to
 * data units, and inpainting masks.  Shared by the CLI (files) and the server (uploads). */
#ifndef SCORED_IMAGE_MODEL_H
#define SCORED_IMAGE_MODEL_H

#include "image.h"
#include "model.h"

/* img must be exactly the model's width and height; x: (D) in data units.  A gray image for
 * a 3-channel model is replicated, an RGB image for a 1-channel model becomes its channel
 * mean.  what names the image in messages ("image.png", "part 'image'"). */
int image_to_model(const sc_model *m, const sc_image *img, const char *what, float *x,
                   sc_error *err);

/* keep (width * height): 1 keep, 0 generate.  A pixel is kept when its gray value (or
 * channel mean) is >= 128; a mask with transparent pixels is read by its alpha instead
 * (alpha < 128 = generate, as in OpenAI's image edits). */
int image_mask_keep(const sc_image *mask, int width, int height, const char *what, float *keep,
                    sc_error *err);

/* keep from an image's own alpha (alpha < 128 = generate); SC_ERR_INVALID if it has none. */
int image_alpha_keep(const sc_image *img, const char *what, float *keep, sc_error *err);

#endif
