/* NCSN++ / DDPM++ and DDPM onto the tape, following spec §7.6-7.8 step by step.  Modules are
 * consumed in construction order, which is also their forward order, so the builder walks
 * the forward pass and numbers modules as it goes.  Not here: the tape's execution (net.c),
 * turning outputs into scores (net_model.c). */
#include "net_build.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct bld {
    net *n;
    const net_config *c;
    const net_weights_src *src;
    sc_error *err;
    int rc;
    int mod;        /* the next module index                                */
    int temb_act;   /* buffer: act(temb) (4nf) or -1 when not conditional   */
    int ddpm_model; /* name == "ddpm": GroupNorm 32, NIN shortcuts, no rescale */
} bld;

/* ---- config -------------------------------------------------------------------------------- */

static int get_int(const json_t *o, const char *k, int def, int *out, sc_error *err)
{
    const json_t *v = json_object_get(o, k);
    if (!v) {
        *out = def;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (!json_is_integer(v)) return sc_fail(err, SC_ERR_FORMAT, "architecture.%s must be an integer", k);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_list(const json_t *o, const char *k, int *out, int max, int *n, sc_error *err)
{
    const json_t *v = json_object_get(o, k);
    *n = 0;
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) > (size_t)max)
        return sc_fail(err, SC_ERR_FORMAT, "architecture.%s must be a list of at most %d integers", k, max);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) return sc_fail(err, SC_ERR_FORMAT, "architecture.%s[%zu] must be an integer", k, i);
        out[(*n)++] = (int)json_integer_value(e);
    }
    return 0;
}

