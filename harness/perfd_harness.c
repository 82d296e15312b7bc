/*
 * perfd_harness.c - registration, command line, calibration, timing,
 * hardware counters, a sampling profiler (--profile) and JSON / table output
 * for perfd benchmark binaries.
 *
 * Provides main(); link it with the benchmark sources. C11 + GNU attributes,
 * libc and Linux syscalls only.
 */
#define _GNU_SOURCE

#include "perfd_harness.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <float.h>
#include <math.h> /* macros only (isfinite, NAN): the harness must link without -lm */
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef PERFD_MAX_BENCHMARKS
#define PERFD_MAX_BENCHMARKS 1024
#endif

#define PROG "perfd-harness"
#define MAX_SAMPLES 1000000ULL
#define MAX_WARMUP 1000000ULL
#define MAX_MIN_TIME_S 3600.0
#define PROFILE_DEFAULT_HZ 999
#define PROFILE_MAX_HZ 10000
/* Calibration stops growing the batch here even if it is still too short
 * (e.g. a loop body the compiler removed). */
#define MAX_BATCH_ITERATIONS 10000000000ULL
#define MESSAGE_CAP 1024
/* The table notes a benchmark whose thread was off its CPU for at least this
 * fraction of some sample's wall time. */
#define OFF_CPU_NOTE_FRACTION 0.01

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
    const char *profile;      /* --profile FILE, or NULL */
    uint64_t profile_hz;
    bool profile_hz_given;
    int turn_in, turn_out;    /* --turns IN,OUT: lock-step with a partner; -1: off */
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
            "  --profile FILE    sample the stacks of the timed samples (SIGPROF, frame\n"
            "                    pointers) and write folded stacks to FILE; needs a\n"
            "                    --filter that selects exactly one benchmark\n"
            "  --profile-hz N    sampling rate of --profile in CPU-time Hz (default %d)\n"
            "  --turns IN,OUT    take turns with a partner process: read one byte from\n"
            "                    fd IN before each timed sample (and before setup and\n"
            "                    teardown), write one byte to fd OUT after it\n"
            "  --json            print machine-readable JSON instead of a table\n"
            "  --help            print this help\n"
            "  --version         print the harness and format versions\n"
            "\n"
            "exit status: number of failed benchmarks (at most 99);\n"
            "             %d for a usage error or when nothing could be run.\n",
            PERFD_HARNESS_VERSION, PERFD_FORMAT_VERSION, PROFILE_DEFAULT_HZ, PERFD_EXIT_USAGE);
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

/* "IN,OUT": two distinct descriptors that are open in this process. */
static bool parse_fd_pair(const char *text, int *in, int *out)
{
    const char *comma = strchr(text, ',');
    if (comma == NULL || comma == text || (size_t)(comma - text) >= 16)
        return false;
    char first[16];
    memcpy(first, text, (size_t)(comma - text));
    first[comma - text] = '\0';
    uint64_t a = 0, b = 0;
    if (!parse_u64(first, INT32_MAX, &a) || !parse_u64(comma + 1, INT32_MAX, &b) || a == b)
        return false;
    if (fcntl((int)a, F_GETFD) < 0 || fcntl((int)b, F_GETFD) < 0)
        return false;
    *in = (int)a;
    *out = (int)b;
    return true;
}

/* Returns 0 on success, PERFD_EXIT_USAGE after printing the error, or -1
 * when --help / --version was handled (exit 0). */
static int parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){.warmup = 1, .samples = 10, .min_time_s = 0.01, .cpu = -1,
                     .profile_hz = PROFILE_DEFAULT_HZ, .turn_in = -1, .turn_out = -1};
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
                     strcmp(name, "--cpu") == 0 || strcmp(name, "--profile") == 0 ||
                     strcmp(name, "--profile-hz") == 0 || strcmp(name, "--turns") == 0;
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
        } else if (strcmp(name, "--profile") == 0) {
            if (value[0] == '\0')
                return usage_error("--profile: expected a file name, got ''");
            opt->profile = value;
        } else if (strcmp(name, "--turns") == 0) {
            if (!parse_fd_pair(value, &opt->turn_in, &opt->turn_out))
                return usage_error("--turns: expected two open file descriptors IN,OUT, got '%s'",
                                   value);
        } else if (strcmp(name, "--profile-hz") == 0) {
            if (!parse_u64(value, PROFILE_MAX_HZ, &opt->profile_hz) || opt->profile_hz == 0)
                return usage_error("--profile-hz: expected an integer 1..%d, got '%s'",
                                   PROFILE_MAX_HZ, value);
            opt->profile_hz_given = true;
        } else {
            uint64_t cpu = 0;
            if (!parse_u64(value, CPU_SETSIZE - 1, &cpu))
                return usage_error("--cpu: expected a CPU number 0..%d, got '%s'",
                                   CPU_SETSIZE - 1, value);
            opt->cpu = (long)cpu;
        }
    }
    if (opt->profile_hz_given && opt->profile == NULL)
        return usage_error("--profile-hz needs --profile FILE");
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
/* Sampling profiler (--profile)                                            */
/*
 * While the timed samples run, ITIMER_PROF delivers SIGPROF every 1/hz s of
 * process CPU time. The handler reads the interrupted PC, frame pointer and
 * stack pointer from the signal context and walks the frame-pointer chain
 * (each frame record is {saved frame pointer, return address} on x86-64 and
 * aarch64) into a preallocated buffer: no malloc, no stdio, no locks. Only
 * samples that land inside a timed batch (between the first
 * perfd_keep_running() call and the one that returns false) are kept.
 *
 * Between batches, outside the timed window, the main thread drains the
 * buffer: addresses become function ids (the executable's own ELF .symtab,
 * read from /proc/self/exe, relocated by the load bias found in
 * /proc/self/maps; other mappings are named "[basename]"), and identical
 * stacks are counted once. At the end the stacks are written as folded
 * lines "root;...;leaf count", cut at main() so the root is main.
 */

#if (defined(__x86_64__) || defined(__aarch64__)) && UINTPTR_MAX == UINT64_MAX
#define PROFILE_SUPPORTED 1
#else
#define PROFILE_SUPPORTED 0
#endif

#define PROFILE_MAX_DEPTH 128
/* Words of raw sample buffer: a record is {depth, two candidate return
 * addresses from the top of the stack, pc, return addresses...}.
 * The buffer is drained after every batch, so it only has to hold one batch
 * (~60000 samples of depth 15); samples beyond it are counted as dropped. */
#define PROFILE_BUFFER_WORDS ((size_t)1 << 20)
#define PROFILE_UNKNOWN UINT32_MAX

