/* LeNet-1's layers on a group of LANES images: one named forward and backward per layer.

   The network is the one lenet1/model.py describes as data (its Architecture): H1, 4 maps 24x24 from
   5x5 kernels on the 28x28 input; H2, 4 maps 12x12, each a 2x2 average; H3, 12 maps 8x8 from 5x5 kernels
   on the H2 maps its connection table names; H4, 12 maps 4x4, 2x2 averages; 10 outputs, fully connected.
   The subsampling layers are either plain averages or squash(coefficient * average + bias), the paper's
   units; squash(a) = amplitude * tanh(slope * a).  layout.h checks the layout before anything runs. */
#pragma once
#include "lanes.h"
#define MAX_PAIRS 48  /* H3 kernels: at most 12 maps x 4 inputs */
enum { W1, B1, C2, D2, W3, B3, C4, D4, WO, BO, SLOTS };  /* the weights' order, model.py's state_dict's */
enum { LOSS_CROSS_ENTROPY = 0, LOSS_MSE = 1 };

typedef struct {
    float amplitude, slope;         /* squash(a) = amplitude tanh(slope a) */
    float amplitude2, slope_ratio;  /* its derivative from its value s: slope_ratio (amplitude2 - s^2) */
    int trainable_subsampling;      /* C2, D2, C4, D4 exist: H2 and H4 are squash(c average + d) */
    int dense, unit;                /* H3 reads all four H2 maps; amplitude and slope are 1 (network.h) */
    int loss;                       /* LOSS_CROSS_ENTROPY or LOSS_MSE */
    int first[13];                  /* H3 map o's kernels are first[o] .. first[o + 1] - 1 of W3 */
    int input[MAX_PAIRS];           /* the H2 map each kernel reads, ascending within an H3 map */
    int size[SLOTS], offset[SLOTS + 1];  /* floats per weight slot and its place in a gradient row */
} Arch;

typedef struct { float *slot[SLOTS]; } Weights;

/* One group's activations and gradients, each value a Lane (one float per image). */
typedef struct {
    Lane in[28 * 28], h1[4 * 24 * 24], a2[4 * 12 * 12], h2[4 * 12 * 12], h3[12 * 8 * 8], a4[192], h4[192], z[10];
    Lane d3[12 * 8 * 8], dh2[4 * 12 * 12], d1[4 * 24 * 24], dh4[192], dz[10];
    Lane *grad;  /* where backward writes every weight's gradient: the job's lanes for this group (engine.c) */
    double loss[LANES];
} Group;

/* `unit`: amplitude and slope are 1, and x * 1 is x, so both forms give the same bits (network.h says why). */
INLINE void squash_each(const Arch *a, int unit, Lane *v, int count) {
    if (!unit)
        for (int t = 0; t < count; t++) v[t] = a->slope * v[t];
    tanh_each(v, count);
    if (!unit)
        for (int t = 0; t < count; t++) v[t] = a->amplitude * v[t];
}
INLINE Lane squash(const Arch *a, int unit, Lane x) {
    squash_each(a, unit, &x, 1);
    return x;
}
INLINE Lane squash_slope(const Arch *a, int unit, Lane s) {
    return unit ? 1.0f - s * s : a->slope_ratio * (a->amplitude2 - s * s);
}

/* `count` images (28x28 each) into lanes, LANES pixels of each at a time; unused lanes are 0. */
_Static_assert(28 * 28 % LANES == 0, "whole blocks of LANES pixels");
INLINE void load_images(Group *g, const float *const *images, int count) {
    const float *from[LANES];
    static const float none[28 * 28];  /* a missing image's pixels */
    for (int l = 0; l < LANES; l++) from[l] = l < count ? images[l] : none;
    for (int p = 0; p < 28 * 28; p += LANES) {
        Lane pixels[LANES];
        for (int l = 0; l < LANES; l++) pixels[l] = *(const Unaligned *)(from[l] + p);
        transpose(pixels, g->in + p);
    }
}

_Static_assert(TANH_AT_ONCE >= 8, "the layers squash 8 vectors at a time (tanh_each)");

