/* crc32.c - table-driven CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320). */
#include "minilib.h"

#include "knob.h"

static uint32_t crc_table[256];
static bool crc_table_ready;

static void crc_build_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
    crc_table_ready = true;
}

/* One byte at a time: each step depends on the previous one, so the cost is
 * a chain of table loads - a compute-bound kernel with a tiny working set.
 *
 * A plain static helper, not always_inline: the compiler inlines it into
 * minilib_crc32 at -O2 on its own (it has one caller), as optimised C does with
 * static helpers, so it has no symbol and a profile without inline frames
 * charges its time to minilib_crc32. The helper knob lives in this body, so a
 * slowdown here is one that only the helper's lines show. */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t len)
{
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_HELPER_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    uint32_t result = 0;
    for (int pass = 0; pass < passes; pass++) {
        uint32_t c = ~crc;
        for (size_t i = 0; i < len; i++)
            c = crc_table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
        result = ~c;
        MINILIB_KEEP_VALUE(result);
    }
    return result;
}

__attribute__((noinline)) uint32_t minilib_crc32(uint32_t crc, const void *data, size_t len)
{
    if (!crc_table_ready)
        crc_build_table();
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_COMPUTE_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    uint32_t result = 0;
    for (int pass = 0; pass < passes; pass++) {
        result = crc_update(crc, data, len);
        MINILIB_KEEP_VALUE(result);
    }
    return result;
}
