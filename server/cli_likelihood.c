/* `scored likelihood`: log-likelihoods through the probability-flow ODE (spec §5), one JSON
 * object per item on stdout; bits/dim for dequantized 8-bit PNG input.  The ODE itself is the
 * engine's flow likelihood task. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_io.h"
#include "cli_run.h"
#include "flow.h"

static const char likelihood_usage[] =
    "usage: scored likelihood --model M --input FILE [options]\n"
    "\n"
    "Log-likelihood of data under the model through the probability-flow ODE.  Prints one\n"
    "JSON object per item on stdout:\n"
    "  {\"index\": i, \"log_likelihood_nats\": L, \"bits_per_dim\": B, \"nfe\": N,\n"
    "   \"log_likelihood_se\": E}\n"
    "bits_per_dim only for PNG input, log_likelihood_se only with --probes > 1.\n"
    "\n"
    "  --model M              model file, or a name looked up as models/M.json\n"
    "  --input FILE           .npy of shape [*shape] (one item) or [n, *shape]: continuous\n"
    "                         data in model units, reported in nats; or one .png of the\n"
    "                         model's size: 8-bit data, dequantized with uniform noise,\n"
    "                         reported in nats and bits/dim\n"
    "  --exact-div            exact divergence (trace of the Jacobian, D vector-Jacobian\n"
    "                         products per step; D <= 1024) instead of Hutchinson probes;\n"
    "                         the default when D <= 16 and neither --probes nor\n"
    "                         --hutchinson is given\n"
    "  --probes K             Hutchinson probes, 1..64 (default 1; the default divergence\n"
    "                         for D > 16); K > 1 also reports the standard error over probes\n"
    "  --hutchinson KIND      probe distribution: rademacher (default) or gaussian\n"
    "                         (--probes or --hutchinson keeps Hutchinson even for D <= 16)\n"
    "  --solver S             rk45 (default), euler, heun\n"
    "  --rtol R, --atol A     rk45 tolerances in [1e-12, 1] (default 1e-5)\n"
    "  --steps N              euler/heun steps, 1..100000 (default 100)\n"
    "  --eps E                starting time in (0, 0.5) (default 1e-5)\n"
    "  --seed S               0..2^64-1 (default 0); item i draws its probes and\n"
    "                         dequantization noise from the random stream (S, i)\n"
    "  --latent-out Z.npy     also write the latents z = x(T), float32, shaped as the input\n"
    "  --batch B              most score evaluations per batched call (default 64)\n"
    "  --threads T            threads sharing each batch, OpenBLAS on one each (default: the cores)\n"
    "  -h, --help             this text\n";

typedef struct lik_ctx {
    const sc_model *m;              /* borrowed */
    const likelihood_config *cfg;   /* borrowed */
    const cli_items *items;         /* borrowed */
    uint64_t seed;
    float *latents;                 /* (n, D) or NULL, borrowed */
} lik_ctx;

static void print_number(const char *key, double v)
{
    if (isfinite(v)) printf(", \"%s\": %.10g", key, v);
    else printf(", \"%s\": null", key);
}

static int lik_create(void *vctx, int index, sc_task **out, sc_error *err)
{
    const lik_ctx *c = vctx;
    const float *x = c->items->x + (size_t)index * (size_t)c->m->D;
    return flow_likelihood_task_create(c->m, c->cfg, x, c->seed, (uint64_t)index, out, err);
}

static int lik_collect(void *vctx, int index, const sc_task *t, sc_error *err)
{
    (void)err;
    const lik_ctx *c = vctx;
    likelihood_result r;
    flow_task_likelihood(t, &r);
    printf("{\"index\": %d", index);
    print_number("log_likelihood_nats", r.log_likelihood);
    if (c->cfg->dequantize) print_number("bits_per_dim", r.bits_per_dim);
    printf(", \"nfe\": %ld", r.nfe);
    if (!c->cfg->exact_divergence && c->cfg->probes > 1)
        print_number("log_likelihood_se", r.log_likelihood_se);
    printf("}\n");
    if (c->latents) {
        float *z = c->latents + (size_t)index * (size_t)c->m->D;
        for (int d = 0; d < c->m->D; d++) z[d] = (float)r.latent[d];
    }
    return 0;
}

int cli_likelihood_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_LIKELIHOOD, likelihood_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_require(&a, CLI_OPT_MODEL)) || (rc = cli_require(&a, CLI_OPT_INPUT))) return rc;

    sc_error err = {0};
    sc_model *m = NULL;
    cli_items items = {0};
    float *latents = NULL;
    likelihood_config cfg;
    cli_format fmt;
    cli_run_stats stats = {0};
    int code = CLI_EXIT_OK;

    if (cli_model_load(a.model, &m, &err) || cli_likelihood_config(m, &a, &cfg, &err) ||
        (a.latent_out && cli_output_check("--latent-out", a.latent_out, m, 0, &fmt, &err)) ||
        cli_items_read(m, "--input", a.input, 1, &items, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    cfg.dequantize = items.from_png;
    if (a.latent_out && !(latents = malloc(sizeof(float) * (size_t)items.n * (size_t)m->D))) {
        sc_fail(&err, SC_ERR_NOMEM, "out of memory for %d latents", items.n);
        code = cli_fail(&err);
        goto done;
    }
    lik_ctx ctx = {.m = m, .cfg = &cfg, .items = &items, .seed = a.seed, .latents = latents};
    rc = cli_run_tasks(m, items.n, a.batch, a.threads, lik_create, lik_collect, &ctx, &stats, &err);
    fflush(stdout);
    if (rc || (latents && cli_npy_write(m, a.latent_out, latents, items.n, items.batched, &err))) {
        code = cli_fail(&err);
        goto done;
    }
    fprintf(stderr, "scored likelihood: model=%s n=%d divergence=%s", m->name, items.n,
            cfg.exact_divergence ? "exact" : "hutchinson");
    if (!cfg.exact_divergence)
        fprintf(stderr, " probes=%d probe=%s", cfg.probes, probe_kind_name(cfg.probe));
    fprintf(stderr, " solver=%s dequantize=%s seed=%" PRIu64 " mean_nfe=%.1f seconds=%.3f\n",
            ode_solver_name(cfg.solver), cfg.dequantize ? "on" : "off", a.seed,
            (double)stats.nfe / items.n, stats.seconds);
done:
    free(latents);
    cli_items_free(&items);
    sc_model_free(m);
    return code;
}