/* out[y][x] = squash(sum over the listed input maps c, then i, j, of w[c][i][j] in[c][y+i][x+j], then + bias). */
INLINE void convolution_forward(const Arch *a, int unit, const Lane *in, const int *inputs, int n_inputs, int in_size,
                                const float *w, float bias, Lane *out, int size) {
    for (int y = 0; y < size; y++)
        for (int x0 = 0; x0 < size; x0 += 8) {  /* 8 outputs at a time (size is 24 or 8): independent sums,
                                                    so the CPU need not wait for one add before the next */
            Lane acc[8] = {{0}};
            for (int c = 0; c < n_inputs; c++)
                for (int i = 0; i < 5; i++) {
                    const Lane *row = in + (inputs[c] * in_size + y + i) * in_size + x0;
                    for (int j = 0; j < 5; j++) {
                        float wv = w[(c * 5 + i) * 5 + j];
                        for (int k = 0; k < 8; k++) acc[k] = acc[k] + wv * row[j + k];
                    }
                }
            for (int k = 0; k < 8; k++) acc[k] = acc[k] + bias;
            squash_each(a, unit, acc, 8);
            for (int k = 0; k < 8; k++) out[y * size + x0 + k] = acc[k];
        }
}

/* A map's 2x2 averages ((a + b) + (c + d)) * 0.25 into avg; trainable: out = squash(coefficient avg + bias). */
INLINE void subsampling_forward(const Arch *a, int trainable, int unit, const Lane *in, int size, float coefficient,
                                float bias, Lane *avg, Lane *out) {
    int half = size / 2;
    for (int y = 0; y < half; y++)
        for (int x = 0; x < half; x++) {
            const Lane *p = in + 2 * y * size + 2 * x, *q = p + size;
            avg[y * half + x] = ((p[0] + p[1]) + (q[0] + q[1])) * 0.25f;
        }
    for (int u = 0; u < half * half; u += 8) {  /* half * half is 144 or 16 */
        Lane s[8];
        for (int k = 0; k < 8; k++) s[k] = trainable ? avg[u + k] * coefficient + bias : avg[u + k];
        if (trainable) squash_each(a, unit, s, 8);
        for (int k = 0; k < 8; k++) out[u + k] = s[k];
    }
}

/* The slope of squash as the backward pass multiplies by it: squash'(a), or squash'(a)^2 in the curvature pass
   (`second`, network.h explains it), from the unit's state s = squash(a). */
INLINE Lane backward_slope(const Arch *a, int unit, int second, Lane s) {
    Lane slope = squash_slope(a, unit, s);
    return second ? slope * slope : slope;
}

/* Trainable subsampling, backward: from d(out) (in place) to d(avg), with the coefficient's and bias's gradients. */
INLINE void subsampling_backward(const Arch *a, int unit, int second, Lane *d, const Lane *out, const Lane *avg,
                                 int units, float coefficient, Lane *d_coefficient, Lane *d_bias) {
    Lane dc = {0}, db = {0};
    for (int u = 0; u < units; u++) {
        Lane pre = d[u] * backward_slope(a, unit, second, out[u]);
        dc = dc + pre * avg[u];
        db = db + pre;
        d[u] = pre * coefficient;
    }
    *d_coefficient = dc;
    *d_bias = db;
}

/* d(loss)/d(pre-activation) of a squashed unit h read by a 2x2 average: upstream * 0.25 * squash'(h);
   second: upstream * 0.25^2 * squash'(h)^2. */
INLINE void unpool_squash(const Arch *a, int unit, int second, const Lane *up, const Lane *h, int size, Lane *d) {
    const float share = second ? 0.0625f : 0.25f;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            d[y * size + x] = (up[(y / 2) * (size / 2) + x / 2] * share) * backward_slope(a, unit, second, h[y * size + x]);
}