typedef struct {
    uintptr_t start, end;      /* link-time addresses [start, end), then runtime */
    uint32_t name;             /* offset into strtab */
    bool plt;                  /* a .plt section, named "[plt]" */
} profile_symbol;

typedef struct {
    uintptr_t start, end;      /* runtime addresses [start, end) */
    bool is_exe;               /* maps the executable itself */
    bool readable;
    char *name;                /* "[basename]" for other mappings */
} profile_mapping;

typedef struct {
    uint64_t hash;
    size_t frames;             /* offset into the frame arena, root first */
    uint32_t depth;
    uint64_t count;
} profile_stack;

static struct {
    bool enabled;
    const char *path;
    FILE *out;
    uint64_t hz;
    char warning[256];         /* printed once before the run, if set */
    profile_symbol *symbols;
    size_t symbol_count;
    char *strtab;
    size_t strtab_size;
    uintptr_t bias;            /* runtime address - link-time address */
    profile_mapping *maps;
    size_t map_count;
    uint32_t main_id;          /* symbol id of main(), PROFILE_UNKNOWN if none */
    uintptr_t stack_hi;        /* end of the main thread's stack mapping */
    uintptr_t *buffer;
    profile_stack *table;      /* open addressing, capacity a power of two */
    size_t table_cap, table_used;
    uint32_t *arena;
    size_t arena_len, arena_cap;
    uint64_t samples;          /* samples aggregated */
    bool out_of_memory;
} prof;

/* Shared with the signal handler, which runs on the main thread: plain
 * volatile accesses plus signal fences are enough. */
static volatile sig_atomic_t profile_window;   /* 1 inside a timed batch */
static volatile size_t profile_used;           /* words of prof.buffer in use */
static volatile uint64_t profile_dropped;      /* samples lost: buffer full */

