/* The whole network on a group: forward, the two losses and backward, from the layers in layers.h.

   forward_as and backward_as take three facts of the architecture as arguments (dense: H3 reads all four H2
   maps; trainable: trainable subsampling; unit: squash = tanh) so that forward and backward can call them with
   constants for the two published variants: the compiler then unrolls the H3 loops as for fixed sizes.  Every
   copy does the same operations in the same order (x * 1 is x), so the choice never changes a bit. */
#pragma once
#include "layers.h"

static const int H1_INPUT[1] = {0}, ALL_H2[4] = {0, 1, 2, 3};

/* H3 map o's inputs, their count and its first kernel. */
#define H3_INPUTS(a, dense, o) (dense ? ALL_H2 : (a)->input + (a)->first[o]), \
                               (dense ? 4 : (a)->first[(o) + 1] - (a)->first[o])
#define H3_FIRST(a, dense, o) (dense ? (o) * 4 : (a)->first[o])

INLINE void forward_as(const Arch *a, const Weights *p, Group *g, int dense, int trainable, int unit) {
    float *const *w = p->slot;
    for (int m = 0; m < 4; m++)
        convolution_forward(a, unit, g->in, H1_INPUT, 1, 28, w[W1] + m * 25, w[B1][m], g->h1 + m * 576, 24);
    for (int m = 0; m < 4; m++)
        subsampling_forward(a, trainable, unit, g->h1 + m * 576, 24, trainable ? w[C2][m] : 1.0f,
                            trainable ? w[D2][m] : 0.0f, g->a2 + m * 144, g->h2 + m * 144);
    for (int o = 0; o < 12; o++)
        convolution_forward(a, unit, g->h2, H3_INPUTS(a, dense, o), 12, w[W3] + H3_FIRST(a, dense, o) * 25, w[B3][o],
                            g->h3 + o * 64, 8);
    for (int o = 0; o < 12; o++)
        subsampling_forward(a, trainable, unit, g->h3 + o * 64, 8, trainable ? w[C4][o] : 1.0f,
                            trainable ? w[D4][o] : 0.0f, g->a4 + o * 16, g->h4 + o * 16);
    output_forward(w[WO], w[BO], g->h4, g->z);
}

/* The softmax's terms in float64: e[k] = exp(z_k - top), top the largest output; returns their sum. */
INLINE Wide exponentials(const Group *g, Wide e[10], Wide *wide_top) {
    Lane top = g->z[0];
    for (int k = 1; k < 10; k++) top = select_lane(g->z[k] > top, g->z[k], top);
    Wide sum = {0};
    *wide_top = __builtin_convertvector(top, Wide);
    for (int k = 0; k < 10; k++) {
        e[k] = exp_nonpositive(__builtin_convertvector(g->z[k], Wide) - *wide_top);
        sum = sum + e[k];
    }
    return sum;
}

/* Cross-entropy per image, and dz = (softmax - onehot) / batch, the softmax in float64. */
INLINE void cross_entropy(Group *g, const int *labels, int count, double inv_batch) {
    Wide e[10], wide_top, sum = exponentials(g, e, &wide_top);
    for (int l = 0; l < LANES; l++) {
        g->loss[l] = log_at_least_one(sum[l]) - ((double)g->z[labels[l]][l] - wide_top[l]);
        for (int k = 0; k < 10; k++)
            g->dz[k][l] = l < count ? (float)((e[k][l] / sum[l] - (k == labels[l] ? 1.0 : 0.0)) * inv_batch) : 0.0f;
    }
}

/* The paper's loss per image: the mean over the 10 outputs of (squash(z) - target)^2, targets +1 for the
   label and -1 otherwise, in float64; dz = 2 (s - target) squash'(z) / (10 batch). */
INLINE void mean_squared_error(const Arch *a, Group *g, const int *labels, int count, double inv_batch) {
    Lane s[10], slope[10];
    for (int k = 0; k < 10; k++) {
        s[k] = squash(a, 0, g->z[k]);
        slope[k] = squash_slope(a, 0, s[k]);
    }
    for (int l = 0; l < LANES; l++) {
        double sum = 0.0;
        for (int k = 0; k < 10; k++) {
            double error = (double)s[k][l] - (k == labels[l] ? 1.0 : -1.0);
            sum = sum + error * error;
            g->dz[k][l] = l < count ? (float)(((2.0 * error) * (double)slope[k][l]) * (inv_batch / 10.0)) : 0.0f;
        }
        g->loss[l] = sum / 10.0;
    }
}

/* Lanes past `count` (a last group's empty places) get dz = 0, so they add nothing; their losses are never read. */
INLINE void loss(const Arch *a, Group *g, const int *labels, int count, double inv_batch) {
    if (a->loss == LOSS_MSE) mean_squared_error(a, g, labels, count, inv_batch);
    else cross_entropy(g, labels, count, inv_batch);
}

/* What the weight gradients multiply by: the input and the H2 and H4 averages and states (h2 and h4 also set the
   slopes of trainable subsampling, read from the group).  The curvature pass gives their squares. */
typedef struct { const Lane *in, *a2, *h2, *a4, *h4; } Sources;

INLINE Sources own_sources(const Group *g) { return (Sources){g->in, g->a2, g->h2, g->a4, g->h4}; }