static int get_choice(const json_t *o, const char *k, const char *const *names, int count, int def, int *out,
                      sc_error *err)
{
    const json_t *v = json_object_get(o, k);
    *out = def;
    if (!v) return 0;
    const char *s = json_string_value(v);
    for (int i = 0; s && i < count; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return sc_fail(err, SC_ERR_FORMAT, "architecture.%s: unsupported value %s%.40s%s", k, s ? "\"" : "", s ? s : "(not a string)",
                   s ? "\"" : "");
}

int net_config_from_json(net_config *c, const json_t *a, sc_error *err)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(a)) return sc_fail(err, SC_ERR_FORMAT, "architecture must be an object");
    const char *name = json_string_value(json_object_get(a, "name"));
    if (!name || (strcmp(name, "ncsnpp") != 0 && strcmp(name, "ddpm") != 0 && strcmp(name, "classifier") != 0))
        return sc_fail(err, SC_ERR_FORMAT, "architecture.name must be \"ncsnpp\", \"ddpm\" or \"classifier\"");
    snprintf(c->name, sizeof c->name, "%s", name);
    static const char *const resblock[] = {"ddpm", "biggan"};
    static const char *const prog[] = {"none", "output_skip", "input_skip", "residual"};
    static const char *const comb[] = {"sum", "cat"};
    static const char *const emb[] = {"positional", "fourier"};
    int p, pi, cc, e, rb, rc;
    const int is_ddpm = strcmp(name, "ddpm") == 0;
    if ((rc = get_int(a, "nf", 128, &c->nf, err)) || (rc = get_list(a, "ch_mult", c->ch_mult, NET_MAX_LEVELS, &c->levels, err)) ||
        (rc = get_int(a, "num_res_blocks", 2, &c->num_res_blocks, err)) ||
        (rc = get_list(a, "attn_resolutions", c->attn_res, NET_MAX_LEVELS, &c->n_attn, err)) ||
        (rc = get_int(a, "resamp_with_conv", 1, &c->resamp_with_conv, err)) || (rc = get_int(a, "fir", 0, &c->fir, err)) ||
        (rc = get_int(a, "skip_rescale", 0, &c->skip_rescale, err)) ||
        (rc = get_choice(a, "resblock_type", resblock, 2, 1, &rb, err)) ||
        (rc = get_choice(a, "progressive", prog, 4, 0, &p, err)) ||
        (rc = get_choice(a, "progressive_input", prog, 4, 0, &pi, err)) ||
        (rc = get_choice(a, "progressive_combine", comb, 2, 0, &cc, err)) ||
        (rc = get_choice(a, "embedding_type", emb, 2, 0, &e, err)) ||
        (rc = get_int(a, "conditional", 1, &c->conditional, err)) ||
        (rc = get_int(a, "scale_by_sigma", 0, &c->scale_by_sigma, err)) ||
        (rc = get_int(a, "centered", 1, &c->centered, err)) || (rc = get_int(a, "image_size", 32, &c->image_size, err)) ||
        (rc = get_int(a, "num_channels", 3, &c->channels, err)) || (rc = get_int(a, "num_scales", 1000, &c->num_scales, err)) ||
        (rc = get_int(a, "num_classes", 0, &c->num_classes, err)))
        return rc;
    c->biggan = rb;
    c->progressive = (net_progressive)p;
    c->progressive_input = (net_progressive)pi;
    c->combine_cat = cc;
    c->fourier = e;
    if (strcmp(name, "classifier") == 0) { /* tools/nets.py NoiseClassifier */
        c->fourier = 1;
        c->conditional = 1;
        c->biggan = 1;
        c->skip_rescale = 1;
        c->fir = 0;
        c->progressive = c->progressive_input = PROG_NONE;
        c->scale_by_sigma = 0;
        if (c->num_classes < 2 || c->num_classes > 100000)
            return sc_fail(err, SC_ERR_FORMAT, "a classifier needs num_classes >= 2");
    }
    if (is_ddpm) { /* the DDPM model has none of NCSN++'s options (§7.8) */
        c->fourier = 0;
        c->progressive = c->progressive_input = PROG_NONE;
        c->biggan = 0;
        c->fir = 0;
        c->skip_rescale = 0;
    }
    if (c->progressive == PROG_INPUT_SKIP || c->progressive_input == PROG_OUTPUT_SKIP)
        return sc_fail(err, SC_ERR_FORMAT, "progressive takes none/output_skip/residual and progressive_input none/input_skip/residual");
    if (c->levels < 1) return sc_fail(err, SC_ERR_FORMAT, "architecture.ch_mult must not be empty");
    if (c->nf < 4 || c->nf > 4096 || c->num_res_blocks < 1 || c->num_res_blocks > 64 || c->channels < 1 ||
        c->channels > 4 || c->image_size < 1 || c->image_size > 4096)
        return sc_fail(err, SC_ERR_FORMAT, "architecture: nf, num_res_blocks, num_channels or image_size out of range");
    if (c->image_size % (1 << (c->levels - 1)) != 0)
        return sc_fail(err, SC_ERR_FORMAT, "image_size %d must be divisible by 2^(levels-1) = %d", c->image_size,
                       1 << (c->levels - 1));
    if ((c->progressive == PROG_RESIDUAL || (!c->biggan && c->resamp_with_conv && !is_ddpm)) && c->fir)
        return sc_fail(err, SC_ERR_UNSUPPORTED,
                       "this configuration (progressive \"residual\", or resblock_type \"ddpm\" with resamp_with_conv, "
                       "together with fir) needs the fused FIR up-convolution, which the reference implementation "
                       "cannot run (spec §7.3); use fir false");
    return 0;
}

/* ---- building blocks ------------------------------------------------------------------------- */

static int failed(bld *b) { return b->rc != 0; }

static int buffer(bld *b, int C, int H, int W, int grad)
{
    if (failed(b)) return -1;
    int id = net_buffer(b->n, C, H, W, grad);
    if (id < 0) b->rc = sc_fail(b->err, SC_ERR_NOMEM, "out of memory building the network");
    return id;
}

static void add_op(bld *b, net_op op)
{
    if (failed(b)) return;
    if (net_op_add(b->n, op)) b->rc = sc_fail(b->err, SC_ERR_NOMEM, "out of memory building the network");
}

static net_op mk(net_op_kind kind, int in0, int out)
{
    return (net_op){.kind = kind, .in0 = in0, .in1 = -1, .in2 = -1, .out = out, .aux = -1, .w_off = -1, .b_off = -1,
                    .scale = 1.0f};
}

/* Loads module.param with the given shape into weight storage; returns its offset. */
static long weight(bld *b, int module, const char *param, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    if (failed(b)) return -1;
    const int64_t shape[4] = {s0, s1, s2, s3};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    long off = net_weights_reserve(b->n, count);
    if (off < 0) {
        b->rc = sc_fail(b->err, SC_ERR_NOMEM, "out of memory for weights");
        return -1;
    }
    char name[128];
    snprintf(name, sizeof name, "all_modules.%d.%s", module, param);
    b->rc = b->src->fetch(b->src->ctx, name, ndim, shape, b->n->weights + off, b->err);
    return b->rc ? -1 : off;
}

