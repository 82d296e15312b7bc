/*
 * minilib_tuning.h - slowdown knobs, for demonstrating regression detection.
 *
 * Each knob makes one function do that many percent more of its own real
 * work, on average over many calls (floating values such as 0.5 are fine).
 * 0 disables the knob and removes its code. Set a knob here or on the make
 * command line: make EXTRA_CFLAGS=-DMINILIB_SLOW_PARSE_PCT=10
 */
#ifndef MINILIB_TUNING_H
#define MINILIB_TUNING_H

#ifndef MINILIB_SLOW_PARSE_PCT
#define MINILIB_SLOW_PARSE_PCT 0
#endif

#ifndef MINILIB_SLOW_VALIDATE_PCT
#define MINILIB_SLOW_VALIDATE_PCT 0
#endif

#ifndef MINILIB_SLOW_SERIALIZE_PCT
#define MINILIB_SLOW_SERIALIZE_PCT 0
#endif

#ifndef MINILIB_SLOW_COMPUTE_PCT
#define MINILIB_SLOW_COMPUTE_PCT 0
#endif

#ifndef MINILIB_SLOW_MEMORY_PCT
#define MINILIB_SLOW_MEMORY_PCT 0
#endif

/* In crc_update, the static helper that minilib_crc32 calls and the compiler
 * inlines: the same CRC work done p% more, charged to minilib_crc32 by a
 * profile without inline frames. */
#ifndef MINILIB_SLOW_HELPER_PCT
#define MINILIB_SLOW_HELPER_PCT 0
#endif

#endif /* MINILIB_TUNING_H */