static void profile_registers(const void *uc_void, uintptr_t *pc, uintptr_t *fp, uintptr_t *sp)
{
#if PROFILE_SUPPORTED && defined(__x86_64__)
    const ucontext_t *uc = uc_void;
    *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    *fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    *sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif PROFILE_SUPPORTED && defined(__aarch64__)
    const ucontext_t *uc = uc_void;
    *pc = (uintptr_t)uc->uc_mcontext.pc;
    *fp = (uintptr_t)uc->uc_mcontext.regs[29];
    *sp = (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc_void;
    *pc = *fp = *sp = 0;
#endif
}

/* SIGPROF handler. Async-signal-safe: touches only the preallocated buffer
 * and reads stack memory between the interrupted stack pointer and the top
 * of the stack, which is always mapped. A frame without a frame pointer
 * (libc, hand-written assembly) ends the walk at the first record that is
 * not strictly above the previous one, misaligned or outside the stack. Not
 * instrumented by ASan: the walk may read slots ASan considers redzones. */
__attribute__((no_sanitize_address)) static void profile_on_signal(int sig, siginfo_t *info,
                                                                   void *uc)
{
    (void)sig;
    (void)info;
    if (!profile_window)
        return;
    size_t used = profile_used;
    if (used + 3 + PROFILE_MAX_DEPTH > PROFILE_BUFFER_WORDS) {
        profile_dropped++;
        return;
    }
    uintptr_t pc, fp, sp;
    profile_registers(uc, &pc, &fp, &sp);
    uintptr_t *record = prof.buffer + used;
    size_t depth = 0;
    const uintptr_t word = sizeof(uintptr_t);
    uintptr_t lo = sp, hi = prof.stack_hi;
    /* The top of the stack holds the return address when the leaf function
     * has no frame of its own, or the one above it when the leaf has just
     * pushed the frame pointer without setting it yet (the pushed value is
     * then the current frame pointer). See profile_leaf_caller. */
    bool top_ok = (sp & (word - 1)) == 0 && hi >= 2 * word && sp <= hi - 2 * word;
    const volatile uintptr_t *top = (const volatile uintptr_t *)sp;
    record[1] = top_ok ? top[0] : 0;
    record[2] = top_ok && top[0] == fp ? top[1] : 0;
    record += 2;
    record[1 + depth++] = pc;
    while (depth < PROFILE_MAX_DEPTH) {
        if (fp < lo || hi < 2 * word || fp > hi - 2 * word || (fp & (word - 1)) != 0)
            break;
        const volatile uintptr_t *frame = (const volatile uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 2)
            break;
        /* A return address points after the call; -1 lands inside the call
         * instruction, so a call that ends a function maps to that function. */
        record[1 + depth++] = ret - 1;
        lo = fp + 2 * word;    /* the caller's record lies strictly above */
        fp = next;
    }
    prof.buffer[used] = depth;
    profile_used = used + 3 + depth;
}

static void profile_arm(bool on)
{
    struct itimerval t;
    memset(&t, 0, sizeof t);
    if (on) {
        long usec = (long)(1000000 / prof.hz);
        t.it_interval.tv_sec = usec / 1000000;
        t.it_interval.tv_usec = usec % 1000000;
        t.it_value = t.it_interval;
    }
    setitimer(ITIMER_PROF, &t, NULL);
}

/* Marks the start / end of a timed batch for the signal handler. */
static inline void profile_window_set(bool inside)
{
    atomic_signal_fence(memory_order_seq_cst);
    profile_window = inside ? 1 : 0;
    atomic_signal_fence(memory_order_seq_cst);
}

static bool read_at(int fd, void *buf, size_t n, uint64_t offset)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = pread(fd, p, n, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return true;
}

static bool is_plt_section(const char *name)
{
    return strcmp(name, ".plt") == 0 || strncmp(name, ".plt.", 5) == 0 || strcmp(name, ".iplt") == 0;
}

/* Reads the executable's function symbols (and PLT sections) into prof, and
 * its program headers into *phdrs (the caller frees them) for the load bias.
 * Returns false with a message for a file that is not a readable ELF64; a
 * file without .symtab (stripped) is fine: its frames are named "[unknown]"
 * and a warning says why. */
static bool profile_load_symbols(int fd, uint64_t file_size, Elf64_Phdr **phdrs,
                                 size_t *phdr_count, char *err, size_t errcap)
{
    Elf64_Ehdr eh;
    if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64) {
        snprintf(err, errcap, "/proc/self/exe is not an ELF64 file");
        return false;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > file_size ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > file_size - eh.e_phoff) {
        snprintf(err, errcap, "/proc/self/exe: invalid program headers");
        return false;
    }
    *phdrs = malloc((size_t)eh.e_phnum * sizeof **phdrs);
    if (*phdrs == NULL || !read_at(fd, *phdrs, (size_t)eh.e_phnum * sizeof **phdrs, eh.e_phoff)) {
        snprintf(err, errcap, "/proc/self/exe: cannot read the program headers");
        return false;
    }
    *phdr_count = eh.e_phnum;

    size_t shnum = eh.e_shnum;
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr))
        shnum = 0;
    Elf64_Shdr first;
    if (shnum == 0 && eh.e_shoff != 0 && eh.e_shentsize == sizeof(Elf64_Shdr) &&
        read_at(fd, &first, sizeof first, eh.e_shoff))
        shnum = (size_t)first.sh_size;  /* extended numbering: the count is in section 0 */
    Elf64_Shdr *sh = NULL;
    if (shnum > 0 && eh.e_shoff <= file_size &&
        (uint64_t)shnum * sizeof *sh <= file_size - eh.e_shoff) {
        sh = malloc(shnum * sizeof *sh);
        if (sh != NULL && !read_at(fd, sh, shnum * sizeof *sh, eh.e_shoff)) {
            free(sh);
            sh = NULL;
        }
    }
    const Elf64_Shdr *symtab = NULL;
    for (size_t i = 0; sh != NULL && i < shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB && sh[i].sh_link < shnum)
            symtab = &sh[i];
    /* PLT stubs have no symbols; their sections (.plt, .plt.sec, .plt.got,
     * .iplt) are named "[plt]". */
    size_t shstrndx = eh.e_shstrndx == SHN_XINDEX && sh != NULL ? sh[0].sh_link : eh.e_shstrndx;
    char *shstr = NULL;
    size_t shstr_size = 0;
    if (sh != NULL && shstrndx < shnum && sh[shstrndx].sh_offset <= file_size &&
        sh[shstrndx].sh_size <= file_size - sh[shstrndx].sh_offset && sh[shstrndx].sh_size > 0 &&
        sh[shstrndx].sh_size < ((uint64_t)1 << 24)) {
        shstr_size = (size_t)sh[shstrndx].sh_size;
        shstr = malloc(shstr_size);
        if (shstr != NULL && !read_at(fd, shstr, shstr_size, sh[shstrndx].sh_offset)) {
            free(shstr);
            shstr = NULL;
        }
        if (shstr != NULL)
            shstr[shstr_size - 1] = '\0';
    }
    size_t plt_sections = 0;
    for (size_t i = 0; shstr != NULL && i < shnum; i++)
        plt_sections += sh[i].sh_name < shstr_size && sh[i].sh_addr != 0 && sh[i].sh_size != 0 &&
                        is_plt_section(shstr + sh[i].sh_name);
    bool ok = symtab != NULL && symtab->sh_entsize == sizeof(Elf64_Sym);
    const Elf64_Shdr *strsec = ok ? &sh[symtab->sh_link] : NULL;
    ok = ok && symtab->sh_offset <= file_size && symtab->sh_size <= file_size - symtab->sh_offset &&
         strsec->sh_offset <= file_size && strsec->sh_size <= file_size - strsec->sh_offset &&
         strsec->sh_size > 0;
    Elf64_Sym *syms = NULL;
    size_t nsyms = ok ? (size_t)(symtab->sh_size / sizeof *syms) : 0;
    if (ok) {
        syms = malloc(nsyms ? nsyms * sizeof *syms : 1);
        prof.strtab = malloc((size_t)strsec->sh_size + sizeof "[plt]");
        ok = syms != NULL && prof.strtab != NULL &&
             read_at(fd, syms, nsyms * sizeof *syms, symtab->sh_offset) &&
             read_at(fd, prof.strtab, (size_t)strsec->sh_size, strsec->sh_offset);
    }
    if (ok) {
        prof.strtab_size = (size_t)strsec->sh_size;
        prof.strtab[prof.strtab_size - 1] = '\0';
        memcpy(prof.strtab + prof.strtab_size, "[plt]", sizeof "[plt]");
        prof.symbols = malloc((nsyms + plt_sections + 1) * sizeof *prof.symbols);
        ok = prof.symbols != NULL;
    }
    for (size_t i = 0; ok && i < nsyms; i++) {
        unsigned type = ELF64_ST_TYPE(syms[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[i].st_shndx == SHN_UNDEF ||
            syms[i].st_value == 0 || syms[i].st_size == 0 || syms[i].st_name >= prof.strtab_size ||
            prof.strtab[syms[i].st_name] == '\0')
            continue;
        prof.symbols[prof.symbol_count++] = (profile_symbol){
            (uintptr_t)syms[i].st_value, (uintptr_t)(syms[i].st_value + syms[i].st_size),
            syms[i].st_name, false};
    }
    for (size_t i = 0; ok && shstr != NULL && i < shnum; i++) {
        if (sh[i].sh_name < shstr_size && sh[i].sh_addr != 0 && sh[i].sh_size != 0 &&
            is_plt_section(shstr + sh[i].sh_name))
            prof.symbols[prof.symbol_count++] = (profile_symbol){
                (uintptr_t)sh[i].sh_addr, (uintptr_t)(sh[i].sh_addr + sh[i].sh_size),
                (uint32_t)prof.strtab_size, true};
    }
    if (!ok) {
        free(prof.strtab);
        prof.strtab = NULL;
        prof.strtab_size = 0;
        prof.symbol_count = 0;
        snprintf(prof.warning, sizeof prof.warning,
                 "--profile: the binary has no usable .symtab (stripped?); its functions "
                 "show as [unknown]");
    }
    free(syms);
    free(shstr);
    free(sh);
    return true;
}

static int compare_symbol(const void *a, const void *b)
{
    const profile_symbol *x = a, *y = b;
    if (x->start != y->start)
        return (x->start > y->start) - (x->start < y->start);
    return (x->end < y->end) - (x->end > y->end);   /* the larger symbol first */
}

/* "[basename]" of a mapping's path; ';' and newlines would break folded
 * lines, so they become '_'. */
static char *profile_mapping_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    if (base[0] == '[')
        return strdup(base);                     /* [vdso], [vsyscall] */
    size_t n = strlen(base);
    char *name = malloc(n + 3);
    if (name == NULL)
        return NULL;
    name[0] = '[';
    for (size_t i = 0; i < n; i++)
        name[i + 1] = (base[i] == ';' || base[i] == '\n' || base[i] == '\r') ? '_' : base[i];
    name[n + 1] = ']';
    name[n + 2] = '\0';
    return name;
}

/* Reads /proc/self/maps: executable mappings (to name addresses), the load
 * bias of the executable and the top of the stack holding stack_probe. */
