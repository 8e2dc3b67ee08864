/* Sampler settings: name tables, defaults and validation. */
#include "sampler.h"

#include <math.h>
#include <string.h>

static const char *const kind_names[] = {"pc", "ode"};
static const char *const predictor_names[] = {"none", "euler_maruyama", "reverse_diffusion",
                                              "ancestral"};
static const char *const corrector_names[] = {"none", "langevin", "ald"};
static const char *const solver_names[] = {"rk45", "euler", "heun"};
_Static_assert(sizeof kind_names / sizeof *kind_names == SAMPLER_KIND_COUNT, "kinds");
_Static_assert(sizeof predictor_names / sizeof *predictor_names == PREDICTOR_COUNT, "predictors");
_Static_assert(sizeof corrector_names / sizeof *corrector_names == CORRECTOR_COUNT, "correctors");
_Static_assert(sizeof solver_names / sizeof *solver_names == ODE_SOLVER_COUNT, "solvers");

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

#define NAME_FUNCS(fn_name, fn_from, type, table, count)                  \
    const char *fn_name(type k)                                          \
    {                                                                    \
        return (unsigned)k < (unsigned)(count) ? table[k] : "?";         \
    }                                                                    \
    int fn_from(const char *s, type *out)                                \
    {                                                                    \
        int i = lookup(table, count, s);                                 \
        if (i < 0) return SC_ERR_INVALID;                                \
        *out = (type)i;                                                  \
        return 0;                                                        \
    }

NAME_FUNCS(sampler_kind_name, sampler_kind_from_str, sampler_kind, kind_names, SAMPLER_KIND_COUNT)
NAME_FUNCS(predictor_name, predictor_from_str, predictor_kind, predictor_names, PREDICTOR_COUNT)
NAME_FUNCS(corrector_name, corrector_from_str, corrector_kind, corrector_names, CORRECTOR_COUNT)
NAME_FUNCS(ode_solver_name, ode_solver_from_str, ode_solver, solver_names, ODE_SOLVER_COUNT)

void sampler_config_default(sampler_config *c, const sc_model *m)
{
    memset(c, 0, sizeof *c);
    c->kind = SAMPLER_PC;
    c->predictor = PREDICTOR_REVERSE_DIFFUSION;
    /* sub-VP has no Langevin corrector in the reference (§11 Q3) */
    c->corrector = m->sde.type == SDE_SUBVP ? CORRECTOR_NONE : CORRECTOR_LANGEVIN;
    c->snr = 0.16;
    c->corrector_steps = 1;
    c->steps = m->sde.N;
    c->solver = ODE_RK45;
    c->rtol = 1e-5;
    c->atol = 1e-5;
    c->eps = 0;
    c->denoise = 1;
}

double sampler_eps(const sampler_config *c, const sc_model *m)
{
    if (c->eps > 0) return c->eps;
    const double reference = sde_eps_sampling(&m->sde);
    /* VP / sub-VP PC: the reference's 1e-3 is 1/N for its N = 1000.  Its last predictor step
     * spans 1/N (Euler-Maruyama dt) or discrete beta_0 = beta_min/N (reverse diffusion,
     * ancestral), so with fewer grid points an eps of 1e-3 asks the network to denoise at a
     * far smaller noise level than the chain is at, and the sample keeps visible noise
     * (fmnist-vp, 100 steps: pixel std 0.14 in empty corners at 1e-3, 0.017 at 1/N).  Hence
     * max(1e-3, 1/N): the reference value for N >= 1000. */
    if (c->kind == SAMPLER_PC && m->sde.type != SDE_VE && c->steps > 0)
        return fmax(reference, 1.0 / c->steps);
    return reference;
}

