/* Predictor-corrector sampling of one sample as a task (spec §3, §4.1, §6.1-6.3): the
 * unconditional sampler, inpainting, colorization and class guidance share this code. */
#ifndef SCORED_PC_H
#define SCORED_PC_H

#include "sampler.h"
#include "task.h"

/* Creates the task for sample `index` of a request with `seed`.  cfg must be a validated
 * PC config; cond may be NULL.  m and cond's arrays are borrowed and must outlive the task. */
int pc_task_create(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                   uint64_t seed, uint64_t index, sc_task **out, sc_error *err);

/* After TASK_DONE: the sample in data units, (D). */
const float *pc_task_result(const sc_task *t);

/* Colorization's orthonormal channel-decoupling matrix (§6.2), rows = RGB in, cols = out. */
extern const double pc_color_matrix[9];

#endif
