/* Sampler settings from JSON: the API's "sampler" object and a model card's
 * "default_sampler" use the same field names (kind, predictor, corrector, snr,
 * corrector_steps, steps, solver, rtol, atol, eps, denoise). */
#ifndef SCORED_SAMPLER_JSON_H
#define SCORED_SAMPLER_JSON_H

#include <jansson.h>

#include "sampler.h"

/* Overlays the fields present in obj on c.  Unknown fields and wrong types are
 * SC_ERR_INVALID with the field named; ranges are left to sampler_config_validate. */
int sampler_config_apply_json(sampler_config *c, const json_t *obj, sc_error *err);

/* The model's default sampler: the reference defaults, then the card's default_sampler.
 * want_kind (-1 for the card's choice) picks pc or ode; when it differs from the card's
 * kind, only the defaults for that kind apply (the card's "steps" means something else). */
int sampler_config_model_default(sampler_config *c, const sc_model *m, int want_kind,
                                 sc_error *err);

/* {"kind": ..., every field} for API responses; new reference. */
json_t *sampler_config_to_json(const sampler_config *c);

#endif
