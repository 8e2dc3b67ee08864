/* Dormand-Prince 5(4) exactly as SciPy's solve_ivp(method='RK45') steps it: Hairer's initial
 * step, safety 0.9, factors in [0.2, 10], error exponent -1/5, RMS norm of the scaled error,
 * no step growth right after a rejection, last step clipped onto t_end.  So NFE matches the
 * reference: 2 + 6 * attempted steps.  Plus fixed-step Euler (1 eval/step) and Heun (2). */
#include "ode.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double A[6][5] = {
    {0, 0, 0, 0, 0},
    {1.0 / 5, 0, 0, 0, 0},
    {3.0 / 40, 9.0 / 40, 0, 0, 0},
    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
};
static const double B[6] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84};
static const double E[7] = {-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920,
                            17253.0 / 339200, -22.0 / 525, 1.0 / 40};

#define SAFETY 0.9
#define MIN_FACTOR 0.2
#define MAX_FACTOR 10.0

enum {
    PH_START,        /* request f(t0, y0)                      */
    PH_GOT_F0,       /* rk45: request f1 for the initial step   */
    PH_GOT_F1,       /* rk45: choose h                          */
    PH_STEP,         /* begin an attempt / a fixed step         */
    PH_STAGE,        /* rk45: stage `stage` answered            */
    PH_END_RK,       /* rk45: f(t+h, y_new) answered            */
    PH_FIXED_K0,     /* euler / heun: f(t, y) answered          */
    PH_FIXED_K1,     /* heun: f(t+h, y + h k0) answered         */
    PH_DONE,
};

static double rms(const double *v, const double *scale, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double q = v[i] / scale[i];
        s += q * q;
    }
    return sqrt(s / (n > 0 ? n : 1));
}

int ode_init(ode_integrator *o, ode_solver solver, int n, double t0, double t_end,
             const double *y0, double rtol, double atol, int fixed_steps, sc_error *err)
{
    memset(o, 0, sizeof *o);
    if (n < 1) return sc_fail(err, SC_ERR_INVALID, "ode: empty state");
    if (t_end == t0) return sc_fail(err, SC_ERR_INVALID, "ode: empty time interval");
    if (solver != ODE_RK45 && fixed_steps < 1)
        return sc_fail(err, SC_ERR_INVALID, "ode: fixed-step solvers need steps >= 1");
    o->solver = solver;
    o->n = n;
    o->t0 = o->t = t0;
    o->t_end = t_end;
    o->dir = t_end > t0 ? 1.0 : -1.0;
    o->rtol = rtol;
    o->atol = atol;
    o->fixed_steps = fixed_steps;
    /* y, K (7), y_stage, y_new, scale */
    o->buffer = malloc(sizeof(double) * (size_t)n * 11);
    if (!o->buffer) return sc_fail(err, SC_ERR_NOMEM, "ode: out of memory for %d states", n);
    o->y = o->buffer;
    o->K = o->y + n;
    o->y_stage = o->K + 7 * (size_t)n;
    o->y_new = o->y_stage + n;
    memcpy(o->y, y0, sizeof(double) * n);
    o->phase = PH_START;
    return 0;
}

void ode_free(ode_integrator *o)
{
    free(o->buffer);
    memset(o, 0, sizeof *o);
}

static double *scale_buf(ode_integrator *o) { return o->y_new + o->n; }
static double *stage(ode_integrator *o, int s) { return o->K + (size_t)s * o->n; }

static int request(ode_integrator *o, double t, const double *y, double *f, int next_phase)
{
    o->req_t = t;
    o->req_y = y;
    o->req_f = f;
    o->phase = next_phase;
    o->nfev++;
    return ODE_NEED_F;
}

/* Builds y_stage = y + h sum_{j<s} A[s][j] K_j and requests K_s. */
static int request_stage(ode_integrator *o, int s)
{
    const int n = o->n;
    for (int i = 0; i < n; i++) {
        double acc = 0;
        for (int j = 0; j < s; j++) acc += A[s][j] * stage(o, j)[i];
        o->y_stage[i] = o->y[i] + o->h * acc;
    }
    o->stage = s;
    return request(o, o->t + C[s] * o->h, o->y_stage, stage(o, s), PH_STAGE);
}

static int rk45_begin_step(ode_integrator *o, sc_error *err)
{
    if (o->dir * (o->t - o->t_end) >= 0) {
        o->phase = PH_DONE;
        return ODE_FINISHED;
    }
    double min_step = 10.0 * fabs(nextafter(o->t, o->dir * INFINITY) - o->t);
    if (o->h_abs < min_step)
        return sc_fail(err, SC_ERR_NUMERIC, "ode: step size fell below %g at t=%g", min_step, o->t);
    double h = o->h_abs * o->dir;
    double t_new = o->t + h;
    if (o->dir * (t_new - o->t_end) > 0) t_new = o->t_end;
    o->h = t_new - o->t;
    o->h_abs = fabs(o->h);
    return request_stage(o, 1);
}