static const net_buf *buf(bld *b, int id) { return &b->n->bufs[id]; }

static int groups_for(bld *b, int C) { return b->ddpm_model ? 32 : (C / 4 < 32 ? C / 4 : 32); }

/* conv with weight module.<prefix>.weight [K, C, kh, kw] and .bias [K] */
static int conv(bld *b, int in, int K, conv2d_geom g, int module, const char *prefix)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s%sweight", prefix, *prefix ? "." : "");
    snprintf(bn, sizeof bn, "%s%sbias", prefix, *prefix ? "." : "");
    net_op op = mk(OP_CONV, in, -1);
    op.geom = g;
    op.w_off = weight(b, module, wn, 4, K, a->C, g.kh, g.kw);
    op.b_off = weight(b, module, bn, 1, K, 0, 0, 0);
    op.out = buffer(b, K, conv2d_out_h(g, a->H), conv2d_out_w(g, a->W), a->grad);
    add_op(b, op);
    return op.out;
}

static int groupnorm(bld *b, int in, int module, const char *prefix)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    const int G = groups_for(b, a->C);
    if (G < 1 || a->C % G) {
        b->rc = sc_fail(b->err, SC_ERR_FORMAT, "GroupNorm of %d channels in %d groups is impossible", a->C, G);
        return -1;
    }
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s%sweight", prefix, *prefix ? "." : "");
    snprintf(bn, sizeof bn, "%s%sbias", prefix, *prefix ? "." : "");
    net_op op = mk(OP_GROUPNORM, in, -1);
    op.groups = G;
    op.w_off = weight(b, module, wn, 1, a->C, 0, 0, 0);
    op.b_off = weight(b, module, bn, 1, a->C, 0, 0, 0);
    op.aux = buffer(b, 2 * G, 1, 1, 0);
    op.out = buffer(b, a->C, a->H, a->W, a->grad);
    add_op(b, op);
    return op.out;
}

static int unary(bld *b, net_op_kind kind, int in, int C, int H, int W)
{
    if (failed(b)) return -1;
    net_op op = mk(kind, in, buffer(b, C, H, W, buf(b, in)->grad));
    add_op(b, op);
    return op.out;
}

static int silu(bld *b, int in)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    return unary(b, OP_SILU, in, a->C, a->H, a->W);
}

static int add2(bld *b, int x, int y, float scale)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, x);
    net_op op = mk(OP_ADD, x, buffer(b, a->C, a->H, a->W, a->grad || buf(b, y)->grad));
    op.in1 = y;
    op.scale = scale;
    add_op(b, op);
    return op.out;
}

static float rescale(bld *b) { return b->c->skip_rescale ? (float)(1.0 / sqrt(2.0)) : 1.0f; }

static int up(bld *b, int in)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    return unary(b, b->c->fir ? OP_FIR_UP : OP_NEAREST_UP, in, a->C, 2 * a->H, 2 * a->W);
}

static int down(bld *b, int in)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    return unary(b, b->c->fir ? OP_FIR_DOWN : OP_AVGPOOL, in, a->C, a->H / 2, a->W / 2);
}

static int concat(bld *b, int x, int y)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, x), *c = buf(b, y);
    net_op op = mk(OP_CONCAT, x, buffer(b, a->C + c->C, a->H, a->W, a->grad || c->grad));
    op.in1 = y;
    add_op(b, op);
    return op.out;
}

/* per-position linear NIN_k: W [C, O], b [O] */
static int nin(bld *b, int in, int O, int module, const char *prefix)
{
    if (failed(b)) return -1;
    const net_buf *a = buf(b, in);
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.W", prefix);
    snprintf(bn, sizeof bn, "%s.b", prefix);
    net_op op = mk(OP_NIN, in, -1);
    op.w_off = weight(b, module, wn, 2, a->C, O, 0, 0);
    op.b_off = weight(b, module, bn, 1, O, 0, 0, 0);
    op.out = buffer(b, O, a->H, a->W, a->grad);
    add_op(b, op);
    return op.out;
}

