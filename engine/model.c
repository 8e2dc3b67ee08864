/* Model loading (by content), the fields every model shares, and data scaling.
 * Not here: any kind's score evaluation (gmm.c, later the networks). */
#include "model.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gauss.h"
#include "gmm.h"
#include "net_model.h"
#include "safetensors.h"
#include "model_json.h"

#define MODEL_MAX_D (3 * 1024 * 1024)

static double num_or(const json_t *obj, const char *key, double fallback, int *ok)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) return fallback;
    if (!json_is_number(v)) {
        *ok = 0;
        return fallback;
    }
    return json_number_value(v);
}

int model_json_sde(const json_t *obj, sde *s, sc_error *err)
{
    if (!json_is_object(obj))
        return sc_fail(err, SC_ERR_FORMAT, "model: \"sde\" must be an object");
    const char *type = json_string_value(json_object_get(obj, "type"));
    if (!type || sde_type_from_str(type, &s->type) != 0)
        return sc_fail(err, SC_ERR_FORMAT, "model: sde \"type\" must be \"ve\", \"vp\" or \"subvp\"");
    int ok = 1;
    s->beta_min = num_or(obj, "beta_min", 0.1, &ok);
    s->beta_max = num_or(obj, "beta_max", 20.0, &ok);
    s->sigma_min = num_or(obj, "sigma_min", 0.01, &ok);
    s->sigma_max = num_or(obj, "sigma_max", 50.0, &ok);
    double N = num_or(obj, "N", 1000, &ok);
    if (!ok) return sc_fail(err, SC_ERR_FORMAT, "model: sde parameters must be numbers");
    if (N != floor(N) || N < 2 || N > 1000000)
        return sc_fail(err, SC_ERR_FORMAT, "model: sde N must be an integer in [2, 1000000]");
    s->N = (int)N;
    return sde_validate(s, err) ? SC_ERR_FORMAT : 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int model_json_labels(const json_t *labels, const char *what, char ***out, int *n, sc_error *err)
{
    *out = NULL;
    *n = 0;
    if (!labels) return 0;
    const size_t count = json_is_array(labels) ? json_array_size(labels) : 0;
    if (!json_is_array(labels) || count > MODEL_MAX_LABELS)
        return sc_fail(err, SC_ERR_FORMAT, "%s: \"labels\" must be an array of at most %d strings", what,
                       MODEL_MAX_LABELS);
    if (!(*out = calloc(count ? count : 1, sizeof(char *)))) return sc_fail(err, SC_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < count; i++) {
        const char *l = json_string_value(json_array_get(labels, i));
        if (!l) return sc_fail(err, SC_ERR_FORMAT, "%s: labels[%zu] is not a string", what, i);
        if (!((*out)[i] = dup_str(l))) return sc_fail(err, SC_ERR_NOMEM, "%s: out of memory", what);
        (*n)++;
    }
    return 0;
}

int model_json_common(const json_t *root, const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    sc_model *m = calloc(1, sizeof *m);
    if (!m) return sc_fail(err, SC_ERR_NOMEM, "model: out of memory");
    int rc;

    const char *name = json_string_value(json_object_get(root, "name"));
    m->name = dup_str(name && *name ? name : "unnamed");
    m->path = dup_str(path ? path : "");
    if (!m->name || !m->path) {
        rc = sc_fail(err, SC_ERR_NOMEM, "model: out of memory");
        goto fail;
    }

    const json_t *shape = json_object_get(root, "shape");
    size_t nd = json_is_array(shape) ? json_array_size(shape) : 0;
    if (nd != 1 && nd != 3) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model: \"shape\" must be [D] or [C, H, W]");
        goto fail;
    }
    m->ndim = (int)nd;
    long long D = 1;
    for (size_t i = 0; i < nd; i++) {
        const json_t *v = json_array_get(shape, i);
        double dv = json_is_number(v) ? json_number_value(v) : 0;
        if (dv < 1 || dv != floor(dv) || dv > MODEL_MAX_D) {
            rc = sc_fail(err, SC_ERR_FORMAT, "model: shape entries must be positive integers");
            goto fail;
        }
        m->shape[i] = (int)dv;
        D *= (long long)dv;
    }
    if (D > MODEL_MAX_D) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model: data dimension %lld is over the limit %d", D,
                     MODEL_MAX_D);
        goto fail;
    }
    if (nd == 3 && m->shape[0] != 1 && m->shape[0] != 3) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model: image models need 1 or 3 channels, got %d",
                     m->shape[0]);
        goto fail;
    }
    m->D = (int)D;

    rc = model_json_sde(json_object_get(root, "sde"), &m->sde, err);
    if (rc) goto fail;

    const json_t *centered = json_object_get(root, "centered");
    if (centered && !json_is_boolean(centered)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model: \"centered\" must be true or false");
        goto fail;
    }
    m->centered = centered ? json_is_true(centered) : 1;

    if ((rc = model_json_labels(json_object_get(root, "labels"), "model", &m->labels, &m->n_labels, err)))
        goto fail;

    const json_t *card = json_object_get(root, "card");
    if (card && !json_is_object(card)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model: \"card\" must be an object");
        goto fail;
    }
    m->card_json = card ? json_dumps(card, JSON_COMPACT | JSON_SORT_KEYS) : dup_str("{}");
    if (!m->card_json) {
        rc = sc_fail(err, SC_ERR_NOMEM, "model: out of memory");
        goto fail;
    }
    *out = m;
    return 0;
