/* scored's entry point: picks the subcommand from argv[1] and hands it the rest of the
 * command line.  Each subcommand lives in its own server/cli_*.c; the HTTP server will be one
 * more subcommand. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"

typedef struct cli_subcommand {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} cli_subcommand;

static const cli_subcommand subcommands[] = {
    {"sample", cli_sample_main, "draw samples (PC sampler or probability-flow ODE)"},
    {"likelihood", cli_likelihood_main, "log-likelihood (nats, bits/dim) of data or a PNG"},
    {"inpaint", cli_inpaint_main, "fill the masked part of an image"},
    {"colorize", cli_colorize_main, "color a grayscale image (3-channel models)"},
    {"score", cli_score_main, "raw score s(x, t) of given points"},
    {"encode", cli_encode_main, "data -> latent through the probability-flow ODE"},
    {"decode", cli_decode_main, "latent -> data through the probability-flow ODE"},
    {"models", cli_models_main, "list the model files in a directory"},
    {"serve", cli_serve_main, "serve the models over HTTP/JSON (proto/openapi.yaml)"},
};
#define N_SUBCOMMANDS ((int)(sizeof subcommands / sizeof *subcommands))

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: scored COMMAND [options]\n"
            "       scored --help | --version\n"
            "\n"
            "Score-based generative models (Song et al., ICLR 2021) from the command line.\n"
            "\n"
            "Commands:\n");
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f,
            "\n"
            "'scored COMMAND --help' shows a command's options.  Exit status: 0 done, 1 failed\n"
            "(one line on stderr says why), 2 bad command line.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "scored: missing command (see 'scored --help')\n");
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            /* `scored help CMD` is `scored CMD --help` */
            for (int i = 0; i < N_SUBCOMMANDS; i++) {
                if (strcmp(argv[2], subcommands[i].name) != 0) continue;
                char help_opt[] = "--help";
                char *sub_argv[] = {argv[2], help_opt, NULL};
                return subcommands[i].main(2, sub_argv);
            }
            fprintf(stderr, "scored: unknown command '%s' (see 'scored --help')\n", argv[2]);
            return CLI_EXIT_USAGE;
        }
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("scored %s\n", CLI_VERSION);
        return CLI_EXIT_OK;
    }
    /* Every command's parallelism is its own: the CLI's --threads lanes, the server's
     * evaluation threads.  OpenBLAS (NIN layers, attention, what is left of the convs) runs on
     * one thread inside each; its own threads would oversubscribe the cores, and they slow to a
     * crawl when the machine is busy (README, Threads). */
    openblas_set_num_threads(1);
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (strcmp(cmd, subcommands[i].name) == 0) return subcommands[i].main(argc - 1, argv + 1);
    /* every error is one stderr line, the pointer to --help included */
    if (cmd[0] == '-')
        fprintf(stderr, "scored: unknown option '%s' (give a command first; see 'scored --help')\n",
                cmd);
    else
        fprintf(stderr, "scored: unknown command '%s' (see 'scored --help')\n", cmd);
    return CLI_EXIT_USAGE;
}
