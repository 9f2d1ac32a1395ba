/* The weight update after a batch, included by engine.c after its Job: each weight's gradient over the batch, the
   images' added in image order (image_sum), then p <- p - lr (g + weight_decay p), SGD; or with per-weight rates,
   stochastic diagonal Levenberg-Marquardt (lenet1/curvature.py says where they come from),
   p <- p - (lr rate) (g + weight_decay p).  The crew shares it: member m of `crew_size` takes the m-th of as many
   runs of consecutive places of a gradient row (which thread adds a sum never changes a bit). */
CLONES static void update(const Job *job, int member, int crew_size) {
    const Arch *a = job->arch;
    int row_floats = a->offset[SLOTS];
    int from = (int)((int64_t)row_floats * member / crew_size), to = (int)((int64_t)row_floats * (member + 1) / crew_size);
    for (int s = 0; s < SLOTS; s++) {
        float *weight = job->weights.slot[s];
        const float *rate = job->rates ? job->rates + a->offset[s] : 0;
        for (int q = 0; q < a->size[s]; q++) {
            int place = a->offset[s] + q;
            if (place < from || place >= to) continue;
            float g = image_sum(job, row_floats, place);
            if (job->weight_decay != 0.0f) g = g + weight[q] * job->weight_decay;
            weight[q] = weight[q] - g * (rate ? job->lr * rate[q] : job->lr);
        }
    }
}
