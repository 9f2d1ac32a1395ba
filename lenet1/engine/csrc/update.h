/* The weight update after a batch, included by engine.c after its Job: each weight's gradient over the batch, the
   images' added in image order (image_sum), then p <- p - lr (g + weight_decay p), SGD; or with per-weight rates,
   stochastic diagonal Levenberg-Marquardt (lenet1/curvature.py says where they come from),
   p <- p - (lr rate) (g + weight_decay p). */
CLONES static void update(const Job *job, float lr, const float *rates, float weight_decay) {
    const Arch *a = job->arch;
    for (int s = 0; s < SLOTS; s++) {
        float *weight = job->weights.slot[s];
        const float *rate = rates ? rates + a->offset[s] : 0;
        for (int q = 0; q < a->size[s]; q++) {
            float g = image_sum(job, a->offset[SLOTS], a->offset[s] + q);
            if (weight_decay != 0.0f) g = g + weight[q] * weight_decay;
            weight[q] = weight[q] - g * (rate ? lr * rate[q] : lr);
        }
    }
}
