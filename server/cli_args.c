/* Option parsing for the scored subcommands: the table of every long option, the getopt_long
 * loop that fills a cli_args, and strict number / name parsing.  Not here: what the options
 * mean for a model (cli_config.c) or any file access (cli_io.c). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>

static const char *const command_names[] = {"sample", "likelihood", "inpaint", "colorize",
                                            "score",  "encode",     "decode",  "models"};
_Static_assert(sizeof command_names / sizeof *command_names == CLI_CMD_COUNT, "command names");

const char *cli_command_name(cli_command cmd)
{
    return (unsigned)cmd < CLI_CMD_COUNT ? command_names[cmd] : "?";
}

/* Which subcommands take an option: a bit per cli_command. */
#define S (1u << CLI_CMD_SAMPLE)
#define L (1u << CLI_CMD_LIKELIHOOD)
#define I (1u << CLI_CMD_INPAINT)
#define C (1u << CLI_CMD_COLORIZE)
#define R (1u << CLI_CMD_SCORE)
#define E (1u << CLI_CMD_ENCODE)
#define D (1u << CLI_CMD_DECODE)
#define M (1u << CLI_CMD_MODELS)
#define ALL (S | L | I | C | R | E | D | M)

typedef struct cli_opt_spec {
    const char *name;
    int has_arg;       /* getopt_long's no_argument / required_argument */
    unsigned commands; /* bit mask of cli_command                     */
} cli_opt_spec;

/* Indexed by cli_opt, so opt_table[id] is the option's row. */
static const cli_opt_spec opt_table[] = {
    [CLI_OPT_HELP] = {"help", no_argument, ALL},
    [CLI_OPT_MODEL] = {"model", required_argument, ALL & ~M},
    [CLI_OPT_OUT] = {"out", required_argument, S | I | C | R | E | D},
    [CLI_OPT_INPUT] = {"input", required_argument, L | R | E | D},
    [CLI_OPT_IMAGE] = {"image", required_argument, I | C},
    [CLI_OPT_MASK] = {"mask", required_argument, I},
    [CLI_OPT_N] = {"n", required_argument, S | I | C},
    [CLI_OPT_SEED] = {"seed", required_argument, S | I | C | L},
    [CLI_OPT_BATCH] = {"batch", required_argument, ALL & ~M},
    [CLI_OPT_THREADS] = {"threads", required_argument, S | L | I | C | E | D},
    [CLI_OPT_LABEL] = {"label", required_argument, S | I | C | R | D},
    [CLI_OPT_GUIDANCE] = {"guidance", required_argument, S | I | C | R | D},
    [CLI_OPT_SAMPLER] = {"sampler", required_argument, S | I | C},
    [CLI_OPT_PREDICTOR] = {"predictor", required_argument, S | I | C},
    [CLI_OPT_CORRECTOR] = {"corrector", required_argument, S | I | C},
    [CLI_OPT_SNR] = {"snr", required_argument, S | I | C},
    [CLI_OPT_CORRECTOR_STEPS] = {"corrector-steps", required_argument, S | I | C},
    [CLI_OPT_STEPS] = {"steps", required_argument, S | I | C | L | E | D},
    [CLI_OPT_SOLVER] = {"solver", required_argument, S | L | E | D},
    [CLI_OPT_RTOL] = {"rtol", required_argument, S | L | E | D},
    [CLI_OPT_ATOL] = {"atol", required_argument, S | L | E | D},
    [CLI_OPT_EPS] = {"eps", required_argument, S | I | C | L | E | D},
    [CLI_OPT_NO_DENOISE] = {"no-denoise", no_argument, S | I | C | D},
    [CLI_OPT_EXACT_DIV] = {"exact-div", no_argument, L},
    [CLI_OPT_PROBES] = {"probes", required_argument, L},
    [CLI_OPT_HUTCHINSON] = {"hutchinson", required_argument, L},
    [CLI_OPT_LATENT_OUT] = {"latent-out", required_argument, L},
    [CLI_OPT_T] = {"t", required_argument, R},
    [CLI_OPT_T_FILE] = {"t-file", required_argument, R},
};
#define OPT_TABLE_LEN ((int)(sizeof opt_table / sizeof *opt_table))
_Static_assert(sizeof opt_table / sizeof *opt_table == CLI_OPT_COUNT, "one row per cli_opt");

#undef S
#undef L
#undef I
#undef C
#undef R
#undef E
#undef D
#undef M
#undef ALL

/* getopt_long's val for an option: offset so it never collides with a short option. */
#define OPT_VAL_BASE 256

/* ---- errors ------------------------------------------------------------------------------ */

