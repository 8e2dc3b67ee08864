/* Shared includes and helpers for the cmocka unit tests (each test file includes this first).
 * Tests run from the repository root. */
#ifndef SCORED_TESTUTIL_H
#define SCORED_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "gmm.h"
#include "model.h"
#include "pc.h"
#include "task.h"

#define TEST_DATA_DIR "tests/data"
#define MODELS_DIR "models"

#define TEST_HELPER __attribute__((unused)) static

/* A gmm model from a JSON object, which it releases; fails the test on error. */
TEST_HELPER sc_model *model_from_json_object(json_t *root)
{
    sc_model *m = NULL;
    sc_error err = {0};
    int rc = gmm_from_json(root, "(test)", &m, &err);
    json_decref(root);
    if (rc) fail_msg("gmm_from_json: %s", err.msg);
    return m;
}

/* A gmm model from JSON text; fails the test on error. */
TEST_HELPER sc_model *model_from_text(const char *text)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) fail_msg("bad test JSON: %s", jerr.text);
    return model_from_json_object(root);
}

TEST_HELPER sc_model *model_from_file(const char *path)
{
    sc_model *m = NULL;
    sc_error err = {0};
    if (sc_model_load(path, &m, &err)) fail_msg("%s", err.msg);
    return m;
}

/* Runs tasks to completion in batches of max_batch; fails the test on error. */
TEST_HELPER void run_tasks(const sc_model *m, sc_task **tasks, int n, int max_batch)
{
    sc_error err = {0};
    void *scratch = sc_model_scratch_alloc(m, max_batch);
    int rc = task_run_batched(m, tasks, n, max_batch, scratch, &err);
    free(scratch);
    if (rc) fail_msg("task_run_batched: %s", err.msg);
}

/* n samples (n, D) from a sampler config; caller frees. */
TEST_HELPER float *draw_samples(const sc_model *m, const sampler_config *c, const sc_condition *cond,
                                int n, uint64_t seed, double *mean_nfe)
{
    sc_task **t = calloc((size_t)n, sizeof *t);
    float *out = malloc(sizeof(float) * (size_t)n * m->D);
    sc_error err = {0};
    for (int i = 0; i < n; i++) {
        int rc = c->kind == SAMPLER_PC ? pc_task_create(m, c, cond, seed, (uint64_t)i, &t[i], &err)
                                       : flow_sample_task_create(m, c, cond, NULL, seed, (uint64_t)i,
                                                                 &t[i], &err);
        if (rc) fail_msg("create: %s", err.msg);
    }
    run_tasks(m, t, n, 64);
    double nfe = 0;
    for (int i = 0; i < n; i++) {
        const float *x = c->kind == SAMPLER_PC ? pc_task_result(t[i]) : flow_task_result(t[i]);
        memcpy(out + (size_t)i * m->D, x, sizeof(float) * m->D);
        nfe += t[i]->nfe;
        task_free(t[i]);
    }
    free(t);
    if (mean_nfe) *mean_nfe = nfe / n;
    return out;
}
/* An image-shaped (C, H, W) diagonal mixture of K components under the SDE given as JSON text.
 * Defined in [0,1] units: means 0.5 + 0.3 sin(1.7 k + 0.37 d + 0.3), stds
 * 0.06 + 0.03 cos(2.1 k + 1.3 d), weights proportional to K, K-1, ..., 1.  centered = 1 maps it
 * to [-1,1] units (means 2 mu - 1, stds 2 s): the same images, as the reference's scaler does. */
TEST_HELPER double image_mixture_mean_unit(int k, int d) { return 0.5 + 0.3 * sin(1.7 * k + 0.37 * d + 0.3); }
TEST_HELPER double image_mixture_std_unit(int k, int d) { return 0.06 + 0.03 * cos(2.1 * k + 1.3 * d); }

TEST_HELPER sc_model *image_mixture(int C, int H, int W, int K, int centered, const char *sde_json)
{
    json_error_t jerr;
    json_t *sde_obj = json_loads(sde_json, 0, &jerr);
    if (!sde_obj) fail_msg("bad SDE JSON: %s", jerr.text);
    const int D = C * H * W;
    json_t *weights = json_array(), *means = json_array(), *stds = json_array();
    for (int k = 0; k < K; k++) {
        json_array_append_new(weights, json_real((K - k) / (K * (K + 1) / 2.0)));
        json_t *mu = json_array(), *sd = json_array();
        for (int d = 0; d < D; d++) {
            double m = image_mixture_mean_unit(k, d), s = image_mixture_std_unit(k, d);
            json_array_append_new(mu, json_real(centered ? 2 * m - 1 : m));
            json_array_append_new(sd, json_real(centered ? 2 * s : s));
        }
        json_array_append_new(means, mu);
        json_array_append_new(stds, sd);
    }
    json_t *root = json_pack("{s:s, s:s, s:[i,i,i], s:o, s:b, s:o, s:o, s:o}", "kind", "gmm", "name", "img",
                             "shape", C, H, W, "sde", sde_obj, "centered", centered, "weights", weights,
                             "means", means, "stds", stds);
    if (!root) fail_msg("json_pack failed");
    return model_from_json_object(root);
}

/* ---- a mkdtemp directory per test group (cmocka group state) ---------------------------- */
#include <dirent.h>
#include <unistd.h>

typedef struct test_dir {
    char path[64]; /* the mkdtemp directory */
} test_dir;

TEST_HELPER int test_dir_setup(void **state)
{
    test_dir *d = calloc(1, sizeof *d);
    if (!d) return -1;
    snprintf(d->path, sizeof d->path, "/tmp/scored_test_XXXXXX");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* Removes the files in the directory, then the directory. */
TEST_HELPER int test_dir_teardown(void **state)
{
    test_dir *d = *state;
    DIR *dir = opendir(d->path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", d->path, e->d_name);
            unlink(p);
        }
        closedir(dir);
    }
    rmdir(d->path);
    free(d);
    return 0;
}

TEST_HELPER void test_dir_path(void **state, const char *name, char *out, size_t cap)
{
    const test_dir *d = *state;
    snprintf(out, cap, "%s/%s", d->path, name);
}

#endif
