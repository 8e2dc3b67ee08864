/* The network tape: building, workspace, forward and backward.  Every op works sample by
 * sample inside the layer functions (nn.h), so a sample's result is the same in any batch. */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int plan_gradients(net *n);

void net_init(net *n)
{
    memset(n, 0, sizeof *n);
    n->input = n->time_input = n->aux_input = n->output = -1;
}

void net_free(net *n)
{
    free(n->ops);
    free(n->bufs);
    free(n->weights);
    free(n->wino);
    memset(n, 0, sizeof *n);
}

int net_buffer(net *n, int C, int H, int W, int grad)
{
    if (n->n_bufs == n->cap_bufs) {
        int cap = n->cap_bufs ? 2 * n->cap_bufs : 64;
        net_buf *nb = realloc(n->bufs, sizeof *nb * (size_t)cap);
        if (!nb) return -1;
        n->bufs = nb;
        n->cap_bufs = cap;
    }
    n->bufs[n->n_bufs] = (net_buf){.C = C, .H = H, .W = W, .grad = grad};
    return n->n_bufs++;
}

int net_op_add(net *n, net_op op)
{
    if (n->n_ops == n->cap_ops) {
        int cap = n->cap_ops ? 2 * n->cap_ops : 128;
        net_op *no = realloc(n->ops, sizeof *no * (size_t)cap);
        if (!no) return SC_ERR_NOMEM;
        n->ops = no;
        n->cap_ops = cap;
    }
    n->ops[n->n_ops++] = op;
    return 0;
}

long net_weights_reserve(net *n, size_t count)
{
    if (n->n_weights + count > n->cap_weights) {
        size_t cap = n->cap_weights ? n->cap_weights : 1 << 16;
        while (cap < n->n_weights + count) cap *= 2;
        float *nw = realloc(n->weights, sizeof(float) * cap);
        if (!nw) return -1;
        n->weights = nw;
        n->cap_weights = cap;
    }
    long off = (long)n->n_weights;
    n->n_weights += count;
    return off;
}

static size_t buf_floats(const net_buf *b) { return (size_t)b->C * b->H * b->W; }

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

int net_finish(net *n)
{
    size_t off = 0, scratch = 0, wino = 0;
    for (int i = 0; i < n->n_bufs; i++) {
        n->bufs[i].offset = off;
        off += buf_floats(&n->bufs[i]);
    }
    n->floats_per_sample = off;
    for (int i = 0; i < n->n_ops; i++) {
        net_op *op = &n->ops[i];
        op->w = op->w_off >= 0 ? n->weights + op->w_off : NULL;
        op->b = op->b_off >= 0 ? n->weights + op->b_off : NULL;
        const net_buf *in = op->in0 >= 0 ? &n->bufs[op->in0] : NULL;
        switch (op->kind) {
        case OP_CONV: {
            const int K = n->bufs[op->out].C;
            if (!conv2d_winograd_applies(op->geom))
                scratch = max_sz(scratch, conv2d_scratch_floats(in->C, in->H, in->W, op->geom));
            else {
                scratch = max_sz(scratch, conv2d_winograd_scratch_floats(in->C, K, in->H, in->W));
                wino += conv2d_winograd_weight_floats(in->C, K);
            }
            break;
        }
        case OP_ATTN: scratch = max_sz(scratch, attn_backward_scratch_floats(in->H * in->W)); break;
        case OP_FIR_UP:
        case OP_FIR_DOWN:
        case OP_FIR_BLUR: scratch = max_sz(scratch, fir_scratch_floats(in->H, in->W)); break;
        default: break;
        }
    }
    n->scratch_floats = scratch;
    if (plan_gradients(n)) return SC_ERR_NOMEM;
    /* the Winograd kernels, in op order */
    for (int i = 0; i < n->n_ops; i++) n->ops[i].wino = NULL;
    free(n->wino);
    n->wino = wino ? malloc(sizeof(float) * wino) : NULL;
    if (wino && !n->wino) return SC_ERR_NOMEM;
    float *u = n->wino;
    for (int i = 0; i < n->n_ops; i++) {
        net_op *op = &n->ops[i];
        op->wino = NULL;
        if (op->kind != OP_CONV || !conv2d_winograd_applies(op->geom)) continue;
        const int C = n->bufs[op->in0].C, K = n->bufs[op->out].C;
        conv2d_winograd_weights(u, op->w, K, C);
        op->wino = u;
        u += conv2d_winograd_weight_floats(C, K);
    }
    return 0;
}

