/* Internal to model loaders: the fields every model document shares (name, shape, sde,
 * centered, labels, card).  Not part of the public engine API. */
#ifndef SCORED_MODEL_JSON_H
#define SCORED_MODEL_JSON_H

#include <jansson.h>

#include "model.h"

/* Allocates *out with the common fields filled from root; ops/impl left NULL. */
int model_json_common(const json_t *root, const char *path, sc_model **out, sc_error *err);

/* Parses a "labels" array (NULL: none) of at most MODEL_MAX_LABELS strings into *out (owned,
 * n entries; at least one slot allocated when labels is present) and *n.  On error *out holds
 * what was copied so far (free its *n entries, then it).  what names the document in messages. */
int model_json_labels(const json_t *labels, const char *what, char ***out, int *n, sc_error *err);

/* Parses {"type": "ve"|"vp"|"subvp", ...} into s (validated). */
int model_json_sde(const json_t *obj, sde *s, sc_error *err);

#endif
