/*
 * perfd_harness.c - registration, command line, calibration, timing,
 * hardware counters and JSON / table output for perfd benchmark binaries.
 *
 * Provides main(); link it with the benchmark sources. C11 + GNU attributes,
 * libc and Linux syscalls only.
 */
#define _GNU_SOURCE

#include "perfd_harness.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <float.h>
#include <math.h> /* macros only (isfinite, NAN): the harness must link without -lm */
#include <regex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef PERFD_MAX_BENCHMARKS
#define PERFD_MAX_BENCHMARKS 1024
#endif

#define PROG "perfd-harness"
#define MAX_SAMPLES 1000000ULL
#define MAX_WARMUP 1000000ULL
#define MAX_MIN_TIME_S 3600.0
/* Calibration stops growing the batch here even if it is still too short
 * (e.g. a loop body the compiler removed). */
#define MAX_BATCH_ITERATIONS 10000000000ULL
#define MESSAGE_CAP 1024

/* ------------------------------------------------------------------------ */
/* Registration                                                             */

typedef struct {
    const char *name;
    perfd_setup_fn setup;
    perfd_run_fn run;
    perfd_teardown_fn teardown;
    const char *file;
    int line;
} bench_entry;

static bench_entry registry[PERFD_MAX_BENCHMARKS];
static size_t registry_count;
static size_t registry_dropped;              /* registrations beyond the table */
static char registry_error[MESSAGE_CAP];     /* first invalid registration */

void perfd_register(const char *name, perfd_setup_fn setup, perfd_run_fn run,
                    perfd_teardown_fn teardown, const char *file, int line)
{
    /* Constructors cannot report errors usefully; main() does it (names are
     * checked there too). */
    if (registry_error[0] == '\0') {
        if (name == NULL || name[0] == '\0')
            snprintf(registry_error, sizeof registry_error,
                     "%s:%d: benchmark name is empty", file, line);
        else if (run == NULL)
            snprintf(registry_error, sizeof registry_error,
                     "%s:%d: benchmark '%s' has no run function", file, line, name);
    }
    if (registry_count >= PERFD_MAX_BENCHMARKS) {
        registry_dropped++;
        return;
    }
    registry[registry_count++] = (bench_entry){name, setup, run, teardown, file, line};
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

typedef struct {
    bool list;
    bool json;
    bool counters;
    const char *filter;
    uint64_t warmup;
    uint64_t samples;
    double min_time_s;
    long cpu;                 /* -1: not pinned */
} options;

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: <benchmark-binary> [options]\n"
            "\n"
            "Runs the benchmarks registered with PERFD_BENCHMARK (perfd harness %s,\n"
            "JSON format %s).\n"
            "\n"
            "options:\n"
            "  --list            print the selected benchmark names, one per line\n"
            "  --filter REGEX    select benchmarks whose name matches REGEX (POSIX ERE)\n"
            "  --warmup N        warmup samples per benchmark, discarded (default 1)\n"
            "  --samples N       timed samples per benchmark (default 10)\n"
            "  --min-time S      minimum seconds per sample (default 0.01)\n"
            "  --cpu N           pin the process to CPU N before running\n"
            "  --counters        collect hardware counters (perf_event_open)\n"
            "  --json            print machine-readable JSON instead of a table\n"
            "  --help            print this help\n"
            "  --version         print the harness and format versions\n"
            "\n"
            "exit status: number of failed benchmarks (at most 99);\n"
            "             %d for a usage error or when nothing could be run.\n",
            PERFD_HARNESS_VERSION, PERFD_FORMAT_VERSION, PERFD_EXIT_USAGE);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n" PROG ": try --help\n");
    va_end(ap);
    return PERFD_EXIT_USAGE;
}

static bool parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;      /* rejects "", "-1", " 1", "+1" */
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *text, double *out)
{
    if (text[0] == '\0' || text[0] == ' ' || text[0] == '-')
        return false;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0.0 || v > MAX_MIN_TIME_S)
        return false;
    *out = v;
    return true;
}

/* Returns 0 on success, PERFD_EXIT_USAGE after printing the error, or -1
 * when --help / --version was handled (exit 0). */
