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

#endif
