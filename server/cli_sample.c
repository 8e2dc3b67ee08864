/* `scored sample`: unconditional or class-guided samples with the PC sampler or the
 * probability-flow ODE, written as .npy or a PNG grid.  Inpainting and colorization live in
 * cli_edit.c, decoding a given latent in cli_flow.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_io.h"
#include "cli_run.h"

#define SAMPLE_DEFAULT_N 16

static const char sample_usage[] =
    "usage: scored sample --model M --out FILE [options]\n"
    "\n"
    "Draws samples from a score model.  FILE.npy gets a float32 array [n, *shape] in the\n"
    "model's data units; FILE.png (image models only) a grid of ceil(sqrt(n)) columns with\n"
    "2 px white padding, or the bare image when n = 1.\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --out FILE             .npy or .png\n"
    "  --n N                  number of samples, 1..4096 (default 16)\n"
    "  --seed S               0..2^64-1 (default 0); sample i uses the random stream (S, i),\n"
    "                         so it does not depend on --n or --batch\n"
    "  --batch B              most score evaluations per batched call (default 64)\n"
    "  --threads T            threads sharing each batch, OpenBLAS on one each (default: the cores)\n"
    "  --label L              class index or class name, for classifier guidance\n"
    "  --guidance W           guidance weight in [0, 100] (default 1 with --label)\n"
    "\n"
    "Sampler settings start from the engine's defaults, then the model card's\n"
    "\"default_sampler\", then these options:\n"
    "  --sampler pc|ode       predictor-corrector (default) or probability-flow ODE\n"
    "  --predictor P          pc: none, euler_maruyama, reverse_diffusion (default), ancestral\n"
    "  --corrector C          pc: none, langevin (default; none for subvp models), ald\n"
    "  --snr R                pc corrector signal-to-noise ratio in (0, 10] (default 0.16)\n"
    "  --corrector-steps K    pc corrector steps per noise level, 1..100 (default 1)\n"
    "  --steps N              pc: noise levels, 2..100000 (default the model's N);\n"
    "                         ode euler/heun: steps, 1..100000\n"
    "  --solver S             ode: rk45 (default), euler, heun\n"
    "  --rtol R, --atol A     ode rk45 tolerances in [1e-12, 1] (default 1e-5)\n"
    "  --eps E                last time point in (0, 0.5) (default 1e-5 for ve, 1e-3 for\n"
    "                         vp and subvp SDEs; pc on vp/subvp: max(1e-3, 1/steps))\n"
    "  --no-denoise           skip the final noise-free denoising step\n"
    "  -h, --help             this text\n"
    "\n"
    "A one-line summary (n, sampler, mean NFE, seconds) goes to stderr.\n";

int cli_sample_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_SAMPLE, sample_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(&a, CLI_OPT_MODEL)) || (rc = cli_require(&a, CLI_OPT_OUT))) return rc;
    const int n = a.seen[CLI_OPT_N] ? a.n : SAMPLE_DEFAULT_N;

    sc_error err = {0};
    sc_model *m = NULL;
    float *out = NULL;
    sampler_config cfg;
    sc_condition cond = {.kind = COND_NONE, .label = -1};
    cli_format fmt;
    cli_run_stats stats = {0};
    int code = CLI_EXIT_OK;

    if (cli_model_load(a.model, &m, &err) ||
        cli_sampler_config(m, &a, CLI_SAMPLER_ANY, &cfg, &err) ||
        cli_label(m, &a, &cond.label, &cond.guidance, &err) ||
        condition_validate(&cond, m, &err) ||
        cli_output_check("--out", a.out, m, 1, &fmt, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    out = malloc(sizeof(float) * (size_t)n * (size_t)m->D);
    if (!out) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory for %d samples of dimension %d", n, m->D);
        code = cli_fail(&err);
        goto done;
    }
    if (cli_run_samples(m, &cfg, &cond, NULL, a.seed, n, a.batch, a.threads, out, &stats, &err) ||
        cli_items_write(m, a.out, out, n, 1, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    char desc[256];
    cli_sampler_describe(&cfg, m, desc, sizeof desc);
    fprintf(stderr, "scored sample: model=%s n=%d seed=%" PRIu64 " %s", m->name, n, a.seed, desc);
    if (cond.label >= 0) fprintf(stderr, " label=%d guidance=%g", cond.label, (double)cond.guidance);
    fprintf(stderr, " mean_nfe=%.1f seconds=%.3f out=%s\n", (double)stats.nfe / n, stats.seconds,
            a.out);
done:
    free(out);
    sc_model_free(m);
    return code;
}
