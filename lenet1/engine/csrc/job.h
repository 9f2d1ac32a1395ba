/* A job: what one engine call asks of its threads (the images, the weights, where the results go), and a thread's
   share of it, its groups.  The crew (threads.h) runs a job's groups, then for a training step its update
   (update.h); both read the Job, so it lives here, between the network and the threads. */
#pragma once
#include "network.h"

enum { FAILED_RESOURCES = 1, FAILED_LABEL = 2, STOPPED = 8 };  /* bits of the return value (FAILED_LAYOUT: layout.h) */
enum { STATE_FLOATS = 4 * 576 + 4 * 144 + 12 * 64 + 192 };  /* H1, H2, H3, H4 per image */

INLINE void fail(int *failed, int why) { __atomic_or_fetch(failed, why, __ATOMIC_RELAXED); }

typedef struct {
    const Arch *arch;
    Weights weights;
    const float *x;          /* images, 28x28 each */
    const int64_t *labels;   /* one per image of x, or 0: no loss */
    const int64_t *order;    /* the batch's images are x[order[0]], x[order[1]], ...; 0: x[0], x[1], ... */
    Weights squared;         /* curvature: every weight squared */
    int n, groups, train, curvature;  /* train: each image's gradient; curvature: its d2E/dw^2 instead */
    int updating;            /* the crew's second task of a training step: update() on the weights (update.h) */
    float lr, weight_decay;  /* the update's */
    const float *rates;
    int failed;  /* FAILED_*, set with __atomic_or_fetch: several threads may write it */
    float *logits, *states;  /* states: n x STATE_FLOATS */
    Lane *grads;  /* each image's gradient (or curvature) as backward leaves it in lanes: arch->offset[SLOTS] Lanes
                     per group, group after group (lane l of group G is image G * LANES + l).  update() adds them
                     from there. */
    double *losses;
} Job;

/* Room for the gradient lanes of `images` images (Job.grads), and LANES zeros after them that image_sums may read
   past the last row's end (update.h), or 0. */
static Lane *gradient_lanes(int images, int row_floats) {
    size_t lanes = (size_t)row_floats * (size_t)((images + LANES - 1) / LANES);
    Lane *grads = aligned_alloc(64, (sizeof(Lane) * (lanes + LANES) + 63) / 64 * 64);
    if (grads) memset(grads + lanes, 0, sizeof(Lane) * LANES);
    return grads;
}

static void copy_states(const Group *g, int lane, float *out) {
    const Lane *layers[4] = {g->h1, g->h2, g->h3, g->h4};
    const int sizes[4] = {4 * 576, 4 * 144, 12 * 64, 192};
    for (int s = 0; s < 4; out += sizes[s], s++)
        for (int q = 0; q < sizes[s]; q++) out[q] = layers[s][q][lane];
}

/* Groups first, first + stride, ...: the outputs, the losses if labelled, each image's gradient if training
   (or its curvature), computed in the thread's own group g. */
CLONES static void run_groups(Job *job, int first, int stride, Group *g) {
    Lane *squares = job->curvature ? aligned_alloc(64, (sizeof(Lane) * SQUARES + 63) / 64 * 64) : 0;
    if (job->curvature && squares == 0) { fail(&job->failed, FAILED_RESOURCES); return; }
    int row_floats = job->arch->offset[SLOTS];
    for (int group = first; group < job->groups; group += stride) {
        int start = group * LANES, count = job->n - start < LANES ? job->n - start : LANES;
        const float *images[LANES];
        int labels[LANES] = {0};
        for (int l = 0; l < count; l++) {
            size_t index = job->order ? (size_t)job->order[start + l] : (size_t)(start + l);
            images[l] = job->x + index * 28 * 28;
            int64_t label = job->labels ? job->labels[index] : 0;
            if (label < 0 || label > 9) fail(&job->failed, FAILED_LABEL);
            else labels[l] = (int)label;
        }
        load_images(g, images, count);
        forward(job->arch, &job->weights, g);
        for (int l = 0; l < count; l++) {
            for (int k = 0; k < 10; k++) job->logits[(start + l) * 10 + k] = g->z[k][l];
            if (job->states) copy_states(g, l, job->states + (size_t)(start + l) * STATE_FLOATS);
        }
        if (!job->labels) continue;
        loss(job->arch, g, labels, count, 1.0 / job->n);
        for (int l = 0; l < count; l++) job->losses[start + l] = g->loss[l];
        if (!job->train && !job->curvature) continue;
        g->grad = job->grads + (size_t)group * row_floats;
        if (job->curvature) curvature(job->arch, &job->squared, g, squares);
        else backward(job->arch, &job->weights, g);
    }
    free(squares);
}
