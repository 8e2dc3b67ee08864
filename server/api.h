/* POST bodies to jobs (api.c): validation at the boundary, tasks created up front. */
#ifndef SCORED_API_H
#define SCORED_API_H

#include <jansson.h>

#include "srv.h"

typedef struct api_request {
    srv *server;
    srv_model *sm;               /* the caller holds a reference for the call            */
    const sc_model *model;
    const char *content_type;    /* header value or NULL                                 */
    int accept_npy;              /* Accept: application/x-npy                            */
    int prefer_async;            /* Prefer: respond-async                                */
    const uint8_t *body;
    size_t len;
    size_t max_body;
    int max_items, max_steps;
    uint64_t random_seed;        /* used when the request gives no seed                  */
    const json_t *query;         /* query-string options (for raw .npy bodies), or NULL  */
} api_request;

/* On success *out is a new job (not yet submitted) that takes over the caller's model
 * reference; on failure nothing is allocated and the caller keeps its reference. */
int api_job_from_request(const api_request *r, job_kind kind, job **out, int *async, sc_error *err);

#endif