/* ResnetBlockBigGANpp / ResnetBlockDDPMpp / ResnetBlockDDPM (§7.3). */
static int resblock(bld *b, int x, int out_ch, int do_up, int do_down)
{
    if (failed(b)) return -1;
    const int m = b->mod++;
    const int in_ch = buf(b, x)->C;
    int h = silu(b, groupnorm(b, x, m, "GroupNorm_0"));
    if (do_up) {
        h = up(b, h);
        x = up(b, x);
    }
    if (do_down) {
        h = down(b, h);
        x = down(b, x);
    }
    h = conv(b, h, out_ch, CONV2D_3X3, m, "Conv_0");
    if (b->temb_act >= 0 && !failed(b)) {
        net_op d = mk(OP_DENSE, b->temb_act, -1);
        d.w_off = weight(b, m, "Dense_0.weight", 2, out_ch, buf(b, b->temb_act)->C, 0, 0);
        d.b_off = weight(b, m, "Dense_0.bias", 1, out_ch, 0, 0, 0);
        d.out = buffer(b, out_ch, 1, 1, 0);
        add_op(b, d);
        const net_buf *hb = buf(b, h);
        net_op bias = mk(OP_BIAS, h, buffer(b, out_ch, hb->H, hb->W, hb->grad));
        bias.in1 = d.out;
        add_op(b, bias);
        h = bias.out;
    }
    h = conv(b, silu(b, groupnorm(b, h, m, "GroupNorm_1")), out_ch, CONV2D_3X3, m, "Conv_1");
    if (in_ch != out_ch || do_up || do_down) {
        if (b->c->biggan) x = conv(b, x, out_ch, CONV2D_1X1, m, "Conv_2");
        else x = nin(b, x, out_ch, m, "NIN_0");
    }
    return add2(b, x, h, b->ddpm_model ? 1.0f : rescale(b));
}

/* AttnBlockpp / AttnBlock (§7.3). */
static int attention(bld *b, int x)
{
    if (failed(b)) return -1;
    const int m = b->mod++;
    const net_buf *a = buf(b, x);
    const int C = a->C, P = a->H * a->W;
    int h = groupnorm(b, x, m, "GroupNorm_0");
    int q = nin(b, h, C, m, "NIN_0"), k = nin(b, h, C, m, "NIN_1"), v = nin(b, h, C, m, "NIN_2");
    if (failed(b)) return -1;
    net_op op = mk(OP_ATTN, q, buffer(b, C, a->H, a->W, a->grad));
    op.in1 = k;
    op.in2 = v;
    op.aux = buffer(b, P, P, 1, 0);
    add_op(b, op);
    h = nin(b, op.out, C, m, "NIN_3");
    return add2(b, x, h, b->ddpm_model ? 1.0f : rescale(b));
}

/* layerspp.Downsample / layers.Downsample as a module (§7.3). */
static int downsample_module(bld *b, int x, int out_ch, int with_conv)
{
    if (failed(b)) return -1;
    const int m = b->mod++;
    if (!with_conv) return down(b, x);
    if (b->c->fir) {
        const net_buf *a = buf(b, x);
        int bl = unary(b, OP_FIR_BLUR, x, a->C, a->H + 1, a->W + 1);
        return conv(b, bl, out_ch, CONV2D_3X3_DOWN_VALID, m, "Conv2d_0");
    }
    return conv(b, x, out_ch, CONV2D_3X3_DOWN_PAD_BR, m, "Conv_0");
}

/* layerspp.Upsample / layers.Upsample as a module (fir + conv refused at config time). */
static int upsample_module(bld *b, int x, int out_ch, int with_conv)
{
    if (failed(b)) return -1;
    const int m = b->mod++;
    int h = up(b, x);
    if (with_conv) h = conv(b, h, out_ch, CONV2D_3X3, m, "Conv_0");
    return h;
}

static int has_attn(bld *b, int res)
{
    for (int i = 0; i < b->c->n_attn; i++)
        if (b->c->attn_res[i] == res) return 1;
    return 0;
}

/* ---- the networks ---------------------------------------------------------------------------- */