int cli_usage_error(cli_command cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one line: other programs read the first stderr line as the reason */
    fprintf(stderr, "scored: %s: %s (see 'scored %s --help')\n", cli_command_name(cmd), msg,
            cli_command_name(cmd));
    return CLI_EXIT_USAGE;
}

int cli_require(const cli_args *a, cli_opt opt)
{
    if (a->seen[opt]) return 0;
    return cli_usage_error(a->cmd, "missing required option --%s", opt_table[opt].name);
}

int cli_fail(const sc_error *err)
{
    fprintf(stderr, "scored: %s\n", err->msg[0] ? err->msg : "unknown error");
    return CLI_EXIT_FAIL;
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* Text of an argument for an error message, shortened so the message stays one line. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 4 < len; i++)
        buf[j++] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    if (s[j] && j + 4 >= len) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = 0;
    return buf;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, int *out, sc_error *err)
{
    char buf[64];
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    int digits = *p != 0;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') digits = 0;
    errno = 0;
    long v = digits ? strtol(s, NULL, 10) : 0;
    if (!digits || errno == ERANGE || v < lo || v > hi)
        return sc_fail(err, SC_ERR_INVALID, "%s must be an integer in [%ld, %ld], got '%s'", opt,
                       lo, hi, shown(s, buf, sizeof buf));
    *out = (int)v;
    return 0;
}

int cli_parse_u64(const char *opt, const char *s, uint64_t *out, sc_error *err)
{
    char buf[64];
    int digits = *s != 0;
    for (const char *q = s; *q; q++)
        if (*q < '0' || *q > '9') digits = 0;
    errno = 0;
    unsigned long long v = digits ? strtoull(s, NULL, 10) : 0;
    if (!digits || errno == ERANGE)
        return sc_fail(err, SC_ERR_INVALID,
                       "%s must be an integer in [0, 18446744073709551615], got '%s'", opt,
                       shown(s, buf, sizeof buf));
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double lo, int lo_open, double hi,
                     int hi_open, double *out, sc_error *err)
{
    char buf[64];
    char *end = NULL;
    errno = 0;
    /* strtod skips leading blanks; an option value with blanks is refused as a whole */
    int ok = *s && *s != ' ' && *s != '\t';
    double v = ok ? strtod(s, &end) : 0;
    ok = ok && end != s && *end == 0 && errno != ERANGE && isfinite(v);
    ok = ok && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok)
        return sc_fail(err, SC_ERR_INVALID, "%s must be a number in %c%g, %g%c, got '%s'", opt,
                       lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']',
                       shown(s, buf, sizeof buf));
    *out = v;
    return 0;
}

/* ---- names ------------------------------------------------------------------------------- */

