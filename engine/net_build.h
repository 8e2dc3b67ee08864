/* Network builders: NCSN++ / DDPM++ (`ncsnpp`) and DDPM (`ddpm`) assembled from the official
 * config fields exactly as spec score-sde.md §7.6-7.8 describes, with the official
 * state-dict names (all_modules.<i>.<param>), onto a net tape (net.h). */
#ifndef SCORED_NET_BUILD_H
#define SCORED_NET_BUILD_H

#include <jansson.h>
#include <stdint.h>

#include "net.h"

#define NET_MAX_LEVELS 10

typedef enum { PROG_NONE, PROG_OUTPUT_SKIP, PROG_INPUT_SKIP, PROG_RESIDUAL } net_progressive;

typedef struct net_config {
    char name[16];              /* "ncsnpp", "ddpm", "classifier"                        */
    int nf;
    int ch_mult[NET_MAX_LEVELS];
    int levels;                 /* len(ch_mult)                                         */
    int num_res_blocks;
    int attn_res[NET_MAX_LEVELS];
    int n_attn;
    int resamp_with_conv;
    int fir;
    int skip_rescale;
    int biggan;                 /* resblock_type: 1 biggan, 0 ddpm                      */
    net_progressive progressive;        /* none, output_skip, residual                  */
    net_progressive progressive_input;  /* none, input_skip, residual                   */
    int combine_cat;            /* progressive_combine: 1 cat, 0 sum                    */
    int fourier;                /* embedding_type: 1 fourier, 0 positional              */
    int conditional;
    int scale_by_sigma;
    int centered;
    int image_size, channels;
    int num_scales;
    int num_classes;            /* classifier                                           */
} net_config;

/* The "architecture" object: official field names (nf, ch_mult, num_res_blocks, ...). */
int net_config_from_json(net_config *c, const json_t *arch, sc_error *err);

/* Where weights come from: fetch fills out (count = product of shape) with the tensor
 * `name`, or fails with a message naming the key and both shapes. */
typedef struct net_weights_src {
    int (*fetch)(void *ctx, const char *name, int ndim, const int64_t *shape, float *out,
                 sc_error *err);
    void *ctx;
} net_weights_src;

/* Builds the network onto n (initialised with net_init).  Buffers: n->input (C,H,W);
 * n->time_input (1): ln(sigma) for Fourier embeddings, the float label for positional ones;
 * n->aux_input (1): the sigma the output is divided by (scale_by_sigma); n->output (C,H,W):
 * the raw network output.  A classifier's output is its logits (num_classes). */
int net_build(net *n, const net_config *c, const net_weights_src *src, sc_error *err);

/* Counts parameters of the built network (for the §7.9 checks). */
size_t net_param_count(const net *n);

#endif
