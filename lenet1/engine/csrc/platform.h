/* What the engine needs from the platform: a few C library functions and the CPU's floating-point mode.

   Linux: no #include.  The C library's few functions are declared here, so that a cross compiler without
   the target's C headers (Debian's gcc-aarch64-linux-gnu) builds it too; the library is linked with
   -nostdlib and these resolve in the Python process, which has them loaded.  macOS: the system headers
   (Apple's clang always has them; its pthread_t is a pointer, not glibc's integer). */
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
