/* test_minilib.c - functional checks of minilib; run with `make check`.
 * The results must not depend on the slowdown knobs (except where noted). */
#include "minilib.h"
#include "minilib_tuning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static void test_crc32(void)
{
    CHECK(minilib_crc32(0, "", 0) == 0);
    CHECK(minilib_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(minilib_crc32(minilib_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
    for (int i = 0; i < 100; i++)       /* repeated calls: knob credit must not leak into results */
        CHECK(minilib_crc32(0, "123456789", 9) == 0xCBF43926u);
}

static void test_chase(void)
{
    CHECK(minilib_chase_create(64, 1) == NULL);   /* one node cannot form a cycle */
    size_t nodes = 4096;
    minilib_chase *c = minilib_chase_create(nodes * 64, 7);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    if (MINILIB_SLOW_MEMORY_PCT == 0) {
        /* A single cycle: one full lap visits every node, so two laps sum
         * to the same total. */
        uint64_t lap1 = minilib_chase_walk(c, nodes);
        uint64_t lap2 = minilib_chase_walk(c, nodes);
        CHECK(lap1 == lap2);
        CHECK(lap1 > 0);
    } else {
        CHECK(minilib_chase_walk(c, 10) <= 10u * 0xffffu);
    }
    minilib_chase_destroy(c);
    minilib_chase_destroy(NULL);
}

static int parse_validate(const char *text)
{
    static minilib_request req;
    int rc = minilib_parse_request(text, strlen(text), &req);
    return rc == MINILIB_OK ? minilib_validate_request(&req) : rc;
}

static void test_parse(void)
{
    const char *text = "GET /a/b%20c?x=1&y=two+words&&flag HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "X-Mixed-Case:   padded value \t\r\n"
                       "\r\n";
    minilib_request req;
    CHECK(minilib_parse_request(text, strlen(text), &req) == MINILIB_OK);
    CHECK(req.method == MINILIB_METHOD_GET);
    CHECK(req.version_minor == 1);
    CHECK(strcmp(req.path, "/a/b c") == 0);
    CHECK(req.param_count == 3);
    CHECK(strcmp(req.params[1].name, "y") == 0 && strcmp(req.params[1].value, "two words") == 0);
    CHECK(strcmp(req.params[2].name, "flag") == 0 && req.params[2].value[0] == '\0');
    CHECK(req.header_count == 2);
    CHECK(strcmp(req.headers[1].name, "x-mixed-case") == 0);
    CHECK(strcmp(req.headers[1].value, "padded value") == 0);
    CHECK(req.body_len == 0);
    CHECK(minilib_validate_request(&req) == MINILIB_OK);

    const char *post = "POST /items HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    CHECK(minilib_parse_request(post, strlen(post), &req) == MINILIB_OK);
    CHECK(req.has_content_length && req.content_length == 5 && req.body_len == 5);
    CHECK(memcmp(req.body, "hello", 5) == 0);
    CHECK(minilib_validate_request(&req) == MINILIB_OK);

    CHECK(parse_validate("GET / HTTP/1.0\r\n\r\n") == MINILIB_OK);            /* no Host in 1.0 */
    CHECK(parse_validate("GET / HTTP/1.1\r\n\r\n") == MINILIB_E_HEADER);      /* Host required */
    CHECK(parse_validate("BREW / HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_METHOD);
    CHECK(parse_validate("GET /a/../b HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_PATH);
    CHECK(parse_validate("GET relative HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_PATH);
    CHECK(parse_validate("GET /%2 HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_SYNTAX);
    CHECK(parse_validate("GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_SYNTAX);
    CHECK(parse_validate("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == MINILIB_E_SYNTAX);
    CHECK(parse_validate("GET / HTTP/1.1\r\nHost: h\r\n") == MINILIB_E_SYNTAX);  /* no empty line */
    CHECK(parse_validate("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n") == MINILIB_E_SYNTAX);
    CHECK(parse_validate("GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n") == MINILIB_E_SYNTAX);
    CHECK(parse_validate("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == MINILIB_E_HEADER);
    CHECK(parse_validate("POST / HTTP/1.1\r\nHost: h\r\n\r\n") == MINILIB_E_LENGTH);
    CHECK(parse_validate("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc") == MINILIB_E_LENGTH);
    CHECK(parse_validate("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n") == MINILIB_E_LENGTH);

    char many[1024] = "GET /?";
    for (int i = 0; i <= MINILIB_MAX_PARAMS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "p%d=1&", i);
    strcat(many, " HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(parse_validate(many) == MINILIB_E_TOO_MANY);
}

static void test_handle(void)
{
    char out[2048];
    const char *ok = "GET /s?q=%22x%22 HTTP/1.1\r\nHost: h\r\nX-Request-Id: r\r\n\r\n";
    size_t n = minilib_handle_request(ok, strlen(ok), out, sizeof out);
    CHECK(n > 0 && n < sizeof out);
    out[n < sizeof out ? n : sizeof out - 1] = '\0';
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(out, "\"params\":{\"q\":\"\\\"x\\\"\"}") != NULL);
    CHECK(strstr(out, "\"host\":\"h\",\"request_id\":\"r\"") != NULL);
    const char *body = strstr(out, "\r\n\r\n");
    const char *length = strstr(out, "Content-Length: ");
    CHECK(body != NULL && length != NULL);
    if (body != NULL && length != NULL)
        CHECK((size_t)atoi(length + 16) == strlen(body + 4));

    const char *bad = "BREW / HTTP/1.1\r\nHost: h\r\n\r\n";
    n = minilib_handle_request(bad, strlen(bad), out, sizeof out);
    CHECK(n > 0 && strncmp(out, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    CHECK(minilib_handle_request(ok, strlen(ok), out, 300) == 0);    /* too small: nothing */
    CHECK(strcmp(minilib_strerror(MINILIB_E_PATH), "invalid path") == 0);
}

int main(void)
{
    test_crc32();
    test_chase();
    test_parse();
    test_handle();
    if (failures) {
        fprintf(stderr, "test_minilib: %d checks failed\n", failures);
        return 1;
    }
    printf("test_minilib: all checks passed\n");
    return 0;
}
