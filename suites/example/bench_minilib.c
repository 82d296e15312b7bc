/*
 * bench_minilib.c - perfd benchmarks of examples/minilib.
 *
 * Built by perfd outside the minilib tree:
 *   cc -std=c11 -O2 -g -fno-omit-frame-pointer -I$WORKTREE/include -I$HARNESS \
 *      bench_minilib.c $HARNESS/perfd_harness.c $WORKTREE/build/libminilib.a
 *
 * Each setup checks that the library gives correct answers first, so a
 * broken build fails the benchmark instead of timing garbage.
 */
#include "minilib.h"
#include "perfd_harness.h"

#include <stdlib.h>
#include <string.h>

/* ---- compute/crc32: CRC-32 of a 4 KiB buffer ----------------------------- */

#define CRC_BYTES 4096

static void *setup_crc(void)
{
    if (minilib_crc32(0, "123456789", 9) != 0xCBF43926u) {
        perfd_fail(NULL, "minilib_crc32 gives the wrong check value");
        return NULL;
    }
    unsigned char *buf = malloc(CRC_BYTES);
    if (buf == NULL) {
        perfd_fail(NULL, "out of memory");
        return NULL;
    }
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < CRC_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    return buf;
}

static void run_crc(perfd_state *st)
{
    const unsigned char *buf = perfd_context(st);
    while (perfd_keep_running(st)) {
        uint32_t crc = minilib_crc32(0, buf, CRC_BYTES);
        perfd_do_not_optimize(crc);
    }
}
PERFD_BENCHMARK("compute/crc32", setup_crc, run_crc, free);

/* ---- memory/chase: 256 dependent loads over 64 MiB ------------------------ */

/* Larger than the last-level cache of typical benchmark machines, so nearly
 * every step is a cache (and TLB) miss. */
#define CHASE_BYTES (64u << 20)
#define CHASE_STEPS 256

static void *setup_chase(void)
{
    minilib_chase *chase = minilib_chase_create(CHASE_BYTES, 42);
    if (chase == NULL)
        perfd_fail(NULL, "minilib_chase_create(%u bytes) failed", CHASE_BYTES);
    return chase;
}

static void run_chase(perfd_state *st)
{
    minilib_chase *chase = perfd_context(st);
    while (perfd_keep_running(st)) {
        uint64_t sum = minilib_chase_walk(chase, CHASE_STEPS);
        perfd_do_not_optimize(sum);
    }
}

static void teardown_chase(void *ctx)
{
    minilib_chase_destroy(ctx);
}
PERFD_BENCHMARK("memory/chase", setup_chase, run_chase, teardown_chase);

/* ---- request/parse and request/handle ------------------------------------ */

static const char request_text[] =
    "GET /api/v1/items/search?q=perf%20regression&limit=50&offset=100&sort=-created"
    "&fields=id,name,price&filter=color%3Dred&lang=en-US&token=abc123def456 HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: perfd-bench/1.0 (Linux x86_64)\r\n"
    "Accept: application/json, text/plain;q=0.9, */*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.7\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Request-Id: 6f1c2a9e-4b7d-4e3f-9a21-0c5d8e7f6a4b\r\n"
    "X-Forwarded-For: 203.0.113.7, 198.51.100.23\r\n"
    "Cookie: session=9b8c7d6e5f4a3b2c1d0e; theme=dark; tz=Europe%2FBerlin\r\n"
    "Referer: https://shop.example.com/catalog?page=2\r\n"
    "DNT: 1\r\n"
    "Origin: https://shop.example.com\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl\r\n"
    "If-None-Match: \"5d8c72a5edda8d6a\"\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "\r\n";

typedef struct {
    minilib_request req;
    char out[16384];
} request_ctx;

static void *setup_request(void)
{
    request_ctx *ctx = malloc(sizeof *ctx);
    if (ctx == NULL) {
        perfd_fail(NULL, "out of memory");
        return NULL;
    }
    size_t len = sizeof request_text - 1;
    int rc = minilib_parse_request(request_text, len, &ctx->req);
    if (rc == MINILIB_OK)
        rc = minilib_validate_request(&ctx->req);
    if (rc != MINILIB_OK) {
        perfd_fail(NULL, "the benchmark request is rejected: %s", minilib_strerror(rc));
        return ctx;
    }
    if (ctx->req.param_count != 8 || ctx->req.header_count != 16 ||
        strcmp(ctx->req.params[0].value, "perf regression") != 0) {
        perfd_fail(NULL, "the benchmark request parses wrongly");
        return ctx;
    }
    size_t n = minilib_handle_request(request_text, len, ctx->out, sizeof ctx->out);
    if (n == 0 || strncmp(ctx->out, "HTTP/1.1 200 OK\r\n", 17) != 0)
        perfd_fail(NULL, "minilib_handle_request does not answer 200 OK");
    return ctx;
}

static void run_parse(perfd_state *st)
{
    request_ctx *ctx = perfd_context(st);
    while (perfd_keep_running(st)) {
        int rc = minilib_parse_request(request_text, sizeof request_text - 1, &ctx->req);
        perfd_do_not_optimize(rc);
        perfd_clobber_memory();
    }
}
PERFD_BENCHMARK("request/parse", setup_request, run_parse, free);

static void run_handle(perfd_state *st)
{
    request_ctx *ctx = perfd_context(st);
    while (perfd_keep_running(st)) {
        size_t n = minilib_handle_request(request_text, sizeof request_text - 1, ctx->out,
                                          sizeof ctx->out);
        perfd_do_not_optimize(n);
        perfd_clobber_memory();
    }
}
PERFD_BENCHMARK("request/handle", setup_request, run_handle, free);
