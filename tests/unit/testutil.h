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

/* A gmm model from JSON text; fails the test on error. */
TEST_HELPER sc_model *model_from_text(const char *text)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) fail_msg("bad test JSON: %s", jerr.text);
    sc_model *m = NULL;
    sc_error err = {0};
    int rc = gmm_from_json(root, "(test)", &m, &err);
    json_decref(root);
    if (rc) fail_msg("gmm_from_json: %s", err.msg);
    return m;
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