static bool profile_load_maps(const struct stat *exe, const Elf64_Phdr *phdrs, size_t phdr_count,
                              uintptr_t stack_probe, char *err, size_t errcap)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) {
        snprintf(err, errcap, "cannot read /proc/self/maps: %s", strerror(errno));
        return false;
    }
    size_t cap = 64;
    prof.maps = malloc(cap * sizeof *prof.maps);
    bool ok = prof.maps != NULL, have_bias = false;
    char line[PATH_MAX + 256];
    while (ok && fgets(line, sizeof line, f) != NULL) {
        unsigned long start, end, offset, inode;
        unsigned dev_major, dev_minor;
        char perms[8];
        int consumed = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &start, &end, perms, &offset, &dev_major,
                   &dev_minor, &inode, &consumed) < 7)
            continue;
        char *path = line + consumed;
        path[strcspn(path, "\n")] = '\0';
        if (stack_probe >= start && stack_probe < end)
            prof.stack_hi = (uintptr_t)end;
        bool is_exe = inode == (unsigned long)exe->st_ino && inode != 0 &&
                      dev_major == major(exe->st_dev) && dev_minor == minor(exe->st_dev);
        if (is_exe && !have_bias) {
            /* The segment whose page-aligned file offset is this mapping's
             * offset was linked at page_down(p_vaddr). */
            for (size_t i = 0; i < phdr_count; i++) {
                uint64_t align = phdrs[i].p_align > 1 ? phdrs[i].p_align : 4096;
                if (align > 4096)
                    align = 4096;   /* mappings are page-granular, whatever the alignment */
                if (phdrs[i].p_type == PT_LOAD && (phdrs[i].p_offset & ~(align - 1)) == offset) {
                    prof.bias = (uintptr_t)start - (uintptr_t)(phdrs[i].p_vaddr & ~(align - 1));
                    have_bias = true;
                    break;
                }
            }
        }
        if (strchr(perms, 'x') == NULL)
            continue;
        if (prof.map_count == cap) {
            profile_mapping *grown = realloc(prof.maps, 2 * cap * sizeof *grown);
            if (grown == NULL) {
                ok = false;
                break;
            }
            prof.maps = grown;
            cap *= 2;
        }
        profile_mapping *m = &prof.maps[prof.map_count];
        *m = (profile_mapping){(uintptr_t)start, (uintptr_t)end, is_exe, perms[0] == 'r', NULL};
        if (!is_exe) {
            m->name = path[0] != '\0' ? profile_mapping_name(path) : strdup("[unknown]");
            ok = m->name != NULL;
        }
        prof.map_count += ok;
    }
    fclose(f);
    if (!ok) {
        snprintf(err, errcap, "out of memory reading /proc/self/maps");
        return false;
    }
    if (!have_bias) {
        snprintf(err, errcap, "cannot find the executable's load address in /proc/self/maps");
        return false;
    }
    if (prof.stack_hi == 0) {
        snprintf(err, errcap, "cannot find the stack in /proc/self/maps");
        return false;
    }
    return true;
}

static void profile_free(void)
{
    if (prof.out != NULL)
        fclose(prof.out);
    for (size_t i = 0; i < prof.map_count; i++)
        free(prof.maps[i].name);
    free(prof.maps);
    free(prof.symbols);
    free(prof.strtab);
    free(prof.buffer);
    free(prof.table);
    free(prof.arena);
    memset(&prof, 0, sizeof prof);
}

/* Everything the profiler needs, before any benchmark runs: opens FILE,
 * reads symbols and maps, allocates the buffer, installs the handler (the
 * timer is armed only around the timed samples). Returns 0 or
 * PERFD_EXIT_USAGE after printing the error. */
static int profile_setup(const options *opt)
{
    /* A plain if, not #if: the profiler's functions stay referenced (and
     * compiled with -Werror) on every architecture. */
    if (!PROFILE_SUPPORTED)
        return usage_error("--profile: not supported on this architecture (x86-64 and aarch64 only)");
    char err[PATH_MAX + 128] = "";
    prof.path = opt->profile;
    prof.hz = opt->profile_hz;
    prof.main_id = PROFILE_UNKNOWN;
    prof.out = fopen(opt->profile, "w");
    if (prof.out == NULL) {
        int e = errno;
        return usage_error("--profile: cannot write '%s': %s (errno %d)", opt->profile,
                           strerror(e), e);
    }
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    Elf64_Phdr *phdrs = NULL;
    size_t phdr_count = 0;
    bool ok = fd >= 0 && fstat(fd, &st) == 0;
    if (!ok)
        snprintf(err, sizeof err, "cannot read /proc/self/exe: %s", strerror(errno));
    ok = ok && profile_load_symbols(fd, (uint64_t)st.st_size, &phdrs, &phdr_count, err, sizeof err);
    if (fd >= 0)
        close(fd);
    int stack_probe = 0;
    ok = ok && profile_load_maps(&st, phdrs, phdr_count, (uintptr_t)&stack_probe, err, sizeof err);
    free(phdrs);
    if (ok) {
        qsort(prof.symbols, prof.symbol_count, sizeof *prof.symbols, compare_symbol);
        for (size_t i = 0; i < prof.symbol_count; i++) {
            if (strcmp(prof.strtab + prof.symbols[i].name, "main") == 0) {
                prof.main_id = (uint32_t)i;
                break;
            }
        }
        for (size_t i = 0; i < prof.symbol_count; i++) {
            prof.symbols[i].start += prof.bias;
            prof.symbols[i].end += prof.bias;
        }
        /* Touch every page now, so the handler never page-faults on it. */
        prof.buffer = malloc(PROFILE_BUFFER_WORDS * sizeof *prof.buffer);
        prof.table_cap = 1024;
        prof.table = calloc(prof.table_cap, sizeof *prof.table);
        prof.arena_cap = 16384;
        prof.arena = malloc(prof.arena_cap * sizeof *prof.arena);
        ok = prof.buffer != NULL && prof.table != NULL && prof.arena != NULL;
        if (ok)
            memset(prof.buffer, 0, PROFILE_BUFFER_WORDS * sizeof *prof.buffer);
        else
            snprintf(err, sizeof err, "out of memory");
    }
    if (ok) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = profile_on_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGPROF, &sa, NULL) != 0) {
            ok = false;
            snprintf(err, sizeof err, "sigaction(SIGPROF): %s", strerror(errno));
        }
    }
    if (!ok) {
        profile_free();
        return usage_error("--profile: %s", err);
    }
    if (prof.warning[0] != '\0')
        fprintf(stderr, PROG ": warning: %s\n", prof.warning);
    prof.enabled = true;
    return 0;
}

