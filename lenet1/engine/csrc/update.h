/* The weight update after a batch: each weight's gradient over the batch, the images' added in image order,
   then p <- p - lr (g + weight_decay p), SGD; or with per-weight rates, stochastic diagonal Levenberg-Marquardt
   (lenet1/curvature.py says where they come from), p <- p - (lr rate) (g + weight_decay p).  The crew
   (threads.h) shares it: member m of `crew_size` takes the m-th of as many runs of consecutive places of a
   gradient row (which thread adds a sum never changes a bit). */
#pragma once
#include "job.h"

/* The batch's sums of places q, ..., q + LANES - 1 of a gradient row, each its images' values added in image order
   to 0.  One vector add takes one image's values of LANES weights (transposed out of their lanes), so each sum
   adds the same numbers in the same order as one lane at a time would.  Places past the row's end read the
   padding of gradient_lanes; the caller keeps only its own. */
INLINE Lane image_sums(const Job *job, int row_floats, int q) {
    Lane sum = {0}, rows[LANES], images[LANES];
    for (int group = 0, first = 0; first < job->n; group++, first += LANES) {
        for (int i = 0; i < LANES; i++) rows[i] = job->grads[(size_t)group * row_floats + q + i];
        transpose(rows, images);
        for (int l = 0; l < LANES && first + l < job->n; l++) sum = sum + images[l];
    }
    return sum;
}

/* The first `count` (at most LANES) floats at p as a Lane, and back. */
INLINE Lane load_some(const float *p, int count) {
    if (count == LANES) return *(const Unaligned *)p;
    Lane v = {0};
    for (int i = 0; i < count; i++) v[i] = p[i];
    return v;
}
INLINE void store_some(float *p, Lane v, int count) {
    if (count == LANES) *(Unaligned *)p = v;
    else
        for (int i = 0; i < count; i++) p[i] = v[i];
}

/* p <- p - step (g + weight_decay p) for the slot's places [from, to), LANES weights at a time. */
INLINE void step_slot(const Job *job, int s, int from, int to) {
    const Arch *a = job->arch;
    int row_floats = a->offset[SLOTS], end = to - a->offset[s];
    float *weight = job->weights.slot[s];
    const float *rate = job->rates ? job->rates + a->offset[s] : 0;
    for (int q = from - a->offset[s]; q < end; q += LANES) {
        int count = end - q < LANES ? end - q : LANES;
        Lane g = image_sums(job, row_floats, a->offset[s] + q), w = load_some(weight + q, count);
        if (job->weight_decay != 0.0f) g = g + w * job->weight_decay;
        Lane step = (Lane){0} + job->lr;
        if (rate) step = step * load_some(rate + q, count);
        store_some(weight + q, w - g * step, count);
    }
}

CLONES static void update(const Job *job, int member, int crew_size) {
    const Arch *a = job->arch;
    int row_floats = a->offset[SLOTS];
    int from = (int)((int64_t)row_floats * member / crew_size), to = (int)((int64_t)row_floats * (member + 1) / crew_size);
    for (int s = 0; s < SLOTS; s++) {
        int lo = a->offset[s] > from ? a->offset[s] : from, hi = a->offset[s] + a->size[s] < to ? a->offset[s] + a->size[s] : to;
        if (lo < hi) step_slot(job, s, lo, hi);
    }
}
