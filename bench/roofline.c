/* The machine's own peak for the operations the exact engine may use: independent float32 vector
   multiplies and adds, never fused (built with -ffp-contract=off, as the engine is), in the widest
   vectors the compiler targets (-march=native).  Prints GFLOP/s on one thread and on every thread.
   Usage: roofline THREADS SECONDS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* One register of floats per chain, and as many independent multiply-then-add chains as the registers
   hold (two stay for the constants): spilled chains would measure memory instead of the units.  Latency
   3-4 cycles x 2 multiplies and 2 adds per cycle needs 8-12 chains, which 16 registers hold. */
#if defined(__AVX512F__)
#define WIDTH 16
#define REGISTERS 32
#elif defined(__AVX__)
#define WIDTH 8
#define REGISTERS 16
#elif defined(__aarch64__)
#define WIDTH 4
#define REGISTERS 32
#else
#define WIDTH 4
#define REGISTERS 16
#endif
#define CHAINS (REGISTERS - 2)
typedef float Vec __attribute__((vector_size(4 * WIDTH)));

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { long rounds; float sink; } Work;

/* rounds x CHAINS x (one multiply and one add) of WIDTH lanes: 2 FLOP per lane. */
static void *spin(void *arg) {
    Work *w = arg;
    Vec x[CHAINS], m = {0}, a = {0};
    m += 0.999999f, a += 1e-7f;
    for (int c = 0; c < CHAINS; c++) x[c] = m * (float)(c + 1);
    for (long r = 0; r < w->rounds; r++)
#pragma GCC unroll 32  /* every chain: the chains live in registers */
        for (int c = 0; c < CHAINS; c++) x[c] = x[c] * m + a;
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < WIDTH; l++) s += x[c][l];
    w->sink = s;  /* the results are used: the compiler cannot drop the loop */
    return 0;
}

/* GFLOP/s of `threads` threads spinning `rounds` rounds each. */
static double gflops(int threads, long rounds) {
    pthread_t ids[256];
    Work work[256];
    double start = now();
    for (int t = 0; t < threads; t++) {
        work[t].rounds = rounds;
        pthread_create(&ids[t], 0, spin, &work[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], 0);
    return threads * rounds * (double)CHAINS * WIDTH * 2 / (now() - start) / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double seconds = argc > 2 ? atof(argv[2]) : 0.5;
    if (threads < 1 || threads > 256 || !(seconds > 0)) {
        fprintf(stderr, "usage: roofline THREADS SECONDS (1-256 threads)\n");
        return 2;
    }
    long rounds = 1000000;
    while (gflops(1, rounds) * 1e9 * seconds > rounds * (double)CHAINS * WIDTH * 2 * 4) rounds *= 2;  /* ~seconds */
    double best_one = 0, best_all = 0;
    for (int i = 0; i < 3; i++) {  /* the best of three: other load only ever slows a run down */
        double one = gflops(1, rounds), all = gflops(threads, rounds);
        best_one = one > best_one ? one : best_one;
        best_all = all > best_all ? all : best_all;
    }
    printf("%.2f %.2f\n", best_one, best_all);
    return 0;
}
