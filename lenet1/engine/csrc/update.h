/* The weight update after a batch, included by engine.c after its Job: each weight's gradient over the batch, the
   images' added in image order, then p <- p - lr (g + weight_decay p), SGD; or with per-weight rates,
   stochastic diagonal Levenberg-Marquardt (lenet1/curvature.py says where they come from),
   p <- p - (lr rate) (g + weight_decay p).  The crew shares it: member m of `crew_size` takes the m-th of as many
   runs of consecutive places of a gradient row (which thread adds a sum never changes a bit). */

/* The batch's values of place q of a gradient row (W1 ... BO), the images' added in image order to 0. */
INLINE float image_sum(const Job *job, int row_floats, int q) {
    float sum = 0.0f;
    for (int group = 0, first = 0; first < job->n; group++, first += LANES) {
        Lane lanes = job->grads[(size_t)group * row_floats + q];
        for (int l = 0; l < LANES && first + l < job->n; l++) sum = sum + lanes[l];
    }
    return sum;
}

/* The batch's sums of places q, ..., q + LANES - 1 of a gradient row, each its images' values added in image order
   to 0 (as image_sum adds one place's). */
INLINE Lane image_sums(const Job *job, int row_floats, int q) {
    Lane sum = {0}, rows[LANES], images[LANES];
    for (int group = 0, first = 0; first < job->n; group++, first += LANES) {
        for (int i = 0; i < LANES; i++) rows[i] = job->grads[(size_t)group * row_floats + q + i];
        transpose(rows, images);
        for (int l = 0; l < LANES && first + l < job->n; l++) sum = sum + images[l];
    }
    return sum;
}

/* p <- p - step (g + weight_decay p) for the slot's places [from, to), LANES at a time and the rest one by one:
   each weight's operations are the same either way. */
INLINE void step_slot(const Job *job, int s, int from, int to) {
    const Arch *a = job->arch;
    int row_floats = a->offset[SLOTS], q = from - a->offset[s], end = to - a->offset[s];
    float *weight = job->weights.slot[s];
    const float *rate = job->rates ? job->rates + a->offset[s] : 0;
    for (; q + LANES <= end; q += LANES) {
        Lane g = image_sums(job, row_floats, a->offset[s] + q), w = *(Unaligned *)(weight + q);
        if (job->weight_decay != 0.0f) g = g + w * job->weight_decay;
        Lane lr = (Lane){0} + job->lr;
        if (rate) lr = lr * *(const Unaligned *)(rate + q);
        *(Unaligned *)(weight + q) = w - g * lr;
    }
    for (; q < end; q++) {
        float g = image_sum(job, row_floats, a->offset[s] + q);
        if (job->weight_decay != 0.0f) g = g + weight[q] * job->weight_decay;
        weight[q] = weight[q] - g * (rate ? job->lr * rate[q] : job->lr);
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