void net_conv_forward(const net_op *op, float *out, const float *in, int N, int C, int H, int W, int K,
                      float *scratch)
{
    if (op->wino)
        conv2d_winograd_forward(out, in, op->wino, op->b, N, C, H, W, K, scratch);
    else
        conv2d_forward(out, in, op->w, op->b, N, C, H, W, K, op->geom, scratch);
}

void net_conv_backward_input(const net_op *op, float *din, const float *dout, int N, int C, int H, int W,
                             int K, float *scratch)
{
    if (op->wino)
        conv2d_winograd_backward_input(din, dout, op->wino, N, C, H, W, K, scratch);
    else
        conv2d_backward_input(din, dout, op->w, N, C, H, W, K, op->geom, scratch);
}

float *net_data(const net *n, const net_workspace *ws, int buf, int N)
{
    return ws->act + n->bufs[buf].offset * (size_t)N;
}

float *net_grad(const net *n, const net_workspace *ws, int buf, int N)
{
    return ws->grad + n->bufs[buf].offset * (size_t)N;
}

static size_t biggest_buffer(const net *n)
{
    size_t biggest = 0;
    for (int i = 0; i < n->n_bufs; i++) biggest = max_sz(biggest, buf_floats(&n->bufs[i]));
    return biggest;
}

size_t net_workspace_bytes(const net *n, int max_batch)
{
    const size_t B = (size_t)max_batch;
    return sizeof(float) * (2 * n->floats_per_sample * B + n->scratch_floats + 1 + 3 * biggest_buffer(n) * B);
}

void net_workspace_bind(net_workspace *ws, const net *n, int max_batch, void *block)
{
    const size_t B = (size_t)max_batch;
    ws->max_batch = max_batch;
    ws->act = block;
    ws->grad = ws->act + n->floats_per_sample * B;
    ws->scratch = ws->grad + n->floats_per_sample * B;
    ws->tmp = ws->scratch + n->scratch_floats + 1;
}

int net_workspace_init(net_workspace *ws, const net *n, int max_batch, sc_error *err)
{
    memset(ws, 0, sizeof *ws);
    size_t biggest = biggest_buffer(n);
    ws->max_batch = max_batch;
    ws->act = malloc(sizeof(float) * n->floats_per_sample * (size_t)max_batch);
    ws->grad = malloc(sizeof(float) * n->floats_per_sample * (size_t)max_batch);
    ws->scratch = malloc(sizeof(float) * (n->scratch_floats + 1));
    ws->tmp = malloc(sizeof(float) * 3 * biggest * (size_t)max_batch); /* attention: dq, dk, dv */
    if (!ws->act || !ws->grad || !ws->scratch || !ws->tmp) {
        net_workspace_free(ws);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory for a network workspace of batch %d (%zu floats per sample)",
                       max_batch, n->floats_per_sample);
    }
    return 0;
}

void net_workspace_free(net_workspace *ws)
{
    free(ws->act);
    free(ws->grad);
    free(ws->scratch);
    free(ws->tmp);
    memset(ws, 0, sizeof *ws);
}

#define D(id) net_data(n, ws, (id), N)
#define G(id) net_grad(n, ws, (id), N)

int net_fuses_groupnorm_silu(const net *n, int i)
{
    return i + 1 < n->n_ops && n->ops[i].kind == OP_GROUPNORM && n->ops[i + 1].kind == OP_SILU &&
           n->ops[i + 1].in0 == n->ops[i].out;
}

