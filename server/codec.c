/* Base64 encode and strict decode (RFC 4648 standard alphabet) with the data-URL prefix and
 * whitespace the HTTP API tolerates.  Decoding validates everything in a first pass, so the
 * output is allocated once at its exact size after the max_out check. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const uint8_t *data, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;   /* 4*ceil(n/3)+1 would overflow */
    size_t out_n = (n + 2) / 3 * 4;
    char *out = malloc(out_n + 1);
    if (!out) return NULL;
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

/* The 6-bit value of an alphabet character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int b64_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Length of a leading "data:<mime>;base64," (after optional whitespace), 0 when s does not
 * start with "data:", or a negative code when it does but is not a base64 data URL. */
static long b64_data_prefix(const char *s, size_t len, sc_error *err)
{
    size_t i = 0;
    while (i < len && b64_is_space((unsigned char)s[i])) i++;
    if (len - i < 5 || strncasecmp(s + i, "data:", 5) != 0) return 0;
    size_t comma = i + 5;
    while (comma < len && s[comma] != ',') comma++;
    if (comma == len)
        return sc_fail(err, SC_ERR_FORMAT, "base64: data URL at offset %zu has no ','", i);
    static const char tag[] = ";base64";
    size_t tag_n = sizeof tag - 1;
    if (comma - (i + 5) < tag_n || strncasecmp(s + comma - tag_n, tag, tag_n) != 0)
        return sc_fail(err, SC_ERR_FORMAT,
                       "base64: data URL at offset %zu is not ';base64'-encoded", i);
    return (long)(comma + 1);
}

int b64_decode(const char *s, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
               sc_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (!s && len) return sc_fail(err, SC_ERR_FORMAT, "base64: no input");

    long pre = b64_data_prefix(s, len, err);
    if (pre < 0) return (int)pre;
    size_t start = (size_t)pre;

    /* Pass 1: count data characters and padding, refuse everything else. */
    size_t n_data = 0, n_pad = 0, first_pad = 0;
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (b64_is_space(c)) continue;
        if (c == '=') {
            if (n_pad == 0) first_pad = i;
            n_pad++;
            continue;
        }
        if (b64_value(c) < 0) {
            if (c >= 0x21 && c <= 0x7e)
                return sc_fail(err, SC_ERR_FORMAT,
                               "base64: invalid character '%c' at offset %zu", c, i);
            return sc_fail(err, SC_ERR_FORMAT,
                           "base64: invalid byte 0x%02x at offset %zu", c, i);
        }
        if (n_pad)
            return sc_fail(err, SC_ERR_FORMAT,
                           "base64: data after padding '=' at offset %zu", i);
        n_data++;
    }
    size_t rem = n_data % 4;
    if (n_pad) {
        /* "xx==" or "xxx=" only. */
        if (n_pad > 2 || (n_data + n_pad) % 4 != 0 || rem + n_pad != 4)
            return sc_fail(err, SC_ERR_FORMAT,
                           "base64: wrong padding at offset %zu (%zu '=' after %zu characters)",
                           first_pad, n_pad, n_data);
    } else if (rem == 1) {
        return sc_fail(err, SC_ERR_FORMAT,
                       "base64: truncated input, %zu characters is not a valid length",
                       n_data);
    }

    size_t n = n_data / 4 * 3 + (rem ? rem - 1 : 0);
    if (n > max_out)
        return sc_fail(err, SC_ERR_TOO_LARGE,
                       "base64: decoded data is %zu bytes, more than the limit of %zu", n,
                       max_out);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return sc_fail(err, SC_ERR_NOMEM, "base64: out of memory (%zu bytes)", n);

    /* Pass 2: everything is valid now; decode 4 characters to 3 bytes. */
    uint32_t acc = 0;
    int k = 0;
    size_t o = 0;
    for (size_t i = start; i < len && o < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) continue;   /* whitespace; padding only comes after the last data */
        acc = acc << 6 | (uint32_t)v;
        if (++k == 4) {
            buf[o++] = (uint8_t)(acc >> 16);
            buf[o++] = (uint8_t)(acc >> 8);
            buf[o++] = (uint8_t)acc;
            acc = 0;
            k = 0;
        }
    }
    if (k == 2) {
        buf[o++] = (uint8_t)(acc >> 4);
    } else if (k == 3) {
        buf[o++] = (uint8_t)(acc >> 10);
        buf[o++] = (uint8_t)(acc >> 2);
    }
    SC_ASSERT(o == n);
    *out = buf;
    *out_len = n;
    return SC_OK;
}