/* Refusal for a name that is not in a table: lists the accepted ones. */
static int bad_name(const char *opt, const char *s, const char *(*name)(int), int count,
                    sc_error *err)
{
    char list[256] = "", buf[64];
    size_t used = 0;
    for (int i = 0; i < count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", name(i));
    return sc_fail(err, SC_ERR_INVALID, "%s: unknown value '%s' (expected one of: %s)", opt,
                   shown(s, buf, sizeof buf), list);
}

static const char *kind_name_i(int k) { return sampler_kind_name((sampler_kind)k); }
static const char *predictor_name_i(int k) { return predictor_name((predictor_kind)k); }
static const char *corrector_name_i(int k) { return corrector_name((corrector_kind)k); }
static const char *solver_name_i(int k) { return ode_solver_name((ode_solver)k); }
static const char *probe_name_i(int k) { return probe_kind_name((probe_kind)k); }

/* ---- one option's value ------------------------------------------------------------------ */

static int set_option(cli_args *a, cli_opt id, const char *v, sc_error *err)
{
    char opt[40];
    snprintf(opt, sizeof opt, "--%s", opt_table[id].name);
    switch (id) {
    case CLI_OPT_HELP: return 0;
    case CLI_OPT_MODEL: a->model = v; return 0;
    case CLI_OPT_OUT: a->out = v; return 0;
    case CLI_OPT_INPUT: a->input = v; return 0;
    case CLI_OPT_IMAGE: a->image = v; return 0;
    case CLI_OPT_MASK: a->mask = v; return 0;
    case CLI_OPT_LATENT_OUT: a->latent_out = v; return 0;
    case CLI_OPT_T_FILE: a->t_file = v; return 0;
    case CLI_OPT_LABEL: a->label = v; return 0;
    case CLI_OPT_NO_DENOISE: return 0;
    case CLI_OPT_EXACT_DIV: return 0;
    case CLI_OPT_N: return cli_parse_int(opt, v, 1, CLI_MAX_SAMPLES, &a->n, err);
    case CLI_OPT_SEED: return cli_parse_u64(opt, v, &a->seed, err);
    case CLI_OPT_BATCH: return cli_parse_int(opt, v, 1, CLI_MAX_BATCH, &a->batch, err);
    case CLI_OPT_THREADS: return cli_parse_int(opt, v, 1, CLI_MAX_THREADS, &a->threads, err);
    case CLI_OPT_GUIDANCE: return cli_parse_double(opt, v, 0, 0, 100, 0, &a->guidance, err);
    case CLI_OPT_SNR: return cli_parse_double(opt, v, 0, 1, 10, 0, &a->snr, err);
    case CLI_OPT_CORRECTOR_STEPS:
        return cli_parse_int(opt, v, 1, SAMPLER_MAX_CORRECTOR_STEPS, &a->corrector_steps, err);
    case CLI_OPT_STEPS: return cli_parse_int(opt, v, 1, SAMPLER_MAX_STEPS, &a->steps, err);
    case CLI_OPT_RTOL: return cli_parse_double(opt, v, 1e-12, 0, 1, 0, &a->rtol, err);
    case CLI_OPT_ATOL: return cli_parse_double(opt, v, 1e-12, 0, 1, 0, &a->atol, err);
    case CLI_OPT_EPS: return cli_parse_double(opt, v, 0, 1, 0.5, 1, &a->eps, err);
    case CLI_OPT_PROBES: return cli_parse_int(opt, v, 1, FLOW_MAX_PROBES, &a->probes, err);
    case CLI_OPT_T: return cli_parse_double(opt, v, 0, 1, SDE_T, 0, &a->t, err);
    case CLI_OPT_SAMPLER:
        return sampler_kind_from_str(v, &a->kind)
                   ? bad_name(opt, v, kind_name_i, SAMPLER_KIND_COUNT, err) : 0;
    case CLI_OPT_PREDICTOR:
        return predictor_from_str(v, &a->predictor)
                   ? bad_name(opt, v, predictor_name_i, PREDICTOR_COUNT, err) : 0;
    case CLI_OPT_CORRECTOR:
        return corrector_from_str(v, &a->corrector)
                   ? bad_name(opt, v, corrector_name_i, CORRECTOR_COUNT, err) : 0;
    case CLI_OPT_SOLVER:
        return ode_solver_from_str(v, &a->solver)
                   ? bad_name(opt, v, solver_name_i, ODE_SOLVER_COUNT, err) : 0;
    case CLI_OPT_HUTCHINSON:
        return probe_kind_from_str(v, &a->hutchinson)
                   ? bad_name(opt, v, probe_name_i, PROBE_KIND_COUNT, err) : 0;
    case CLI_OPT_COUNT: break;
    }
    return sc_fail(err, SC_ERR_INVALID, "internal error: unhandled option %s", opt);
}

/* ---- the loop ---------------------------------------------------------------------------- */

int cli_default_threads(void)
{
    /* the cores this process may run on (taskset, cgroup cpusets), else the online ones */
    cpu_set_t set;
    long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > CLI_MAX_THREADS ? CLI_MAX_THREADS : (int)cores;
}

int cli_parse(cli_command cmd, const char *usage, int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->batch = CLI_DEFAULT_BATCH;
    a->threads = cli_default_threads();

    /* getopt_long's table: the rows of opt_table this command takes, then the terminator. */
    struct option longopts[OPT_TABLE_LEN + 1];
    int nl = 0;
    for (int i = 0; i < OPT_TABLE_LEN; i++) {
        if (!(opt_table[i].commands & (1u << cmd))) continue;
        longopts[nl++] = (struct option){opt_table[i].name, opt_table[i].has_arg, NULL,
                                         OPT_VAL_BASE + i};
    }
    longopts[nl] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;   /* we print our own messages */
    optind = 1;
    sc_error err = {0};
    int bad_value = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1) break;
        if (c == 'h') {
            a->seen[CLI_OPT_HELP] = 1;
            continue;
        }
        if (c == ':') /* the option without its value is the last element consumed */
            return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        if (c == '?') {
            if (optopt > 0 && optopt < OPT_VAL_BASE)
                return cli_usage_error(cmd, "unknown option '-%c'", optopt);
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        cli_opt id = (cli_opt)(c - OPT_VAL_BASE);
        SC_ASSERT((unsigned)id < CLI_OPT_COUNT);
        a->seen[id] = 1;
        /* keep the first bad value, but read on: --help anywhere still prints the usage */
        if (!bad_value && set_option(a, id, optarg, &err)) bad_value = 1;
    }
    if (a->seen[CLI_OPT_HELP]) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (bad_value) return cli_fail(&err);
    a->positional = argv + optind;
    a->n_positional = argc - optind;
    if (cmd != CLI_CMD_MODELS && a->n_positional > 0)
        return cli_usage_error(cmd, "unexpected argument '%s'", a->positional[0]);
    return CLI_CONTINUE;
}