static const profile_mapping *profile_mapping_of(uintptr_t addr)
{
    for (size_t m = 0; m < prof.map_count; m++)
        if (addr >= prof.maps[m].start && addr < prof.maps[m].end)
            return &prof.maps[m];
    return NULL;
}

/* Function id of a runtime address: a symbol index, symbol_count + mapping
 * index for other mappings, or PROFILE_UNKNOWN. */
static uint32_t profile_symbolize(uintptr_t addr)
{
    const profile_mapping *map = profile_mapping_of(addr);
    if (map == NULL)
        return PROFILE_UNKNOWN;
    if (!map->is_exe)
        return (uint32_t)(prof.symbol_count + (size_t)(map - prof.maps));
    /* Last symbol starting at or before addr; nested symbols are rare in C. */
    size_t lo = 0, hi = prof.symbol_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (prof.symbols[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0 && lo - i <= 4;)
        if (addr < prof.symbols[i].end)
            return (uint32_t)i;
    return PROFILE_UNKNOWN;
}

/* GCC omits the frame of a leaf function that needs no stack, even with
 * -fno-omit-frame-pointer, libc is built without frame pointers, and a
 * sample can land in a prologue before the frame pointer is set: the
 * frame-pointer chain then starts at the leaf's caller's caller, losing the
 * caller. The return address into that caller is then at the top of the
 * stack (`top`, recorded by the handler). It is accepted only when the bytes
 * before it are a call to exactly this leaf (x86-64 `call rel32` to the
 * leaf's first instruction), or, for a leaf outside the executable, a call
 * through the PLT (`call rel32` to an address without a symbol) or the GOT
 * (`call *rel32(%rip)`). Returns that address, or 0. */
__attribute__((no_sanitize_address)) static uintptr_t profile_leaf_caller(uintptr_t pc,
                                                                         uintptr_t top,
                                                                         uintptr_t first_return)
{
#if PROFILE_SUPPORTED && defined(__x86_64__)
    const profile_mapping *caller = profile_mapping_of(top);
    if (caller == NULL || !caller->is_exe || !caller->readable || top - caller->start < 6 ||
        top - 1 == first_return)
        return 0;
    const profile_mapping *leaf = profile_mapping_of(pc);
    bool leaf_in_exe = leaf != NULL && leaf->is_exe;
    const volatile unsigned char *code = (const volatile unsigned char *)(top - 6);
    if (code[1] == 0xe8) {
        uint32_t rel = (uint32_t)code[2] | (uint32_t)code[3] << 8 | (uint32_t)code[4] << 16 |
                       (uint32_t)code[5] << 24;
        uintptr_t target = top + (uintptr_t)(intptr_t)(int32_t)rel;
        uint32_t target_id = profile_symbolize(target);
        bool to_plt = target_id < prof.symbol_count && prof.symbols[target_id].plt;
        if (leaf_in_exe) {
            uint32_t id = profile_symbolize(pc);
            if (id >= prof.symbol_count)
                return 0;
            if (prof.symbols[id].plt)   /* inside the 16-byte PLT entry that was called */
                return id == target_id && pc >= target && pc - target < 16 ? top : 0;
            /* A direct call to the leaf, or through the PLT (an ifunc such as
             * memcpy in a static binary). */
            return prof.symbols[id].start == target || to_plt ? top : 0;
        }
        const profile_mapping *t = profile_mapping_of(target);
        return t != NULL && t->is_exe && (to_plt || target_id == PROFILE_UNKNOWN) ? top : 0;
    }
    if (code[0] == 0xff && code[1] == 0x15 && !leaf_in_exe)
        return top;
    return 0;
#else
    (void)pc;
    (void)top;
    (void)first_return;
    return 0;
#endif
}

static const char *profile_name(uint32_t id)
{
    if (id == PROFILE_UNKNOWN)
        return "[unknown]";
    if (id < prof.symbol_count)
        return prof.strtab + prof.symbols[id].name;
    return prof.maps[id - prof.symbol_count].name;
}

static uint64_t profile_hash(const uint32_t *ids, size_t n)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= ids[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static bool profile_table_grow(void)
{
    size_t cap = prof.table_cap * 2;
    profile_stack *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < prof.table_cap; i++) {
        if (prof.table[i].count == 0)
            continue;
        size_t j = (size_t)prof.table[i].hash & (cap - 1);
        while (t[j].count != 0)
            j = (j + 1) & (cap - 1);
        t[j] = prof.table[i];
    }
    free(prof.table);
    prof.table = t;
    prof.table_cap = cap;
    return true;
}

/* Counts one stack (ids root first). */
static void profile_count(const uint32_t *ids, uint32_t depth)
{
    uint64_t h = profile_hash(ids, depth);
    size_t mask = prof.table_cap - 1;
    for (size_t j = (size_t)h & mask;; j = (j + 1) & mask) {
        profile_stack *e = &prof.table[j];
        if (e->count == 0)
            break;
        if (e->hash == h && e->depth == depth &&
            memcmp(prof.arena + e->frames, ids, depth * sizeof *ids) == 0) {
            e->count++;
            prof.samples++;
            return;
        }
    }
    if ((prof.table_used + 1) * 2 > prof.table_cap && !profile_table_grow()) {
        prof.out_of_memory = true;
        return;
    }
    if (prof.arena_len + depth > prof.arena_cap) {
        size_t cap = prof.arena_cap * 2 + depth;
        uint32_t *a = realloc(prof.arena, cap * sizeof *a);
        if (a == NULL) {
            prof.out_of_memory = true;
            return;
        }
        prof.arena = a;
        prof.arena_cap = cap;
    }
    memcpy(prof.arena + prof.arena_len, ids, depth * sizeof *ids);
    mask = prof.table_cap - 1;
    size_t j = (size_t)h & mask;
    while (prof.table[j].count != 0)
        j = (j + 1) & mask;
    prof.table[j] = (profile_stack){h, prof.arena_len, depth, 1};
    prof.arena_len += depth;
    prof.table_used++;
    prof.samples++;
}

/* Folds the raw samples of the last batch into the stack table. Called
 * outside the timed window only (the handler then records nothing). */
static void profile_drain(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    size_t used = profile_used;
    uintptr_t frames[PROFILE_MAX_DEPTH + 1];   /* leaf first */
    uint32_t ids[PROFILE_MAX_DEPTH + 1];       /* root first */
    for (size_t at = 0; at < used;) {
        size_t depth = (size_t)prof.buffer[at];
        uintptr_t top0 = prof.buffer[at + 1], top1 = prof.buffer[at + 2];
        const uintptr_t *raw = prof.buffer + at + 3;
        at += 3 + depth;
        if (depth == 0)
            continue;
        frames[0] = raw[0];
        size_t n = 1;
        uintptr_t first_return = depth > 1 ? raw[1] : 0;
        uintptr_t caller = profile_leaf_caller(raw[0], top0, first_return);
        if (caller == 0 && top1 != 0)
            caller = profile_leaf_caller(raw[0], top1, first_return);
        if (caller != 0)
            frames[n++] = caller - 1;
        memcpy(frames + n, raw + 1, (depth - 1) * sizeof *frames);
        n += depth - 1;
        /* Cut at the outermost main(): what calls main is libc start-up code
         * without frame pointers, so frames above it are not trustworthy. */
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            uint32_t id = profile_symbolize(frames[i]);
            ids[n - 1 - i] = id;
            if (id == prof.main_id && prof.main_id != PROFILE_UNKNOWN)
                keep = i + 1;
        }
        profile_count(ids + (n - keep), (uint32_t)keep);
    }
    profile_used = 0;
    atomic_signal_fence(memory_order_seq_cst);
}