int net_forward_op(const net *n, net_workspace *ws, int N, int i)
{
    const net_op *op = &n->ops[i];
    const net_buf *a = op->in0 >= 0 ? &n->bufs[op->in0] : NULL, *o = &n->bufs[op->out];
    const int P = a ? a->H * a->W : 0;
    switch (op->kind) {
    case OP_CONV:
        net_conv_forward(op, D(op->out), D(op->in0), N, a->C, a->H, a->W, o->C, ws->scratch);
        break;
    case OP_NIN: nin_forward(D(op->out), D(op->in0), op->w, op->b, N, a->C, o->C, P); break;
    case OP_DENSE: dense_forward(D(op->out), D(op->in0), op->w, op->b, N, a->C, o->C); break;
    case OP_GROUPNORM: {
        float *stats = D(op->aux); /* (N, 2G): mean then rstd */
        const int fuse = net_fuses_groupnorm_silu(n, i);
        groupnorm_silu_forward(D(op->out), fuse ? D(n->ops[i + 1].out) : NULL, stats, stats + (size_t)N * op->groups,
                               D(op->in0), op->w, op->b, N, a->C, P, op->groups, 1e-6f);
        return 1 + fuse;
    }
    case OP_SILU: silu_forward(D(op->out), D(op->in0), (size_t)N * a->C * P); break;
    case OP_ADD: nn_add_scaled(D(op->out), D(op->in0), D(op->in1), op->scale, (size_t)N * a->C * P); break;
    case OP_BIAS:
        memcpy(D(op->out), D(op->in0), sizeof(float) * (size_t)N * a->C * P);
        nn_add_channel_bias(D(op->out), D(op->in1), N, a->C, P);
        break;
    case OP_ATTN: attn_forward(D(op->out), D(op->aux), D(op->in0), D(op->in1), D(op->in2), N, a->C, P); break;
    case OP_FIR_UP: fir_upsample2x_forward(D(op->out), D(op->in0), N, a->C, a->H, a->W, ws->scratch); break;
    case OP_FIR_DOWN: fir_downsample2x_forward(D(op->out), D(op->in0), N, a->C, a->H, a->W, ws->scratch); break;
    case OP_FIR_BLUR: fir_blur_pad2_forward(D(op->out), D(op->in0), N, a->C, a->H, a->W, ws->scratch); break;
    case OP_NEAREST_UP: nearest_upsample2x_forward(D(op->out), D(op->in0), N, a->C, a->H, a->W); break;
    case OP_AVGPOOL: avgpool2x2_forward(D(op->out), D(op->in0), N, a->C, a->H, a->W); break;
    case OP_CONCAT: nn_concat_channels(D(op->out), D(op->in0), D(op->in1), N, a->C, n->bufs[op->in1].C, P); break;
    case OP_AFFINE: {
        float *y = D(op->out);
        const float *x = D(op->in0);
        for (size_t k = 0; k < (size_t)N * a->C * P; k++) y[k] = x[k] * op->scale + op->shift;
        break;
    }
    case OP_DIV_SAMPLE: {
        float *y = D(op->out);
        const float *x = D(op->in0), *s = D(op->in1);
        const size_t per = (size_t)a->C * P;
        for (int b = 0; b < N; b++)
            for (size_t k = 0; k < per; k++) y[b * per + k] = x[b * per + k] / s[b];
        break;
    }
    case OP_EMBED_FOURIER: embed_gaussian_fourier(D(op->out), D(op->in0), op->w, N, n->bufs[op->out].C / 2); break;
    case OP_EMBED_POSITIONAL: embed_positional(D(op->out), D(op->in0), N, n->bufs[op->out].C); break;
    case OP_MEANPOOL: {
        float *y = D(op->out);
        const float *x = D(op->in0);
        for (size_t r = 0; r < (size_t)N * a->C; r++) {
            double acc = 0;
            for (int p = 0; p < P; p++) acc += x[r * P + p];
            y[r] = (float)(acc / P);
        }
        break;
    }
    default: SC_ASSERT(0);
    }
    return 1;
}