static int rk45_end_step(ode_integrator *o, sc_error *err)
{
    const int n = o->n;
    double *scale = scale_buf(o), *errv = o->y_stage;
    for (int i = 0; i < n; i++) {
        double acc = 0;
        for (int j = 0; j < 7; j++) acc += stage(o, j)[i] * E[j];
        errv[i] = acc * o->h;
        double a = fabs(o->y[i]), b = fabs(o->y_new[i]);
        scale[i] = o->atol + (a > b ? a : b) * o->rtol;
    }
    double error_norm = rms(errv, scale, n);
    if (!isfinite(error_norm))
        return sc_fail(err, SC_ERR_NUMERIC, "ode: the state became non-finite at t=%g", o->t);
    if (error_norm < 1) {
        double factor = error_norm == 0 ? MAX_FACTOR : fmin(MAX_FACTOR, SAFETY * pow(error_norm, -0.2));
        if (o->step_rejected) factor = fmin(1.0, factor);
        o->h_abs *= factor;
        o->step_rejected = 0;
        o->t = o->t + o->h;
        if (o->dir * (o->t - o->t_end) > 0 || fabs(o->t - o->t_end) < 1e-15 * fabs(o->t_end))
            o->t = o->t_end;
        memcpy(o->y, o->y_new, sizeof(double) * n);
        memcpy(stage(o, 0), stage(o, 6), sizeof(double) * n); /* FSAL */
        o->n_steps++;
    } else {
        o->h_abs *= fmax(MIN_FACTOR, SAFETY * pow(error_norm, -0.2));
        o->step_rejected = 1;
        o->n_rejected++;
    }
    return rk45_begin_step(o, err);
}

static double fixed_h(const ode_integrator *o)
{
    return (o->t_end - o->t0) / o->fixed_steps;
}

int ode_next(ode_integrator *o, sc_error *err)
{
    const int n = o->n;
    switch (o->phase) {
    case PH_START:
        if (o->solver == ODE_RK45) return request(o, o->t, o->y, stage(o, 0), PH_GOT_F0);
        return request(o, o->t, o->y, stage(o, 0), PH_FIXED_K0);

    case PH_GOT_F0: { /* Hairer's initial step, first half */
        double *scale = scale_buf(o);
        for (int i = 0; i < n; i++) scale[i] = o->atol + fabs(o->y[i]) * o->rtol;
        double d0 = rms(o->y, scale, n), d1 = rms(stage(o, 0), scale, n);
        double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
        double span = fabs(o->t_end - o->t0);
        if (h0 > span) h0 = span;
        o->h_abs = h0;
        for (int i = 0; i < n; i++) o->y_stage[i] = o->y[i] + h0 * o->dir * stage(o, 0)[i];
        o->y_new[0] = d1; /* stash d1 for the second half (y_new is free until a step) */
        return request(o, o->t + h0 * o->dir, o->y_stage, stage(o, 1), PH_GOT_F1);
    }
    case PH_GOT_F1: {
        double *scale = scale_buf(o);
        double h0 = o->h_abs, d1 = o->y_new[0];
        double *diff = o->y_new;
        for (int i = 0; i < n; i++) diff[i] = stage(o, 1)[i] - stage(o, 0)[i];
        double d2 = rms(diff, scale, n) / h0;
        double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h0 * 1e-3)
                                                  : pow(0.01 / fmax(d1, d2), 1.0 / 5.0);
        double h = fmin(100 * h0, h1);
        double span = fabs(o->t_end - o->t0);
        o->h_abs = fmin(h, span);
        return rk45_begin_step(o, err);
    }
    case PH_STAGE:
        if (o->stage < 5) return request_stage(o, o->stage + 1);
        for (int i = 0; i < n; i++) {
            double acc = 0;
            for (int j = 0; j < 6; j++) acc += B[j] * stage(o, j)[i];
            o->y_new[i] = o->y[i] + o->h * acc;
        }
        return request(o, o->t + o->h, o->y_new, stage(o, 6), PH_END_RK);

    case PH_END_RK:
        return rk45_end_step(o, err);

    case PH_STEP:
        if (o->n_steps >= o->fixed_steps) {
            o->phase = PH_DONE;
            return ODE_FINISHED;
        }
        return request(o, o->t, o->y, stage(o, 0), PH_FIXED_K0);

    case PH_FIXED_K0: {
        double h = fixed_h(o);
        if (o->solver == ODE_HEUN) {
            for (int i = 0; i < n; i++) o->y_stage[i] = o->y[i] + h * stage(o, 0)[i];
            return request(o, o->t + h, o->y_stage, stage(o, 1), PH_FIXED_K1);
        }
        for (int i = 0; i < n; i++) o->y[i] += h * stage(o, 0)[i];
        goto fixed_advance;
    }
    case PH_FIXED_K1: {
        double h = fixed_h(o);
        for (int i = 0; i < n; i++) o->y[i] += 0.5 * h * (stage(o, 0)[i] + stage(o, 1)[i]);
        goto fixed_advance;
    }
    case PH_DONE:
        return ODE_FINISHED;
    default:
        SC_ASSERT(0);
    }
    return ODE_FINISHED;

fixed_advance:
    o->n_steps++;
    o->t = o->n_steps == o->fixed_steps ? o->t_end : o->t0 + o->n_steps * fixed_h(o);
    for (int i = 0; i < n; i++)
        if (!isfinite(o->y[i]))
            return sc_fail(err, SC_ERR_NUMERIC, "ode: the state became non-finite at t=%g", o->t);
    o->phase = PH_STEP;
    return ode_next(o, err);
}
