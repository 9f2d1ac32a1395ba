/* The whole network on a group: forward, the two losses and backward, from the layers in layers.h. */
enum { LOSS_CROSS_ENTROPY = 0, LOSS_MSE = 1 };

static const int H1_INPUT[1] = {0};

INLINE void forward(const Arch *a, const Weights *p, Group *g) {
    float *const *w = p->slot;
    int trainable = a->trainable_subsampling;
    for (int m = 0; m < 4; m++)
        convolution_forward(a, g->in, H1_INPUT, 1, 28, w[W1] + m * 25, w[B1][m], g->h1 + m * 576, 24);
    for (int m = 0; m < 4; m++)
        subsampling_forward(a, g->h1 + m * 576, 24, trainable ? w[C2][m] : 1.0f, trainable ? w[D2][m] : 0.0f,
                            g->a2 + m * 144, g->h2 + m * 144);
    for (int o = 0; o < 12; o++)
        convolution_forward(a, g->h2, a->input + a->first[o], a->first[o + 1] - a->first[o], 12,
                            w[W3] + a->first[o] * 25, w[B3][o], g->h3 + o * 64, 8);
    for (int o = 0; o < 12; o++)
        subsampling_forward(a, g->h3 + o * 64, 8, trainable ? w[C4][o] : 1.0f, trainable ? w[D4][o] : 0.0f,
                            g->a4 + o * 16, g->h4 + o * 16);
    output_forward(w[WO], w[BO], g->h4, g->z);
}

/* Cross-entropy per image, and dz = (softmax - onehot) / batch, the softmax in float64. */
INLINE void cross_entropy(Group *g, const int *labels, int count, double inv_batch) {
    Lane top = g->z[0];
    for (int k = 1; k < 10; k++) top = select_lane(g->z[k] > top, g->z[k], top);
    Wide wide_top = __builtin_convertvector(top, Wide), e[10], sum = {0};
    for (int k = 0; k < 10; k++) {
        e[k] = exp_nonpositive(__builtin_convertvector(g->z[k], Wide) - wide_top);
        sum = sum + e[k];
    }
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
        s[k] = squash(a, g->z[k]);
        slope[k] = squash_slope(a, s[k]);
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

/* Every weight's gradient for each image of the group, in g->grad at the offsets of a->offset. */
INLINE void backward(const Arch *a, const Weights *p, Group *g) {
    float *const *w = p->slot;
    Lane *grad = g->grad;
    const int *at = a->offset;
    output_backward(w[WO], g->dz, g->h4, grad + at[WO], grad + at[BO], g->dh4);
    if (a->trainable_subsampling)
        for (int o = 0; o < 12; o++)
            subsampling_backward(a, g->dh4 + o * 16, g->h4 + o * 16, g->a4 + o * 16, 16, w[C4][o],
                                 grad + at[C4] + o, grad + at[D4] + o);
    for (int o = 0; o < 12; o++) unpool_squash(a, g->dh4 + o * 16, g->h3 + o * 64, 8, g->d3 + o * 64);
    for (int o = 0; o < 12; o++)
        convolution_weight_backward(g->d3 + o * 64, 8, g->h2, a->input + a->first[o], a->first[o + 1] - a->first[o],
                                    12, grad + at[W3] + a->first[o] * 25, grad + at[B3] + o);
    h3_input_backward(a, w[W3], g->d3, g->dh2);
    if (a->trainable_subsampling)
        for (int m = 0; m < 4; m++)
            subsampling_backward(a, g->dh2 + m * 144, g->h2 + m * 144, g->a2 + m * 144, 144, w[C2][m],
                                 grad + at[C2] + m, grad + at[D2] + m);
    for (int m = 0; m < 4; m++) unpool_squash(a, g->dh2 + m * 144, g->h1 + m * 576, 24, g->d1 + m * 576);
    for (int m = 0; m < 4; m++)
        convolution_weight_backward(g->d1 + m * 576, 24, g->in, H1_INPUT, 1, 28, grad + at[W1] + m * 25, grad + at[B1] + m);
}