/* Every weight's gradient for each image of the group, in g->grad at the offsets of a->offset, from g->dz.

   second: the curvature pass of stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C) instead,
   from g->dz = d2E/dz^2: the same backward pass with every weight, multiplicand (x: the sources), slope and
   averaging factor squared, which is the Gauss-Newton rule d2E/da_k^2 = f'(a_k)^2 sum_i w_ik^2 d2E/da_i^2 and
   d2E/dw^2 = sum over the connections w has of d2E/da_i^2 x_j^2.  The caller gives the squared weights in p. */
INLINE void backward_as(const Arch *a, const Weights *p, Group *g, Sources x, int dense, int trainable, int unit,
                        int second) {
    float *const *w = p->slot;
    Lane *grad = g->grad;
    const int *at = a->offset;
    output_backward(w[WO], g->dz, x.h4, grad + at[WO], grad + at[BO], g->dh4);
    if (trainable)
        for (int o = 0; o < 12; o++)
            subsampling_backward(a, unit, second, g->dh4 + o * 16, g->h4 + o * 16, x.a4 + o * 16, 16, w[C4][o],
                                 grad + at[C4] + o, grad + at[D4] + o);
    for (int o = 0; o < 12; o++)
        unpool_squash(a, unit, second, g->dh4 + o * 16, g->h3 + o * 64, 8, g->d3 + o * 64);
    for (int o = 0; o < 12; o += dense ? 2 : 1)  /* dense: two H3 maps at a time, which read the same H2 maps */
        convolution_weight_backward(g->d3 + o * 64, dense ? 2 : 1, 8, x.h2, H3_INPUTS(a, dense, o), 12,
                                    grad + at[W3] + H3_FIRST(a, dense, o) * 25, grad + at[B3] + o);
    h3_input_backward(a, dense, w[W3], g->d3, g->dh2);
    if (trainable)
        for (int m = 0; m < 4; m++)
            subsampling_backward(a, unit, second, g->dh2 + m * 144, g->h2 + m * 144, x.a2 + m * 144, 144, w[C2][m],
                                 grad + at[C2] + m, grad + at[D2] + m);
    for (int m = 0; m < 4; m++)
        unpool_squash(a, unit, second, g->dh2 + m * 144, g->h1 + m * 576, 24, g->d1 + m * 576);
    for (int m = 0; m < 4; m += 2)
        convolution_weight_backward(g->d1 + m * 576, 2, 24, x.in, H1_INPUT, 1, 28, grad + at[W1] + m * 25,
                                    grad + at[B1] + m);
}

/* 'full' (dense, plain averages, tanh) and 'paper' (Table 1, trainable subsampling, scaled tanh) with constants;
   any other architecture with the same code reading its facts at run time. */
INLINE void forward(const Arch *a, const Weights *p, Group *g) {
    if (a->dense && !a->trainable_subsampling && a->unit) forward_as(a, p, g, 1, 0, 1);
    else if (!a->dense && a->trainable_subsampling && !a->unit) forward_as(a, p, g, 0, 1, 0);
    else forward_as(a, p, g, a->dense, a->trainable_subsampling, a->unit);
}

INLINE void backward(const Arch *a, const Weights *p, Group *g) {
    Sources x = own_sources(g);
    if (a->dense && !a->trainable_subsampling && a->unit) backward_as(a, p, g, x, 1, 0, 1, 0);
    else if (!a->dense && a->trainable_subsampling && !a->unit) backward_as(a, p, g, x, 0, 1, 0, 0);
    else backward_as(a, p, g, x, a->dense, a->trainable_subsampling, a->unit, 0);
}

/* The curvature pass (backward_as says what it is) on a forward group: d2E/dz^2 of the per-pattern loss, the
   Gauss-Newton approximation (f'' dropped): the paper's E = sum over outputs of (squash(z) - target)^2 gives
   2 squash'(z)^2; cross-entropy, p_k (1 - p_k) with p = softmax(z), the diagonal of its Hessian.  Then every
   source squared into `squares` and the backward pass run with the squared weights `squared`.  Not specialised
   per variant: it runs on a few hundred digits per epoch. */
INLINE void curvature(const Arch *a, const Weights *squared, Group *g, Lane *squares) {
    if (a->loss == LOSS_MSE)
        for (int k = 0; k < 10; k++) {
            Lane slope = squash_slope(a, 0, squash(a, 0, g->z[k]));
            g->dz[k] = (slope * slope) * 2.0f;
        }
    else {
        Wide e[10], top, sum = exponentials(g, e, &top);
        for (int k = 0; k < 10; k++) {
            Wide p = e[k] / sum;
            g->dz[k] = __builtin_convertvector(p * (1.0 - p), Lane);
        }
    }
    const Lane *from[5] = {g->in, g->a2, g->h2, g->a4, g->h4};
    const int sizes[5] = {28 * 28, 4 * 144, 4 * 144, 192, 192};
    Lane *to[5];
    for (int s = 0, at = 0; s < 5; at += sizes[s], s++) {
        to[s] = squares + at;
        for (int q = 0; q < sizes[s]; q++) to[s][q] = from[s][q] * from[s][q];
    }
    Sources x = {to[0], to[1], to[2], to[3], to[4]};
    backward_as(a, squared, g, x, a->dense, a->trainable_subsampling, a->unit, 1);
}
enum { SQUARES = 28 * 28 + 4 * 144 + 4 * 144 + 192 + 192 };  /* the lanes curvature() squares into */
