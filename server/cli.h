/* The scored subcommands, one entry point each: argv[0] is the subcommand's name, the return
 * value the process exit code (0 ok, 1 failed, 2 usage error).  main.c dispatches to them. */
#ifndef SCORED_CLI_H
#define SCORED_CLI_H

int cli_sample_main(int argc, char **argv);
int cli_likelihood_main(int argc, char **argv);
int cli_inpaint_main(int argc, char **argv);
int cli_colorize_main(int argc, char **argv);
int cli_score_main(int argc, char **argv);
int cli_encode_main(int argc, char **argv);
int cli_decode_main(int argc, char **argv);
int cli_models_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);

#endif