int sampler_config_validate(const sampler_config *c, const sc_model *m, sc_error *err)
{
    const sde_type st = m->sde.type;
    if ((unsigned)c->kind >= SAMPLER_KIND_COUNT)
        return sc_fail(err, SC_ERR_INVALID, "unknown sampler kind");
    if (!(c->eps == 0 || (c->eps > 0 && c->eps < 0.5)))
        return sc_fail(err, SC_ERR_INVALID, "eps must be in (0, 0.5), got %g", c->eps);
    if (c->kind == SAMPLER_PC) {
        if ((unsigned)c->predictor >= PREDICTOR_COUNT || (unsigned)c->corrector >= CORRECTOR_COUNT)
            return sc_fail(err, SC_ERR_INVALID, "unknown predictor or corrector");
        if (c->steps < 2 || c->steps > SAMPLER_MAX_STEPS)
            return sc_fail(err, SC_ERR_INVALID, "steps must be in [2, %d], got %d",
                           SAMPLER_MAX_STEPS, c->steps);
        /* the DDPM tables need beta_max / N < 1 (sqrt(1 - beta_k) in the predictors, 1 - beta_k
           in Langevin's alpha) */
        const int uses_beta = c->predictor == PREDICTOR_REVERSE_DIFFUSION ||
                              c->predictor == PREDICTOR_ANCESTRAL || c->corrector != CORRECTOR_NONE;
        if (st == SDE_VP && uses_beta && !(m->sde.beta_max / c->steps < 1.0))
            return sc_fail(err, SC_ERR_INVALID,
                           "a vp SDE with beta_max %g needs more than %g steps, got %d",
                           m->sde.beta_max, floor(m->sde.beta_max), c->steps);
        if (c->predictor == PREDICTOR_NONE && c->corrector == CORRECTOR_NONE)
            return sc_fail(err, SC_ERR_UNSUPPORTED,
                           "predictor and corrector cannot both be none: nothing would sample");
        if (c->predictor == PREDICTOR_ANCESTRAL && st == SDE_SUBVP)
            return sc_fail(err, SC_ERR_UNSUPPORTED,
                           "the ancestral predictor is defined for ve and vp SDEs only, not subvp");
        if (c->corrector != CORRECTOR_NONE && st == SDE_SUBVP)
            return sc_fail(err, SC_ERR_UNSUPPORTED,
                           "the %s corrector is defined for ve and vp SDEs only, not subvp "
                           "(use --corrector none)", corrector_names[c->corrector]);
        if (c->corrector != CORRECTOR_NONE) {
            if (c->corrector_steps < 1 || c->corrector_steps > SAMPLER_MAX_CORRECTOR_STEPS)
                return sc_fail(err, SC_ERR_INVALID, "corrector steps must be in [1, %d], got %d",
                               SAMPLER_MAX_CORRECTOR_STEPS, c->corrector_steps);
            if (!(c->snr > 0 && c->snr <= 10))
                return sc_fail(err, SC_ERR_INVALID, "snr must be in (0, 10], got %g", c->snr);
        }
    } else {
        if ((unsigned)c->solver >= ODE_SOLVER_COUNT)
            return sc_fail(err, SC_ERR_INVALID, "unknown ODE solver");
        if (c->solver == ODE_RK45) {
            if (!(c->rtol >= 1e-12 && c->rtol <= 1) || !(c->atol >= 1e-12 && c->atol <= 1))
                return sc_fail(err, SC_ERR_INVALID, "rtol and atol must be in [1e-12, 1], got %g and %g",
                               c->rtol, c->atol);
        } else if (c->steps < 1 || c->steps > SAMPLER_MAX_STEPS) {
            return sc_fail(err, SC_ERR_INVALID, "steps must be in [1, %d], got %d",
                           SAMPLER_MAX_STEPS, c->steps);
        }
    }
    return 0;
}

int condition_validate(const sc_condition *c, const sc_model *m, sc_error *err)
{
    if (c->label >= 0) {
        if (!m->guidable)
            return sc_fail(err, SC_ERR_UNSUPPORTED, "model %s has no classifier for guidance",
                           m->name);
        int classes = m->n_classes;
        if (c->label >= classes)
            return sc_fail(err, SC_ERR_INVALID, "label %d out of range: model %s has %d classes",
                           c->label, m->name, classes);
        if (!isfinite(c->guidance) || c->guidance < 0 || c->guidance > 100)
            return sc_fail(err, SC_ERR_INVALID, "guidance must be in [0, 100], got %g",
                           (double)c->guidance);
    }
    if (c->kind == COND_INPAINT && (!c->data || !c->mask))
        return sc_fail(err, SC_ERR_INVALID, "inpainting needs an image and a mask");
    if (c->kind == COND_COLORIZE) {
        if (!c->data) return sc_fail(err, SC_ERR_INVALID, "colorization needs an image");
        if (m->ndim != 3 || m->shape[0] != 3)
            return sc_fail(err, SC_ERR_UNSUPPORTED,
                           "colorization needs a 3-channel image model; %s is not one", m->name);
    }
    return 0;
}