void net_forward(const net *n, net_workspace *ws, int N)
{
    SC_ASSERT(N >= 1 && N <= ws->max_batch);
    for (int i = 0; i < n->n_ops;) i += net_forward_op(n, ws, N, i);
}

/* ---- backward ---------------------------------------------------------------------------
 * Which inputs of op get a gradient from it (slot 0, 1, 2 = in0, in1, in2).  The one rule
 * net_finish plans with and net_backward_op follows. */
static int gives_grad(const net *n, const net_op *op, int slot)
{
    const int in[3] = {op->in0, op->in1, op->in2};
    if (in[slot] < 0 || !n->bufs[op->out].grad) return 0;
    const int any = n->bufs[op->in0].grad || (op->in1 >= 0 && n->bufs[op->in1].grad) ||
                    (op->in2 >= 0 && n->bufs[op->in2].grad);
    if (!any) return 0;
    switch (op->kind) {
    case OP_ATTN: return 1;                                     /* q, k, v: all from x      */
    case OP_ADD: case OP_CONCAT: return n->bufs[in[slot]].grad; /* each side that needs one */
    case OP_DENSE: case OP_BIAS: return slot == 0 && n->bufs[op->in0].grad;
    case OP_EMBED_FOURIER: case OP_EMBED_POSITIONAL: return 0;
    default: return slot == 0;                                  /* unary ops                */
    }
}

/* In backward order, the first op to give a buffer its gradient writes it (GRAD_WRITE), later
 * ones add to it (GRAD_ADD): no zeroing, no temporary + add for the first.  Buffers that need a
 * gradient but get none are zeroed by net_backward (grad_zero).  0, or SC_ERR_NOMEM. */
static int plan_gradients(net *n)
{
    unsigned char *given = calloc((size_t)n->n_bufs + 1, 1);
    if (!given) return SC_ERR_NOMEM;
    if (n->output >= 0) given[n->output] = 1;
    for (int i = n->n_ops - 1; i >= 0; i--) {
        net_op *op = &n->ops[i];
        const int in[3] = {op->in0, op->in1, op->in2};
        for (int slot = 0; slot < 3; slot++) {
            op->grad_mode[slot] = GRAD_NONE;
            if (!gives_grad(n, op, slot)) continue;
            op->grad_mode[slot] = given[in[slot]] ? GRAD_ADD : GRAD_WRITE;
            given[in[slot]] = 1;
        }
    }
    for (int b = 0; b < n->n_bufs; b++) n->bufs[b].grad_zero = n->bufs[b].grad && !given[b];
    free(given);
    return 0;
}

void net_backward_zero(const net *n, net_workspace *ws, int N)
{
    for (int i = 0; i < n->n_bufs; i++)
        if (n->bufs[i].grad_zero) memset(G(i), 0, sizeof(float) * buf_floats(&n->bufs[i]) * (size_t)N);
}

/* Where op's gradient for slot goes: straight into the buffer's gradient (GRAD_WRITE) or into
 * tmp, added by give() (GRAD_ADD). */
#define DST(slot, id, tmp_) (op->grad_mode[slot] == GRAD_WRITE ? G(id) : (tmp_))
static void give(const net *n, const net_workspace *ws, const net_op *op, int slot, int id, int N, const float *src,
                 size_t count)
{
    if (op->grad_mode[slot] == GRAD_ADD) nn_add(G(id), G(id), src, count);
}

