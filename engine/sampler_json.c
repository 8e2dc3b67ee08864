/* Sampler settings <-> JSON.  Not here: validation of ranges (sampler.c). */
#include "sampler_json.h"

#include <string.h>


static int name_field(const json_t *v, const char *key, int (*parse)(const char *, void *),
                      void *out, sc_error *err)
{
    const char *s = json_string_value(v);
    if (!s) return sc_fail(err, SC_ERR_FORMAT, "sampler.%s must be a string", key);
    if (parse(s, out)) return sc_fail(err, SC_ERR_INVALID, "sampler.%s: unknown value \"%.80s\"", key, s);
    return 0;
}

static int parse_kind(const char *s, void *o) { return sampler_kind_from_str(s, o); }
static int parse_predictor(const char *s, void *o) { return predictor_from_str(s, o); }
static int parse_corrector(const char *s, void *o) { return corrector_from_str(s, o); }
static int parse_solver(const char *s, void *o) { return ode_solver_from_str(s, o); }

static int number_field(const json_t *v, const char *key, double *out, sc_error *err)
{
    if (!json_is_number(v)) return sc_fail(err, SC_ERR_FORMAT, "sampler.%s must be a number", key);
    *out = json_number_value(v);
    if (!(*out > 0)) return sc_fail(err, SC_ERR_INVALID, "sampler.%s must be positive, got %g", key, *out);
    return 0;
}

static int int_field(const json_t *v, const char *key, int lo, int hi, int *out, sc_error *err)
{
    if (!json_is_integer(v)) return sc_fail(err, SC_ERR_FORMAT, "sampler.%s must be an integer", key);
    if (json_integer_value(v) < lo || json_integer_value(v) > hi)
        return sc_fail(err, SC_ERR_INVALID, "sampler.%s must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

int sampler_config_apply_json(sampler_config *c, const json_t *obj, sc_error *err)
{
    if (!obj) return 0;
    if (!json_is_object(obj)) return sc_fail(err, SC_ERR_FORMAT, "sampler must be an object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int rc;
        if (strcmp(key, "kind") == 0) rc = name_field(v, key, parse_kind, &c->kind, err);
        else if (strcmp(key, "predictor") == 0) rc = name_field(v, key, parse_predictor, &c->predictor, err);
        else if (strcmp(key, "corrector") == 0) rc = name_field(v, key, parse_corrector, &c->corrector, err);
        else if (strcmp(key, "solver") == 0) rc = name_field(v, key, parse_solver, &c->solver, err);
        else if (strcmp(key, "snr") == 0) rc = number_field(v, key, &c->snr, err);
        else if (strcmp(key, "rtol") == 0) rc = number_field(v, key, &c->rtol, err);
        else if (strcmp(key, "atol") == 0) rc = number_field(v, key, &c->atol, err);
        else if (strcmp(key, "eps") == 0) rc = number_field(v, key, &c->eps, err);
        else if (strcmp(key, "steps") == 0) rc = int_field(v, key, 1, SAMPLER_MAX_STEPS, &c->steps, err);
        else if (strcmp(key, "corrector_steps") == 0)
            rc = int_field(v, key, 1, SAMPLER_MAX_CORRECTOR_STEPS, &c->corrector_steps, err);
        else if (strcmp(key, "denoise") == 0) {
            if (!json_is_boolean(v)) rc = sc_fail(err, SC_ERR_FORMAT, "sampler.denoise must be true or false");
            else {
                c->denoise = json_is_true(v);
                rc = 0;
            }
        } else
            rc = sc_fail(err, SC_ERR_INVALID, "sampler: unknown field \"%.60s\"", key);
        if (rc) return rc;
    }
    return 0;
}

int sampler_config_model_default(sampler_config *c, const sc_model *m, int want_kind, sc_error *err)
{
    sampler_config_default(c, m);
    json_t *card = json_loads(m->card_json ? m->card_json : "{}", 0, NULL);
    if (!card) return sc_fail(err, SC_ERR_FORMAT, "model %s: the model card is not valid JSON", m->name);
    const json_t *ds = json_object_get(card, "default_sampler");
    int rc = 0;
    if (ds) {
        sampler_config from_card = *c;
        rc = sampler_config_apply_json(&from_card, ds, err);
        if (rc) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "model %.100s card default_sampler: %.380s", m->name, err->msg);
            sc_fail(err, SC_ERR_FORMAT, "%s", msg);
            rc = SC_ERR_FORMAT;
        } else if (want_kind < 0 || (int)from_card.kind == want_kind) {
            *c = from_card;
        }
    }
    if (!rc && want_kind >= 0) c->kind = (sampler_kind)want_kind;
    json_decref(card);
    return rc;
}

json_t *sampler_config_to_json(const sampler_config *c)
{
    return json_pack("{s:s, s:s, s:s, s:f, s:i, s:i, s:s, s:f, s:f, s:f, s:b}", "kind",
                     sampler_kind_name(c->kind), "predictor", predictor_name(c->predictor),
                     "corrector", corrector_name(c->corrector), "snr", c->snr, "corrector_steps",
                     c->corrector_steps, "steps", c->steps, "solver", ode_solver_name(c->solver),
                     "rtol", c->rtol, "atol", c->atol, "eps", c->eps, "denoise", c->denoise);
}
