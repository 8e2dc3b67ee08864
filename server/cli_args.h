/* Command-line option parsing for the scored subcommands: one table of every option (which
 * subcommands take it), getopt_long over it, strict number parsing with range checks, and the
 * two kinds of failure the CLI reports (usage errors, exit 2; bad values, exit 1). */
#ifndef SCORED_CLI_ARGS_H
#define SCORED_CLI_ARGS_H

#include <stdint.h>

#include "err.h"
#include "flow.h"
#include "sampler.h"

#define CLI_VERSION "0.1.0"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Returned by cli_parse when the command should go on (any other value is an exit code). */
#define CLI_CONTINUE (-1)

#define CLI_MAX_SAMPLES 4096    /* --n                                            */
#define CLI_MAX_BATCH 65536     /* --batch                                        */
#define CLI_DEFAULT_BATCH 64
#define CLI_MAX_THREADS 256     /* --threads                                      */

typedef enum cli_command {
    CLI_CMD_SAMPLE,
    CLI_CMD_LIKELIHOOD,
    CLI_CMD_INPAINT,
    CLI_CMD_COLORIZE,
    CLI_CMD_SCORE,
    CLI_CMD_ENCODE,
    CLI_CMD_DECODE,
    CLI_CMD_MODELS,
    CLI_CMD_COUNT
} cli_command;

const char *cli_command_name(cli_command cmd); /* "sample", ... */

typedef enum cli_opt {
    CLI_OPT_HELP,
    CLI_OPT_MODEL,
    CLI_OPT_OUT,
    CLI_OPT_INPUT,
    CLI_OPT_IMAGE,
    CLI_OPT_MASK,
    CLI_OPT_N,
    CLI_OPT_SEED,
    CLI_OPT_BATCH,
    CLI_OPT_THREADS,
    CLI_OPT_LABEL,
    CLI_OPT_GUIDANCE,
    CLI_OPT_SAMPLER,
    CLI_OPT_PREDICTOR,
    CLI_OPT_CORRECTOR,
    CLI_OPT_SNR,
    CLI_OPT_CORRECTOR_STEPS,
    CLI_OPT_STEPS,
    CLI_OPT_SOLVER,
    CLI_OPT_RTOL,
    CLI_OPT_ATOL,
    CLI_OPT_EPS,
    CLI_OPT_NO_DENOISE,
    CLI_OPT_EXACT_DIV,
    CLI_OPT_PROBES,
    CLI_OPT_HUTCHINSON,
    CLI_OPT_LATENT_OUT,
    CLI_OPT_T,
    CLI_OPT_T_FILE,
    CLI_OPT_COUNT
} cli_opt;

/* Everything any subcommand can be given.  Strings are borrowed from argv.  A field is only
 * meaningful when seen[] says the option was given (defaults are the commands' business). */
typedef struct cli_args {
    cli_command cmd;
    int seen[CLI_OPT_COUNT];
    const char *model, *out, *input, *image, *mask, *latent_out, *t_file, *label;
    int n;
    uint64_t seed;
    int batch;
    int threads;           /* --threads, default cli_default_threads()            */
    double guidance;
    sampler_kind kind;
    predictor_kind predictor;
    corrector_kind corrector;
    double snr;
    int corrector_steps;
    int steps;
    ode_solver solver;
    double rtol, atol, eps;
    int probes;
    probe_kind hutchinson;
    double t;
    char **positional;     /* (n_positional) borrowed from argv */
    int n_positional;
} cli_args;

/* The cores this process may use (affinity; 1..CLI_MAX_THREADS): --threads' default. */
int cli_default_threads(void);

/* Parses argv (argv[0] is the subcommand's name) for cmd.  Prints `usage` on stdout for
 * --help, or one error on stderr.  Returns CLI_CONTINUE, or the exit code to return now. */
int cli_parse(cli_command cmd, const char *usage, int argc, char **argv, cli_args *a);

/* Prints one stderr line, "scored: <cmd>: <message> (see 'scored <cmd> --help')"; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(cli_command cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Usage error unless option `opt` was given. */
int cli_require(const cli_args *a, cli_opt opt);

/* Prints "scored: <err->msg>" on stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const sc_error *err);

/* Strict number parsing: the whole string, no NaN/Inf, within the range; otherwise
 * SC_ERR_INVALID with one line naming the option ("--n must be an integer in [1, 4096], got
 * '0'").  For doubles, lo_open / hi_open make the bound exclusive. */
int cli_parse_int(const char *opt, const char *s, long lo, long hi, int *out, sc_error *err);
int cli_parse_u64(const char *opt, const char *s, uint64_t *out, sc_error *err);
int cli_parse_double(const char *opt, const char *s, double lo, int lo_open, double hi,
                     int hi_open, double *out, sc_error *err);

#endif
