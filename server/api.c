/* Request bodies to jobs: JSON, multipart/form-data and .npy bodies of the POST endpoints
 * are validated at the boundary and turned into a job whose tasks are created (so every
 * impossible setting is refused with 4xx before anything is queued).  Runs on the
 * libmicrohttpd thread.  Not here: HTTP plumbing (http.c), scheduling (sched.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "codec.h"
#include "image_model.h"
#include "multipart.h"
#include "npy.h"
#include "sampler_json.h"
#include "tensor_json.h"

#define MAX_PARTS 80
#define MAX_IMAGE_PIXELS (4096 * 4096)

/* Everything a request carries besides its parameters. */
typedef struct inputs {
    json_t *params;        /* owned                                                        */
    sc_image images[64];   /* decoded PNGs ("image" parts / fields, "images" list)         */
    int n_images;
    sc_image mask;         /* "mask", when given                                           */
    int have_mask;
    float *tensor;         /* "data" / "latents" / .npy body: owned                        */
    int64_t shape[8];
    int ndim;
    float *mask_tensor;    /* "mask" as numbers (vector models): owned                     */
    int64_t mask_count;
} inputs;

static void inputs_free(inputs *in)
{
    json_decref(in->params);
    for (int i = 0; i < in->n_images; i++) image_free(&in->images[i]);
    image_free(&in->mask);
    free(in->tensor);
    free(in->mask_tensor);
}

