/* `scored inpaint` and `scored colorize`: conditional PC sampling from a given image (spec
 * §6.1-6.2).  This file turns PNGs and masks into an sc_condition; the conditioning itself is
 * the engine's PC task. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_io.h"
#include "cli_run.h"

#define EDIT_SAMPLER_HELP                                                                    \
    "  --n N                  number of results, 1..4096 (default 1); more than one are\n"   \
    "                         written as a grid (ceil(sqrt(n)) columns, 2 px padding)\n"     \
    "  --seed S               0..2^64-1 (default 0); result i uses the random stream (S, i)\n" \
    "  --batch B              most score evaluations per batched call (default 64)\n"        \
    "  --threads T            threads sharing each batch, OpenBLAS on one each (default: the cores)\n" \
    "  --label L, --guidance W  class guidance, as for 'scored sample'\n"                    \
    "  --sampler pc           the only sampler that conditions on known pixels\n"            \
    "  --predictor P, --corrector C, --snr R, --corrector-steps K, --steps N, --eps E,\n"    \
    "  --no-denoise           PC settings, as for 'scored sample' (defaults: the engine's,\n" \
    "                         then the model card's default_sampler)\n"                      \
    "  -h, --help             this text\n"

static const char inpaint_usage[] =
    "usage: scored inpaint --model M --image IMG.png [--mask MASK.png] --out FILE [options]\n"
    "\n"
    "Generates the masked part of an image and keeps the rest exactly.  The image must have\n"
    "the model's size (no resizing); a gray image is replicated for a 3-channel model, an\n"
    "RGB image is averaged for a 1-channel model.\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --image IMG.png        the image to complete\n"
    "  --mask MASK.png        same size as the image: white (>= 128, gray value or channel\n"
    "                         mean) = keep, black = generate; a mask with transparent pixels\n"
    "                         is read by its alpha (transparent = generate).  Without --mask\n"
    "                         the image's own transparent pixels (alpha < 128) are generated,\n"
    "                         as in OpenAI's image edits API\n"
    "  --out FILE             .png (image or grid) or .npy ([n, *shape], model data units)\n" EDIT_SAMPLER_HELP;

static const char colorize_usage[] =
    "usage: scored colorize --model M --image GRAY.png --out FILE [options]\n"
    "\n"
    "Generates the colour of a grayscale image with a 3-channel model; the gray level of\n"
    "the result equals the input's.\n"
    "\n"
    "  --model M              a 3-channel image model, file or name (models/M.json)\n"
    "  --image GRAY.png       the model's size; an RGB image is turned gray by its channel\n"
    "                         mean\n"
    "  --out FILE             .png (image or grid) or .npy ([n, *shape], model data units)\n" EDIT_SAMPLER_HELP;

/* Everything both commands share once the condition is built: run, write, report. */
static int edit_run(const char *what, const cli_args *a, const sc_model *m,
                    const sampler_config *cfg, const sc_condition *cond, int n, sc_error *err)
{
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)m->D);
    if (!out) return sc_fail(err, SC_ERR_NOMEM, "out of memory for %d results", n);
    cli_run_stats stats;
    int rc = cli_run_samples(m, cfg, cond, NULL, a->seed, n, a->batch, a->threads, out, &stats, err);
    if (!rc) rc = cli_items_write(m, a->out, out, n, 1, err);
    free(out);
    if (rc) return rc;
    char desc[256];
    cli_sampler_describe(cfg, m, desc, sizeof desc);
    fprintf(stderr, "scored %s: model=%s n=%d seed=%" PRIu64 " %s", what, m->name, n, a->seed, desc);
    if (cond->label >= 0) fprintf(stderr, " label=%d guidance=%g", cond->label, (double)cond->guidance);
    fprintf(stderr, " mean_nfe=%.1f seconds=%.3f out=%s\n", (double)stats.nfe / n, stats.seconds,
            a->out);
    return 0;
}

/* Parsing and the checks common to both commands, up to the sampler config.  Returns
 * CLI_CONTINUE or the exit code (the error already printed); *m is the caller's to free. */
static int edit_prepare(cli_command cmd, const char *usage, int argc, char **argv, cli_args *a,
                        sc_model **m, sampler_config *cfg, sc_condition *cond, sc_error *err)
{
    const char *what = cmd == CLI_CMD_INPAINT ? "inpainting" : "colorization";
    int rc = cli_parse(cmd, usage, argc, argv, a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(a, CLI_OPT_MODEL)) || (rc = cli_require(a, CLI_OPT_IMAGE)) ||
        (rc = cli_require(a, CLI_OPT_OUT)))
        return rc;
    if (a->seen[CLI_OPT_SAMPLER] && a->kind != SAMPLER_PC) {
        sc_fail(err, SC_ERR_UNSUPPORTED,
                "%s needs --sampler pc (the ode sampler cannot keep known pixels)", what);
        return cli_fail(err);
    }
    cond->label = -1;
    if (cli_model_load(a->model, m, err) ||
        cli_sampler_config(*m, a, CLI_SAMPLER_PC_ONLY, cfg, err) ||
        cli_label(*m, a, &cond->label, &cond->guidance, err))
        return cli_fail(err);
    if (!sc_model_is_image(*m)) {
        char shape[48];
        sc_model_shape_str(*m, shape, sizeof shape);
        sc_fail(err, SC_ERR_UNSUPPORTED, "%s needs an image model; %s has shape %s", what,
                (*m)->name, shape);
        return cli_fail(err);
    }
    return CLI_CONTINUE;
}

