/* The boundary with Python (as llm.c's checkpoint header): what the caller says the network is, checked
   before a single weight is read.  lenet1/engine/exact.py writes the same layout (Layout.header). */
#pragma once
#include "layers.h"

#define ENGINE_MAGIC 0x4c4e3101  /* "LN1" and a 1 */
#define ENGINE_VERSION 4
enum { FAILED_LAYOUT = 4 };

/* header: ENGINE_MAGIC, ENGINE_VERSION, loss (LOSS_*), trainable subsampling (0 or 1), the number P of H3
   kernels, then P H3 maps and P H2 maps (kernel k connects H2 map in[k] to H3 map out[k], ordered by out,
   then in, every H3 map with at least one input).  squash: amplitude, slope.  sizes: the number of floats
   of each weight slot, in the order W1 ... BO, which must be what this layout implies. */
static int describe(const int32_t *header, const float *squash, const int64_t *sizes, Arch *a) {
    if (header[0] != ENGINE_MAGIC || header[1] != ENGINE_VERSION) return FAILED_LAYOUT;
    int loss = header[2], trainable = header[3], pairs = header[4];
    if ((loss != LOSS_CROSS_ENTROPY && loss != LOSS_MSE) || (trainable != 0 && trainable != 1)) return FAILED_LAYOUT;
    if (pairs < 12 || pairs > MAX_PAIRS) return FAILED_LAYOUT;
    const int32_t *out = header + 5, *in = out + pairs;
    int previous_out = -1, previous_in = -1;
    for (int o = 0; o <= 12; o++) a->first[o] = pairs;
    for (int k = 0; k < pairs; k++) {
        if (out[k] < 0 || out[k] > 11 || in[k] < 0 || in[k] > 3) return FAILED_LAYOUT;
        if (out[k] < previous_out || (out[k] == previous_out && in[k] <= previous_in)) return FAILED_LAYOUT;
        if (out[k] > previous_out + 1) return FAILED_LAYOUT;  /* an H3 map without inputs */
        if (out[k] != previous_out) a->first[out[k]] = k;
        previous_out = out[k], previous_in = in[k];
        a->input[k] = in[k];
    }
    if (previous_out != 11) return FAILED_LAYOUT;
    const int expected[SLOTS] = {100, 4, trainable * 4, trainable * 4, pairs * 25, 12, trainable * 12,
                                 trainable * 12, 1920, 10};
    a->offset[0] = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (sizes[s] != expected[s]) return FAILED_LAYOUT;
        a->size[s] = expected[s];
        a->offset[s + 1] = a->offset[s] + expected[s];
    }
    a->loss = loss, a->trainable_subsampling = trainable;
    a->amplitude = squash[0], a->slope = squash[1];
    if (!(a->amplitude > 0.0f) || !(a->slope > 0.0f)) return FAILED_LAYOUT;
    a->dense = pairs == MAX_PAIRS;  /* 48 kernels, ascending, each map's inputs distinct: all four H2 maps each */
    a->unit = a->amplitude == 1.0f && a->slope == 1.0f;
    a->amplitude2 = a->amplitude * a->amplitude;
    a->slope_ratio = a->slope / a->amplitude;
    return 0;
}
