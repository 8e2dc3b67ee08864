/* From parsed options to engine settings: finding and loading the model, the sampler config
 * (engine defaults, then the model card's "default_sampler", then the command line), the
 * likelihood config, and class labels given by index or name. */
#ifndef SCORED_CLI_CONFIG_H
#define SCORED_CLI_CONFIG_H

#include "cli_args.h"
#include "flow.h"
#include "model.h"
#include "sampler.h"

/* --model: a path, or a bare name looked up as models/NAME.json in the current directory,
 * then next to the executable (EXE_DIR/models, EXE_DIR/../models). */
int cli_model_load(const char *name_or_path, sc_model **out, sc_error *err);

/* What a command needs from the sampler settings. */
typedef enum cli_sampler_use {
    CLI_SAMPLER_ANY,     /* sample: pc or ode, as the card and --sampler say          */
    CLI_SAMPLER_PC_ONLY, /* inpaint, colorize: pc; the card's kind is not applied      */
    CLI_SAMPLER_DECODE,  /* decode: ode; eps defaults to the likelihood eps so that
                            decode inverts encode                                    */
} cli_sampler_use;

/* Builds and validates the sampler config.  Errors name the option or the card key. */
int cli_sampler_config(const sc_model *m, const cli_args *a, cli_sampler_use use,
                       sampler_config *cfg, sc_error *err);

/* Builds and validates a likelihood config (encode and likelihood); dequantize is left 0. */
int cli_likelihood_config(const sc_model *m, const cli_args *a, likelihood_config *cfg,
                          sc_error *err);

/* --label / --guidance: *label = -1 and *guidance = 0 without --label; guidance defaults to
 * 1.0 with one.  --guidance without --label, an unknown name or an index out of range is
 * SC_ERR_INVALID. */
int cli_label(const sc_model *m, const cli_args *a, int *label, float *guidance, sc_error *err);

/* One-line description of the sampler settings for summaries, e.g.
 * "sampler=pc predictor=reverse_diffusion corrector=langevin snr=0.16 corrector_steps=1
 * steps=1000". */
void cli_sampler_describe(const sampler_config *cfg, const sc_model *m, char *buf, size_t len);

#endif
