/*
 * Benchmarks that exercise the harness itself; driven by run_tests.py.
 * Exactly three of them fail: fail/explicit, fail/setup, fail/early-return.
 * profile/nested has a known call chain for the --profile tests;
 * sleep/nanosleep-200us spends most of its wall time off its CPU.
 */
#define _POSIX_C_SOURCE 200809L   /* nanosleep under -std=c11 */

#include "perfd_harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* trivial/sum: a short dependent loop, a few ns per op. */
static void run_sum(perfd_state *st)
{
    uint64_t acc = 0;
    while (perfd_keep_running(st)) {
        for (uint64_t i = 0; i < 16; i++) {
            acc += i * 2654435761u;
            perfd_do_not_optimize(acc);
        }
    }
}
PERFD_BENCHMARK("trivial/sum", NULL, run_sum, NULL);

/* lifecycle/count: setup and teardown must run exactly once; the context
 * handed to run must be the one setup returned. */
struct lifecycle {
    uint64_t magic;
    uint64_t runs;
};
static int setup_calls, teardown_calls;

static void report_lifecycle(void)
{
    fprintf(stderr, "test-lifecycle: setup_calls=%d teardown_calls=%d\n", setup_calls,
            teardown_calls);
}

static void *setup_lifecycle(void)
{
    setup_calls++;
    atexit(report_lifecycle);
    struct lifecycle *lc = calloc(1, sizeof *lc);
    if (lc == NULL) {
        perfd_fail(NULL, "out of memory");
        return NULL;
    }
    lc->magic = 0x5eedf00du;
    return lc;
}

static void run_lifecycle(perfd_state *st)
{
    struct lifecycle *lc = perfd_context(st);
    if (lc == NULL || lc->magic != 0x5eedf00du) {
        perfd_fail(st, "run got the wrong context");
        return;
    }
    lc->runs++;
    uint64_t x = lc->runs;
    while (perfd_keep_running(st)) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        perfd_do_not_optimize(x);
    }
}

static void teardown_lifecycle(void *ctx)
{
    teardown_calls++;
    free(ctx);
}
PERFD_BENCHMARK("lifecycle/count", setup_lifecycle, run_lifecycle, teardown_lifecycle);

/* fail/explicit: perfd_fail from run, with characters JSON must escape,
 * valid UTF-8 and one invalid byte. */
static void run_fail(perfd_state *st)
{
    int n = 0;
    while (perfd_keep_running(st)) {
        if (++n == 3)
            perfd_fail(st, "boom \"quoted\" back\\slash\nnew line\ttab \x01 ctrl caf\xc3\xa9 bad\xff, %d", n);
    }
}
PERFD_BENCHMARK("fail/explicit", NULL, run_fail, NULL);

/* fail/setup: perfd_fail(NULL, ...) from setup; run must not be called and
 * teardown must still be called. */
static int setup_fail_teardowns;
static void report_setup_fail(void)
{
    fprintf(stderr, "test-setup-fail: teardown_calls=%d\n", setup_fail_teardowns);
}
static void *setup_fails(void)
{
    atexit(report_setup_fail);
    perfd_fail(NULL, "setup could not find its input");
    return NULL;
}
static void run_never(perfd_state *st)
{
    fprintf(stderr, "test-setup-fail: run was called\n");
    while (perfd_keep_running(st)) {
    }
}
static void teardown_after_failed_setup(void *ctx)
{
    (void)ctx;
    setup_fail_teardowns++;
}
PERFD_BENCHMARK("fail/setup", setup_fails, run_never, teardown_after_failed_setup);

/* fail/early-return: leaves the loop before it is done; the harness must
 * notice instead of timing a partial batch. */
static void run_early_return(perfd_state *st)
{
    int n = 0;
    while (perfd_keep_running(st)) {
        if (++n == 2)
            return;
    }
}
PERFD_BENCHMARK("fail/early-return", NULL, run_early_return, NULL);

/* A name with characters that need JSON escaping. */
static void run_quoted(perfd_state *st)
{
    double x = 1.0;
    while (perfd_keep_running(st)) {
        x = x * 1.0000001 + 1e-9;
        perfd_do_not_optimize(x);
    }
}
PERFD_BENCHMARK("odd/name \"with quotes\" and \\backslash", NULL, run_quoted, NULL);

/* memory/touch: a larger op (~microseconds) so per-op times vary in scale. */
static void *setup_buffer(void)
{
    return calloc(1 << 16, 1);
}
static void run_touch(perfd_state *st)
{
    unsigned char *buf = perfd_context(st);
    while (perfd_keep_running(st)) {
        for (size_t i = 0; i < (1u << 16); i += 64)
            buf[i]++;
        perfd_clobber_memory();
    }
}
PERFD_BENCHMARK("memory/touch", setup_buffer, run_touch, free);

/* profile/nested: run_nested -> profile_nested_outer -> profile_nested_inner,
 * none inlined, so the --profile stacks have a known shape. External linkage
 * keeps GCC from renaming them (.constprop, .isra). */
uint64_t profile_nested_inner(uint64_t x);
uint64_t profile_nested_outer(uint64_t x);

__attribute__((noinline)) uint64_t profile_nested_inner(uint64_t x)
{
    for (int i = 0; i < 512; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        perfd_do_not_optimize(x);
    }
    return x;
}

__attribute__((noinline)) uint64_t profile_nested_outer(uint64_t x)
{
    uint64_t y = profile_nested_inner(x);
    perfd_do_not_optimize(y);
    return y + 1;
}

static void run_nested(perfd_state *st)
{
    uint64_t x = 88172645463325252u;
    while (perfd_keep_running(st)) {
        x = profile_nested_outer(x);
        perfd_do_not_optimize(x);
    }
}
PERFD_BENCHMARK("profile/nested", NULL, run_nested, NULL);

/* sleep/nanosleep-200us: ~200 us asleep and a little work per iteration, so
 * its samples_cpu_ns are a small fraction of its samples_ns. About ten
 * iterations per batch at --min-time 0.002. */
static void run_sleep(perfd_state *st)
{
    uint64_t x = 1;
    while (perfd_keep_running(st)) {
        struct timespec pause = {0, 200000};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
            /* interrupted (e.g. by SIGPROF): sleep the rest */
        }
        for (int i = 0; i < 256; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            perfd_do_not_optimize(x);
        }
    }
}
PERFD_BENCHMARK("sleep/nanosleep-200us", NULL, run_sleep, NULL);