/* The kernels' gradients of `maps` (1 or 2) consecutive output maps that read the same input maps: dw[m][c][i][j] =
   sum over y, x of d[m][y][x] in[input c][y+i][x+j], dw[m] n_inputs * 25 floats after dw[m - 1]; db[m] = sum of
   d[m].  Two maps at a time use each input load twice and keep ten independent sums, where one map's five
   waited on each other's adds (the same bits: every sum keeps its order). */
INLINE void convolution_weight_backward(const Lane *d, int maps, int size, const Lane *in, const int *inputs,
                                        int n_inputs, int in_size, Lane *dw, Lane *db) {
    for (int c = 0; c < n_inputs; c++)
        for (int i = 0; i < 5; i++) {
            Lane acc[2][5] = {{{0}}};
            for (int y = 0; y < size; y++) {
                const Lane *row = in + (inputs[c] * in_size + y + i) * in_size;
                for (int x = 0; x < size; x++) {
                    Lane input[5];
                    for (int j = 0; j < 5; j++) input[j] = row[x + j];
                    for (int m = 0; m < maps; m++) {
                        Lane delta = d[(m * size + y) * size + x];
                        for (int j = 0; j < 5; j++) acc[m][j] = acc[m][j] + delta * input[j];
                    }
                }
            }
            for (int m = 0; m < maps; m++)
                for (int j = 0; j < 5; j++) dw[m * n_inputs * 25 + (c * 5 + i) * 5 + j] = acc[m][j];
        }
    for (int m = 0; m < maps; m++) {
        Lane acc = {0};
        for (int q = 0; q < size * size; q++) acc = acc + d[m * size * size + q];
        db[m] = acc;
    }
}

/* H3's input gradient: each H3 unit's delta spread back through its kernels.  Each H2 unit's sum runs over the
   H3 units in the order o, y, x; an H3 row is spread onto an H2 row at a time, the row held in registers. */
INLINE void h3_input_backward(const Arch *a, int dense, const float *w3, const Lane *d3, Lane *dh2) {
    memset(dh2, 0, sizeof(Lane) * 4 * 144);
    for (int o = 0; o < 12; o++)
        for (int k = dense ? o * 4 : a->first[o]; k < (dense ? o * 4 + 4 : a->first[o + 1]); k++)
            for (int y = 0; y < 8; y++)
                for (int i = 0; i < 5; i++) {
                    Lane *to = dh2 + ((dense ? k - o * 4 : a->input[k]) * 12 + y + i) * 12, row[12];
                    const Lane *d = d3 + o * 64 + y * 8;
                    const float *w = w3 + (k * 5 + i) * 5;
                    for (int x = 0; x < 12; x++) row[x] = to[x];
                    for (int x = 0; x < 8; x++)
                        for (int j = 0; j < 5; j++) row[x + j] = row[x + j] + w[j] * d[x];
                    for (int x = 0; x < 12; x++) to[x] = row[x];
                }
}

/* z[k] = sum over f of wo[k][f] h4[f], then + bo[k]. */
INLINE void output_forward(const float *wo, const float *bo, const Lane *h4, Lane *z) {
    Lane acc[10] = {{0}};
    for (int f = 0; f < 192; f++)
        for (int k = 0; k < 10; k++) acc[k] = acc[k] + wo[k * 192 + f] * h4[f];
    for (int k = 0; k < 10; k++) z[k] = acc[k] + bo[k];
}

/* The output layer's gradients (dwo = dz h4, dbo = dz) and d(h4)[f] = sum over k of wo[k][f] dz[k]. */
INLINE void output_backward(const float *wo, const Lane *dz, const Lane *h4, Lane *dwo, Lane *dbo, Lane *dh4) {
    for (int k = 0; k < 10; k++) {
        dbo[k] = dz[k];
        for (int f = 0; f < 192; f++) dwo[k * 192 + f] = dz[k] * h4[f];
    }
    for (int f0 = 0; f0 < 192; f0 += 8) {
        Lane acc[8] = {{0}};
        for (int k = 0; k < 10; k++)
            for (int f = 0; f < 8; f++) acc[f] = acc[f] + wo[k * 192 + f0 + f] * dz[k];
        for (int f = 0; f < 8; f++) dh4[f0 + f] = acc[f];
    }
}
