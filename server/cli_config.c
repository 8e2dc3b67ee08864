/* Options -> engine settings: model lookup by name or path, sampler and likelihood configs
 * with the model card's defaults, class labels.  Not here: option syntax (cli_args.c) or
 * reading inputs (cli_io.c). */
#include "cli_config.h"

#include "sampler_json.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- model lookup ------------------------------------------------------------------------ */

/* The directory of the running executable (from /proc/self/exe), or "" when unknown. */
static void exe_dir(char *buf, size_t len)
{
    buf[0] = 0;
    if (len < 2) return;
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) {
        buf[0] = 0;
        return;
    }
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
    else buf[0] = 0;
}

int cli_model_load(const char *name_or_path, sc_model **out, sc_error *err)
{
    *out = NULL;
    const char *s = name_or_path;
    size_t len = strlen(s);
    int is_path = strchr(s, '/') != NULL || (len >= 5 && strcmp(s + len - 5, ".json") == 0) ||
                  (len >= 12 && strcmp(s + len - 12, ".safetensors") == 0) || access(s, F_OK) == 0;
    if (is_path) return sc_model_load(s, out, err);
    if (len == 0) return sc_fail(err, SC_ERR_INVALID, "--model must not be empty");

    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    char candidates[6][PATH_MAX + 300];
    int nc = 0;
    static const char *const ext[2] = {"json", "safetensors"};
    for (int e = 0; e < 2; e++) {
        snprintf(candidates[nc++], sizeof candidates[0], "models/%.255s.%s", s, ext[e]);
        if (dir[0]) {
            snprintf(candidates[nc++], sizeof candidates[0], "%s/models/%.255s.%s", dir, s, ext[e]);
            snprintf(candidates[nc++], sizeof candidates[0], "%s/../models/%.255s.%s", dir, s, ext[e]);
        }
    }
    for (int i = 0; i < nc; i++)
        if (access(candidates[i], F_OK) == 0) return sc_model_load(candidates[i], out, err);
    return sc_fail(err, SC_ERR_IO, "model '%.100s' not found (no file %.100s, nor %.150s%s)", s,
                   s, candidates[0], nc > 1 ? " nor next to the scored executable" : "");
}

