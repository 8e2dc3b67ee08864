/* A network as a tape of layer operations over named activation buffers: builders
 * (net_build.c) append ops in forward order; net_forward runs them for a batch, keeping every
 * activation; net_backward runs them in reverse to get the vector-Jacobian product with
 * respect to the input.  The tape and the weights are immutable after building and shared by
 * all threads; everything that changes per call lives in a caller-owned net_workspace. */
#ifndef SCORED_NET_H
#define SCORED_NET_H

#include <stddef.h>

#include "err.h"
#include "nn.h"

typedef enum {
    OP_CONV,        /* in0 -> out: conv2d (w, b, geom)                                   */
    OP_NIN,         /* in0 -> out: per-position linear (w [C,O], b)                     */
    OP_DENSE,       /* in0 (N,I) -> out (N,O)                                           */
    OP_GROUPNORM,   /* in0 -> out, saves mean/rstd in aux                               */
    OP_SILU,        /* in0 -> out                                                       */
    OP_ADD,         /* in0, in1 -> out = (in0 + in1) * scale                            */
    OP_BIAS,        /* in0 (N,C,P), in1 (N,C) -> out = in0 + in1 broadcast over P       */
    OP_ATTN,        /* in0 = q, in1 = k, in2 = v -> out, saves weights in aux           */
    OP_FIR_UP,      /* in0 -> out: FIR upsample x2                                      */
    OP_FIR_DOWN,    /* in0 -> out: FIR downsample x2                                    */
    OP_FIR_BLUR,    /* in0 -> out: FIR blur with pads (2,2), size +1                    */
    OP_NEAREST_UP,  /* in0 -> out: nearest x2                                           */
    OP_AVGPOOL,     /* in0 -> out: 2x2 mean                                             */
    OP_CONCAT,      /* in0, in1 -> out: channels [in0, in1]                             */
    OP_AFFINE,      /* in0 -> out = in0 * scale + shift                                 */
    OP_DIV_SAMPLE,  /* in0, in1 (N) -> out[n] = in0[n] / in1[n]                         */
    OP_MEANPOOL,    /* in0 (N,C,P) -> out (N,C): mean over positions                    */
    OP_EMBED_FOURIER,   /* in0 (N,1) = ln sigma -> out (N, 2 nf), w = W (nf); no gradient */
    OP_EMBED_POSITIONAL,/* in0 (N,1) = label -> out (N, dim); no gradient                */
    OP_KIND_COUNT
} net_op_kind;

/* GRAD_WRITE: the first gradient a buffer gets in backward order is written over it;
 * GRAD_ADD: later ones are added; GRAD_NONE: this input gets none from this op. */
typedef enum { GRAD_NONE, GRAD_WRITE, GRAD_ADD } net_grad_mode;

typedef struct net_op {
    net_op_kind kind;
    int in0, in1, in2, out;  /* buffer ids, -1 when unused                              */
    int aux;                 /* saved-for-backward buffer id, or -1                     */
    long w_off, b_off;       /* offsets into the weight storage, -1 when absent          */
    const float *w, *b;      /* resolved by net_finish                                  */
    const float *wino;       /* OP_CONV with CONV2D_3X3: its Winograd kernels (16,K,C),
                                made by net_finish; NULL: the im2col path                */
    conv2d_geom geom;
    int groups;              /* GroupNorm                                                */
    unsigned char grad_mode[3]; /* per input slot (in0..in2), set by net_finish: what the
                                   backward does with its gradient (net_grad_mode)       */
    float scale, shift;
} net_op;

/* An activation buffer: per sample C x H x W floats (H = W = 1 for vectors). */
typedef struct net_buf {
    int C, H, W;
    int grad;                /* depends on the input x (needs a gradient)               */
    int grad_zero;           /* needs a gradient but no op gives it one: backward zeroes */
    size_t offset;           /* in floats, per batch: data = arena + offset * N         */
} net_buf;

