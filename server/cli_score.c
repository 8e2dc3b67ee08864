/* `scored score`: the raw score s(x, t) = grad_x log p_t(x) of given points, evaluated in
 * batched calls of the model (no task, no sampler).  Useful to check a model against
 * another implementation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_io.h"
#include "cli_run.h"
#include "npy.h"

static const char score_usage[] =
    "usage: scored score --model M --input X.npy (--t T | --t-file T.npy) --out S.npy [options]\n"
    "\n"
    "Writes the model's score grad_x log p_t(x) at each item, float32, shaped as the input.\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --input X.npy          points of shape [*shape] or [n, *shape], model data units\n"
    "  --t T                  one time in (0, 1] for every item\n"
    "  --t-file T.npy         one time per item: shape (n,) (or a scalar for one item)\n"
    "  --out S.npy            the scores\n"
    "  --label L, --guidance W  classifier-guided score s + W grad log p(L | x, t)\n"
    "  --batch B              most items per model call (default 64)\n"
    "  -h, --help             this text\n";

/* Reads --t-file: n finite times in (0, 1] into t. */
static int read_times(const char *path, int n, double *t, sc_error *err)
{
    sc_array arr = {0};
    int rc = npy_read_file(path, CLI_MAX_ITEMS, &arr, err);
    if (rc) return rc;
    if (!((arr.ndim == 1 && arr.shape[0] == n) || (arr.ndim == 0 && n == 1))) {
        long long count = (long long)arr.count;
        int ndim = arr.ndim;
        npy_free(&arr);
        return sc_fail(err, SC_ERR_SHAPE,
                       "--t-file %.200s holds %lld value%s in %d dimension%s; expected shape (%d,), "
                       "one time per item of --input",
                       path, count, count == 1 ? "" : "s", ndim, ndim == 1 ? "" : "s", n);
    }
    for (int i = 0; i < n; i++) {
        double v = arr.data[i];
        if (!(v > 0 && v <= SDE_T)) {
            npy_free(&arr);
            return sc_fail(err, SC_ERR_INVALID, "--t-file %.200s: time %d is %g, not in (0, 1]",
                           path, i, v);
        }
        t[i] = v;
    }
    npy_free(&arr);
    return 0;
}

/* scores (n, D) <- s(x_i, t_i) in chunks of at most batch items. */
static int eval_scores(const sc_model *m, const cli_items *items, const double *t, int label,
                       float guidance, int batch, float *scores, sc_error *err)
{
    const size_t D = (size_t)m->D;
    const int chunk = items->n < batch ? items->n : batch;
    score_query *q = calloc((size_t)chunk, sizeof *q);
    void *scratch = sc_model_scratch_alloc(m, chunk);
    int rc = 0;
    if (!q || !scratch) rc = sc_fail(err, SC_ERR_NOMEM, "out of memory for a batch of %d", chunk);
    for (int first = 0; rc == 0 && first < items->n; first += chunk) {
        const int count = items->n - first < chunk ? items->n - first : chunk;
        for (int j = 0; j < count; j++) {
            const size_t i = (size_t)(first + j);
            q[j] = (score_query){.x = items->x + i * D, .t = t[i], .label = label,
                                 .guidance = label >= 0 ? guidance : 0.0f, .probe = NULL,
                                 .score = scores + i * D, .vjp = NULL};
        }
        rc = m->ops->eval(m, q, count, scratch, err);
    }
    for (size_t i = 0; rc == 0 && i < (size_t)items->n * D; i++)
        if (!isfinite(scores[i]))
            rc = sc_fail(err, SC_ERR_NUMERIC, "the score of item %zu is not finite", i / D);
    free(scratch);
    free(q);
    return rc;
}

int cli_score_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_SCORE, score_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(&a, CLI_OPT_MODEL)) || (rc = cli_require(&a, CLI_OPT_INPUT)) ||
        (rc = cli_require(&a, CLI_OPT_OUT)))
        return rc;
    if (!a.seen[CLI_OPT_T] && !a.seen[CLI_OPT_T_FILE])
        return cli_usage_error(a.cmd, "missing required option --t or --t-file");
    if (a.seen[CLI_OPT_T] && a.seen[CLI_OPT_T_FILE])
        return cli_usage_error(a.cmd, "give --t or --t-file, not both");

    sc_error err = {0};
    sc_model *m = NULL;
    cli_items items = {0};
    double *t = NULL;
    float *scores = NULL;
    int label;
    float guidance;
    cli_format fmt;
    int code = CLI_EXIT_OK;

    if (cli_model_load(a.model, &m, &err) || cli_label(m, &a, &label, &guidance, &err) ||
        cli_output_check("--out", a.out, m, 0, &fmt, &err) ||
        cli_items_read(m, "--input", a.input, 0, &items, &err))
        goto fail;
    t = malloc(sizeof(double) * (size_t)items.n);
    scores = malloc(sizeof(float) * (size_t)items.n * (size_t)m->D);
    if (!t || !scores) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory for %d items", items.n);
        goto fail;
    }
    if (a.seen[CLI_OPT_T]) {
        for (int i = 0; i < items.n; i++) t[i] = a.t;
    } else if (read_times(a.t_file, items.n, t, &err)) {
        goto fail;
    }
    const double start = cli_now();
    if (eval_scores(m, &items, t, label, guidance, a.batch, scores, &err) ||
        cli_npy_write(m, a.out, scores, items.n, items.batched, &err))
        goto fail;
    fprintf(stderr, "scored score: model=%s n=%d seconds=%.3f out=%s\n", m->name, items.n,
            cli_now() - start, a.out);
    goto done;
fail:
    code = cli_fail(&err);
done:
    free(scores);
    free(t);
    cli_items_free(&items);
    sc_model_free(m);
    return code;
}
