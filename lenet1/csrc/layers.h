/* LeNet-1 'full' on a group of LANES images: the forward pass, the cross-entropy and the backward pass. */
#define N_W1 100   /* H1: 4 maps x 5x5 */
#define N_B1 4
#define N_W3 1200  /* H3: 12 maps x 4 inputs x 5x5 */
#define N_B3 12
#define N_WO 1920  /* output: 10 x 192 */
#define N_BO 10
#define N_PARAMS (N_W1 + N_B1 + N_W3 + N_B3 + N_WO + N_BO)

/* One group's activations and gradients, each value a Lane (one float per image). */
typedef struct {
    Lane in[28 * 28], h1[4 * 24 * 24], p1[4 * 12 * 12], h3[12 * 8 * 8], p3[192], z[10];
    Lane d3[12 * 8 * 8], dp1[4 * 12 * 12], d1[4 * 24 * 24], dz[10], grad[N_PARAMS];
    double loss[LANES];
} Group;

/* `count` images (28x28 each) into lanes; unused lanes are 0. */
INLINE void load_images(Group *g, const float *const *images, int count) {
    memset(g->in, 0, sizeof g->in);
    for (int l = 0; l < count; l++)
        for (int p = 0; p < 28 * 28; p++) g->in[p][l] = images[l][p];
}

/* out[y][x] = tanh(sum over c, i, j of w[c][i][j] in[c][y+i][x+j], then + bias). */
INLINE void convolve_tanh(const Lane *in, int in_maps, int in_size, const float *w, float bias, Lane *out, int size) {
    for (int y = 0; y < size; y++)
        for (int x0 = 0; x0 < size; x0 += 8) {  /* 8 outputs at a time (size is 24 or 8): independent sums,
                                                    so the CPU need not wait for one add before the next */
            Lane acc[8] = {{0}};
            for (int c = 0; c < in_maps; c++)
                for (int i = 0; i < 5; i++) {
                    const Lane *row = in + (c * in_size + y + i) * in_size + x0;
                    for (int j = 0; j < 5; j++) {
                        float wv = w[(c * 5 + i) * 5 + j];
                        for (int k = 0; k < 8; k++) acc[k] = acc[k] + wv * row[j + k];
                    }
                }
            for (int k = 0; k < 8; k++) out[y * size + x0 + k] = tanh_lanes(acc[k] + bias);
        }
}

/* 2x2 average: ((a + b) + (c + d)) * 0.25. */
INLINE void pool(const Lane *in, int size, Lane *out) {
    int half = size / 2;
    for (int y = 0; y < half; y++)
        for (int x = 0; x < half; x++) {
            const Lane *a = in + 2 * y * size + 2 * x, *c = a + size;
            out[y * half + x] = ((a[0] + a[1]) + (c[0] + c[1])) * 0.25f;
        }
}

typedef struct { float *w1, *b1, *w3, *b3, *wo, *bo; } Params;

INLINE void forward(const Params *p, Group *g) {
    for (int m = 0; m < 4; m++) convolve_tanh(g->in, 1, 28, p->w1 + m * 25, p->b1[m], g->h1 + m * 576, 24);
    for (int m = 0; m < 4; m++) pool(g->h1 + m * 576, 24, g->p1 + m * 144);
    for (int o = 0; o < 12; o++) convolve_tanh(g->p1, 4, 12, p->w3 + o * 100, p->b3[o], g->h3 + o * 64, 8);
    for (int o = 0; o < 12; o++) pool(g->h3 + o * 64, 8, g->p3 + o * 16);
    Lane acc[10] = {{0}};
    for (int f = 0; f < 192; f++)
        for (int k = 0; k < 10; k++) acc[k] = acc[k] + p->wo[k * 192 + f] * g->p3[f];
    for (int k = 0; k < 10; k++) g->z[k] = acc[k] + p->bo[k];
}

/* Cross-entropy per image, and dz = (softmax - onehot) / batch, the softmax in float64.  Lanes past
   `count` (a last group's empty places) get dz = 0, so they add nothing, and their losses are never read.
   Returns 1 if a label is not 0-9. */