/* Embedding and temb MLP (§7.4); sets b->temb_act. */
static void time_embedding(bld *b)
{
    net *n = b->n;
    const net_config *c = b->c;
    n->time_input = buffer(b, 1, 1, 1, 0);
    int e;
    if (c->fourier) {
        const int m = b->mod++;
        net_op op = mk(OP_EMBED_FOURIER, n->time_input, buffer(b, 2 * c->nf, 1, 1, 0));
        op.w_off = weight(b, m, "W", 1, c->nf, 0, 0, 0);
        add_op(b, op);
        e = op.out;
    } else {
        net_op op = mk(OP_EMBED_POSITIONAL, n->time_input, buffer(b, c->nf, 1, 1, 0));
        add_op(b, op);
        e = op.out;
    }
    b->temb_act = -1;
    if (!c->conditional) return;
    int t = e;
    for (int k = 0; k < 2; k++) {
        const int m = b->mod++;
        net_op d = mk(OP_DENSE, t, -1);
        d.w_off = weight(b, m, "weight", 2, 4 * c->nf, k == 0 ? buf(b, e)->C : 4 * c->nf, 0, 0);
        d.b_off = weight(b, m, "bias", 1, 4 * c->nf, 0, 0, 0);
        d.out = buffer(b, 4 * c->nf, 1, 1, 0);
        add_op(b, d);
        t = k == 0 ? silu(b, d.out) : d.out;
    }
    b->temb_act = silu(b, t); /* every resblock applies act(temb) before its Dense_0 */
}

static int build_unet(bld *b)
{
    net *n = b->n;
    const net_config *c = b->c;
    const int L = c->levels, S = c->image_size;
    n->input = buffer(b, c->channels, S, S, 1);
    time_embedding(b);
    int x = n->input;
    if (!c->centered) { /* the network maps [0,1] data to [-1,1] itself (§2.3) */
        net_op op = mk(OP_AFFINE, x, buffer(b, c->channels, S, S, 1));
        op.scale = 2.0f;
        op.shift = -1.0f;
        add_op(b, op);
        x = op.out;
    }
    int pyr = x;
    int hs[4 * NET_MAX_LEVELS * 64 + 8], nh = 0;
    hs[nh++] = conv(b, x, c->nf, CONV2D_3X3, b->mod++, "");
    int in_ch = c->nf;
    for (int l = 0; l < L && !failed(b); l++) {
        const int C = c->nf * c->ch_mult[l];
        for (int r = 0; r < c->num_res_blocks; r++) {
            int h = resblock(b, hs[nh - 1], C, 0, 0);
            if (!failed(b) && has_attn(b, buf(b, h)->W)) h = attention(b, h);
            hs[nh++] = h;
            in_ch = C;
        }
        if (l == L - 1) continue;
        int h = c->biggan ? resblock(b, hs[nh - 1], in_ch, 0, 1) : downsample_module(b, hs[nh - 1], in_ch, c->resamp_with_conv);
        if (c->progressive_input == PROG_INPUT_SKIP) {
            pyr = down(b, pyr); /* pyramid_downsample: FIR (or average) without conv */
            const int m = b->mod++;
            int proj = conv(b, pyr, in_ch, CONV2D_1X1, m, "Conv_0"); /* Combine */
            h = c->combine_cat ? concat(b, proj, h) : add2(b, proj, h, 1.0f);
            if (c->combine_cat) in_ch *= 2;
        } else if (c->progressive_input == PROG_RESIDUAL) {
            pyr = downsample_module(b, pyr, in_ch, 1);
            pyr = add2(b, pyr, h, rescale(b));
            h = pyr;
        }
        hs[nh++] = h;
    }
    int h = resblock(b, hs[nh - 1], in_ch, 0, 0);
    h = attention(b, h);
    h = resblock(b, h, in_ch, 0, 0);
    int pyramid = -1;
    for (int l = L - 1; l >= 0 && !failed(b); l--) {
        const int C = c->nf * c->ch_mult[l];
        for (int r = 0; r < c->num_res_blocks + 1; r++) h = resblock(b, concat(b, h, hs[--nh]), C, 0, 0);
        if (!failed(b) && has_attn(b, buf(b, h)->W)) h = attention(b, h);
        if (c->progressive != PROG_NONE) {
            if (l == L - 1 || c->progressive == PROG_OUTPUT_SKIP) {
                const int mg = b->mod++;
                int g = silu(b, groupnorm(b, h, mg, ""));
                const int mc = b->mod++;
                int out_c = c->progressive == PROG_OUTPUT_SKIP ? c->channels : C;
                int p = conv(b, g, out_c, CONV2D_3X3, mc, "");
                if (c->progressive == PROG_OUTPUT_SKIP && pyramid >= 0) pyramid = add2(b, up(b, pyramid), p, 1.0f);
                else pyramid = p;
            } else { /* residual, l < L-1 */
                pyramid = upsample_module(b, pyramid, C, 1);
                pyramid = add2(b, pyramid, h, rescale(b));
                h = pyramid;
            }
        }
        if (l > 0) h = c->biggan ? resblock(b, h, C, 1, 0) : upsample_module(b, h, C, c->resamp_with_conv);
    }
    if (nh != 0 && !failed(b)) b->rc = sc_fail(b->err, SC_ERR_FORMAT, "internal: %d skip connections left", nh);
    int out;
    if (c->progressive == PROG_OUTPUT_SKIP) {
        out = pyramid;
    } else {
        const int mg = b->mod++;
        int g = silu(b, groupnorm(b, h, mg, ""));
        out = conv(b, g, c->channels, CONV2D_3X3, b->mod++, "");
    }
    if (c->scale_by_sigma && !failed(b)) {
        n->aux_input = buffer(b, 1, 1, 1, 0);
        net_op op = mk(OP_DIV_SAMPLE, out, -1);
        op.in1 = n->aux_input;
        const net_buf *ob = buf(b, out);
        op.out = buffer(b, ob->C, ob->H, ob->W, 1);
        add_op(b, op);
        out = op.out;
    }
    n->output = out;
    return b->rc;
}