static int media_is(const char *content_type, const char *want)
{
    size_t n = strlen(want);
    return content_type && strncasecmp(content_type, want, n) == 0 &&
           (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

static int decode_png(const uint8_t *data, size_t len, const char *what, sc_image *out, sc_error *err)
{
    int rc = image_read_png_mem(data, len, MAX_IMAGE_PIXELS, out, err);
    if (rc && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.60s: %.440s", what, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    return rc;
}

static int decode_b64_png(const json_t *v, const char *what, size_t max, sc_image *out, sc_error *err)
{
    const char *s = json_string_value(v);
    if (!s) return sc_fail(err, SC_ERR_FORMAT, "%s must be a base64-encoded PNG string", what);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = b64_decode(s, json_string_length(v), max, &bytes, &len, err);
    if (rc == 0) rc = decode_png(bytes, len, what, out, err);
    free(bytes);
    return rc;
}

/* JSON body: the object itself holds both parameters and inputs. */
static int read_json(const api_request *r, inputs *in, sc_error *err)
{
    json_error_t jerr;
    if (r->len == 0) return sc_fail(err, SC_ERR_FORMAT, "empty body: send a JSON object ({} for the defaults)");
    in->params = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!in->params) return sc_fail(err, SC_ERR_FORMAT, "body is not valid JSON (line %d: %s)", jerr.line, jerr.text);
    if (!json_is_object(in->params)) return sc_fail(err, SC_ERR_FORMAT, "body must be a JSON object");
    const json_t *v;
    int rc;
    if ((v = json_object_get(in->params, "image"))) {
        if ((rc = decode_b64_png(v, "image", r->max_body, &in->images[0], err))) return rc;
        in->n_images = 1;
    }
    if ((v = json_object_get(in->params, "images"))) {
        if (!json_is_array(v)) return sc_fail(err, SC_ERR_FORMAT, "images must be an array of base64 PNGs");
        if (json_array_size(v) > (size_t)r->max_items || json_array_size(v) > 64)
            return sc_fail(err, SC_ERR_TOO_LARGE, "%zu images; at most %d per request", json_array_size(v), r->max_items);
        for (size_t i = 0; i < json_array_size(v); i++) {
            char what[32];
            snprintf(what, sizeof what, "images[%zu]", i);
            if ((rc = decode_b64_png(json_array_get(v, i), what, r->max_body, &in->images[in->n_images], err))) return rc;
            in->n_images++;
        }
    }
    if ((v = json_object_get(in->params, "mask"))) {
        if (json_is_array(v)) { /* a vector model's mask: 1 keep, 0 generate */
            int64_t shape[8];
            int nd;
            if ((rc = tensor_from_json(v, 5, r->model->D + 1, &in->mask_tensor, shape, &nd, err))) return rc;
            in->mask_count = 1;
            for (int i = 0; i < nd; i++) in->mask_count *= shape[i];
        } else {
            if ((rc = decode_b64_png(v, "mask", r->max_body, &in->mask, err))) return rc;
            in->have_mask = 1;
        }
    }
    const char *tensor_key = json_object_get(in->params, "latents") ? "latents" : "data";
    if ((v = json_object_get(in->params, tensor_key))) {
        rc = tensor_from_json(v, 5, (int64_t)r->max_items * r->model->D, &in->tensor, in->shape, &in->ndim, err);
        if (rc) {
            if (err) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s: %.480s", tensor_key, err->msg);
                memcpy(err->msg, msg, sizeof msg);
            }
            return rc;
        }
    }
    return 0;
}

static int read_multipart(const api_request *r, inputs *in, sc_error *err)
{
    mp_part parts[MAX_PARTS];
    int n = 0;
    int rc = multipart_parse(r->body, r->len, r->content_type, parts, MAX_PARTS, &n, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        const mp_part *p = &parts[i];
        if (strcmp(p->name, "params") == 0) {
            if (in->params) return sc_fail(err, SC_ERR_FORMAT, "multipart: more than one params part");
            json_error_t jerr;
            in->params = json_loadb((const char *)p->data, p->len, JSON_REJECT_DUPLICATES, &jerr);
            if (!in->params || !json_is_object(in->params))
                return sc_fail(err, SC_ERR_FORMAT, "multipart: the params part must be a JSON object");
        } else if (strcmp(p->name, "image") == 0 || strcmp(p->name, "images") == 0) {
            if (in->n_images >= r->max_items || in->n_images >= 64)
                return sc_fail(err, SC_ERR_TOO_LARGE, "more than %d images in one request", r->max_items);
            if ((rc = decode_png(p->data, p->len, "image part", &in->images[in->n_images], err))) return rc;
            in->n_images++;
        } else if (strcmp(p->name, "mask") == 0) {
            if (in->have_mask) return sc_fail(err, SC_ERR_FORMAT, "multipart: more than one mask part");
            if ((rc = decode_png(p->data, p->len, "mask part", &in->mask, err))) return rc;
            in->have_mask = 1;
        } else {
            return sc_fail(err, SC_ERR_FORMAT, "multipart: unknown part \"%.60s\" (expected image, mask, params)", p->name);
        }
    }
    if (!in->params) in->params = json_object();
    return 0;
}

static int read_npy(const api_request *r, inputs *in, sc_error *err)
{
    sc_array a = {0};
    int rc = npy_read_mem(r->body, r->len, (int64_t)r->max_items * r->model->D, &a, err);
    if (rc) return rc;
    in->tensor = malloc(sizeof(float) * (size_t)(a.count ? a.count : 1));
    if (!in->tensor) {
        npy_free(&a);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < a.count; i++) in->tensor[i] = (float)a.data[i];
    in->ndim = a.ndim;
    memcpy(in->shape, a.shape, sizeof(int64_t) * (size_t)a.ndim);
    npy_free(&a);
    /* a raw body leaves no room for options: they come in the query string */
    in->params = r->query ? json_deep_copy(r->query) : json_object();
    return in->params ? 0 : sc_fail(err, SC_ERR_NOMEM, "out of memory");
}

/* ---- parameters -------------------------------------------------------------------------- */

static int check_keys(const json_t *p, const char *const *allowed, sc_error *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)p, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) return sc_fail(err, SC_ERR_INVALID, "unknown field \"%.60s\"", key);
    }
    return 0;
}

static int get_int(const json_t *p, const char *key, long lo, long hi, long def, long *out, sc_error *err)
{
    const json_t *v = json_object_get(p, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) return sc_fail(err, SC_ERR_FORMAT, "%s must be an integer", key);
    long x = (long)json_integer_value(v);
    if (x < lo || x > hi) return sc_fail(err, SC_ERR_INVALID, "%s must be in [%ld, %ld], got %ld", key, lo, hi, x);
    *out = x;
    return 0;
}