static int parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){.warmup = 1, .samples = 10, .min_time_s = 0.01, .cpu = -1};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        char name[32];
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq != NULL) {
            size_t n = (size_t)(eq - arg);
            if (n >= sizeof name)
                return usage_error("unknown option '%s'", arg);
            memcpy(name, arg, n);
            name[n] = '\0';
            value = eq + 1;
        } else {
            if (strlen(arg) >= sizeof name)
                return usage_error("unknown option '%s'", arg);
            strcpy(name, arg);
        }

        bool is_flag = true;
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            print_usage(stdout);
            return -1;
        } else if (strcmp(name, "--version") == 0) {
            printf("perfd-harness %s (json format %s)\n", PERFD_HARNESS_VERSION,
                   PERFD_FORMAT_VERSION);
            return -1;
        } else if (strcmp(name, "--list") == 0) {
            opt->list = true;
        } else if (strcmp(name, "--json") == 0) {
            opt->json = true;
        } else if (strcmp(name, "--counters") == 0) {
            opt->counters = true;
        } else {
            is_flag = false;
        }
        if (is_flag) {
            if (value != NULL)
                return usage_error("option %s takes no value", name);
            continue;
        }

        bool known = strcmp(name, "--filter") == 0 || strcmp(name, "--warmup") == 0 ||
                     strcmp(name, "--samples") == 0 || strcmp(name, "--min-time") == 0 ||
                     strcmp(name, "--cpu") == 0;
        if (!known)
            return usage_error("unknown option '%s'", arg);
        if (value == NULL) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", name);
            value = argv[++i];
        }

        if (strcmp(name, "--filter") == 0) {
            opt->filter = value;
        } else if (strcmp(name, "--warmup") == 0) {
            if (!parse_u64(value, MAX_WARMUP, &opt->warmup))
                return usage_error("--warmup: expected an integer 0..%llu, got '%s'",
                                   MAX_WARMUP, value);
        } else if (strcmp(name, "--samples") == 0) {
            if (!parse_u64(value, MAX_SAMPLES, &opt->samples) || opt->samples == 0)
                return usage_error("--samples: expected an integer 1..%llu, got '%s'",
                                   MAX_SAMPLES, value);
        } else if (strcmp(name, "--min-time") == 0) {
            if (!parse_seconds(value, &opt->min_time_s))
                return usage_error("--min-time: expected seconds between 0 and %g, got '%s'",
                                   MAX_MIN_TIME_S, value);
        } else {
            uint64_t cpu = 0;
            if (!parse_u64(value, CPU_SETSIZE - 1, &cpu))
                return usage_error("--cpu: expected a CPU number 0..%d, got '%s'",
                                   CPU_SETSIZE - 1, value);
            opt->cpu = (long)cpu;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static int64_t timespec_diff_ns(const struct timespec *a, const struct timespec *b)
{
    return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (int64_t)(b->tv_nsec - a->tv_nsec);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of the finite values; NAN when there are none. Does not modify v. */
static double median_of(const double *v, size_t n)
{
    double *copy = malloc((n ? n : 1) * sizeof *copy);
    if (copy == NULL)
        return NAN;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            copy[m++] = v[i];
    double result = NAN;
    if (m > 0) {
        qsort(copy, m, sizeof *copy, compare_double);
        result = (m % 2) ? copy[m / 2] : (copy[m / 2 - 1] + copy[m / 2]) / 2.0;
    }
    free(copy);
    return result;
}

/* Reads the first line of a small text file without the newline; false if
 * the file is missing or empty. */
static bool read_first_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    buf[strcspn(buf, "\n")] = '\0';
    return buf[0] != '\0';
}

static bool read_cpu_model(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        if (*v != '\0') {
            snprintf(buf, cap, "%s", v);
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                              */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid. */
static size_t utf8_sequence_length(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;          /* also stops at the terminating NUL */
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;              /* overlong, out of range or a surrogate */
    return len;
}

/* Writes s as a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void json_string(FILE *out, const char *s)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        switch (c) {
        case '"': fputs("\\\"", out); p++; continue;
        case '\\': fputs("\\\\", out); p++; continue;
        case '\b': fputs("\\b", out); p++; continue;
        case '\f': fputs("\\f", out); p++; continue;
        case '\n': fputs("\\n", out); p++; continue;
        case '\r': fputs("\\r", out); p++; continue;
        case '\t': fputs("\\t", out); p++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            p++;
            continue;
        }
        size_t len = utf8_sequence_length(p);
        if (len == 0) {
            fputs("\\ufffd", out);
            p++;
            continue;
        }
        fwrite(p, 1, len, out);
        p += len;
    }
    fputc('"', out);
}

/* Writes s for a human on one line: control characters and invalid UTF-8
 * bytes are shown as C escapes, so the output stays valid UTF-8 text. */
static void print_plain(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        size_t len = utf8_sequence_length(p);
        if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f || len == 0)
            fprintf(out, "\\x%02x", *p);
        else {
            fwrite(p, 1, len, out);
            p += len;
            continue;
        }
        p++;
    }
}

/* Shortest of %.15g / %.17g that reads back exactly; null when not finite. */
static void json_double(FILE *out, double v)
{
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    /* Make integral values read as numbers with a fraction in every reader. */
    if (strpbrk(buf, ".eEn") == NULL)
        strcat(buf, ".0");
    fputs(buf, out);
}

/* ------------------------------------------------------------------------ */
/* Hardware counters                                                        */

enum { COUNTER_COUNT = 4 };

typedef struct {
    const char *name;          /* JSON key */
    uint32_t type;
    uint64_t config;
    int fd;                    /* -1 when unavailable */
    char reason[256];          /* why it is unavailable */
    uint64_t enabled_ns;       /* time_enabled / time_running at the last read; */
    uint64_t running_ns;       /* RESET does not clear them, so reads use deltas */
} counter;

static counter counters[COUNTER_COUNT] = {
    {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, -1, "", 0, 0},
    {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, -1, "", 0, 0},
    {"cache_misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES, -1, "", 0, 0},
    {"branch_misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES, -1, "", 0, 0},
};
static bool counters_requested;
/* Test hook: PERFD_HARNESS_TEST_SOFTWARE_COUNTERS=1 substitutes software
 * events so the "available" path can be tested on machines without a PMU.
 * It is flagged in the JSON context so it can never pass for real data. */
static bool counters_substituted;

static void counters_open(void)
{
    counters_requested = true;
    const char *fake = getenv("PERFD_HARNESS_TEST_SOFTWARE_COUNTERS");
    if (fake != NULL && strcmp(fake, "1") == 0) {
        static const uint64_t substitutes[COUNTER_COUNT] = {
            PERF_COUNT_SW_TASK_CLOCK, PERF_COUNT_SW_CPU_CLOCK,
            PERF_COUNT_SW_PAGE_FAULTS, PERF_COUNT_SW_CONTEXT_SWITCHES,
        };
        counters_substituted = true;
        for (int i = 0; i < COUNTER_COUNT; i++) {
            counters[i].type = PERF_TYPE_SOFTWARE;
            counters[i].config = substitutes[i];
        }
        fprintf(stderr, PROG ": warning: PERFD_HARNESS_TEST_SOFTWARE_COUNTERS=1: "
                        "counters are software substitutes, for testing only\n");
    }
    for (int i = 0; i < COUNTER_COUNT; i++) {
        struct perf_event_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = counters[i].type;
        attr.config = counters[i].config;
        attr.disabled = 1;
        attr.exclude_kernel = 1;
        attr.exclude_hv = 1;
        attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
        long fd = syscall(SYS_perf_event_open, &attr, 0 /* this thread */, -1 /* any cpu */,
                          -1 /* no group */, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            snprintf(counters[i].reason, sizeof counters[i].reason,
                     "perf_event_open: %s (errno %d)", strerror(err), err);
        } else {
            counters[i].fd = (int)fd;
        }
    }
}

static void counters_close(void)
{
    for (int i = 0; i < COUNTER_COUNT; i++) {
        if (counters[i].fd >= 0) {
            close(counters[i].fd);
            counters[i].fd = -1;
        }
    }
}

static size_t counters_available(void)
{
    size_t n = 0;
    for (int i = 0; i < COUNTER_COUNT; i++)
        n += counters[i].fd >= 0;
    return n;
}

static void counters_start(void)
{
    for (int i = 0; i < COUNTER_COUNT; i++) {
        if (counters[i].fd >= 0) {
            ioctl(counters[i].fd, PERF_EVENT_IOC_RESET, 0);
            ioctl(counters[i].fd, PERF_EVENT_IOC_ENABLE, 0);
        }
    }
}

static void counters_stop(void)
{
    for (int i = 0; i < COUNTER_COUNT; i++)
        if (counters[i].fd >= 0)
            ioctl(counters[i].fd, PERF_EVENT_IOC_DISABLE, 0);
}

/* Counter value for the last batch (the count is reset when a batch starts),
 * scaled up if the kernel multiplexed the counter; NAN if it could not be
 * read or never ran. */
static double counter_read(counter *c)
{
    uint64_t v[3];   /* value, time_enabled, time_running (cumulative) */
    ssize_t n = read(c->fd, v, sizeof v);
    if (n != (ssize_t)sizeof v)
        return NAN;
    uint64_t enabled = v[1] - c->enabled_ns;
    uint64_t running = v[2] - c->running_ns;
    c->enabled_ns = v[1];
    c->running_ns = v[2];
    if (running == 0)
        return NAN;
    double value = (double)v[0];
    if (running < enabled)
        value *= (double)enabled / (double)running;
    return value;
}

/* ------------------------------------------------------------------------ */
/* Running one batch                                                        */

enum batch_phase { PHASE_NOT_STARTED, PHASE_RUNNING, PHASE_DONE };

struct perfd_batch_ {
    void *context;
    uint64_t iterations;
    enum batch_phase phase;
    bool count;                 /* collect counters for this batch */
    struct timespec start, stop;
    bool failed;
    char message[MESSAGE_CAP];
};

/* The benchmark being run; lets perfd_fail(NULL, ...) work from setup. */
static perfd_state *current_state;

bool perfd_keep_running_slow_(perfd_state *st)
{
    struct perfd_batch_ *b = st->perfd_batch_;
    if (b->phase == PHASE_NOT_STARTED && !b->failed) {
        b->phase = PHASE_RUNNING;
        st->perfd_remaining_ = b->iterations - 1;   /* this call is iteration 1 */
        if (b->count)
            counters_start();
        clock_gettime(CLOCK_MONOTONIC, &b->start);
        return true;
    }
    if (b->phase == PHASE_RUNNING) {
        clock_gettime(CLOCK_MONOTONIC, &b->stop);
        if (b->count)
            counters_stop();
        b->phase = PHASE_DONE;
    }
    return false;
}

void *perfd_context(const perfd_state *st)
{
    return st->perfd_batch_->context;
}

void perfd_fail(perfd_state *st, const char *fmt, ...)
{
    if (st == NULL)
        st = current_state;
    if (st == NULL) {
        fprintf(stderr, PROG ": warning: perfd_fail() called outside a benchmark\n");
        return;
    }
    struct perfd_batch_ *b = st->perfd_batch_;
    if (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->message, sizeof b->message, fmt, ap);
        va_end(ap);
        if (b->message[0] == '\0')
            snprintf(b->message, sizeof b->message, "perfd_fail() without a message");
        b->failed = true;
    }
    st->perfd_remaining_ = 0;
}

static void fail_internal(perfd_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_internal(perfd_state *st, const char *fmt, ...)
{
    struct perfd_batch_ *b = st->perfd_batch_;
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->message, sizeof b->message, fmt, ap);
    va_end(ap);
    b->failed = true;
}

/* Runs one batch of `iterations`; returns its duration in ns, or -1 if the
 * benchmark failed (message in the batch). */
static int64_t run_batch(const bench_entry *e, perfd_state *st, uint64_t iterations, bool count)
{
    struct perfd_batch_ *b = st->perfd_batch_;
    b->iterations = iterations;
    b->phase = PHASE_NOT_STARTED;
    b->count = count;
    st->perfd_remaining_ = 0;
    e->run(st);
    if (b->phase == PHASE_RUNNING && b->count)
        counters_stop();     /* run returned early (failure); leave nothing enabled */
    if (b->failed)
        return -1;
    if (b->phase == PHASE_NOT_STARTED) {
        fail_internal(st, "run function returned without calling perfd_keep_running()");
        return -1;
    }
    if (b->phase == PHASE_RUNNING) {
        fail_internal(st,
                      "run function returned before perfd_keep_running() returned false "
                      "(%" PRIu64 " of %" PRIu64 " iterations done)",
                      iterations - st->perfd_remaining_, iterations);
        return -1;
    }
    int64_t ns = timespec_diff_ns(&b->start, &b->stop);
    return ns < 0 ? 0 : ns;
}

/* Grows the batch until one batch lasts at least min_ns; returns the size,
 * or 0 on failure. */
/* Square root by Newton's method, so the harness needs no libm (-lm). */
static double sqrt_nonneg(double x)
{
    if (x <= 0.0)
        return 0.0;
    double r = x > 1.0 ? x : 1.0;
    for (int i = 0; i < 200; i++) {
        double next = 0.5 * (r + x / r);
        if (next >= r)
            break;
        r = next;
    }
    return r;
}

static uint64_t calibrate(const bench_entry *e, perfd_state *st, double min_ns)
{
    uint64_t iterations = 1;
    for (;;) {
        int64_t ns = run_batch(e, st, iterations, false);
        if (ns < 0)
            return 0;
        if ((double)ns >= min_ns || iterations >= MAX_BATCH_ITERATIONS)
            return iterations;
        double grow = 10.0;
        if ((double)ns * 10.0 > min_ns)
            grow = 1.25 * min_ns / (double)ns;   /* aim a little above the target */
        double next = (double)(uint64_t)((double)iterations * grow) + 1.0;
        if (next > (double)MAX_BATCH_ITERATIONS)
            next = (double)MAX_BATCH_ITERATIONS;
        iterations = (uint64_t)next > iterations ? (uint64_t)next : iterations + 1;
    }
}

typedef struct {
    bool ok;
    const char *error;
    uint64_t iterations;
    size_t samples;            /* number filled */
    double *samples_ns;        /* per op */
    double *counter_values[COUNTER_COUNT];   /* per op per sample, NAN = unknown */
} bench_result;

static void result_free(bench_result *r)
{
    free(r->samples_ns);
    for (int i = 0; i < COUNTER_COUNT; i++)
        free(r->counter_values[i]);
}

static void run_benchmark(const bench_entry *e, const options *opt,
                          struct perfd_batch_ *batch, bench_result *r)
{
    perfd_state st = {0, batch};
    memset(batch, 0, sizeof *batch);
    *r = (bench_result){0};
    current_state = &st;

    r->samples_ns = calloc(opt->samples, sizeof *r->samples_ns);
    bool alloc_ok = r->samples_ns != NULL;
    for (int i = 0; i < COUNTER_COUNT && alloc_ok; i++) {
        if (counters[i].fd >= 0) {
            r->counter_values[i] = calloc(opt->samples, sizeof(double));
            alloc_ok = r->counter_values[i] != NULL;
        }
    }
    if (!alloc_ok) {
        fail_internal(&st, "out of memory for %" PRIu64 " samples", opt->samples);
    } else {
        batch->context = e->setup ? e->setup() : NULL;
        if (!batch->failed) {
            double min_ns = opt->min_time_s * 1e9;
            uint64_t iterations = calibrate(e, &st, min_ns);
            bool ok = iterations > 0;
            for (uint64_t w = 0; ok && w < opt->warmup; w++)
                ok = run_batch(e, &st, iterations, false) >= 0;
            bool count = counters_available() > 0;
            for (uint64_t s = 0; ok && s < opt->samples; s++) {
                int64_t ns = run_batch(e, &st, iterations, count);
                ok = ns >= 0;
                if (!ok)
                    break;
                r->samples_ns[s] = (double)ns / (double)iterations;
                for (int i = 0; i < COUNTER_COUNT; i++)
                    if (r->counter_values[i] != NULL)
                        r->counter_values[i][s] = counter_read(&counters[i]) / (double)iterations;
                r->samples = (size_t)s + 1;
            }
            r->iterations = iterations;
        }
        if (e->teardown)
            e->teardown(batch->context);
    }
    current_state = NULL;
    r->ok = !batch->failed;
    r->error = batch->failed ? batch->message : NULL;
}

/* ------------------------------------------------------------------------ */
/* Context and reporting                                                    */

typedef struct {
    char host[256];
    long pid;
    char date[32];
    bool have_cpu_model;
    char cpu_model[256];
    bool have_governor;
    char governor[64];
    long pinned_cpu;           /* -1: not pinned */
    long resolution_ns;
    double overhead_ns;
} run_context;

/* Cost of one clock_gettime call as seen by a timed region: median over
 * rounds of back-to-back calls. */
static double measure_timer_overhead_ns(void)
{
    enum { ROUNDS = 201, CALLS = 32 };
    double per_call[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        struct timespec t0, t, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < CALLS; i++)
            clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        per_call[r] = (double)timespec_diff_ns(&t0, &t1) / (CALLS + 1);
    }
    return median_of(per_call, ROUNDS);
}

static void collect_context(run_context *c, const options *opt)
{
    memset(c, 0, sizeof *c);
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    c->pid = (long)getpid();
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(c->date, sizeof c->date, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(c->date, sizeof c->date, "1970-01-01T00:00:00Z");
    c->have_cpu_model = read_cpu_model(c->cpu_model, sizeof c->cpu_model);
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/cpufreq/scaling_governor",
             opt->cpu >= 0 ? opt->cpu : 0L);
    c->have_governor = read_first_line(path, c->governor, sizeof c->governor);
    c->pinned_cpu = opt->cpu;
    struct timespec res;
    c->resolution_ns = clock_getres(CLOCK_MONOTONIC, &res) == 0
                           ? (long)(res.tv_sec * 1000000000L + res.tv_nsec)
                           : -1;
    c->overhead_ns = measure_timer_overhead_ns();
}

static void json_begin(FILE *out, const run_context *c, const options *opt)
{
    fprintf(out, "{\n  \"format\": \"perfd-harness\",\n  \"version\": ");
    json_string(out, PERFD_FORMAT_VERSION);
    fprintf(out, ",\n  \"context\": {\n    \"harness_version\": ");
    json_string(out, PERFD_HARNESS_VERSION);
    fprintf(out, ",\n    \"host\": ");
    json_string(out, c->host);
    fprintf(out, ",\n    \"pid\": %ld,\n    \"date\": ", c->pid);
    json_string(out, c->date);
    fprintf(out, ",\n    \"cpu_model\": ");
    json_string(out, c->have_cpu_model ? c->cpu_model : NULL);
    fprintf(out, ",\n    \"governor\": ");
    json_string(out, c->have_governor ? c->governor : NULL);
    if (c->pinned_cpu >= 0)
        fprintf(out, ",\n    \"pinned_cpu\": %ld", c->pinned_cpu);
    else
        fprintf(out, ",\n    \"pinned_cpu\": null");
    fprintf(out, ",\n    \"timer\": {\"clock\": \"CLOCK_MONOTONIC\", \"resolution_ns\": ");
    if (c->resolution_ns >= 0)
        fprintf(out, "%ld", c->resolution_ns);
    else
        fputs("null", out);
    fprintf(out, ", \"overhead_ns\": ");
    json_double(out, c->overhead_ns);
    fprintf(out, "},\n    \"counters\": {\"requested\": %s, \"available\": [",
            counters_requested ? "true" : "false");
    bool first = true;
    for (int i = 0; i < COUNTER_COUNT; i++) {
        if (counters[i].fd >= 0) {
            fputs(first ? "" : ", ", out);
            json_string(out, counters[i].name);
            first = false;
        }
    }
    fprintf(out, "], \"unavailable\": {");
    first = true;
    for (int i = 0; i < COUNTER_COUNT; i++) {
        if (counters_requested && counters[i].fd < 0) {
            fputs(first ? "" : ", ", out);
            json_string(out, counters[i].name);
            fputs(": ", out);
            json_string(out, counters[i].reason);
            first = false;
        }
    }
    fputs("}", out);
    if (counters_substituted)
        fputs(", \"test_software_substitutes\": true", out);
    fprintf(out, "},\n    \"settings\": {\"warmup\": %" PRIu64 ", \"samples\": %" PRIu64
                 ", \"min_time_s\": ",
            opt->warmup, opt->samples);
    json_double(out, opt->min_time_s);
    fprintf(out, "}\n  },\n  \"benchmarks\": [");
}

static void json_benchmark(FILE *out, const bench_entry *e, const bench_result *r, bool first)
{
    fprintf(out, "%s\n    {\"name\": ", first ? "" : ",");
    json_string(out, e->name);
    fprintf(out, ", \"status\": %s, \"error\": ", r->ok ? "\"ok\"" : "\"error\"");
    json_string(out, r->ok ? NULL : r->error);
    if (r->ok)
        fprintf(out, ",\n     \"iterations_per_sample\": %" PRIu64, r->iterations);
    else
        fprintf(out, ",\n     \"iterations_per_sample\": null");
    fprintf(out, ",\n     \"samples_ns\": [");
    size_t n = r->ok ? r->samples : 0;
    for (size_t s = 0; s < n; s++) {
        fputs(s ? ", " : "", out);
        json_double(out, r->samples_ns[s]);
    }
    fprintf(out, "],\n     \"counters\": {");
    bool first_counter = true;
    for (int i = 0; i < COUNTER_COUNT && r->ok; i++) {
        if (r->counter_values[i] == NULL)
            continue;
        fprintf(out, "%s\n       ", first_counter ? "" : ",");
        json_string(out, counters[i].name);
        fputs(": [", out);
        for (size_t s = 0; s < n; s++) {
            fputs(s ? ", " : "", out);
            json_double(out, r->counter_values[i][s]);
        }
        fputs("]", out);
        first_counter = false;
    }
    fprintf(out, "}}");
}

static void json_end(FILE *out)
{
    fprintf(out, "\n  ]\n}\n");
}

static int name_width;

static void table_begin(FILE *out, const run_context *c, const options *opt)
{
    fprintf(out, "# perfd-harness %s on %s, cpu: %s, governor: %s, pinned cpu: ",
            PERFD_HARNESS_VERSION, c->host, c->have_cpu_model ? c->cpu_model : "unknown",
            c->have_governor ? c->governor : "unknown");
    if (c->pinned_cpu >= 0)
        fprintf(out, "%ld\n", c->pinned_cpu);
    else
        fprintf(out, "none\n");
    fprintf(out, "# timer CLOCK_MONOTONIC resolution %ld ns, overhead %.1f ns; "
                 "warmup %" PRIu64 ", samples %" PRIu64 ", min-time %g s\n",
            c->resolution_ns, c->overhead_ns, opt->warmup, opt->samples, opt->min_time_s);
    if (counters_substituted)
        fprintf(out, "# counters are software substitutes (PERFD_HARNESS_TEST_SOFTWARE_COUNTERS)\n");
    for (int i = 0; i < COUNTER_COUNT && counters_requested; i++)
        if (counters[i].fd < 0)
            fprintf(out, "# counter %s unavailable: %s\n", counters[i].name, counters[i].reason);
    fprintf(out, "%-*s %12s %14s %14s %14s %7s", name_width, "benchmark", "iterations",
            "median ns/op", "min ns/op", "max ns/op", "cv%");
    for (int i = 0; i < COUNTER_COUNT; i++)
        if (counters[i].fd >= 0)
            fprintf(out, " %14s", counters[i].name);
    fputc('\n', out);
}

static void table_row(FILE *out, const bench_entry *e, const bench_result *r)
{
    if (!r->ok) {
        fprintf(out, "%-*s ERROR: ", name_width, e->name);
        print_plain(out, r->error);
        fputc('\n', out);
        return;
    }
    double lo = DBL_MAX, hi = -DBL_MAX, sum = 0.0, sq = 0.0;
    for (size_t s = 0; s < r->samples; s++) {
        double v = r->samples_ns[s];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    double mean = sum / (double)r->samples;
    for (size_t s = 0; s < r->samples; s++)
        sq += (r->samples_ns[s] - mean) * (r->samples_ns[s] - mean);
    double cv = r->samples > 1 && mean > 0
                    ? 100.0 * sqrt_nonneg(sq / (double)(r->samples - 1)) / mean
                    : 0.0;
    fprintf(out, "%-*s %12" PRIu64 " %14.3f %14.3f %14.3f %7.2f", name_width, e->name,
            r->iterations, median_of(r->samples_ns, r->samples), lo, hi, cv);
    for (int i = 0; i < COUNTER_COUNT; i++)
        if (r->counter_values[i] != NULL)
            fprintf(out, " %14.3f", median_of(r->counter_values[i], r->samples));
    fputc('\n', out);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */

static int check_registry(void)
{
    if (registry_error[0] != '\0') {
        fprintf(stderr, PROG ": error: invalid benchmark registration: %s\n", registry_error);
        return PERFD_EXIT_USAGE;
    }
    if (registry_dropped > 0) {
        fprintf(stderr,
                PROG ": error: %zu benchmarks registered, the table holds %d "
                     "(rebuild perfd_harness.c with -DPERFD_MAX_BENCHMARKS=N)\n",
                registry_count + registry_dropped, PERFD_MAX_BENCHMARKS);
        return PERFD_EXIT_USAGE;
    }
    for (size_t i = 0; i < registry_count; i++) {
        const bench_entry *e = &registry[i];
        /* --list prints one name per line and perfd matches names exactly,
         * so a name must be one line of valid UTF-8. */
        for (const unsigned char *p = (const unsigned char *)e->name; *p != '\0';) {
            size_t len = utf8_sequence_length(p);
            if (*p < 0x20 || *p == 0x7f || len == 0) {
                fprintf(stderr,
                        PROG ": error: invalid benchmark registration: %s:%d: benchmark name "
                             "contains a control character or invalid UTF-8: ",
                        e->file, e->line);
                print_plain(stderr, e->name);
                fputc('\n', stderr);
                return PERFD_EXIT_USAGE;
            }
            p += len;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(registry[i].name, registry[j].name) == 0) {
                fprintf(stderr,
                        PROG ": error: benchmark '%s' registered twice (%s:%d and %s:%d)\n",
                        registry[i].name, registry[j].file, registry[j].line,
                        registry[i].file, registry[i].line);
                return PERFD_EXIT_USAGE;
            }
        }
    }
    return 0;
}

/* Marks selected[i] for the benchmarks matching the filter; returns the
 * count, or -1 after reporting a bad regex. */
static long select_benchmarks(const char *filter, bool *selected)
{
    regex_t re;
    if (filter != NULL) {
        int rc = regcomp(&re, filter, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &re, msg, sizeof msg);
            usage_error("--filter: invalid regular expression '%s': %s", filter, msg);
            return -1;
        }
    }
    long count = 0;
    for (size_t i = 0; i < registry_count; i++) {
        selected[i] = filter == NULL || regexec(&re, registry[i].name, 0, NULL, 0) == 0;
        count += selected[i];
    }
    if (filter != NULL)
        regfree(&re);
    return count;
}

static int finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, PROG ": error: writing the results to stdout failed: %s\n",
                strerror(errno));
        return PERFD_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    rc = check_registry();
    if (rc != 0)
        return rc;

    bool selected[PERFD_MAX_BENCHMARKS];
    long count = select_benchmarks(opt.filter, selected);
    if (count < 0)
        return PERFD_EXIT_USAGE;
    if (count == 0) {
        if (registry_count == 0)
            return usage_error("no benchmarks are registered in this binary");
        return usage_error("no benchmark matches --filter '%s'", opt.filter ? opt.filter : "");
    }

    if (opt.list) {
        for (size_t i = 0; i < registry_count; i++)
            if (selected[i])
                printf("%s\n", registry[i].name);
        return finish_output();
    }

    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            int err = errno;
            return usage_error("--cpu %ld: sched_setaffinity failed: %s (errno %d)", opt.cpu,
                               strerror(err), err);
        }
    }
    if (opt.counters)
        counters_open();

    run_context ctx;
    collect_context(&ctx, &opt);
    name_width = 9;
    for (size_t i = 0; i < registry_count; i++) {
        int len = (int)strlen(registry[i].name);
        if (selected[i] && len > name_width)
            name_width = len;
    }
    if (opt.json)
        json_begin(stdout, &ctx, &opt);
    else
        table_begin(stdout, &ctx, &opt);
    fflush(stdout);

    static struct perfd_batch_ batch;
    int failed = 0;
    bool first = true;
    for (size_t i = 0; i < registry_count; i++) {
        if (!selected[i])
            continue;
        bench_result r;
        run_benchmark(&registry[i], &opt, &batch, &r);
        if (!r.ok) {
            failed++;
            fprintf(stderr, PROG ": benchmark '%s' failed: ", registry[i].name);
            print_plain(stderr, r.error);
            fputc('\n', stderr);
        }
        if (opt.json)
            json_benchmark(stdout, &registry[i], &r, first);
        else
            table_row(stdout, &registry[i], &r);
        fflush(stdout);
        first = false;
        result_free(&r);
    }
    if (opt.json)
        json_end(stdout);
    counters_close();
    rc = finish_output();
    if (rc != 0)
        return rc;
    return failed > 99 ? 99 : failed;
}