/* The noise-conditional classifier of tools/nets.py (NoiseClassifier): resblocks per level
 * with 2x2 mean pooling between levels, then GroupNorm, SiLU, the spatial mean and a Dense
 * head giving the logits. */
static int build_classifier(bld *b)
{
    net *n = b->n;
    const net_config *c = b->c;
    const int S = c->image_size;
    n->input = buffer(b, c->channels, S, S, 1);
    time_embedding(b);
    int h = n->input;
    if (!c->centered) {
        net_op op = mk(OP_AFFINE, h, buffer(b, c->channels, S, S, 1));
        op.scale = 2.0f;
        op.shift = -1.0f;
        add_op(b, op);
        h = op.out;
    }
    h = conv(b, h, c->nf, CONV2D_3X3, b->mod++, "");
    for (int l = 0; l < c->levels && !failed(b); l++) {
        for (int r = 0; r < c->num_res_blocks; r++) h = resblock(b, h, c->nf * c->ch_mult[l], 0, 0);
        if (l < c->levels - 1) {
            const net_buf *a = buf(b, h);
            h = unary(b, OP_AVGPOOL, h, a->C, a->H / 2, a->W / 2);
        }
    }
    const int mg = b->mod++;
    h = silu(b, groupnorm(b, h, mg, ""));
    if (failed(b)) return b->rc;
    const int C = buf(b, h)->C;
    int g = unary(b, OP_MEANPOOL, h, C, 1, 1);
    const int m = b->mod++;
    net_op d = mk(OP_DENSE, g, -1);
    d.w_off = weight(b, m, "weight", 2, c->num_classes, C, 0, 0);
    d.b_off = weight(b, m, "bias", 1, c->num_classes, 0, 0, 0);
    d.out = buffer(b, c->num_classes, 1, 1, 1);
    add_op(b, d);
    n->output = d.out;
    return b->rc;
}

int net_build(net *n, const net_config *c, const net_weights_src *src, sc_error *err)
{
    bld b = {.n = n, .c = c, .src = src, .err = err, .temb_act = -1, .ddpm_model = strcmp(c->name, "ddpm") == 0};
    int rc = strcmp(c->name, "classifier") == 0 ? build_classifier(&b) : build_unet(&b);
    if (rc) return rc;
    if (net_finish(n)) return sc_fail(err, SC_ERR_NOMEM, "out of memory for the network's Winograd kernels");
    return 0;
}

size_t net_param_count(const net *n) { return n->n_weights; }