typedef struct net {
    net_op *ops;
    int n_ops, cap_ops;
    net_buf *bufs;
    int n_bufs, cap_bufs;
    int input;               /* the input image buffer                                  */
    int time_input;          /* (N, 1) buffer the caller fills, or -1                   */
    int aux_input;           /* (N, 1) second per-sample scalar (e.g. sigmas), or -1    */
    int output;
    size_t floats_per_sample;    /* sum of all buffers                                  */
    size_t scratch_floats;       /* per call, independent of N                           */
    float *weights;          /* owned: every weight, converted to float32               */
    size_t n_weights, cap_weights;
    float *wino;             /* owned: the 3x3 convs' Winograd kernels (net_finish)     */
} net;

void net_init(net *n);
void net_free(net *n);

/* Building. */
int net_buffer(net *n, int C, int H, int W, int grad);              /* new buffer id, or -1 */
int net_op_add(net *n, net_op op);                                  /* 0 or SC_ERR_NOMEM   */
/* Reserves count floats of weight storage; returns the offset, or -1 when out of memory.
 * Ops refer to weights by offset; net_finish turns offsets into pointers. */
long net_weights_reserve(net *n, size_t count);
/* Computes offsets and scratch, resolves weight offsets, and transforms the 3x3 'same' convs'
 * kernels for Winograd (conv2d_winograd_weights; 16/9 of their weights).  After it the weights
 * are read-only.  0, or SC_ERR_NOMEM. */
int net_finish(net *n);
/* One conv op, forward (out = conv(in) + b) or input gradient (din = conv^T(dout)), by
 * Winograd when op->wino is set, else im2col + sgemm.  What net_forward/net_backward run. */
void net_conv_forward(const net_op *op, float *out, const float *in, int N, int C, int H, int W, int K,
                      float *scratch);
void net_conv_backward_input(const net_op *op, float *din, const float *dout, int N, int C, int H, int W,
                             int K, float *scratch);

/* Per-thread working memory for batches of up to max_batch samples. */
typedef struct net_workspace {
    int max_batch;
    float *act;              /* (max_batch * floats_per_sample) activations             */
    float *grad;             /* same, gradients (allocated on first backward)           */
    float *scratch;          /* scratch_floats                                          */
    float *tmp;              /* three times the largest buffer x max_batch               */
} net_workspace;

int net_workspace_init(net_workspace *ws, const net *n, int max_batch, sc_error *err);
void net_workspace_free(net_workspace *ws);
/* The same memory carved from one caller-owned block (a model's per-thread scratch). */
size_t net_workspace_bytes(const net *n, int max_batch);
void net_workspace_bind(net_workspace *ws, const net *n, int max_batch, void *block);

/* The buffer's data for a batch of N: (N, C, H, W). */
float *net_data(const net *n, const net_workspace *ws, int buf, int N);
float *net_grad(const net *n, const net_workspace *ws, int buf, int N);

/* Runs the tape on N samples; the caller has filled the input (and time/aux inputs). */
/* 1 when op i is a GroupNorm whose output the next op, a SiLU, reads: net_forward runs the
 * two as one pass (groupnorm_silu_forward). */
int net_fuses_groupnorm_silu(const net *n, int i);
void net_forward(const net *n, net_workspace *ws, int N);
/* Op i alone (what net_forward loops over); returns how many ops it ran (2: a GroupNorm fused
 * with the SiLU after it). */
int net_forward_op(const net *n, net_workspace *ws, int N, int i);
/* After net_forward: given dout for the output buffer (written into net_grad(output)),
 * computes the gradient with respect to the input into net_grad(input). */
int net_backward(const net *n, net_workspace *ws, int N, sc_error *err);
/* Its steps: zero the gradients no op writes, then op i's backward for i = n_ops-1 .. 0. */
void net_backward_zero(const net *n, net_workspace *ws, int N);
void net_backward_op(const net *n, net_workspace *ws, int N, int i);

#endif
