/* Sampler settings shared by the CLI, the server and the tasks: which sampler, predictor,
 * corrector, ODE solver, their parameters, and the conditioning (inpainting mask, colorization,
 * class guidance).  Names match the reference code and the API. */
#ifndef SCORED_SAMPLER_H
#define SCORED_SAMPLER_H

#include "model.h"

typedef enum { SAMPLER_PC, SAMPLER_ODE, SAMPLER_KIND_COUNT } sampler_kind;
typedef enum {
    PREDICTOR_NONE,
    PREDICTOR_EULER_MARUYAMA,
    PREDICTOR_REVERSE_DIFFUSION,
    PREDICTOR_ANCESTRAL,
    PREDICTOR_COUNT
} predictor_kind;
typedef enum { CORRECTOR_NONE, CORRECTOR_LANGEVIN, CORRECTOR_ALD, CORRECTOR_COUNT } corrector_kind;
typedef enum { ODE_RK45, ODE_EULER, ODE_HEUN, ODE_SOLVER_COUNT } ode_solver;

const char *sampler_kind_name(sampler_kind k);
const char *predictor_name(predictor_kind k);
const char *corrector_name(corrector_kind k);
const char *ode_solver_name(ode_solver k);
int sampler_kind_from_str(const char *s, sampler_kind *out);     /* 0 or SC_ERR_INVALID */
int predictor_from_str(const char *s, predictor_kind *out);
int corrector_from_str(const char *s, corrector_kind *out);
int ode_solver_from_str(const char *s, ode_solver *out);

#define SAMPLER_MAX_STEPS 100000
#define SAMPLER_MAX_CORRECTOR_STEPS 100

typedef struct sampler_config {
    sampler_kind kind;
    predictor_kind predictor;    /* PC                                                  */
    corrector_kind corrector;    /* PC                                                  */
    double snr;                  /* PC corrector signal-to-noise ratio                  */
    int corrector_steps;         /* PC corrector steps per noise level                  */
    int steps;                   /* PC: N grid points; ODE euler/heun: number of steps  */
    ode_solver solver;           /* ODE                                                 */
    double rtol, atol;           /* ODE rk45                                            */
    double eps;                  /* last time point; <= 0 means the SDE's default       */
    int denoise;                 /* final denoising step (x_mean) on or off             */
} sampler_config;

/* The reference defaults: PC reverse_diffusion + langevin, snr 0.16, 1 corrector step,
 * N = the model's, ODE rk45 at 1e-5, denoise on. */
void sampler_config_default(sampler_config *c, const sc_model *m);

/* Checks ranges and refuses what the reference refuses (ancestral with sub-VP, Langevin/ALD
 * with sub-VP, predictor and corrector both none). */
int sampler_config_validate(const sampler_config *c, const sc_model *m, sc_error *err);

/* eps actually used: c->eps if set, else the SDE's sampling default (1e-5 VE, 1e-3 VP and
 * sub-VP), raised to 1/steps for a VP or sub-VP PC sampler with fewer than 1,000 grid points. */
double sampler_eps(const sampler_config *c, const sc_model *m);

/* Conditioning of one sample.  Arrays are borrowed and must outlive the task. */
typedef enum { COND_NONE, COND_INPAINT, COND_COLORIZE } cond_kind;
typedef struct sc_condition {
    cond_kind kind;
    const float *data;  /* (D) known values in data units; colorize: the gray image on all
                           three channels (R = G = B)                                     */
    const float *mask;  /* (D) inpaint: 1 = keep, 0 = generate                            */
    int label;          /* class for guidance, or -1                                      */
    float guidance;     /* guidance weight (1 = the paper's)                              */
} sc_condition;

int condition_validate(const sc_condition *c, const sc_model *m, sc_error *err);

#endif
