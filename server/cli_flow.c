/* `scored encode` and `scored decode`: data <-> latent through the probability-flow ODE
 * (spec §4.2).  encode runs the engine's flow encode task from eps up to T; decode its flow
 * sampling task from a given latent down to eps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_io.h"
#include "cli_run.h"
#include "flow.h"

static const char encode_usage[] =
    "usage: scored encode --model M --input FILE --out Z.npy [options]\n"
    "\n"
    "Maps data to its latent z = x(T) by integrating the probability-flow ODE from eps up to\n"
    "T = 1.  Z.npy is float32, shaped as the input ([*shape] or [n, *shape]; [1, *shape] for\n"
    "a PNG).\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --input FILE           .npy of shape [*shape] or [n, *shape] in model data units, or\n"
    "                         one .png of the model's size (not dequantized)\n"
    "  --out Z.npy            the latents\n"
    "  --solver S             rk45 (default), euler, heun\n"
    "  --rtol R, --atol A     rk45 tolerances in [1e-12, 1] (default 1e-5)\n"
    "  --steps N              euler/heun steps, 1..100000 (default 100)\n"
    "  --eps E                starting time in (0, 0.5) (default 1e-5)\n"
    "  --batch B              most score evaluations per batched call (default 64)\n"
    "  --threads T            threads sharing each batch, OpenBLAS on one each (default: the cores)\n"
    "  -h, --help             this text\n";

static const char decode_usage[] =
    "usage: scored decode --model M --input Z.npy --out FILE [options]\n"
    "\n"
    "Maps latents back to data by integrating the probability-flow ODE from T = 1 down to\n"
    "eps, then (unless --no-denoise) one noise-free denoising step.\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --input Z.npy          latents of shape [*shape] or [n, *shape]\n"
    "  --out FILE             .npy (shaped as the input, model data units) or .png (image\n"
    "                         models: the image, or a grid for n > 1)\n"
    "  --solver S             rk45 (default), euler, heun\n"
    "  --rtol R, --atol A     rk45 tolerances in [1e-12, 1] (default 1e-5)\n"
    "  --steps N              euler/heun steps, 1..100000 (default the model's N)\n"
    "  --eps E                end time in (0, 0.5) (default 1e-5, the same as encode's, so\n"
    "                         that decode inverts encode)\n"
    "  --no-denoise           skip the final denoising step (needed to invert encode)\n"
    "  --label L, --guidance W  class guidance, as for 'scored sample'\n"
    "  --batch B              most score evaluations per batched call (default 64)\n"
    "  --threads T            threads sharing each batch, OpenBLAS on one each (default: the cores)\n"
    "  -h, --help             this text\n"
    "\n"
    "The model card's default_sampler supplies solver, rtol and atol defaults.\n";

typedef struct encode_ctx {
    const sc_model *m;              /* borrowed */
    const likelihood_config *cfg;   /* borrowed */
    const cli_items *items;         /* borrowed */
    float *latents;                 /* (n, D) borrowed */
} encode_ctx;

static int encode_create(void *vctx, int index, sc_task **out, sc_error *err)
{
    const encode_ctx *c = vctx;
    return flow_encode_task_create(c->m, c->cfg, c->items->x + (size_t)index * (size_t)c->m->D,
                                   out, err);
}

static int encode_collect(void *vctx, int index, const sc_task *t, sc_error *err)
{
    (void)err;
    const encode_ctx *c = vctx;
    memcpy(c->latents + (size_t)index * (size_t)c->m->D, flow_task_result(t),
           sizeof(float) * (size_t)c->m->D);
    return 0;
}

int cli_encode_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_ENCODE, encode_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(&a, CLI_OPT_MODEL)) || (rc = cli_require(&a, CLI_OPT_INPUT)) ||
        (rc = cli_require(&a, CLI_OPT_OUT)))
        return rc;

    sc_error err = {0};
    sc_model *m = NULL;
    cli_items items = {0};
    float *latents = NULL;
    likelihood_config cfg;
    cli_format fmt;
    cli_run_stats stats = {0};
    int code = CLI_EXIT_OK;

    if (cli_model_load(a.model, &m, &err) || cli_likelihood_config(m, &a, &cfg, &err) ||
        cli_output_check("--out", a.out, m, 0, &fmt, &err) ||
        cli_items_read(m, "--input", a.input, 1, &items, &err))
        goto fail;
    latents = malloc(sizeof(float) * (size_t)items.n * (size_t)m->D);
    if (!latents) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory for %d latents", items.n);
        goto fail;
    }
    encode_ctx ctx = {.m = m, .cfg = &cfg, .items = &items, .latents = latents};
    if (cli_run_tasks(m, items.n, a.batch, a.threads, encode_create, encode_collect, &ctx, &stats, &err) ||
        cli_npy_write(m, a.out, latents, items.n, items.batched, &err))
        goto fail;
    fprintf(stderr, "scored encode: model=%s n=%d solver=%s mean_nfe=%.1f seconds=%.3f out=%s\n",
            m->name, items.n, ode_solver_name(cfg.solver), (double)stats.nfe / items.n,
            stats.seconds, a.out);
    goto done;
fail:
    code = cli_fail(&err);
done:
    free(latents);
    cli_items_free(&items);
    sc_model_free(m);
    return code;
}

int cli_decode_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_DECODE, decode_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(&a, CLI_OPT_MODEL)) || (rc = cli_require(&a, CLI_OPT_INPUT)) ||
        (rc = cli_require(&a, CLI_OPT_OUT)))
        return rc;

    sc_error err = {0};
    sc_model *m = NULL;
    cli_items items = {0};
    float *out = NULL;
    sampler_config cfg;
    sc_condition cond = {.kind = COND_NONE, .label = -1};
    cli_format fmt;
    cli_run_stats stats = {0};
    int code = CLI_EXIT_OK;

    if (cli_model_load(a.model, &m, &err) ||
        cli_sampler_config(m, &a, CLI_SAMPLER_DECODE, &cfg, &err) ||
        cli_label(m, &a, &cond.label, &cond.guidance, &err) ||
        condition_validate(&cond, m, &err) ||
        cli_output_check("--out", a.out, m, 1, &fmt, &err) ||
        cli_items_read(m, "--input", a.input, 0, &items, &err))
        goto fail;
    out = malloc(sizeof(float) * (size_t)items.n * (size_t)m->D);
    if (!out) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory for %d items", items.n);
        goto fail;
    }
    if (cli_run_samples(m, &cfg, &cond, items.x, 0, items.n, a.batch, a.threads, out, &stats, &err) ||
        cli_items_write(m, a.out, out, items.n, items.batched, &err))
        goto fail;
    char desc[256];
    cli_sampler_describe(&cfg, m, desc, sizeof desc);
    fprintf(stderr, "scored decode: model=%s n=%d %s mean_nfe=%.1f seconds=%.3f out=%s\n", m->name,
            items.n, desc, (double)stats.nfe / items.n, stats.seconds, a.out);
    goto done;
fail:
    code = cli_fail(&err);
done:
    free(out);
    cli_items_free(&items);
    sc_model_free(m);
    return code;
}