int cli_inpaint_main(int argc, char **argv)
{
    cli_args a;
    sc_error err = {0};
    sc_model *m = NULL;
    sampler_config cfg;
    sc_condition cond = {.kind = COND_NONE, .label = -1};
    float *x = NULL, *mask = NULL, *keep = NULL;
    uint8_t *alpha = NULL;
    cli_format fmt;
    int code = edit_prepare(CLI_CMD_INPAINT, inpaint_usage, argc, argv, &a, &m, &cfg, &cond, &err);
    if (code != CLI_CONTINUE) goto done;
    code = CLI_EXIT_OK;
    if (cli_output_check("--out", a.out, m, 1, &fmt, &err)) goto fail;

    const int C = m->shape[0], H = m->shape[1], W = m->shape[2];
    const size_t hw = (size_t)H * W;
    x = malloc(sizeof(float) * (size_t)m->D);
    mask = malloc(sizeof(float) * (size_t)m->D);
    keep = malloc(sizeof(float) * hw);
    if (!x || !mask || !keep) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (cli_image_read(m, a.image, x, &alpha, &err)) goto fail;
    if (a.mask) {
        if (cli_mask_read(a.mask, W, H, keep, &err)) goto fail;
    } else if (alpha) {
        for (size_t i = 0; i < hw; i++) keep[i] = alpha[i] >= 128 ? 1.0f : 0.0f;
    } else {
        sc_fail(&err, SC_ERR_INVALID,
                "%.200s has no alpha channel: give --mask (white = keep, black = generate) or an "
                "image whose transparent pixels mark the area to generate",
                a.image);
        goto fail;
    }
    for (int c = 0; c < C; c++) memcpy(mask + (size_t)c * hw, keep, sizeof(float) * hw);
    cond.kind = COND_INPAINT;
    cond.data = x;
    cond.mask = mask;
    if (condition_validate(&cond, m, &err) ||
        edit_run("inpaint", &a, m, &cfg, &cond, a.seen[CLI_OPT_N] ? a.n : 1, &err))
        goto fail;
    goto done;
fail:
    code = cli_fail(&err);
done:
    free(x);
    free(mask);
    free(keep);
    free(alpha);
    sc_model_free(m);
    return code;
}

int cli_colorize_main(int argc, char **argv)
{
    cli_args a;
    sc_error err = {0};
    sc_model *m = NULL;
    sampler_config cfg;
    sc_condition cond = {.kind = COND_NONE, .label = -1};
    float *x = NULL;
    cli_format fmt;
    const float placeholder = 0.0f; /* stands in for the image until it is read */
    int code = edit_prepare(CLI_CMD_COLORIZE, colorize_usage, argc, argv, &a, &m, &cfg, &cond, &err);
    if (code != CLI_CONTINUE) goto done;
    code = CLI_EXIT_OK;
    /* The model's suitability first, before any file is read: the engine says what it needs. */
    cond.kind = COND_COLORIZE;
    cond.data = &placeholder;
    if (condition_validate(&cond, m, &err) || cli_output_check("--out", a.out, m, 1, &fmt, &err))
        goto fail;

    const size_t hw = (size_t)m->shape[1] * (size_t)m->shape[2];
    x = malloc(sizeof(float) * (size_t)m->D);
    if (!x) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (cli_image_read(m, a.image, x, NULL, &err)) goto fail;
    /* x: (3, H, W); gray input arrives replicated, RGB input becomes its channel mean */
    for (size_t i = 0; i < hw; i++) {
        float r = x[i], g = x[hw + i], b = x[2 * hw + i];
        float gray = (r == g && g == b) ? r : (r + g + b) / 3.0f;
        x[i] = x[hw + i] = x[2 * hw + i] = gray;
    }
    cond.data = x;
    if (condition_validate(&cond, m, &err) ||
        edit_run("colorize", &a, m, &cfg, &cond, a.seen[CLI_OPT_N] ? a.n : 1, &err))
        goto fail;
    goto done;
fail:
    code = cli_fail(&err);
done:
    free(x);
    sc_model_free(m);
    return code;
}