void net_backward_op(const net *n, net_workspace *ws, int N, int i)
{
    const net_op *op = &n->ops[i];
    if (!op->grad_mode[0] && !op->grad_mode[1] && !op->grad_mode[2]) return;
    const net_buf *a = &n->bufs[op->in0], *o = &n->bufs[op->out];
    const int P = a->H * a->W;
    const size_t na = (size_t)N * buf_floats(a);
    const float *dout = G(op->out);
    float *tmp = ws->tmp, *d = DST(0, op->in0, tmp);
    switch (op->kind) {
    case OP_CONV: net_conv_backward_input(op, d, dout, N, a->C, a->H, a->W, o->C, ws->scratch); break;
    case OP_NIN: nin_backward_input(d, dout, op->w, N, a->C, o->C, P); break;
    case OP_DENSE: dense_backward_input(d, dout, op->w, N, a->C, o->C); break;
    case OP_GROUPNORM: {
        const float *stats = D(op->aux);
        groupnorm_backward_input(d, dout, D(op->in0), stats, stats + (size_t)N * op->groups, op->w, N, a->C, P,
                                 op->groups);
        break;
    }
    case OP_SILU: silu_backward(d, dout, D(op->in0), na); break;
    case OP_ADD:
        if (op->grad_mode[0]) {
            nn_scale(d, dout, op->scale, na);
            give(n, ws, op, 0, op->in0, N, d, na);
        }
        if (op->grad_mode[1]) {
            float *d1 = DST(1, op->in1, tmp);
            nn_scale(d1, dout, op->scale, na);
            give(n, ws, op, 1, op->in1, N, d1, na);
        }
        return;
    case OP_BIAS:
        if (op->grad_mode[0] == GRAD_WRITE)
            memcpy(d, dout, sizeof(float) * na);
        else
            give(n, ws, op, 0, op->in0, N, dout, na);
        return;
    case OP_ATTN: {
        /* dq, dk, dv each (N, C, P): tmp holds three buffers' worth */
        float *dk = DST(1, op->in1, tmp + na), *dv = DST(2, op->in2, tmp + 2 * na);
        attn_backward(d, dk, dv, dout, D(op->aux), D(op->in0), D(op->in1), D(op->in2), N, a->C, P, ws->scratch);
        give(n, ws, op, 0, op->in0, N, d, na);
        give(n, ws, op, 1, op->in1, N, dk, na);
        give(n, ws, op, 2, op->in2, N, dv, na);
        return;
    }
    case OP_FIR_UP: fir_upsample2x_backward(d, dout, N, a->C, a->H, a->W, ws->scratch); break;
    case OP_FIR_DOWN: fir_downsample2x_backward(d, dout, N, a->C, a->H, a->W, ws->scratch); break;
    case OP_FIR_BLUR: fir_blur_pad2_backward(d, dout, N, a->C, a->H, a->W, ws->scratch); break;
    case OP_NEAREST_UP: nearest_upsample2x_backward(d, dout, N, a->C, a->H, a->W); break;
    case OP_AVGPOOL: avgpool2x2_backward(d, dout, N, a->C, a->H, a->W); break;
    case OP_CONCAT: {
        const net_buf *b = &n->bufs[op->in1];
        const size_t nb = (size_t)N * buf_floats(b);
        float *d1 = DST(1, op->in1, tmp + na);
        nn_split_channels(d, d1, dout, N, a->C, b->C, P);
        if (op->grad_mode[0]) give(n, ws, op, 0, op->in0, N, d, na);
        if (op->grad_mode[1]) give(n, ws, op, 1, op->in1, N, d1, nb);
        return;
    }
    case OP_AFFINE: nn_scale(d, dout, op->scale, na); break;
    case OP_DIV_SAMPLE: {
        const float *s = D(op->in1);
        const size_t per = buf_floats(a);
        for (int b = 0; b < N; b++)
            for (size_t k = 0; k < per; k++) d[b * per + k] = dout[b * per + k] / s[b];
        break;
    }
    case OP_MEANPOOL:
        for (size_t r = 0; r < (size_t)N * a->C; r++)
            for (int p = 0; p < P; p++) d[r * P + p] = dout[r] / P;
        break;
    default: SC_ASSERT(0);
    }
    give(n, ws, op, 0, op->in0, N, d, na);
}
#undef DST

int net_backward(const net *n, net_workspace *ws, int N, sc_error *err)
{
    (void)err;
    net_backward_zero(n, ws, N);
    for (int i = n->n_ops - 1; i >= 0; i--) net_backward_op(n, ws, N, i);
    return 0;
}