typedef struct {
    char *text;
    uint64_t count;
} folded_line;

static int compare_folded(const void *a, const void *b)
{
    return strcmp(((const folded_line *)a)->text, ((const folded_line *)b)->text);
}

/* Writes the folded stacks (sorted; stacks whose names coincide, e.g. two
 * static functions with one name, are merged) and closes the file. Returns
 * false after printing why. */
static bool profile_write(void)
{
    folded_line *lines = calloc(prof.table_used ? prof.table_used : 1, sizeof *lines);
    size_t n = 0;
    bool ok = lines != NULL && !prof.out_of_memory;
    for (size_t i = 0; ok && i < prof.table_cap; i++) {
        const profile_stack *e = &prof.table[i];
        if (e->count == 0)
            continue;
        size_t len = 1;
        for (uint32_t d = 0; d < e->depth; d++)
            len += strlen(profile_name(prof.arena[e->frames + d])) + 1;
        char *text = malloc(len);
        if (text == NULL) {
            ok = false;
            break;
        }
        char *p = text;
        for (uint32_t d = 0; d < e->depth; d++) {
            const char *name = profile_name(prof.arena[e->frames + d]);
            size_t k = strlen(name);
            if (d > 0)
                *p++ = ';';
            memcpy(p, name, k);
            p += k;
        }
        *p = '\0';
        lines[n++] = (folded_line){text, e->count};
    }
    if (ok) {
        qsort(lines, n, sizeof *lines, compare_folded);
        for (size_t i = 0; i < n;) {
            uint64_t count = lines[i].count;
            size_t j = i + 1;
            while (j < n && strcmp(lines[j].text, lines[i].text) == 0)
                count += lines[j++].count;
            fprintf(prof.out, "%s %" PRIu64 "\n", lines[i].text, count);
            i = j;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    free(lines);
    if (!ok) {
        fprintf(stderr, PROG ": error: --profile: out of memory while folding the stacks\n");
        return false;
    }
    int failed = fflush(prof.out) != 0 || ferror(prof.out);
    int e = errno;
    failed |= fclose(prof.out) != 0;
    prof.out = NULL;
    if (failed) {
        fprintf(stderr, PROG ": error: --profile: writing '%s' failed: %s\n", prof.path,
                strerror(e));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Thread CPU time and involuntary switches of the timed samples            */
/*
 * Each timed batch also reads the calling thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) and its involuntary context switches
 * (getrusage(RUSAGE_THREAD).ru_nivcsw). These reads bracket the
 * CLOCK_MONOTONIC window from outside, so the wall time does not grow; the
 * CPU time then includes what runs between the bracket and the window (a
 * clock read, the counter ioctls with --counters). A wall time well above the
 * CPU time means the thread was off its CPU: it slept, or another process or
 * the hypervisor had the CPU. A read that fails makes the quantity
 * unavailable (JSON null) for the benchmark, never zero.
 */

/* Test hook: PERFD_HARNESS_TEST_NO_THREAD_CPU=1 makes both reads fail with
 * ENOTSUP, so the unavailable path can be tested on any kernel. */
static bool thread_probes_disabled;

static int thread_cpu_now(struct timespec *t)
{
    if (thread_probes_disabled)
        return ENOTSUP;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, t) == 0)
        return 0;
    return errno != 0 ? errno : EINVAL;
}

static int thread_switches_now(long *involuntary)
{
    if (thread_probes_disabled)
        return ENOTSUP;
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return errno != 0 ? errno : EINVAL;
    *involuntary = ru.ru_nivcsw;
    return 0;
}

/* Reports once per process that a quantity is unavailable, and why. */
static void thread_probe_warn(bool *warned, const char *call, int err, const char *field,
                              const char *bench)
{
    if (*warned)
        return;
    *warned = true;
    fprintf(stderr, PROG ": warning: %s: %s (errno %d)%s; %s is null where it fails "
                    "(first: benchmark '%s')\n",
            call, strerror(err), err,
            thread_probes_disabled ? " [PERFD_HARNESS_TEST_NO_THREAD_CPU=1]" : "", field, bench);
}

/* ------------------------------------------------------------------------ */
/* Running one batch                                                        */

enum batch_phase { PHASE_NOT_STARTED, PHASE_RUNNING, PHASE_DONE };

struct perfd_batch_ {
    void *context;
    uint64_t iterations;
    enum batch_phase phase;
    bool count;                 /* collect counters for this batch */
    bool profile;               /* keep profiler samples of this batch */
    bool thread_probes;         /* read thread CPU time and switches around it */
    struct timespec start, stop;            /* CLOCK_MONOTONIC: the timed window */
    struct timespec cpu_start, cpu_stop;    /* CLOCK_THREAD_CPUTIME_ID, outside it */
    long switches_start, switches_stop;     /* ru_nivcsw, outside the CPU-time reads */
    int cpu_err, switches_err;              /* 0, or the errno of a failed read */
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
        /* Outermost first: getrusage is a system call, so keep it out of the
         * CPU-time bracket, and both out of the monotonic window. */
        if (b->thread_probes) {
            b->switches_err = thread_switches_now(&b->switches_start);
            b->cpu_err = thread_cpu_now(&b->cpu_start);
        }
        if (b->count)
            counters_start();
        if (b->profile)
            profile_window_set(true);
        clock_gettime(CLOCK_MONOTONIC, &b->start);
        return true;
    }
    if (b->phase == PHASE_RUNNING) {
        clock_gettime(CLOCK_MONOTONIC, &b->stop);
        if (b->profile)
            profile_window_set(false);
        if (b->count)
            counters_stop();
        if (b->thread_probes) {
            int err = thread_cpu_now(&b->cpu_stop);
            if (b->cpu_err == 0)
                b->cpu_err = err;
            err = thread_switches_now(&b->switches_stop);
            if (b->switches_err == 0)
                b->switches_err = err;
        }
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
 * benchmark failed (message in the batch). A `timed` batch (a sample, not
 * calibration or warmup) also collects the counters, the profile, and the
 * thread's CPU time and involuntary switches (left in the batch). */
static int64_t run_batch(const bench_entry *e, perfd_state *st, uint64_t iterations, bool timed)
{
    struct perfd_batch_ *b = st->perfd_batch_;
    b->iterations = iterations;
    b->phase = PHASE_NOT_STARTED;
    b->count = timed && counters_available() > 0;
    b->profile = timed && prof.enabled;
    b->thread_probes = timed;
    b->cpu_err = b->switches_err = 0;
    st->perfd_remaining_ = 0;
    e->run(st);
    if (b->profile) {
        profile_window_set(false);   /* also when run returned early */
        profile_drain();
    }
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
    /* Fastest time per iteration seen so far: a batch the scheduler preempted looks long
     * enough with too few iterations, and every sample after it would then be too short. */
    double best_per_iter = 0.0;
    for (;;) {
        int64_t ns = run_batch(e, st, iterations, false);
        if (ns < 0)
            return 0;
        double per_iter = (double)ns / (double)iterations;
        if (best_per_iter == 0.0 || (per_iter > 0.0 && per_iter < best_per_iter))
            best_per_iter = per_iter;
        if ((double)ns >= min_ns || iterations >= MAX_BATCH_ITERATIONS) {
            double needed = best_per_iter > 0.0 ? 1.25 * min_ns / best_per_iter : 0.0;
            if (needed > (double)MAX_BATCH_ITERATIONS)
                needed = (double)MAX_BATCH_ITERATIONS;
            if ((double)iterations < needed)
                iterations = (uint64_t)needed;
            return iterations;
        }
        double grow = 10.0;
        if ((double)ns * 10.0 > min_ns)
            grow = 1.25 * min_ns / (double)ns;   /* aim a little above the target */
        double next = (double)(uint64_t)((double)iterations * grow) + 1.0;
        if (next > (double)MAX_BATCH_ITERATIONS)
            next = (double)MAX_BATCH_ITERATIONS;
        iterations = (uint64_t)next > iterations ? (uint64_t)next : iterations + 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Turns: lock-step sampling with a partner process                         */
/*
 * With --turns, this process and a partner (the other build of an A/B pair,
 * pinned to the same CPU) hand one byte back and forth through two pipes, so
 * their timed samples alternate: A1 B1 A2 B2 ... Sample i of each side then
 * sees the same state of the machine, which cancels the slow phases of a
 * shared or virtual CPU that a whole-process comparison cannot.
 * When the partner is gone (EOF or EPIPE) this process carries on alone.
 */

static int turn_in = -1, turn_out = -1;

static void turns_off(void)
{
    turn_in = turn_out = -1;
}

static void turn_begin(void)
{
    if (turn_in < 0)
        return;
    char token;
    ssize_t n;
    do
        n = read(turn_in, &token, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        turns_off();
}

static void turn_end(void)
{
    if (turn_out < 0)
        return;
    char token = 't';
    ssize_t n;
    do
        n = write(turn_out, &token, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        turns_off();
}

typedef struct {
    bool ok;
    const char *error;
    uint64_t iterations;
    size_t samples;            /* number filled */
    double *samples_ns;        /* per op */
    double *samples_cpu_ns;    /* thread CPU time per op; valid when cpu_err == 0 */
    uint64_t *samples_switches;   /* involuntary switches per batch; valid when switches_err == 0 */
    int cpu_err, switches_err; /* 0, or the errno that made the quantity unavailable */
    double *counter_values[COUNTER_COUNT];   /* per op per sample, NAN = unknown */
} bench_result;

static void result_free(bench_result *r)
{
    free(r->samples_ns);
    free(r->samples_cpu_ns);
    free(r->samples_switches);
    for (int i = 0; i < COUNTER_COUNT; i++)
        free(r->counter_values[i]);
}

/* Stores the thread CPU time and switches of timed sample s, or marks them
 * unavailable for the whole benchmark (and warns once) if a read failed. */
static void record_thread_probes(const bench_entry *e, const struct perfd_batch_ *b,
                                 bench_result *r, uint64_t s)
{
    static bool cpu_warned, switches_warned;
    if (r->cpu_err == 0 && b->cpu_err != 0) {
        r->cpu_err = b->cpu_err;
        thread_probe_warn(&cpu_warned, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)", r->cpu_err,
                          "samples_cpu_ns", e->name);
    }
    if (r->cpu_err == 0) {
        int64_t cpu_ns = timespec_diff_ns(&b->cpu_start, &b->cpu_stop);
        r->samples_cpu_ns[s] = (double)(cpu_ns < 0 ? 0 : cpu_ns) / (double)b->iterations;
    }
    if (r->switches_err == 0 && b->switches_err != 0) {
        r->switches_err = b->switches_err;
        thread_probe_warn(&switches_warned, "getrusage(RUSAGE_THREAD)", r->switches_err,
                          "samples_involuntary_switches", e->name);
    }
    if (r->switches_err == 0) {
        long n = b->switches_stop - b->switches_start;
        r->samples_switches[s] = n < 0 ? 0 : (uint64_t)n;
    }
}

static void run_benchmark(const bench_entry *e, const options *opt,
                          struct perfd_batch_ *batch, bench_result *r)
{
    perfd_state st = {0, batch};
    memset(batch, 0, sizeof *batch);
    *r = (bench_result){0};
    current_state = &st;

    r->samples_ns = calloc(opt->samples, sizeof *r->samples_ns);
    r->samples_cpu_ns = calloc(opt->samples, sizeof *r->samples_cpu_ns);
    r->samples_switches = calloc(opt->samples, sizeof *r->samples_switches);
    bool alloc_ok = r->samples_ns != NULL && r->samples_cpu_ns != NULL &&
                    r->samples_switches != NULL;
    for (int i = 0; i < COUNTER_COUNT && alloc_ok; i++) {
        if (counters[i].fd >= 0) {
            r->counter_values[i] = calloc(opt->samples, sizeof(double));
            alloc_ok = r->counter_values[i] != NULL;
        }
    }
    if (!alloc_ok) {
        fail_internal(&st, "out of memory for %" PRIu64 " samples", opt->samples);
    } else {
        turn_begin();   /* setup, calibration and warmup are one turn */
        batch->context = e->setup ? e->setup() : NULL;
        if (!batch->failed) {
            double min_ns = opt->min_time_s * 1e9;
            uint64_t iterations = calibrate(e, &st, min_ns);
            bool ok = iterations > 0;
            for (uint64_t w = 0; ok && w < opt->warmup; w++)
                ok = run_batch(e, &st, iterations, false) >= 0;
            if (ok && prof.enabled)
                profile_arm(true);
            for (uint64_t s = 0; ok && s < opt->samples; s++) {
                turn_end();
                turn_begin();
                int64_t ns = run_batch(e, &st, iterations, true);
                ok = ns >= 0;
                if (!ok)
                    break;
                r->samples_ns[s] = (double)ns / (double)iterations;
                record_thread_probes(e, batch, r, s);
                for (int i = 0; i < COUNTER_COUNT; i++)
                    if (r->counter_values[i] != NULL)
                        r->counter_values[i][s] = counter_read(&counters[i]) / (double)iterations;
                r->samples = (size_t)s + 1;
            }
            if (prof.enabled)
                profile_arm(false);
            r->iterations = iterations;
        }
        turn_end();
        turn_begin();   /* teardown waits for the partner's last sample */
        if (e->teardown)
            e->teardown(batch->context);
        turn_end();
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
    fputs("}", out);
    if (opt->profile != NULL) {
        fputs(",\n    \"profile\": {\"path\": ", out);
        json_string(out, opt->profile);
        fprintf(out, ", \"samples\": %" PRIu64 ", \"hz\": %" PRIu64 ", \"dropped\": %" PRIu64 "}",
                prof.samples, opt->profile_hz, (uint64_t)profile_dropped);
    }
    fprintf(out, "\n  },\n  \"benchmarks\": [");
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
    /* A failed benchmark has no samples: [] like samples_ns. */
    fprintf(out, "],\n     \"samples_cpu_ns\": ");
    if (n > 0 && r->cpu_err != 0) {
        fputs("null", out);
    } else {
        fputc('[', out);
        for (size_t s = 0; s < n; s++) {
            fputs(s ? ", " : "", out);
            json_double(out, r->samples_cpu_ns[s]);
        }
        fputc(']', out);
    }
    fprintf(out, ",\n     \"samples_involuntary_switches\": ");
    if (n > 0 && r->switches_err != 0) {
        fputs("null", out);
    } else {
        fputc('[', out);
        for (size_t s = 0; s < n; s++)
            fprintf(out, "%s%" PRIu64, s ? ", " : "", r->samples_switches[s]);
        fputc(']', out);
    }
    fprintf(out, ",\n     \"counters\": {");
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
    if (opt->profile != NULL) {
        fprintf(out, "# profile: %" PRIu64 " samples at %" PRIu64 " Hz (%" PRIu64 " dropped) in ",
                prof.samples, opt->profile_hz, (uint64_t)profile_dropped);
        print_plain(out, opt->profile);
        fputc('\n', out);
    }
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

/* Appends "(off-CPU up to 12.3% of a sample, 3 involuntary switches)" to a
 * row whose thread was off its CPU for a noticeable part of some sample. */
static void table_off_cpu_note(FILE *out, const bench_result *r)
{
    if (r->cpu_err != 0)
        return;
    double off_max = 0.0;
    for (size_t s = 0; s < r->samples; s++) {
        if (r->samples_ns[s] > 0.0) {
            double off = 1.0 - r->samples_cpu_ns[s] / r->samples_ns[s];
            off_max = off > off_max ? off : off_max;
        }
    }
    if (off_max < OFF_CPU_NOTE_FRACTION)
        return;
    fprintf(out, "  (off-CPU up to %.1f%% of a sample", 100.0 * off_max);
    if (r->switches_err == 0) {
        uint64_t switches = 0;
        for (size_t s = 0; s < r->samples; s++)
            switches += r->samples_switches[s];
        fprintf(out, ", %" PRIu64 " involuntary switch%s", switches, switches == 1 ? "" : "es");
    }
    fputc(')', out);
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
    table_off_cpu_note(out, r);
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
    if (opt.turn_in >= 0) {
        signal(SIGPIPE, SIG_IGN);   /* a vanished partner is EPIPE, not death */
        turn_in = opt.turn_in;
        turn_out = opt.turn_out;
    }
    if (opt.counters)
        counters_open();
    const char *no_thread_cpu = getenv("PERFD_HARNESS_TEST_NO_THREAD_CPU");
    thread_probes_disabled = no_thread_cpu != NULL && strcmp(no_thread_cpu, "1") == 0;
    if (opt.profile != NULL) {
        if (count != 1)
            return usage_error("--profile: --filter must select exactly one benchmark "
                               "(%ld selected)", count);
        rc = profile_setup(&opt);
        if (rc != 0) {
            counters_close();
            return rc;
        }
    }

    run_context ctx;
    collect_context(&ctx, &opt);
    name_width = 9;
    for (size_t i = 0; i < registry_count; i++) {
        int len = (int)strlen(registry[i].name);
        if (selected[i] && len > name_width)
            name_width = len;
    }
    /* With --profile the header carries the profile's sample count, so it is
     * printed after the (single) benchmark has run. */
    bool header_done = false;
    if (!prof.enabled) {
        if (opt.json)
            json_begin(stdout, &ctx, &opt);
        else
            table_begin(stdout, &ctx, &opt);
        fflush(stdout);
        header_done = true;
    }

    static struct perfd_batch_ batch;
    int failed = 0;
    bool first = true, profile_ok = true;
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
        if (!header_done) {
            profile_ok = profile_write();
            if (profile_dropped > 0)
                fprintf(stderr,
                        PROG ": warning: --profile: %" PRIu64 " samples dropped (more than one "
                             "batch's worth of stacks fits in the buffer; lower --profile-hz "
                             "or --min-time)\n",
                        (uint64_t)profile_dropped);
            if (opt.json)
                json_begin(stdout, &ctx, &opt);
            else
                table_begin(stdout, &ctx, &opt);
            header_done = true;
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
    profile_free();
    rc = finish_output();
    if (rc != 0)
        return rc;
    if (!profile_ok)
        return PERFD_EXIT_USAGE;
    return failed > 99 ? 99 : failed;
}
