/* The weight update after a batch, included by engine.c after its Job: the batch's gradient, the images' added
   in image order, then p <- p - lr (g + weight_decay p), SGD; or with per-weight rates, stochastic diagonal
   Levenberg-Marquardt (lenet1/curvature.py says where they come from), p <- p - (lr rate) (g + weight_decay p). */
CLONES static int update(Job *job, float lr, const float *rates, float weight_decay) {
    const Arch *a = job->arch;
    int row_floats = a->offset[SLOTS];
    float *total = calloc((size_t)row_floats, sizeof(float));
    if (total == 0) return FAILED_RESOURCES;
    for (int b = 0; b < job->n; b++) {
        const float *row = job->grads + (size_t)b * row_floats;
        for (int q = 0; q < row_floats; q++) total[q] = total[q] + row[q];
    }
    for (int s = 0; s < SLOTS; s++) {
        float *weight = job->weights.slot[s];
        const float *grad = total + a->offset[s], *rate = rates ? rates + a->offset[s] : 0;
        for (int q = 0; q < a->size[s]; q++) {
            float g = weight_decay != 0.0f ? grad[q] + weight[q] * weight_decay : grad[q];
            weight[q] = weight[q] - g * (rate ? lr * rate[q] : lr);
        }
    }
    free(total);
    return 0;
}
