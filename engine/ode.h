/* ODE integrators as resumable state machines over a double state vector: adaptive
 * Dormand-Prince 5(4) with SciPy's step-size control (spec §4.3), and fixed-step Euler and
 * Heun.  The integrator never evaluates f itself: it asks for f(req_t, req_y) and is resumed
 * once the caller has written req_f. */
#ifndef SCORED_ODE_H
#define SCORED_ODE_H

#include "err.h"
#include "sampler.h"

enum { ODE_FINISHED = 0, ODE_NEED_F = 1 };

typedef struct ode_integrator {
    ode_solver solver;
    int n;                    /* state dimension                                     */
    double t0, t_end, dir;    /* integrate from t0 to t_end; dir = sign(t_end - t0)  */
    double rtol, atol;        /* rk45                                                */
    int fixed_steps;          /* euler, heun                                         */
    double t;                 /* current time                                        */
    double *y;                /* (n) current state                                   */
    double req_t;             /* request: the caller writes f(req_t, req_y) to req_f  */
    const double *req_y;      /* (n) borrowed from the integrator's buffers          */
    double *req_f;            /* (n)                                                 */
    double *K;                /* (7, n) stages                                       */
    double *y_stage;          /* (n)                                                 */
    double *y_new;            /* (n)                                                 */
    double h_abs, h;
    int step_rejected;
    int phase, stage;
    long n_steps, n_rejected, nfev;
    void *buffer;             /* the one allocation behind every array above         */
} ode_integrator;

int ode_init(ode_integrator *o, ode_solver solver, int n, double t0, double t_end,
             const double *y0, double rtol, double atol, int fixed_steps, sc_error *err);
/* Returns ODE_NEED_F, ODE_FINISHED (o->y holds y(t_end)) or a negative sc_code. */
int ode_next(ode_integrator *o, sc_error *err);
void ode_free(ode_integrator *o);

#endif