fail:
    sc_model_free(m);
    return rc;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int sc_model_load(const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    if (has_suffix(path, ".safetensors")) return net_model_load(path, out, err);
    FILE *f = fopen(path, "rb");
    if (!f) return sc_fail(err, SC_ERR_IO, "cannot open model %s: %s", path, strerror(errno));
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (!root)
        return sc_fail(err, SC_ERR_FORMAT, "model %s is not valid JSON (line %d: %s)", path,
                       jerr.line, jerr.text);
    int rc;
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (!json_is_object(root)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "model %s: top level must be a JSON object", path);
    } else if (kind && (strcmp(kind, "gmm") == 0 || strcmp(kind, "gaussian") == 0)) {
        rc = strcmp(kind, "gmm") == 0 ? gmm_from_json(root, path, out, err)
                                      : gauss_from_json(root, path, out, err);
        if (rc && err) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%.200s: %.300s", path, err->msg);
            memcpy(err->msg, msg, sizeof msg);
        }
    } else {
        rc = sc_fail(err, SC_ERR_FORMAT, "model %s: unknown \"kind\" %s%s%s (expected \"gmm\" or \"gaussian\"; networks are .safetensors files)",
                     path, kind ? "\"" : "", kind ? kind : "(missing)", kind ? "\"" : "");
    }
    json_decref(root);
    return rc;
}

void sc_model_free(sc_model *m)
{
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m->impl);
    for (int i = 0; i < m->n_labels; i++) free(m->labels[i]);
    free(m->labels);
    free(m->name);
    free(m->path);
    free(m->card_json);
    free(m);
}

void *sc_model_scratch_alloc(const sc_model *m, int max_batch)
{
    size_t n = m->ops->scratch_bytes(m, max_batch);
    return malloc(n ? n : 1);
}

int sc_model_is_image(const sc_model *m) { return m->ndim == 3; }

float sc_model_from_unit(const sc_model *m, float u) { return m->centered ? 2.0f * u - 1.0f : u; }

float sc_model_to_unit(const sc_model *m, float x) { return m->centered ? 0.5f * (x + 1.0f) : x; }

void sc_model_shape_str(const sc_model *m, char *buf, size_t len)
{
    if (m->ndim == 1)
        snprintf(buf, len, "[%d]", m->shape[0]);
    else
        snprintf(buf, len, "[%d, %d, %d]", m->shape[0], m->shape[1], m->shape[2]);
}

/* A .safetensors file whose metadata says it is a classifier. */
static int is_classifier_file(const char *path)
{
    st_file *f = NULL;
    if (st_open(path, &f, NULL)) return 0;
    const char *meta = st_metadata(f, "scored");
    json_t *root = meta ? json_loads(meta, 0, NULL) : NULL;
    const char *kind = json_string_value(json_object_get(root, "kind"));
    int yes = kind && strcmp(kind, "classifier") == 0;
    json_decref(root);
    st_close(f);
    return yes;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sc_model_dir_list(const char *dir, char ***names, int *count, sc_error *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return sc_fail(err, SC_ERR_IO, "cannot read directory %.300s: %s", dir, strerror(errno));
    char **list = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || !(has_suffix(nm, ".json") || has_suffix(nm, ".safetensors"))) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        if (has_suffix(nm, ".safetensors") && is_classifier_file(path)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(list, sizeof *list * (size_t)cap);
            if (!grown) {
                rc = sc_fail(err, SC_ERR_NOMEM, "out of memory listing %.300s", dir);
                break;
            }
            list = grown;
        }
        if (!(list[n] = dup_str(nm))) {
            rc = sc_fail(err, SC_ERR_NOMEM, "out of memory listing %.300s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        sc_model_dir_free(list, n);
        return rc;
    }
    if (n > 1) qsort(list, (size_t)n, sizeof *list, cmp_names);
    *names = list;
    *count = n;
    return 0;
}

void sc_model_dir_free(char **names, int count)
{
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}
