/* `scored models [DIR]`: loads every model file in a directory and prints one line per model
 * (name, kind, shape, SDE, classes, path); files that fail to load are reported on stderr.
 * Loading is the engine's sc_model_load; nothing is cached. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cli_args.h"
#include "model.h"

static const char models_usage[] =
    "usage: scored models [DIR]\n"
    "\n"
    "Lists the model files (*.json, *.safetensors) in DIR (default models/), one line per model that loads:\n"
    "  NAME  KIND  SHAPE  SDE(PARAMETERS)  classes=K  PATH\n"
    "Files that fail to load are named on stderr with the reason; the exit status is 0 when\n"
    "at least one model loaded.\n"
    "\n"
    "  -h, --help             this text\n";


/* "vp(beta_min=0.1,beta_max=20,N=1000)" and the like. */
static void sde_text(const sde *s, char *buf, size_t len)
{
    if (s->type == SDE_VE)
        snprintf(buf, len, "ve(sigma_min=%g,sigma_max=%g,N=%d)", s->sigma_min, s->sigma_max, s->N);
    else
        snprintf(buf, len, "%s(beta_min=%g,beta_max=%g,N=%d)", sde_type_name(s->type), s->beta_min,
                 s->beta_max, s->N);
}

/* "[1,28,28]": the shape without blanks, so every field is one word. */
static void shape_text(const sc_model *m, char *buf, size_t len)
{
    if (m->ndim == 1) snprintf(buf, len, "[%d]", m->shape[0]);
    else snprintf(buf, len, "[%d,%d,%d]", m->shape[0], m->shape[1], m->shape[2]);
}

int cli_models_main(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(CLI_CMD_MODELS, models_usage, argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if (a.n_positional > 1)
        return cli_usage_error(a.cmd, "unexpected argument '%s' (give at most one directory)",
                               a.positional[1]);
    const char *dir = a.n_positional ? a.positional[0] : "models";
    sc_error err = {0};
    char **names = NULL;
    int count = 0;
    if (sc_model_dir_list(dir, &names, &count, &err)) return cli_fail(&err);

    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    int loaded = 0;
    for (int i = 0; i < count; i++) {
        size_t plen = dlen + strlen(sep) + strlen(names[i]) + 1;
        char *path = malloc(plen);
        if (!path) {
            sc_fail(&err, SC_ERR_NOMEM, "out of memory");
            fprintf(stderr, "scored: %s\n", err.msg);
            continue;
        }
        snprintf(path, plen, "%s%s%s", dir, sep, names[i]);
        sc_model *m = NULL;
        if (sc_model_load(path, &m, &err)) {
            fprintf(stderr, "scored: %s\n", err.msg);
        } else {
            char shape[64], sde_desc[160];
            shape_text(m, shape, sizeof shape);
            sde_text(&m->sde, sde_desc, sizeof sde_desc);
            printf("%-16s %-5s %-12s %-40s classes=%-3d %s\n", m->name, m->ops->kind, shape,
                   sde_desc, m->n_classes ? m->n_classes : m->n_labels, path);
            loaded++;
            sc_model_free(m);
        }
        free(path);
    }
    sc_model_dir_free(names, count);
    if (loaded == 0) {
        sc_fail(&err, SC_ERR_IO, "no loadable model file (*.json, *.safetensors) in %.300s", dir);
        return cli_fail(&err);
    }
    return CLI_EXIT_OK;
}
