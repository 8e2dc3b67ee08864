/* Counter-based random numbers (Philox4x32-10): a stream is keyed by (seed, sample index), and
 * each draw advances only that stream's counter, so a sample's noise never depends on which
 * other samples share its batch.  Not cryptographic. */
#ifndef SCORED_RNG_H
#define SCORED_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng_stream {
    uint64_t seed;     /* the request's seed                       */
    uint64_t index;    /* the sample's index within its request    */
    uint64_t counter;  /* number of 128-bit blocks drawn so far    */
} rng_stream;

void rng_init(rng_stream *r, uint64_t seed, uint64_t index);

/* Each call consumes whole blocks of four 32-bit words; leftovers are discarded, so the
 * values drawn depend only on the sequence of calls, never on buffering. */
void rng_normal(rng_stream *r, float *out, size_t n);          /* N(0,1), Box-Muller in double */
void rng_normal_f64(rng_stream *r, double *out, size_t n);
void rng_uniform(rng_stream *r, double *out, size_t n);        /* U[0,1), 53-bit resolution    */
void rng_rademacher(rng_stream *r, float *out, size_t n);      /* +1 or -1, probability 1/2    */

/* The raw generator: 4 words for (key, counter); exposed for the known-answer test. */
void rng_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

#endif
