/* Internal to model loaders: the fields every model document shares (name, shape, sde,
 * centered, labels, card).  Not part of the public engine API. */
#ifndef SCORED_MODEL_JSON_H
#define SCORED_MODEL_JSON_H

#include <jansson.h>

#include "model.h"

/* Allocates *out with the common fields filled from root; ops/impl left NULL. */
int model_json_common(const json_t *root, const char *path, sc_model **out, sc_error *err);

/* Parses {"type": "ve"|"vp"|"subvp", ...} into s (validated). */
int model_json_sde(const json_t *obj, sde *s, sc_error *err);

#endif
