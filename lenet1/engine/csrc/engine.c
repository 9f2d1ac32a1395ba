/* The exact engine: LeNet-1 as lenet1/model.py's Architecture describes it, with either loss: SGD steps
   (a batch or a whole epoch) and the forward pass (outputs, losses, unit states), each in one call.

   The same bits on every CPU, compiler and thread count, by construction (the one place this is explained):
   - only IEEE-754 +, -, *, / on float32 and float64, each rounded once: compiled with -ffp-contract=off,
     so no fused multiply-add, and no libm (exp, log and tanh are our own, from those operations);
   - every sum runs in the order written here.  The vector lanes hold different images (LANES images
     per group), never the terms of one sum, so any vector width (SSE2, AVX2, AVX-512, NEON) and the
     scalar code compute the same numbers;
   - threads take whole groups; the batch's gradient adds the images' gradients in image order, each
     weight's sum by one thread (the update gives each thread a run of whole weights).
*/
#include "job.h"
#include "layout.h"
#include "threads.h"

/* Set from another thread (exact.py, when Ctrl-C or a termination signal arrives): lenet1_train stops before its
   next step, so that an epoch at batch 1 is not waited for. */
static int stop_requested;
void lenet1_stop(int stop) { __atomic_store_n(&stop_requested, stop, __ATOMIC_RELAXED); }

/* The engine's version: lenet1/engine/exact.py records it in every model file it makes. */
int lenet1_version(void) { return ENGINE_VERSION; }

/* header, squash, sizes, weights: as describe() (layout.h) reads them.  labels: 0, or one per image, then
   losses (float64, one per image).  logits: n x 10; states: 0 or n x STATE_FLOATS.  Returns 0 or FAILED_* bits. */
int lenet1_forward(const int32_t *header, const float *squash, const int64_t *sizes, float **weights, const float *x,
                   const int64_t *labels, int n, float *logits, double *losses, float *states, int threads) {
    Arch arch;
    int status = describe(header, squash, sizes, &arch);
    if (status || n < 1) return status;
    Job job = {.arch = &arch, .x = x, .labels = labels, .n = n, .logits = logits, .losses = losses, .states = states};
    for (int s = 0; s < SLOTS; s++) job.weights.slot[s] = weights[s];
    return run(&job, threads);
}

/* SGD steps on the mean loss of batches of `batch_size` (the last may be smaller): the images x[order[0]],
   ..., x[order[n - 1]], or x[0], ..., x[n - 1] without an order; the weights are updated in place, each by
   lr times its gradient, or with rates (one per weight, W1 ... BO) by lr rates[q] times it.  losses: n
   per-image losses (float64); logits: n x 10, each before its step's update.  Returns 0, or
   FAILED_* bits, with the weights as the failing step found them, or STOPPED (lenet1_stop) between steps. */
int lenet1_train(const int32_t *header, const float *squash, const int64_t *sizes, float **weights, const float *x,
                 const int64_t *labels, const int64_t *order, int n, int batch_size, float lr, const float *rates,
                 float weight_decay, float *logits, double *losses, int threads) {
    Arch arch;
    int status = describe(header, squash, sizes, &arch);
    if (status || n < 1 || batch_size < 1) return status;
    int size = batch_size < n ? batch_size : n;
    Lane *grads = gradient_lanes(size, arch.offset[SLOTS]);
    Crew crew;
    if (grads == 0 || crew_start(&crew, threads, size)) { free(grads); return FAILED_RESOURCES; }
    for (int start = 0; start < n && status == 0; start += batch_size) {
        if (__atomic_load_n(&stop_requested, __ATOMIC_RELAXED)) { status = STOPPED; break; }
        Job job = {.arch = &arch, .x = order ? x : x + (size_t)start * 28 * 28,
                   .labels = order ? labels : labels + start, .order = order ? order + start : 0,
                   .n = n - start < batch_size ? n - start : batch_size, .train = 1,
                   .logits = logits + (size_t)start * 10, .grads = grads, .losses = losses + start};
        for (int s = 0; s < SLOTS; s++) job.weights.slot[s] = weights[s];
        status = crew_run(&crew, &job);
        if (status == 0) {
            job.updating = 1, job.lr = lr, job.rates = rates, job.weight_decay = weight_decay;
            crew_run(&crew, &job);  /* the update cannot fail: its status is the groups' */
        }
    }
    crew_stop(&crew);
    free(grads);
    return status;
}

/* The curvature of stochastic diagonal Levenberg-Marquardt: each weight's d2E/dw^2 (network.h's curvature()),
   averaged over the n images x[0], ..., x[n - 1] (labels: only the cross-entropy's label check reads them), into
   curvatures (float64, one per weight, in the order of a gradient row: W1 ... BO).  The images' values are
   added in image order.  Returns 0 or FAILED_* bits. */
int lenet1_curvature(const int32_t *header, const float *squash, const int64_t *sizes, float **weights, const float *x,
                     const int64_t *labels, int n, double *curvatures, int threads) {
    Arch arch;
    int status = describe(header, squash, sizes, &arch);
    if (status || n < 1) return status;
    int row_floats = arch.offset[SLOTS];
    Lane *grads = gradient_lanes(n, row_floats);
    float *logits = malloc(sizeof(float) * (size_t)n * 10);
    float *squared = malloc(sizeof(float) * (size_t)row_floats);
    double *losses = malloc(sizeof(double) * (size_t)n);
    Job job = {.arch = &arch, .x = x, .labels = labels, .n = n, .curvature = 1, .logits = logits, .grads = grads,
               .losses = losses};
    if (grads && logits && squared && losses) {
        for (int s = 0; s < SLOTS; s++) {
            job.weights.slot[s] = weights[s];
            job.squared.slot[s] = squared + arch.offset[s];
            for (int q = 0; q < arch.size[s]; q++) job.squared.slot[s][q] = weights[s][q] * weights[s][q];
        }
        status = run(&job, threads);
        for (int q = 0; q < row_floats; q++) curvatures[q] = 0.0;
        for (int b = 0; b < n && status == 0; b++)
            for (int q = 0; q < row_floats; q++)
                curvatures[q] = curvatures[q] + (double)grads[(size_t)(b / LANES) * row_floats + q][b % LANES];
        for (int q = 0; q < row_floats; q++) curvatures[q] = curvatures[q] / n;
    } else
        status = FAILED_RESOURCES;
    free(grads), free(logits), free(squared), free(losses);
    return status;
}
