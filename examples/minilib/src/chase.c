/* chase.c - a random pointer chase over a buffer much larger than the caches. */
#define _DEFAULT_SOURCE /* madvise */
#include "minilib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "knob.h"

/* One cache line per node so every step touches a new line. */
typedef struct {
    uint32_t next;
    uint32_t payload;
    unsigned char pad[56];
} chase_node;

_Static_assert(sizeof(chase_node) == 64, "chase_node must fill one cache line");

struct minilib_chase {
    chase_node *nodes;
    size_t count;
    uint32_t cursor;
};

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

minilib_chase *minilib_chase_create(size_t bytes, uint64_t seed)
{
    size_t count = bytes / sizeof(chase_node);
    if (count < 2 || count > UINT32_MAX)
        return NULL;
    minilib_chase *c = calloc(1, sizeof *c);
    uint32_t *order = malloc(count * sizeof *order);
    /* 2 MiB-aligned and backed by transparent huge pages where the kernel allows: the walk
     * then costs cache misses, not a page walk per step whose cost depends on where the
     * kernel happened to place each 4 KiB page (which varied ~4% between processes). */
    size_t huge = (size_t)2 << 20;
    size_t node_bytes = (count * sizeof(chase_node) + huge - 1) / huge * huge;
    chase_node *nodes = aligned_alloc(huge, node_bytes);
    if (nodes != NULL)
        (void)madvise(nodes, node_bytes, MADV_HUGEPAGE);
    if (c == NULL || order == NULL || nodes == NULL) {
        free(c);
        free(order);
        free(nodes);
        return NULL;
    }
    /* Sattolo's algorithm: a uniformly random permutation that is a single
     * cycle, so a walk visits every node before repeating. */
    for (size_t i = 0; i < count; i++)
        order[i] = (uint32_t)i;
    uint64_t rng = seed ? seed : 0x9E3779B97F4A7C15u;
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift64(&rng) % i);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < count; i++) {
        nodes[i].next = order[i];
        nodes[i].payload = (uint32_t)(xorshift64(&rng) & 0xffff);
    }
    free(order);
    c->nodes = nodes;
    c->count = count;
    c->cursor = 0;
    return c;
}

static inline __attribute__((always_inline)) uint64_t chase_follow(const chase_node *nodes,
                                                                   uint32_t *cursor, size_t steps)
{
    uint64_t sum = 0;
    uint32_t at = *cursor;
    for (size_t i = 0; i < steps; i++) {
        sum += nodes[at].payload;
        at = nodes[at].next;
    }
    *cursor = at;
    return sum;
}

__attribute__((noinline)) uint64_t minilib_chase_walk(minilib_chase *chase, size_t steps)
{
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_MEMORY_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    uint64_t sum = 0;
    /* A further pass continues along the cycle, so it touches new, uncached
     * lines just like the real walk (re-walking the same lines would hit the
     * cache and cost far less); the result is the last pass's sum. */
    for (int pass = 0; pass < passes; pass++) {
        sum = chase_follow(chase->nodes, &chase->cursor, steps);
        MINILIB_KEEP_VALUE(sum);
    }
    return sum;
}

void minilib_chase_destroy(minilib_chase *chase)
{
    if (chase == NULL)
        return;
    free(chase->nodes);
    free(chase);
}
