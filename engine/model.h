/* A score model: immutable after load, shared read-only by every thread, plus the score
 * query that samplers emit and evaluators answer (DESIGN.md, Engine).  This header knows
 * nothing of any concrete kind; gmm.c (analytic mixtures) and later the networks plug in
 * through sc_model_ops. */
#ifndef SCORED_MODEL_H
#define SCORED_MODEL_H

#include <stddef.h>

#include "err.h"
#include "sde.h"

/* One score evaluation.  Items in one batch are independent: an evaluator must give each
 * item the same bits whatever its batch-mates are. */
typedef struct score_query {
    const float *x;       /* (D) borrowed: where the score is needed                   */
    double t;             /* time in (0, 1]                                            */
    int label;            /* class index for guidance, or -1                           */
    float guidance;       /* weight w on grad_x log p(label | x, t); ignored if label<0 */
    const float *probe;   /* (D) or NULL: v, for vjp = v^T d(score)/dx                 */
    float *score;         /* (D) written by the evaluator                              */
    float *vjp;           /* (D) written by the evaluator when probe != NULL           */
} score_query;

typedef struct sc_model sc_model;

typedef struct sc_model_ops {
    const char *kind;                                           /* "gmm", ...          */
    /* Bytes of scratch one eval call needs for up to max_batch items. */
    size_t (*scratch_bytes)(const sc_model *m, int max_batch);
    /* Answers q[0..n-1]; n <= the max_batch the scratch was sized for. */
    int (*eval)(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err);
    void (*destroy)(void *impl);
} sc_model_ops;

#define MODEL_MAX_LABELS 1024

struct sc_model {
    char *name;            /* owned                                                   */
    char *path;            /* owned: the file it was loaded from                      */
    int ndim;              /* 1 (vector data) or 3 (C, H, W images)                   */
    int shape[3];
    int D;                 /* product of shape                                        */
    sde sde;               /* the SDE it was trained for                              */
    int centered;          /* images: data in [-1,1] (1) or [0,1] (0)                 */
    int n_labels;          /* 0 when the model has no classes                         */
    char **labels;         /* (n_labels) owned                                        */
    int guidable;          /* 1 when label + guidance are meaningful                  */
    int n_classes;         /* classes a guidance label may name (0 if not guidable)   */
    char *card_json;       /* owned JSON object text (model card), "{}" if none       */
    const sc_model_ops *ops;
    void *impl;            /* owned by ops->destroy                                   */
};

/* Loads by content: a JSON file with "kind": "gmm" (more kinds come with the networks). */
int sc_model_load(const char *path, sc_model **out, sc_error *err);
void sc_model_free(sc_model *m);

/* The model files of a directory: *.json and *.safetensors, sorted by name, without the
 * classifier files (they guide a score model, named in its metadata).  *names (and each
 * name, a file name without the directory) are malloc'd. */
int sc_model_dir_list(const char *dir, char ***names, int *count, sc_error *err);
void sc_model_dir_free(char **names, int count);

/* Scratch for ops->eval; caller-owned, reused across calls. */
void *sc_model_scratch_alloc(const sc_model *m, int max_batch);

/* Image models: data units <-> [0,1] (the reference's scaler and inverse scaler). */
int sc_model_is_image(const sc_model *m);
float sc_model_from_unit(const sc_model *m, float u);
float sc_model_to_unit(const sc_model *m, float x);

/* The shape as text, e.g. "[1, 28, 28]"; buf of at least 48 bytes. */
void sc_model_shape_str(const sc_model *m, char *buf, size_t len);

#endif
