/*
 * knob.h - shared plumbing of the slowdown knobs (internal).
 *
 * A function with a knob of pct percent keeps a static credit, adds pct/100
 * per call, and does its whole work once more per full unit of credit. The
 * extra passes run the very same code on the very same data as the real pass
 * (a loop in the function's own body, writing the caller's result again), so
 * a profiler charges the extra time to that function and the slowdown is
 * proportional. Writing a redo to a separate scratch object is NOT
 * equivalent: its addresses interact differently with the caches and the
 * store/load disambiguation (measured: a 10 % parse knob then cost 25 %).
 */
#ifndef MINILIB_KNOB_H
#define MINILIB_KNOB_H

#include "minilib_tuning.h"

/* 1 + the number of extra passes this call owes; updates *credit. */
static inline __attribute__((always_inline)) int minilib_knob_passes_(double *credit, double pct)
{
    *credit += pct / 100.0;
    int passes = 1;
    while (*credit >= 1.0) {
        *credit -= 1.0;
        passes++;
    }
    return passes;
}

/* Total passes for a knob (1 when it is 0). Callers pass a `static volatile double` holding
 * the knob's macro value: the compiler can then fold nothing, every build runs the same
 * machine code and builds differ only in one double in .data. (Folding a 0 knob away changed
 * code layout and cost the parser several percent by itself, so a "1%" knob measured +7%: a
 * knob must change the work, not the binary.) */
#define MINILIB_KNOB_PASSES(credit, knob) minilib_knob_passes_(&(credit), (knob))

/* Barriers between passes: the pass's output counts as used and the compiler
 * forgets what it knew about memory, so a further pass can neither be dropped
 * nor merged with the previous one. */
#define MINILIB_KEEP_ALIVE(ptr) __asm__ volatile("" : : "r"(ptr) : "memory")
#define MINILIB_KEEP_VALUE(value) __asm__ volatile("" : "+r"(value) : : "memory")

#endif /* MINILIB_KNOB_H */
