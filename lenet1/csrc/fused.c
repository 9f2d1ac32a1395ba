/* LeNet-1 'full' (tanh, average pooling, cross-entropy): SGD steps (a batch or a whole epoch) and the forward
   pass, each in one call.

   The same bits on every CPU and for any thread count, by construction:
   - only IEEE-754 +, -, *, / on float32 and float64, each rounded once: compiled with -ffp-contract=off,
     so no fused multiply-add, and no libm (exp, log and tanh are our own, from those operations);
   - every sum runs in the order written here.  The vector lanes hold different images (LANES images
     per group), never the terms of one sum, so any vector width (SSE2, AVX2, AVX-512, NEON) and the
     scalar code compute the same numbers;
   - threads take whole groups; the batch's gradient adds the images' gradients in image order.
*/

/* No #include: the C library's few functions are declared here, so that a cross compiler without
   the target's C headers (Debian's gcc-aarch64-linux-gnu) builds it too; the library is linked
   with -nostdlib and these resolve in the Python process, which has them loaded. */
typedef __INT64_TYPE__ int64_t;
typedef __INT32_TYPE__ int32_t;
typedef __SIZE_TYPE__ size_t;
typedef unsigned long pthread_t;  /* glibc's, on x86-64 and arm64 */
void *aligned_alloc(size_t alignment, size_t size);
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void free(void *pointer);
int pthread_create(pthread_t *thread, const void *attributes, void *(*start)(void *), void *argument);
int pthread_join(pthread_t thread, void **result);
#define memset __builtin_memset
#define INT64_MIN (-__INT64_MAX__ - 1)

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "x86-64 or arm64 only: 32-bit x86 computes float64 on the x87 with extra precision"
#endif

/* x86-64: one copy of the hot code per instruction set, chosen when loaded (the bits are the same).
   The helpers that pass vectors by value are always inlined into these copies, so the vector ABI
   that -Wno-psabi quiets never applies to a real call. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(LENET1_BASELINE_ONLY)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif
#include "lanes.h"
#include "layers.h"

enum { FAILED_RESOURCES = 1, FAILED_LABEL = 2 };  /* bits of the return value */

INLINE void fail(int *failed, int why) { __atomic_or_fetch(failed, why, __ATOMIC_RELAXED); }

typedef struct {
    Params params;
    const float *x;          /* images, 28x28 each */
    const int64_t *labels;   /* one per image of x */
    const int64_t *order;    /* the batch's images are x[order[0]], x[order[1]], ...; 0: x[0], x[1], ... */
    int n, groups, threads, train;
    int failed;  /* FAILED_*, set with __atomic_or_fetch: several threads may write it */
    float *logits, *grads;  /* grads: n x N_PARAMS, image-major */
    double *losses;
} Job;

typedef struct { Job *job; int first; } Worker;

/* Groups first, first + threads, ...: the outputs, and when training each image's loss and gradient. */
CLONES static void run_groups(Job *job, int first) {
    Group *g = aligned_alloc(64, (sizeof(Group) + 63) / 64 * 64);
    if (g == 0) { fail(&job->failed, FAILED_RESOURCES); return; }
    for (int group = first; group < job->groups; group += job->threads) {
        int start = group * LANES, count = job->n - start < LANES ? job->n - start : LANES;
        const float *images[LANES];
        int64_t labels[LANES] = {0};
        for (int l = 0; l < count; l++) {
            size_t index = job->order ? (size_t)job->order[start + l] : (size_t)(start + l);
            images[l] = job->x + index * 28 * 28;
            labels[l] = job->train ? job->labels[index] : 0;
        }
        load_images(g, images, count);
        forward(&job->params, g);
        for (int l = 0; l < count; l++)
            for (int k = 0; k < 10; k++) job->logits[(start + l) * 10 + k] = g->z[k][l];
        if (!job->train) continue;
        if (loss_and_dz(g, labels, count, 1.0 / job->n)) fail(&job->failed, FAILED_LABEL);
        backward(&job->params, g);
        for (int l = 0; l < count; l++) {
            job->losses[start + l] = g->loss[l];
            float *row = job->grads + (size_t)(start + l) * N_PARAMS;
            for (int q = 0; q < N_PARAMS; q++) row[q] = g->grad[q][l];
        }
    }
    free(g);
}

