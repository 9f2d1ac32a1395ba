/* What the engine needs from the platform: a few C library functions, the CPU's floating-point mode, and how
   the compiler builds the hot code.  Every file includes it before any code of its own, so these settings
   cover the whole engine.

   Linux: no #include.  The C library's few functions are declared here, so that a cross compiler without
   the target's C headers (Debian's gcc-aarch64-linux-gnu) builds it too; the library is linked with
   -nostdlib and these resolve in the Python process, which has them loaded.  macOS: the system headers
   (Apple's clang always has them; its pthread_t is a pointer, not glibc's integer). */
#pragma once

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "x86-64 or arm64 only: 32-bit x86 computes float64 on the x87 with extra precision"
#endif

#if defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#else
typedef __INT64_TYPE__ int64_t;
typedef __INT32_TYPE__ int32_t;
typedef __SIZE_TYPE__ size_t;
typedef unsigned long pthread_t;  /* glibc's and musl's, on x86-64 and arm64 */
void *aligned_alloc(size_t alignment, size_t size);
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void free(void *pointer);
int pthread_create(pthread_t *thread, const void *attributes, void *(*start)(void *), void *argument);
int pthread_join(pthread_t thread, void **result);
int sched_yield(void);
#define INT32_MIN (-__INT32_MAX__ - 1)
#endif
#define memset __builtin_memset

/* IEEE 754's default: round to nearest, subnormals kept.  The caller may have set flush-to-zero
   (torch.set_flush_denormal(True)), which would change tiny gradients.  Returns its setting, to restore. */
static unsigned long ieee_default(void) {
#if defined(__x86_64__)
    unsigned int caller = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(caller & ~0xE040u);  /* FTZ (bit 15), rounding (13-14), DAZ (6) */
#else
    unsigned long caller, ieee;
    __asm__ volatile("mrs %0, fpcr" : "=r"(caller));  /* inline assembly: GCC's and clang's builtins differ */
    ieee = caller & ~0x1C00000ul;                       /* FZ (bit 24), rounding (22-23) */
    __asm__ volatile("msr fpcr, %0" : : "r"(ieee));
#endif
    return caller;
}

static void restore(unsigned long caller) {
#if defined(__x86_64__)
    __builtin_ia32_ldmxcsr((unsigned int)caller);
#else
    __asm__ volatile("msr fpcr, %0" : : "r"(caller));
#endif
}

/* x86-64 with GCC: the hot code for one instruction set, LENET1_TARGET (build.py names this CPU's), or else one
   copy per instruction set, chosen when loaded (the bits are the same).  The helpers that pass vectors by value
   are always inlined into these functions (INLINE), so the vector ABI that -Wno-psabi quiets never applies to a
   real call. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(LENET1_BASELINE_ONLY)
#if defined(LENET1_TARGET)
#define CLONES __attribute__((target(LENET1_TARGET)))
#else
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#else
#define CLONES
#endif
#define INLINE static inline __attribute__((always_inline))

/* GCC's predictive commoning keeps a loop's loads for its next iterations (a convolution's input row) by unrolling
   it; the registers it takes would push the weight gradients' sums onto the stack.  Loads only: the arithmetic is
   the same. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-predictive-commoning")
#endif
