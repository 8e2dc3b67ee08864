/* Neural score models loaded from .safetensors (net_model.c). */
#ifndef SCORED_NET_MODEL_H
#define SCORED_NET_MODEL_H

#include "model.h"
#include "net.h"

/* A .safetensors file with "scored" metadata of kind "network" (written by
 * tools/convert_checkpoint.py or tools/train.py). */
int net_model_load(const char *path, sc_model **out, sc_error *err);

/* The model's network (for tests and benchmarks). */
const net *net_model_net(const sc_model *m);

/* A noise-conditional classifier (metadata kind "classifier") for class guidance. */
typedef struct net_classifier {
    net net;
    int num_classes;
    int D;
    char **labels;   /* (n_labels) owned: class names from the file's metadata, or NULL */
    int n_labels;    /* 0 or num_classes                                                */
} net_classifier;

int net_classifier_load(const char *path, net_classifier **out, sc_error *err);
void net_classifier_free(net_classifier *c);
size_t net_classifier_scratch_bytes(const net_classifier *c, int max_batch);
/* For N items: x (N, D) in data units, sigma (N) the SDE's marginal std at each item's t,
 * y (N) class indices -> logp (N) = log softmax(logits)[y] and grad (N, D) its gradient with
 * respect to x.  scratch from net_classifier_scratch_bytes(c, >= N). */
void net_classifier_log_prob_grad(const net_classifier *c, const float *x, const double *sigma, const int *y,
                                  int N, float *logp, float *grad, void *scratch);

#endif
