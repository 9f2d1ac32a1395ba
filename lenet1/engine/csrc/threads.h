/* Threads that live for a whole engine call: an epoch's steps reuse them, and each keeps its own group.
   A step at a small batch is short: starting threads and touching a fresh group's pages at every step would
   cost nearly what a second core gives.  Between steps a waiting thread spins briefly, then yields its core
   (a busy machine, several runs at once, must not lose a core to our waiting).  Which thread computes a group
   never changes a bit (engine.c's rules). */
#pragma once
#include "job.h"
#include "update.h"

enum { MAX_THREADS = 64, SPINS_BEFORE_YIELD = 4000 };

/* A member's share of the job: groups, or the weights to update. */
static void work(Job *job, int member, int crew_size, Group *g) {
    if (job->updating) update(job, member, crew_size);
    else run_groups(job, member, crew_size, g);
}

typedef struct Crew Crew;
typedef struct { Crew *crew; int index; } Member;
struct Crew {
    int size;             /* threads, the caller's included */
    Job *job;             /* the job of this generation; 0: stop */
    unsigned generation;  /* advanced once per job (atomic) */
    int finished;         /* members done with this generation's job (atomic) */
    Group *groups[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    Member members[MAX_THREADS];
};

INLINE void wait_a_little(int *spins) {
    if (++*spins < SPINS_BEFORE_YIELD) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#else
        __asm__ volatile("yield");
#endif
    } else
        sched_yield();
}

static void *member_main(void *argument) {
    Member *member = argument;
    Crew *crew = member->crew;
    unsigned long caller = ieee_default();
    for (unsigned seen = 0;;) {
        int spins = 0;
        while (__atomic_load_n(&crew->generation, __ATOMIC_ACQUIRE) == seen) wait_a_little(&spins);
        seen++;
        if (crew->job == 0) break;
        work(crew->job, member->index, crew->size, crew->groups[member->index]);
        __atomic_add_fetch(&crew->finished, 1, __ATOMIC_RELEASE);
    }
    restore(caller);
    return 0;
}

static void publish(Crew *crew, Job *job) {
    crew->job = job;
    crew->finished = 0;  /* every member has finished the previous job: none reads it now */
    __atomic_add_fetch(&crew->generation, 1, __ATOMIC_RELEASE);
}

/* Up to `threads` threads (the caller's included), no more than there are groups in the largest job,
   `most_images`.  Returns 0, or FAILED_RESOURCES with nothing left to stop.  A thread that cannot start
   only makes the crew smaller. */
static int crew_start(Crew *crew, int threads, int most_images) {
    int groups = (most_images + LANES - 1) / LANES;
    threads = threads < groups ? threads : groups;
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    *crew = (Crew){.size = 1};
    for (int t = 0; t < threads; t++)
        if ((crew->groups[t] = aligned_alloc(64, (sizeof(Group) + 63) / 64 * 64)) == 0) {
            for (int u = 0; u < t; u++) free(crew->groups[u]);
            return FAILED_RESOURCES;
        }
    for (; crew->size < threads; crew->size++) {
        crew->members[crew->size] = (Member){crew, crew->size};
        if (pthread_create(&crew->ids[crew->size], 0, member_main, &crew->members[crew->size]) != 0) break;
    }
    for (int t = crew->size; t < threads; t++) free(crew->groups[t]);
    return 0;
}

/* The job (its groups, or the update) on the crew, this thread taking its share; returns its FAILED_* bits. */
static int crew_run(Crew *crew, Job *job) {
    job->groups = (job->n + LANES - 1) / LANES;
    publish(crew, job);
    unsigned long caller = ieee_default();
    work(job, 0, crew->size, crew->groups[0]);
    restore(caller);
    int spins = 0;
    while (__atomic_load_n(&crew->finished, __ATOMIC_ACQUIRE) < crew->size - 1) wait_a_little(&spins);
    return job->failed;
}

static void crew_stop(Crew *crew) {
    publish(crew, 0);
    for (int t = 1; t < crew->size; t++) pthread_join(crew->ids[t], 0);
    for (int t = 0; t < crew->size; t++) free(crew->groups[t]);
}

/* A single job on a crew of its own. */
static int run(Job *job, int threads) {
    Crew crew;
    int status = crew_start(&crew, threads, job->n);
    if (status) return status;
    status = crew_run(&crew, job);
    crew_stop(&crew);
    return status;
}
