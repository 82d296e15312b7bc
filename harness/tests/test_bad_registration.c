/* Two benchmarks with the same name: the binary must refuse to run (exit 100)
 * and name both registrations. Driven by run_tests.py. */
#include "perfd_harness.h"

static void run_empty(perfd_state *st)
{
    while (perfd_keep_running(st)) {
    }
}
PERFD_BENCHMARK("dup/name", NULL, run_empty, NULL);
PERFD_BENCHMARK("dup/name", NULL, run_empty, NULL);
