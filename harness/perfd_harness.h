/*
 * perfd_harness.h - the perfd C benchmark harness (C11, libc + Linux syscalls).
 *
 * A benchmark binary is your benchmark .c files plus perfd_harness.c, which
 * provides main(). Register benchmarks at file scope:
 *
 *     #include "perfd_harness.h"
 *
 *     static void *setup(void) { return make_context(); }     // optional (NULL)
 *     static void teardown(void *ctx) { free_context(ctx); }   // optional (NULL)
 *     static void run(perfd_state *st) {
 *         struct ctx *ctx = perfd_context(st);
 *         while (perfd_keep_running(st)) {
 *             uint64_t r = work(ctx);
 *             perfd_do_not_optimize(r);
 *         }
 *     }
 *     PERFD_BENCHMARK("compute/crc32", setup, run, teardown);
 *
 * The harness calls setup once, then run() once per batch (calibration,
 * warmup and timed samples), then teardown once. The clock starts at the
 * first perfd_keep_running() call of a batch and stops when it returns false,
 * so code before the loop in run() is not timed. See harness/README.md for
 * the command line and the JSON output format.
 */
#ifndef PERFD_HARNESS_H
#define PERFD_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Harness (library) version. */
#define PERFD_HARNESS_VERSION "1.3.0"

/* Version of the JSON output ("version" key). History:
 *   1.0 - first format
 *   1.1 - optional context.profile {path, samples, hz, dropped} with --profile
 *   1.2 - per-sample samples_cpu_ns and samples_involuntary_switches */
#define PERFD_FORMAT_VERSION "1.2"

/* Exit status when the binary could not run as asked (usage error, bad
 * registration, unwritable output). Otherwise the exit status is the number
 * of failed benchmarks, capped at 99. */
#define PERFD_EXIT_USAGE 100

#ifdef __cplusplus
extern "C" {
#endif

struct perfd_batch_;

/* Per-batch state handed to a benchmark's run function. The fields are
 * private to the harness; they are visible only so that the fast path of
 * perfd_keep_running() can be inlined into the timed loop. */
typedef struct perfd_state {
    uint64_t perfd_remaining_;          /* private: iterations left in this batch */
    struct perfd_batch_ *perfd_batch_;  /* private: owned by perfd_harness.c */
} perfd_state;

typedef void *(*perfd_setup_fn)(void);
typedef void (*perfd_run_fn)(perfd_state *st);
typedef void (*perfd_teardown_fn)(void *ctx);

/* Out-of-line part of perfd_keep_running(); do not call directly. */
bool perfd_keep_running_slow_(perfd_state *st);

/* True while the current batch has iterations left. The first call of a
 * batch starts the clock (and the counters); the call that returns false
 * stops them. In timed samples the thread's CPU time and involuntary context
 * switches are read just outside that window. */
static inline bool perfd_keep_running(perfd_state *st)
{
    if (__builtin_expect(st->perfd_remaining_ != 0, 1)) {
        st->perfd_remaining_--;
        return true;
    }
    return perfd_keep_running_slow_(st);
}

/* The value returned by the benchmark's setup function (NULL without one). */
void *perfd_context(const perfd_state *st);

/* Marks the current benchmark as failed with a printf-style message (the
 * first message wins) and makes perfd_keep_running() return false. Usable
 * from run (pass its state) and from setup (pass NULL). The run function
 * should return soon after; teardown is still called. */
void perfd_fail(perfd_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Registers a benchmark; called by PERFD_BENCHMARK from a constructor.
 * Problems (table full, empty name, missing run) are reported by main(). */
void perfd_register(const char *name, perfd_setup_fn setup, perfd_run_fn run,
                    perfd_teardown_fn teardown, const char *file, int line);

/* Compiler barrier: the value counts as used, so the computation producing it
 * cannot be removed. For scalars and pointers; for a struct, pass its address
 * and call perfd_clobber_memory(). */
#define PERFD_DO_NOT_OPTIMIZE(value)                                   \
    do {                                                               \
        __typeof__(value) perfd_dno_value_ = (value);                  \
        __asm__ volatile("" : : "r,m"(perfd_dno_value_) : "memory");   \
    } while (0)

/* Same as PERFD_DO_NOT_OPTIMIZE, spelled like the rest of the API. */
#define perfd_do_not_optimize(value) PERFD_DO_NOT_OPTIMIZE(value)

/* Compiler barrier: all pending writes to memory count as observed. */
static inline void perfd_clobber_memory(void)
{
    __asm__ volatile("" : : : "memory");
}

#define PERFD_CONCAT_INNER_(a, b) a##b
#define PERFD_CONCAT_(a, b) PERFD_CONCAT_INNER_(a, b)

/* Registers a benchmark at program start. setup and teardown may be NULL.
 * Use at file scope, at most one per source line. */
#define PERFD_BENCHMARK(name, setup, run, teardown)                                 \
    __attribute__((constructor)) static void PERFD_CONCAT_(perfd_register_, __LINE__)(void) \
    {                                                                               \
        perfd_register((name), (setup), (run), (teardown), __FILE__, __LINE__);     \
    }                                                                               \
    struct perfd_swallow_semicolon_

#ifdef __cplusplus
}
#endif

#endif /* PERFD_HARNESS_H */