/* The batch's gradient, the images' added in image order, then p <- p - lr (g + weight_decay p). */
CLONES static int update(Job *job, float lr, float weight_decay) {
    float *const slots[6] = {job->params.w1, job->params.b1, job->params.w3, job->params.b3, job->params.wo, job->params.bo};
    const int sizes[6] = {N_W1, N_B1, N_W3, N_B3, N_WO, N_BO};
    float *total = calloc(N_PARAMS, sizeof(float));
    if (total == 0) return FAILED_RESOURCES;
    for (int b = 0; b < job->n; b++) {
        const float *row = job->grads + (size_t)b * N_PARAMS;
        for (int q = 0; q < N_PARAMS; q++) total[q] = total[q] + row[q];
    }
    const float *grad = total;
    for (int s = 0; s < 6; grad += sizes[s], s++)
        for (int q = 0; q < sizes[s]; q++) {
            float g = weight_decay != 0.0f ? grad[q] + slots[s][q] * weight_decay : grad[q];
            slots[s][q] = slots[s][q] - g * lr;
        }
    free(total);
    return 0;
}

/* IEEE 754's default: round to nearest, subnormals kept.  The caller may have set flush-to-zero
   (torch.set_flush_denormal(True)), which would change tiny gradients.  Returns its setting, to restore. */
static unsigned int ieee_default(void) {
#if defined(__x86_64__)
    unsigned int caller = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(caller & ~0xE040u);  /* FTZ (bit 15), rounding (13-14), DAZ (6) */
#else
    unsigned int caller = __builtin_aarch64_get_fpcr();
    __builtin_aarch64_set_fpcr(caller & ~0x1C00000u);  /* FZ (bit 24), rounding (22-23) */
#endif
    return caller;
}

static void restore(unsigned int caller) {
#if defined(__x86_64__)
    __builtin_ia32_ldmxcsr(caller);
#else
    __builtin_aarch64_set_fpcr(caller);
#endif
}

static void *work(void *worker) {
    unsigned int caller = ieee_default();
    run_groups(((Worker *)worker)->job, ((Worker *)worker)->first);
    restore(caller);
    return 0;
}

/* The groups on up to `threads` threads (this one included); each thread takes whole groups. */
static int run(Job *job, int threads) {
    enum { MAX_THREADS = 64 };
    pthread_t ids[MAX_THREADS];
    Worker workers[MAX_THREADS];
    job->groups = (job->n + LANES - 1) / LANES;
    job->threads = threads < job->groups ? threads : job->groups;
    job->threads = job->threads < 1 ? 1 : job->threads > MAX_THREADS ? MAX_THREADS : job->threads;
    int started = 1;
    for (; started < job->threads; started++) {
        workers[started] = (Worker){job, started};
        if (pthread_create(&ids[started], 0, work, &workers[started]) != 0) break;
    }
    if (started < job->threads) fail(&job->failed, FAILED_RESOURCES);  /* their groups are missing */
    workers[0] = (Worker){job, 0};
    work(&workers[0]);
    for (int t = 1; t < started; t++) pthread_join(ids[t], 0);
    return job->failed;
}

/* The weights as the Python side passes them: w1, b1, w3, b3, wo, bo (float32, contiguous). */
static Params unpack(float **params) {
    return (Params){params[0], params[1], params[2], params[3], params[4], params[5]};
}

/* params: as unpack reads them.  logits: n x 10.  Returns 0 or FAILED_* bits. */
int lenet1_forward(float **params, const float *x, int n, float *logits, int threads) {
    Job job = {.params = unpack(params), .x = x, .n = n, .train = 0, .logits = logits};
    return n < 1 ? 0 : run(&job, threads);
}

/* SGD steps on the mean cross-entropy of batches of `batch_size` (the last may be smaller): the images
   x[order[0]], ..., x[order[n - 1]], or x[0], ..., x[n - 1] without an order; the weights are updated in
   place.  losses: n per-image losses (float64); logits: n x 10, each before its step's update.  Returns 0,
   or FAILED_* bits, with the weights as the failing step found them. */
int lenet1_train(float **params, const float *x, const int64_t *labels, const int64_t *order, int n,
                 int batch_size, float lr, float weight_decay, float *logits, double *losses, int threads) {
    if (n < 1 || batch_size < 1) return 0;
    int size = batch_size < n ? batch_size : n, status = 0;
    float *grads = malloc(sizeof(float) * (size_t)size * N_PARAMS);
    if (grads == 0) return FAILED_RESOURCES;
    for (int start = 0; start < n && status == 0; start += batch_size) {
        Job job = {.params = unpack(params), .x = order ? x : x + (size_t)start * 28 * 28,
                   .labels = order ? labels : labels + start, .order = order ? order + start : 0,
                   .n = n - start < batch_size ? n - start : batch_size, .train = 1,
                   .logits = logits + (size_t)start * 10, .grads = grads, .losses = losses + start};
        status = run(&job, threads);
        if (status == 0) {
            unsigned int caller = ieee_default();
            status = update(&job, lr, weight_decay);
            restore(caller);
        }
    }
    free(grads);
    return status;
}