static int loss_and_dz(Group *g, const int64_t *labels, int count, double inv_batch) {
    int bad = 0;
    Lane top = g->z[0];
    for (int k = 1; k < 10; k++) top = select_lane(g->z[k] > top, g->z[k], top);
    Wide wide_top = __builtin_convertvector(top, Wide), e[10], sum = {0};
    for (int k = 0; k < 10; k++) {
        e[k] = exp_nonpositive(__builtin_convertvector(g->z[k], Wide) - wide_top);
        sum = sum + e[k];
    }
    for (int l = 0; l < LANES; l++) {
        int label = l < count && labels[l] >= 0 && labels[l] <= 9 ? (int)labels[l] : 0;
        bad |= l < count && label != labels[l];
        g->loss[l] = log_at_least_one(sum[l]) - ((double)g->z[label][l] - wide_top[l]);
        for (int k = 0; k < 10; k++)
            g->dz[k][l] = l < count ? (float)((e[k][l] / sum[l] - (k == label ? 1.0 : 0.0)) * inv_batch) : 0.0f;
    }
    return bad;
}

/* d(loss)/d(a) for a tanh unit h = tanh(a) read by a 2x2 average: upstream * 0.25 * (1 - h^2). */
INLINE void unpool_tanh(const Lane *up, const Lane *h, int size, Lane *d) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            Lane hv = h[y * size + x];
            d[y * size + x] = (up[(y / 2) * (size / 2) + x / 2] * 0.25f) * (1.0f - hv * hv);
        }
}

/* A kernel's gradient: dw[c][i][j] = sum over y, x of d[y][x] in[c][y+i][x+j]; db = sum of d. */
INLINE void kernel_gradient(const Lane *d, int size, const Lane *in, int in_maps, int in_size, Lane *dw, Lane *db) {
    for (int c = 0; c < in_maps; c++)
        for (int i = 0; i < 5; i++) {
            Lane acc[5] = {{0}};  /* a row of the kernel at a time: five independent sums */
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    const Lane *row = in + (c * in_size + y + i) * in_size + x;
                    for (int j = 0; j < 5; j++) acc[j] = acc[j] + d[y * size + x] * row[j];
                }
            for (int j = 0; j < 5; j++) dw[(c * 5 + i) * 5 + j] = acc[j];
        }
    Lane acc = {0};
    for (int q = 0; q < size * size; q++) acc = acc + d[q];
    *db = acc;
}

/* Every parameter's gradient for each image of the group, in g->grad in the order of N_PARAMS. */
INLINE void backward(const Params *p, Group *g) {
    Lane *gw1 = g->grad, *gb1 = gw1 + N_W1, *gw3 = gb1 + N_B1, *gb3 = gw3 + N_W3, *gwo = gb3 + N_B3, *gbo = gwo + N_WO;
    Lane dp3[192];
    for (int k = 0; k < 10; k++) {
        gbo[k] = g->dz[k];
        for (int f = 0; f < 192; f++) gwo[k * 192 + f] = g->dz[k] * g->p3[f];
    }
    for (int f0 = 0; f0 < 192; f0 += 8) {
        Lane acc[8] = {{0}};
        for (int k = 0; k < 10; k++)
            for (int f = 0; f < 8; f++) acc[f] = acc[f] + p->wo[k * 192 + f0 + f] * g->dz[k];
        for (int f = 0; f < 8; f++) dp3[f0 + f] = acc[f];
    }
    for (int o = 0; o < 12; o++) unpool_tanh(dp3 + o * 16, g->h3 + o * 64, 8, g->d3 + o * 64);
    for (int o = 0; o < 12; o++) kernel_gradient(g->d3 + o * 64, 8, g->p1, 4, 12, gw3 + o * 100, gb3 + o);
    /* H2's gradient: each H3 unit's delta spread back through its kernel, in the order o, y, x, c, i, j. */
    memset(g->dp1, 0, sizeof g->dp1);
    for (int o = 0; o < 12; o++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) {
                Lane d = g->d3[o * 64 + y * 8 + x];
                for (int c = 0; c < 4; c++)
                    for (int i = 0; i < 5; i++)
                        for (int j = 0; j < 5; j++) {
                            Lane *dst = g->dp1 + (c * 12 + y + i) * 12 + x + j;
                            *dst = *dst + p->w3[((o * 4 + c) * 5 + i) * 5 + j] * d;
                        }
            }
    for (int m = 0; m < 4; m++) unpool_tanh(g->dp1 + m * 144, g->h1 + m * 576, 24, g->d1 + m * 576);
    for (int m = 0; m < 4; m++) kernel_gradient(g->d1 + m * 576, 24, g->in, 1, 28, gw1 + m * 25, gb1 + m);
}