/* Puts "what: " before err's message when rc reports a failure; returns rc. */
static int prefixed(int rc, const char *what, sc_error *err)
{
    if (rc && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.100s: %.400s", what, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    return rc;
}

/* ---- sampler config ---------------------------------------------------------------------- */

int cli_sampler_config(const sc_model *m, const cli_args *a, cli_sampler_use use,
                       sampler_config *cfg, sc_error *err)
{
    /* The model's default (the reference defaults, then its card's default_sampler when the
     * card names the kind used), then the command line's values. */
    int want = -1;
    switch (use) {
    case CLI_SAMPLER_PC_ONLY: want = SAMPLER_PC; break;
    case CLI_SAMPLER_DECODE: want = SAMPLER_ODE; break;
    case CLI_SAMPLER_ANY: want = a->seen[CLI_OPT_SAMPLER] ? (int)a->kind : -1; break;
    }
    int rc = sampler_config_model_default(cfg, m, want, err);
    if (rc) return rc;

    if (a->seen[CLI_OPT_PREDICTOR]) cfg->predictor = a->predictor;
    if (a->seen[CLI_OPT_CORRECTOR]) cfg->corrector = a->corrector;
    if (a->seen[CLI_OPT_SNR]) cfg->snr = a->snr;
    if (a->seen[CLI_OPT_CORRECTOR_STEPS]) cfg->corrector_steps = a->corrector_steps;
    if (a->seen[CLI_OPT_STEPS]) cfg->steps = a->steps;
    if (a->seen[CLI_OPT_SOLVER]) cfg->solver = a->solver;
    if (a->seen[CLI_OPT_RTOL]) cfg->rtol = a->rtol;
    if (a->seen[CLI_OPT_ATOL]) cfg->atol = a->atol;
    if (a->seen[CLI_OPT_EPS]) cfg->eps = a->eps;
    else if (use == CLI_SAMPLER_DECODE) cfg->eps = sde_eps_likelihood(&m->sde);
    if (a->seen[CLI_OPT_NO_DENOISE]) cfg->denoise = 0;

    rc = prefixed(sampler_config_validate(cfg, m, err), "sampler settings", err);
    if (rc) return rc;
    return 0;
}

void cli_sampler_describe(const sampler_config *cfg, const sc_model *m, char *buf, size_t len)
{
    int k;
    if (cfg->kind == SAMPLER_PC) {
        k = snprintf(buf, len, "sampler=pc predictor=%s corrector=%s", predictor_name(cfg->predictor),
                     corrector_name(cfg->corrector));
        if (cfg->corrector != CORRECTOR_NONE && k >= 0 && (size_t)k < len)
            k += snprintf(buf + k, len - (size_t)k, " snr=%g corrector_steps=%d", cfg->snr,
                          cfg->corrector_steps);
        if (k >= 0 && (size_t)k < len) k += snprintf(buf + k, len - (size_t)k, " steps=%d", cfg->steps);
    } else {
        k = snprintf(buf, len, "sampler=ode solver=%s", ode_solver_name(cfg->solver));
        if (k >= 0 && (size_t)k < len) {
            if (cfg->solver == ODE_RK45)
                k += snprintf(buf + k, len - (size_t)k, " rtol=%g atol=%g", cfg->rtol, cfg->atol);
            else
                k += snprintf(buf + k, len - (size_t)k, " steps=%d", cfg->steps);
        }
    }
    if (k >= 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, " eps=%g denoise=%s", sampler_eps(cfg, m),
                 cfg->denoise ? "on" : "off");
}

/* ---- likelihood config ------------------------------------------------------------------- */

int cli_likelihood_config(const sc_model *m, const cli_args *a, likelihood_config *cfg,
                          sc_error *err)
{
    /* no --exact-div, --probes or --hutchinson: exact for small D, else one rademacher probe */
    likelihood_config_model_default(cfg, m);
    if (a->seen[CLI_OPT_SOLVER]) cfg->solver = a->solver;
    if (a->seen[CLI_OPT_RTOL]) cfg->rtol = a->rtol;
    if (a->seen[CLI_OPT_ATOL]) cfg->atol = a->atol;
    if (a->seen[CLI_OPT_STEPS]) cfg->steps = a->steps;
    if (a->seen[CLI_OPT_EPS]) cfg->eps = a->eps;
    int hutchinson = a->seen[CLI_OPT_PROBES] || a->seen[CLI_OPT_HUTCHINSON];
    if (hutchinson) cfg->exact_divergence = 0; /* asked for probes: Hutchinson even for small D */
    if (a->seen[CLI_OPT_EXACT_DIV]) cfg->exact_divergence = 1;
    if (a->seen[CLI_OPT_PROBES]) cfg->probes = a->probes;
    if (a->seen[CLI_OPT_HUTCHINSON]) cfg->probe = a->hutchinson;
    if (a->seen[CLI_OPT_EXACT_DIV] && hutchinson)
        return sc_fail(err, SC_ERR_INVALID,
                       "--exact-div computes the divergence exactly; drop --probes / --hutchinson");
    return prefixed(likelihood_config_validate(cfg, m, err), "likelihood settings", err);
}

/* ---- labels ------------------------------------------------------------------------------ */

int cli_label(const sc_model *m, const cli_args *a, int *label, float *guidance, sc_error *err)
{
    *label = -1;
    *guidance = 0.0f;
    if (!a->seen[CLI_OPT_LABEL]) {
        if (a->seen[CLI_OPT_GUIDANCE])
            return sc_fail(err, SC_ERR_INVALID, "--guidance needs --label (the class to guide toward)");
        return 0;
    }
    const char *s = a->label;
    if (!m->guidable || m->n_classes <= 0)
        return sc_fail(err, SC_ERR_UNSUPPORTED, "--label: model %s has no classes to guide toward",
                       m->name);
    int idx = -1;
    int digits = *s != 0;
    for (const char *q = s; *q; q++)
        if (*q < '0' || *q > '9') digits = 0;
    if (digits) {
        sc_error tmp;
        if (cli_parse_int("--label", s, 0, INT_MAX, &idx, &tmp) || idx >= m->n_classes)
            return sc_fail(err, SC_ERR_INVALID,
                           "--label %.40s is out of range: model %s has %d classes (0..%d)", s,
                           m->name, m->n_classes, m->n_classes - 1);
    } else {
        for (int i = 0; i < m->n_labels && i < m->n_classes && idx < 0; i++)
            if (strcmp(m->labels[i], s) == 0) idx = i;
        for (int i = 0; i < m->n_labels && i < m->n_classes && idx < 0; i++)
            if (strcasecmp(m->labels[i], s) == 0) idx = i;
        if (idx < 0) {
            char names[300];
            size_t used = 0;
            names[0] = 0;
            for (int i = 0; i < m->n_labels && i < m->n_classes && used < sizeof names; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                         m->labels[i]);
            return sc_fail(err, SC_ERR_INVALID,
                           "--label '%.60s' is not a class of model %s (give an index 0..%d%s%s)",
                           s, m->name, m->n_classes - 1, names[0] ? " or one of: " : "", names);
        }
    }
    *label = idx;
    *guidance = a->seen[CLI_OPT_GUIDANCE] ? (float)a->guidance : 1.0f;
    return 0;
}
