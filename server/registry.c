/* The model registry: loading every model file of the models directory, reloading it on
 * SIGHUP (models with running jobs stay alive until those finish), and the models' JSON view.
 * Not here: scheduling (sched.c). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_json.h"
#include "srv.h"

static void model_destroy(srv_model *sm)
{
    sc_model_free(sm->model);
    for (int w = 0; w < SRV_MAX_EVAL_THREADS; w++) {
        sched_batch *b = &sm->batches[w];
        free(b->q);
        free(b->jobs);
        free(b->entries);
        free(b->scratch);
    }
    free(sm);
}

static srv_model *model_new(srv *s, const char *id, sc_model *m)
{
    srv_model *sm = calloc(1, sizeof *sm);
    if (!sm) return NULL;
    snprintf(sm->id, sizeof sm->id, "%s", id);
    sm->model = m;
    sm->server = s;
    sm->refs = 1;
    sm->n_batches = s->cfg.eval_threads;
    int ok = 1;
    for (int w = 0; w < sm->n_batches && ok; w++) {
        sched_batch *b = &sm->batches[w];
        b->sm = sm;
        b->cap_q = b->cap_jobs = b->cap_entries = s->cfg.max_batch;
        b->q = calloc((size_t)b->cap_q, sizeof *b->q);
        b->jobs = calloc((size_t)b->cap_jobs, sizeof *b->jobs);
        b->entries = calloc((size_t)b->cap_entries, sizeof *b->entries);
        b->scratch = sc_model_scratch_alloc(m, s->cfg.max_batch);
        ok = b->q && b->jobs && b->entries && b->scratch;
    }
    if (!ok) {
        sm->model = NULL;
        model_destroy(sm);
        return NULL;
    }
    return sm;
}

void srv_model_unref(srv_model *sm)
{
    if (--sm->refs > 0) return;
    srv *s = sm->server;
    srv_model **pp = &s->retired;
    while (*pp && *pp != sm) pp = &(*pp)->next;
    if (*pp) *pp = sm->next;
    model_destroy(sm);
}

int registry_load(srv *s, srv_model **out_list, int *count, sc_error *err)
{
    *out_list = NULL;
    *count = 0;
    char **names = NULL;
    int n = 0;
    int rc = sc_model_dir_list(s->cfg.models_dir, &names, &n, err);
    if (rc) return rc;
    srv_model *head = NULL;
    for (int i = 0; i < n; i++) {
        char path[2048], id[128];
        snprintf(path, sizeof path, "%s/%s", s->cfg.models_dir, names[i]);
        const char *dot = strrchr(names[i], '.');
        snprintf(id, sizeof id, "%.*s", (int)(dot - names[i]), names[i]);
        sc_model *m = NULL;
        sc_error lerr = {0};
        if (sc_model_load(path, &m, &lerr)) {
            fprintf(stderr, "scored: skipping %s: %s\n", path, lerr.msg);
        } else {
            srv_model *sm = model_new(s, id, m);
            if (!sm) {
                sc_model_free(m);
                fprintf(stderr, "scored: out of memory loading %s\n", path);
            } else { /* keep the list sorted by id */
                srv_model **pp = &head;
                while (*pp && strcmp((*pp)->id, sm->id) < 0) pp = &(*pp)->next;
                sm->next = *pp;
                *pp = sm;
                (*count)++;
            }
        }
    }
    sc_model_dir_free(names, n);
    *out_list = head;
    if (*count == 0) return sc_fail(err, SC_ERR_IO, "no loadable model in %s", s->cfg.models_dir);
    return 0;
}

srv_model *registry_find(srv *s, const char *id)
{
    for (srv_model *sm = s->models; sm; sm = sm->next)
        if (strcmp(sm->id, id) == 0) return sm;
    return NULL;
}

/* Loads the directory again and swaps the registry.  Models that still have jobs move to
 * the retired list and are freed by their last job. */
int registry_reload(srv *s)
{
    srv_model *fresh = NULL;
    int count = 0;
    sc_error err = {0};
    if (registry_load(s, &fresh, &count, &err)) {
        fprintf(stderr, "scored: reload failed, keeping the loaded models: %s\n", err.msg);
        while (fresh) {
            srv_model *next = fresh->next;
            model_destroy(fresh);
            fresh = next;
        }
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    srv_model *old = s->models;
    s->models = fresh;
    while (old) {
        srv_model *next = old->next;
        old->retired = 1;
        old->next = s->retired;
        s->retired = old;
        srv_model_unref(old); /* the registry's reference */
        old = next;
    }
    pthread_mutex_unlock(&s->lock);
    fprintf(stderr, "scored: reloaded %d models from %s\n", count, s->cfg.models_dir);
    return 0;
}

static json_t *sde_json(const sde *d)
{
    if (d->type == SDE_VE)
        return json_pack("{s:s, s:f, s:f, s:i}", "type", "ve", "sigma_min", d->sigma_min,
                         "sigma_max", d->sigma_max, "N", d->N);
    return json_pack("{s:s, s:f, s:f, s:i}", "type", sde_type_name(d->type), "beta_min",
                     d->beta_min, "beta_max", d->beta_max, "N", d->N);
}

static json_t *model_info(const srv_model *sm)
{
    const sc_model *m = sm->model;
    json_t *shape = json_array(), *labels = json_array(), *tasks = json_array();
    for (int i = 0; i < m->ndim; i++) json_array_append_new(shape, json_integer(m->shape[i]));
    for (int i = 0; i < m->n_labels; i++) json_array_append_new(labels, json_string(m->labels[i]));
    const char *all[] = {"samples", "inpaint", "likelihood", "anomaly", "encode", "decode"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) json_array_append_new(tasks, json_string(all[i]));
    if (m->ndim == 3 && m->shape[0] == 3) json_array_append_new(tasks, json_string("colorize"));
    sampler_config def;
    json_t *card = json_loads(m->card_json, 0, NULL);
    if (!card) card = json_object();
    json_t *ds = json_null();
    if (sampler_config_model_default(&def, m, -1, NULL) == 0) {
        def.eps = sampler_eps(&def, m); /* the effective value, not "default" */
        ds = sampler_config_to_json(&def);
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:i, s:b, s:b, s:o, s:o, s:b, s:o, s:o, s:o}", "id",
                     sm->id, "name", m->name, "kind", m->ops->kind, "shape", shape, "data_dim",
                     m->D, "image", m->ndim == 3, "centered", m->centered, "sde", sde_json(&m->sde),
                     "labels", labels, "guidable", m->guidable, "tasks", tasks, "default_sampler",
                     ds, "card", card);
}

char *model_info_json(const srv_model *sm)
{
    json_t *o = model_info(sm);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    return text;
}

char *model_list_json(srv *s)
{
    json_t *arr = json_array();
    for (srv_model *sm = s->models; sm; sm = sm->next) json_array_append_new(arr, model_info(sm));
    json_t *o = json_pack("{s:o}", "models", arr);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    return text;
}