static int get_num(const json_t *p, const char *key, double def, double *out, sc_error *err)
{
    const json_t *v = json_object_get(p, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return sc_fail(err, SC_ERR_FORMAT, "%s must be a number", key);
    *out = json_number_value(v);
    if (!isfinite(*out)) return sc_fail(err, SC_ERR_INVALID, "%s must be finite", key);
    return 0;
}

static int get_bool(const json_t *p, const char *key, int def, int *out, sc_error *err)
{
    const json_t *v = json_object_get(p, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return sc_fail(err, SC_ERR_FORMAT, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int get_seed(const json_t *p, uint64_t fallback, uint64_t *out, sc_error *err)
{
    const json_t *v = json_object_get(p, "seed");
    if (!v) {
        *out = fallback & SRV_SEED_MAX;
        return 0;
    }
    if (!json_is_integer(v)) return sc_fail(err, SC_ERR_FORMAT, "seed must be an integer");
    if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > SRV_SEED_MAX)
        return sc_fail(err, SC_ERR_INVALID, "seed must be an integer in [0, 2^53 - 1]");
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* label: class index or name; guidance defaults to 1 with a label. */
static int get_label(const sc_model *m, const json_t *p, sc_condition *c, sc_error *err)
{
    const json_t *v = json_object_get(p, "label");
    c->label = -1;
    c->guidance = 0;
    double g;
    if (!v || json_is_null(v)) {
        if (json_object_get(p, "guidance")) return sc_fail(err, SC_ERR_INVALID, "guidance needs a label");
        return 0;
    }
    if (json_is_integer(v)) {
        c->label = (int)json_integer_value(v);
        if (json_integer_value(v) < 0 || json_integer_value(v) >= m->n_classes || !m->guidable)
            return sc_fail(err, SC_ERR_INVALID, "label %lld out of range: model %s has %d classes",
                           (long long)json_integer_value(v), m->name, m->n_classes);
    } else if (json_is_string(v)) {
        for (int i = 0; i < m->n_labels && c->label < 0; i++)
            if (strcmp(m->labels[i], json_string_value(v)) == 0) c->label = i;
        if (c->label < 0) return sc_fail(err, SC_ERR_INVALID, "unknown label \"%.60s\" for model %s", json_string_value(v), m->name);
    } else {
        return sc_fail(err, SC_ERR_FORMAT, "label must be a class index or name");
    }
    int rc = get_num(p, "guidance", 1.0, &g, err);
    c->guidance = (float)g;
    return rc;
}

static int get_sampler(const api_request *r, const json_t *p, int force_kind, sampler_config *cfg, sc_error *err)
{
    const json_t *sj = json_object_get(p, "sampler");
    if (sj && !json_is_object(sj)) return sc_fail(err, SC_ERR_FORMAT, "sampler must be an object");
    int want = force_kind;
    const char *k = sj ? json_string_value(json_object_get(sj, "kind")) : NULL;
    if (want < 0 && k) {
        sampler_kind sk;
        if (sampler_kind_from_str(k, &sk)) return sc_fail(err, SC_ERR_INVALID, "sampler.kind must be \"pc\" or \"ode\"");
        want = (int)sk;
    }
    int rc = sampler_config_model_default(cfg, r->model, want, err);
    if (rc) return rc;
    if (sj) {
        json_t *copy = json_deep_copy(sj);
        if (force_kind >= 0 && k && strcmp(k, sampler_kind_name((sampler_kind)force_kind)) != 0) {
            json_decref(copy);
            return sc_fail(err, SC_ERR_UNSUPPORTED, "this endpoint needs the %s sampler",
                           sampler_kind_name((sampler_kind)force_kind));
        }
        rc = sampler_config_apply_json(cfg, copy, err);
        json_decref(copy);
        if (rc) return rc;
    }
    if (cfg->steps > r->max_steps)
        return sc_fail(err, SC_ERR_INVALID, "steps must be at most %d on this server, got %d", r->max_steps, cfg->steps);
    return sampler_config_validate(cfg, r->model, err);
}

static int get_likelihood_cfg(const api_request *r, const json_t *p, likelihood_config *c, sc_error *err)
{
    /* no exact_divergence, hutchinson or probes field: exact for small D, else one rademacher
     * probe (likelihood_config_model_default); hutchinson or probes alone mean Hutchinson */
    likelihood_config_model_default(c, r->model);
    long probes, steps;
    const json_t *h = json_object_get(p, "hutchinson");
    int exact = c->exact_divergence && !h && !json_object_get(p, "probes"), rc;
    if (h) {
        if (!json_is_string(h) || probe_kind_from_str(json_string_value(h), &c->probe))
            return sc_fail(err, SC_ERR_INVALID, "hutchinson must be \"rademacher\" or \"gaussian\"");
    }
    const json_t *sv = json_object_get(p, "solver");
    if (sv && (!json_is_string(sv) || ode_solver_from_str(json_string_value(sv), &c->solver)))
        return sc_fail(err, SC_ERR_INVALID, "solver must be \"rk45\", \"euler\" or \"heun\"");
    if ((rc = get_int(p, "probes", 1, FLOW_MAX_PROBES, 1, &probes, err)) ||
        (rc = get_int(p, "steps", 1, r->max_steps, 100, &steps, err)) ||
        (rc = get_num(p, "rtol", 1e-5, &c->rtol, err)) || (rc = get_num(p, "atol", 1e-5, &c->atol, err)) ||
        (rc = get_num(p, "eps", 0, &c->eps, err)) || (rc = get_bool(p, "exact_divergence", exact, &exact, err)))
        return rc;
    c->probes = (int)probes;
    c->steps = (int)steps;
    c->exact_divergence = exact;
    return likelihood_config_validate(c, r->model, err);
}

/* The items of a data tensor: [*shape] (one) or [n, *shape]. */
static int tensor_items(const api_request *r, const inputs *in, const char *what, int *n, sc_error *err)
{
    const sc_model *m = r->model;
    int one = in->ndim == m->ndim, many = in->ndim == m->ndim + 1;
    for (int i = 0; i < m->ndim; i++) {
        if (one && in->shape[i] != m->shape[i]) one = 0;
        if (many && in->shape[i + 1] != m->shape[i]) many = 0;
    }
    char shape[48];
    sc_model_shape_str(m, shape, sizeof shape);
    if (!one && !many) return sc_fail(err, SC_ERR_SHAPE, "%s must have shape %s or [n, ...%s], model %s", what, shape, shape, m->name);
    *n = one ? 1 : (int)in->shape[0];
    if (*n < 1) return sc_fail(err, SC_ERR_INVALID, "%s holds no items", what);
    if (*n > r->max_items) return sc_fail(err, SC_ERR_TOO_LARGE, "%d items; at most %d per request", *n, r->max_items);
    return 0;
}

/* Bits/dim of an image's lossless PNG re-encoding: the complexity term of Serra et al. */
static double png_complexity(const sc_image *img)
{
    uint8_t *png = NULL;
    size_t len = 0;
    if (image_write_png_mem(img->pixels, img->width, img->height, img->channels, &png, &len, NULL)) return NAN;
    free(png);
    return 8.0 * (double)len / ((double)img->width * img->height * img->channels);
}

/* The card's calibration of one anomaly score: anomaly.scores.<score> when the card has it,
 * else the top-level threshold and quantiles when they are for that score (anomaly.score,
 * default "bpd"); NULL when the card does not calibrate that score. */
static const json_t *card_calibration(const json_t *an, const char *score)
{
    if (!an) return NULL;
    const json_t *per = json_object_get(json_object_get(an, "scores"), score);
    if (json_is_object(per)) return per;
    const char *top = json_string_value(json_object_get(an, "score"));
    return strcmp(top ? top : "bpd", score) == 0 ? an : NULL;
}

static int anomaly_settings(const api_request *r, const json_t *p, job *j, sc_error *err)
{
    json_t *card = json_loads(r->model->card_json, 0, NULL);
    const json_t *an = card ? json_object_get(card, "anomaly") : NULL;
    const char *score = json_string_value(json_object_get(p, "score"));
    if (!score && an) score = json_string_value(json_object_get(an, "score"));
    if (!score) score = "bpd";
    int rc = 0;
    if (strcmp(score, "bpd") == 0) j->ascore = SCORE_BPD;
    else if (strcmp(score, "complexity") == 0) j->ascore = SCORE_COMPLEXITY;
    else rc = sc_fail(err, SC_ERR_INVALID, "score must be \"bpd\" or \"complexity\"");
    const json_t *th = json_object_get(p, "threshold"), *q = json_object_get(p, "quantile");
    if (!rc && th && q) rc = sc_fail(err, SC_ERR_INVALID, "give threshold or quantile, not both");
    if (!rc && th) {
        if (!json_is_number(th)) rc = sc_fail(err, SC_ERR_FORMAT, "threshold must be a number");
        j->threshold = json_number_value(th);
        j->threshold_source = "request";
    } else if (!rc && q) {
        const json_t *cal = card_calibration(an, score);
        const json_t *qs = cal ? json_object_get(cal, "quantiles") : NULL;
        char key[32];
        snprintf(key, sizeof key, "%g", json_number_value(q));
        const json_t *v = json_is_number(q) ? json_object_get(qs, key) : NULL;
        if (!v || !json_is_number(v))
            rc = sc_fail(err, SC_ERR_INVALID, "model %s's card has no %s quantile for the %s anomaly score",
                         r->model->name, key, score);
        else {
            j->threshold = json_number_value(v);
            j->threshold_source = "quantile";
        }
    } else if (!rc) {
        const json_t *cal = card_calibration(an, score);
        const json_t *v = cal ? json_object_get(cal, "threshold") : NULL;
        if (!json_is_number(v))
            rc = sc_fail(err, SC_ERR_INVALID, "model %s's card gives no threshold for the %s anomaly score: send \"threshold\"",
                         r->model->name, score);
        else {
            j->threshold = json_number_value(v);
            j->threshold_source = "card";
        }
    }
    json_decref(card);
    return rc;
}

/* ---- jobs per endpoint ------------------------------------------------------------------- */

static const char *const SAMPLE_KEYS[] = {"n", "seed", "sampler", "label", "guidance", "format", "grid",
                                          "async", "preview_every", "image", "mask", "data", NULL};
static const char *const LIK_KEYS[] = {"images", "image", "data", "hutchinson", "probes", "rtol", "atol",
                                       "seed", "exact_divergence", "solver", "steps", "eps", "async",
                                       "score", "quantile", "threshold", NULL};
static const char *const CODE_KEYS[] = {"data", "images", "image", "latents", "solver", "rtol", "atol", "steps",
                                        "eps", "async", "sampler", "format", "grid", "label", "guidance", "denoise",
                                        NULL};

static int output_format(const api_request *r, const json_t *p, job *j, sc_error *err)
{
    const char *f = json_string_value(json_object_get(p, "format"));
    if (json_object_get(p, "format") && !f) return sc_fail(err, SC_ERR_FORMAT, "format must be \"png\" or \"json\"");
    int image = sc_model_is_image(r->model);
    if (f && strcmp(f, "png") == 0) {
        if (!image) return sc_fail(err, SC_ERR_INVALID, "model %s is not an image model: use format json", r->model->name);
        j->want_png = 1;
    } else if (f && strcmp(f, "json") == 0) {
        j->want_png = 0;
    } else if (f) {
        return sc_fail(err, SC_ERR_INVALID, "format must be \"png\" or \"json\"");
    } else {
        j->want_png = image;
    }
    j->want_npy = r->accept_npy;
    int rc = get_bool(p, "grid", 1, &j->grid, err);
    if (!rc && f && strcmp(f, "png") == 0 && !j->grid && j->n > 1)
        rc = sc_fail(err, SC_ERR_UNSUPPORTED, "format png with grid false holds one image: use n 1, grid true or format json");
    return rc;
}

static int make_generation(const api_request *r, job_kind kind, inputs *in, job **out, sc_error *err)
{
    const sc_model *m = r->model;
    const json_t *p = in->params;
    long n, preview;
    int rc;
    if ((rc = check_keys(p, SAMPLE_KEYS, err))) return rc;
    if ((rc = get_int(p, "n", 1, r->max_items, 1, &n, err))) {
        if (rc == SC_ERR_INVALID && json_is_integer(json_object_get(p, "n")) &&
            json_integer_value(json_object_get(p, "n")) > r->max_items)
            return sc_fail(err, SC_ERR_TOO_LARGE, "n must be at most %d on this server", r->max_items);
        return rc;
    }
    if ((rc = get_int(p, "preview_every", 1, 1000000, 0, &preview, err))) return rc;
    sampler_config cfg;
    sc_condition cond = {.kind = COND_NONE, .label = -1};
    if ((rc = get_sampler(r, p, kind == JOB_SAMPLES ? -1 : (int)SAMPLER_PC, &cfg, err)) ||
        (rc = get_label(m, p, &cond, err)))
        return rc;
    job *j = job_new(r->server, r->sm, kind, (int)n, err);
    if (!j) return err->code;
    j->scfg = cfg;
    j->preview_every = (int)preview;
    if ((rc = get_seed(p, r->random_seed, &j->seed, err)) || (rc = output_format(r, p, j, err))) goto fail;
    const int D = m->D;
    if (kind == JOB_INPAINT && !sc_model_is_image(m)) { /* vector data: "data" and a 0/1 "mask" */
        int items = 0;
        if (!in->tensor || !in->mask_tensor) {
            rc = sc_fail(err, SC_ERR_INVALID, "inpainting a vector model needs \"data\" and \"mask\" arrays");
            goto fail;
        }
        if ((rc = tensor_items(r, in, "data", &items, err))) goto fail;
        if (items != 1 || in->mask_count != D) {
            rc = sc_fail(err, SC_ERR_SHAPE, "data and mask must each hold %d values (model %s)", D, m->name);
            goto fail;
        }
        j->inputs = malloc(sizeof(float) * D);
        j->mask = malloc(sizeof(float) * D);
        if (!j->inputs || !j->mask) {
            rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(j->inputs, in->tensor, sizeof(float) * D);
        memcpy(j->mask, in->mask_tensor, sizeof(float) * D);
        cond.kind = COND_INPAINT;
        cond.data = j->inputs;
        cond.mask = j->mask;
    } else if (kind == JOB_INPAINT || kind == JOB_COLORIZE) {
        if (in->n_images != 1) {
            rc = sc_fail(err, SC_ERR_FORMAT, "%s needs exactly one image", job_kind_name(kind));
            goto fail;
        }
        if (!sc_model_is_image(m)) {
            rc = sc_fail(err, SC_ERR_UNSUPPORTED, "model %s is not an image model", m->name);
            goto fail;
        }
        j->inputs = malloc(sizeof(float) * D);
        j->mask = malloc(sizeof(float) * D);
        if (!j->inputs || !j->mask) {
            rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        const sc_image *img = &in->images[0];
        if ((rc = image_to_model(m, img, "image", j->inputs, err))) goto fail;
        const int hw = m->shape[1] * m->shape[2];
        if (kind == JOB_INPAINT) {
            rc = in->have_mask ? image_mask_keep(&in->mask, img->width, img->height, "mask", j->mask, err)
                               : image_alpha_keep(img, "image", j->mask, err);
            if (rc) goto fail;
            for (int c = 1; c < m->shape[0]; c++) memcpy(j->mask + (size_t)c * hw, j->mask, sizeof(float) * hw);
            cond.kind = COND_INPAINT;
            cond.mask = j->mask;
        } else {
            if (m->shape[0] != 3) {
                rc = sc_fail(err, SC_ERR_UNSUPPORTED, "colorization needs a 3-channel image model; %s has %d channel(s)",
                             m->name, m->shape[0]);
                goto fail;
            }
            for (int i = 0; i < hw; i++) { /* the gray level, on all three channels */
                float g = (j->inputs[i] + j->inputs[hw + i] + j->inputs[2 * hw + i]) / 3.0f;
                j->inputs[i] = j->inputs[hw + i] = j->inputs[2 * hw + i] = g;
            }
            cond.kind = COND_COLORIZE;
        }
        cond.data = j->inputs;
    } else if (in->n_images || in->have_mask || in->tensor || in->mask_tensor) {
        rc = sc_fail(err, SC_ERR_INVALID, "samples takes no image, data or mask");
        goto fail;
    }
    j->cond = cond;
    for (int i = 0; i < j->n; i++) {
        rc = cfg.kind == SAMPLER_PC ? pc_task_create(m, &cfg, &j->cond, j->seed, (uint64_t)i, &j->tasks[i], err)
                                    : flow_sample_task_create(m, &cfg, &j->cond, NULL, j->seed, (uint64_t)i, &j->tasks[i], err);
        if (rc) goto fail;
    }
    j->remaining = j->n;
    *out = j;
    return 0;
fail:
    job_discard(j);
    return rc;
}

static int make_likelihood(const api_request *r, job_kind kind, inputs *in, job **out, sc_error *err)
{
    const sc_model *m = r->model;
    const json_t *p = in->params;
    int rc, n;
    if ((rc = check_keys(p, LIK_KEYS, err))) return rc;
    if (kind == JOB_LIKELIHOOD && (json_object_get(p, "score") || json_object_get(p, "quantile") || json_object_get(p, "threshold")))
        return sc_fail(err, SC_ERR_INVALID, "score, quantile and threshold belong to /anomaly");
    likelihood_config cfg;
    if ((rc = get_likelihood_cfg(r, p, &cfg, err))) return rc;
    if (in->n_images && in->tensor) return sc_fail(err, SC_ERR_INVALID, "send images or data, not both");
    if (in->n_images) n = in->n_images;
    else if (in->tensor) {
        if ((rc = tensor_items(r, in, "data", &n, err))) return rc;
    } else
        return sc_fail(err, SC_ERR_INVALID, "no input: send images (PNG) or data (a float tensor)");
    job *j = job_new(r->server, r->sm, kind, n, err);
    if (!j) return err->code;
    const int D = m->D;
    j->inputs = malloc(sizeof(float) * (size_t)n * D);
    j->complexity = calloc((size_t)n, sizeof(double));
    if (!j->inputs || !j->complexity) {
        rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (in->n_images) {
        for (int i = 0; i < n; i++) {
            char what[32];
            snprintf(what, sizeof what, "image %d", i);
            if ((rc = image_to_model(m, &in->images[i], what, j->inputs + (size_t)i * D, err))) goto fail;
            j->complexity[i] = png_complexity(&in->images[i]);
        }
        cfg.dequantize = 1;
        j->have_pngs = 1;
    } else {
        memcpy(j->inputs, in->tensor, sizeof(float) * (size_t)n * D);
        for (int i = 0; i < n; i++) j->complexity[i] = NAN;
    }
    if (kind == JOB_ANOMALY) {
        if ((rc = anomaly_settings(r, p, j, err))) goto fail;
        if (j->ascore == SCORE_COMPLEXITY && !j->have_pngs) {
            rc = sc_fail(err, SC_ERR_INVALID, "the complexity score needs PNG images");
            goto fail;
        }
    }
    j->lcfg = cfg;
    if ((rc = get_seed(p, 0, &j->seed, err))) goto fail; /* reproducible by default, as the CLI */
    for (int i = 0; i < n; i++)
        if ((rc = flow_likelihood_task_create(m, &cfg, j->inputs + (size_t)i * D, j->seed, (uint64_t)i, &j->tasks[i], err)))
            goto fail;
    j->remaining = n;
    *out = j;
    return 0;
fail:
    job_discard(j);
    return rc;
}

static int make_coding(const api_request *r, job_kind kind, inputs *in, job **out, sc_error *err)
{
    const sc_model *m = r->model;
    const json_t *p = in->params;
    int rc, n;
    if ((rc = check_keys(p, CODE_KEYS, err))) return rc;
    if (in->n_images && kind == JOB_ENCODE) n = in->n_images;
    else if (in->tensor) {
        if ((rc = tensor_items(r, in, kind == JOB_ENCODE ? "data" : "latents", &n, err))) return rc;
    } else
        return sc_fail(err, SC_ERR_INVALID, kind == JOB_ENCODE ? "no input: send data (floats, .npy) or images"
                                                                : "no input: send latents (floats or .npy)");
    job *j = job_new(r->server, r->sm, kind, n, err);
    if (!j) return err->code;
    const int D = m->D;
    j->inputs = malloc(sizeof(float) * (size_t)n * D);
    if (!j->inputs) {
        rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (in->n_images && kind == JOB_ENCODE) {
        for (int i = 0; i < n; i++)
            if ((rc = image_to_model(m, &in->images[i], "image", j->inputs + (size_t)i * D, err))) goto fail;
    } else {
        memcpy(j->inputs, in->tensor, sizeof(float) * (size_t)n * D);
    }
    if (kind == JOB_ENCODE) {
        likelihood_config cfg;
        if ((rc = get_likelihood_cfg(r, p, &cfg, err))) goto fail;
        j->lcfg = cfg;
        j->want_npy = r->accept_npy;
        for (int i = 0; i < n; i++)
            if ((rc = flow_encode_task_create(m, &cfg, j->inputs + (size_t)i * D, &j->tasks[i], err))) goto fail;
    } else {
        sampler_config cfg;
        if ((rc = get_sampler(r, p, SAMPLER_ODE, &cfg, err))) goto fail;
        /* decoding inverts encoding: its eps defaults to the likelihood's, not sampling's */
        const json_t *sj = json_object_get(p, "sampler");
        if (!json_object_get(p, "eps") && !(sj && json_object_get(sj, "eps"))) cfg.eps = sde_eps_likelihood(&m->sde);
        double v;
        int denoise = cfg.denoise;
        if ((rc = get_bool(p, "denoise", cfg.denoise, &denoise, err))) goto fail;
        cfg.denoise = denoise;
        const json_t *sv = json_object_get(p, "solver");
        if (sv && (!json_is_string(sv) || ode_solver_from_str(json_string_value(sv), &cfg.solver))) {
            rc = sc_fail(err, SC_ERR_INVALID, "solver must be \"rk45\", \"euler\" or \"heun\"");
            goto fail;
        }
        long st;
        if ((rc = get_int(p, "steps", 1, r->max_steps, cfg.steps, &st, err))) goto fail;
        cfg.steps = (int)st;
        if ((rc = get_num(p, "rtol", cfg.rtol, &v, err))) goto fail;
        cfg.rtol = v;
        if ((rc = get_num(p, "atol", cfg.atol, &v, err))) goto fail;
        cfg.atol = v;
        if ((rc = get_num(p, "eps", cfg.eps, &v, err))) goto fail;
        cfg.eps = v;
        if ((rc = sampler_config_validate(&cfg, m, err)) || (rc = get_label(m, p, &j->cond, err)) ||
            (rc = output_format(r, p, j, err)))
            goto fail;
        j->scfg = cfg;
        for (int i = 0; i < n; i++)
            if ((rc = flow_sample_task_create(m, &cfg, &j->cond, j->inputs + (size_t)i * D, 0, (uint64_t)i, &j->tasks[i], err)))
                goto fail;
    }
    j->remaining = n;
    *out = j;
    return 0;
fail:
    job_discard(j);
    return rc;
}

int api_job_from_request(const api_request *r, job_kind kind, job **out, int *async, sc_error *err)
{
    *out = NULL;
    inputs in = {0};
    int rc;
    if (r->len == 0 || media_is(r->content_type, "application/json")) {
        rc = read_json(r, &in, err);
    } else if (media_is(r->content_type, "multipart/form-data")) {
        rc = read_multipart(r, &in, err);
    } else if (media_is(r->content_type, "application/x-npy") || media_is(r->content_type, "application/octet-stream")) {
        rc = (kind == JOB_ENCODE || kind == JOB_DECODE || kind == JOB_LIKELIHOOD || kind == JOB_ANOMALY)
                 ? read_npy(r, &in, err)
                 : sc_fail(err, SRV_ERR_MEDIA_TYPE, "%s takes JSON or multipart/form-data", job_kind_name(kind));
    } else {
        rc = sc_fail(err, SRV_ERR_MEDIA_TYPE, "unsupported Content-Type %.80s: use application/json%s",
                     r->content_type ? r->content_type : "(none)",
                     kind == JOB_SAMPLES ? "" : ", multipart/form-data or application/x-npy");
    }
    if (!rc) rc = get_bool(in.params, "async", r->prefer_async, async, err);
    if (!rc) {
        switch (kind) {
        case JOB_SAMPLES:
        case JOB_INPAINT:
        case JOB_COLORIZE: rc = make_generation(r, kind, &in, out, err); break;
        case JOB_LIKELIHOOD:
        case JOB_ANOMALY: rc = make_likelihood(r, kind, &in, out, err); break;
        default: rc = make_coding(r, kind, &in, out, err); break;
        }
    }
    inputs_free(&in);
    return rc;
}
