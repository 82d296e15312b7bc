/*
 * minilib.h - a small example C library for perfd: a compute-bound kernel
 * (CRC-32), a memory-bound kernel (a random pointer chase over a large
 * buffer) and a request-handling path (parse -> validate -> serialize).
 *
 * Not thread-safe: the slowdown knobs (minilib_tuning.h) keep per-function
 * state.
 */
#ifndef MINILIB_H
#define MINILIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINILIB_VERSION "1.0.0"

/* ---- compute: CRC-32 (IEEE 802.3, reflected, as in zlib) ---------------- */

/* CRC of len bytes continuing from crc (start with 0). */
uint32_t minilib_crc32(uint32_t crc, const void *data, size_t len);

/* ---- memory: random pointer chase ---------------------------------------- */

typedef struct minilib_chase minilib_chase;

/* Builds one random cycle through `bytes` of 64-byte nodes (deterministic for
 * a given seed). Returns NULL if bytes is too small or memory is short. */
minilib_chase *minilib_chase_create(size_t bytes, uint64_t seed);

/* Follows `steps` links from where the previous walk stopped; returns the sum
 * of the payloads visited. Every step is a dependent load. */
uint64_t minilib_chase_walk(minilib_chase *chase, size_t steps);

void minilib_chase_destroy(minilib_chase *chase);

/* ---- request handling ---------------------------------------------------- */

#define MINILIB_MAX_PATH 256
#define MINILIB_MAX_NAME 32
#define MINILIB_MAX_VALUE 128
#define MINILIB_MAX_PARAMS 16
#define MINILIB_MAX_HEADERS 32

typedef enum {
    MINILIB_OK = 0,
    MINILIB_E_SYNTAX = -1,      /* malformed request line or header */
    MINILIB_E_TOO_LONG = -2,    /* a path, name or value exceeds its limit */
    MINILIB_E_TOO_MANY = -3,    /* too many parameters or headers */
    MINILIB_E_METHOD = -4,      /* method not supported */
    MINILIB_E_PATH = -5,        /* path not absolute or escapes the root */
    MINILIB_E_HEADER = -6,      /* invalid or duplicated header */
    MINILIB_E_LENGTH = -7,      /* Content-Length missing, invalid or wrong */
    MINILIB_E_NO_ROOM = -8,     /* output buffer too small */
} minilib_status;

typedef enum {
    MINILIB_METHOD_UNKNOWN = 0,
    MINILIB_METHOD_GET,
    MINILIB_METHOD_HEAD,
    MINILIB_METHOD_POST,
    MINILIB_METHOD_PUT,
    MINILIB_METHOD_DELETE,
} minilib_method;

typedef struct {
    char name[MINILIB_MAX_NAME];    /* headers: lower-cased */
    char value[MINILIB_MAX_VALUE];
    uint32_t name_hash;             /* FNV-1a of name */
} minilib_field;

typedef struct {
    minilib_method method;
    int version_minor;              /* HTTP/1.<minor> */
    char path[MINILIB_MAX_PATH];    /* percent-decoded */
    size_t param_count;
    minilib_field params[MINILIB_MAX_PARAMS];   /* query, percent-decoded */
    size_t header_count;
    minilib_field headers[MINILIB_MAX_HEADERS];
    bool has_content_length;
    size_t content_length;
    const char *body;               /* points into the parsed text */
    size_t body_len;
} minilib_request;

/* Parses "METHOD /path?k=v&k2=v2 HTTP/1.1\r\nName: value\r\n...\r\n\r\nbody"
 * into req. Returns MINILIB_OK or a negative minilib_status. */
int minilib_parse_request(const char *text, size_t len, minilib_request *req);

/* Checks a parsed request against the rules of this toy server. Returns
 * MINILIB_OK or a negative minilib_status. */
int minilib_validate_request(const minilib_request *req);

/* Writes an HTTP/1.1 response with a JSON body describing req (or an error
 * body when status is not 200) into buf. Returns the number of bytes written
 * (no NUL terminator), or 0 when cap is too small. */
size_t minilib_serialize_response(const minilib_request *req, int status, char *buf, size_t cap);

/* parse -> validate -> serialize. Returns the response length, 0 when out is
 * too small. */
size_t minilib_handle_request(const char *text, size_t len, char *out, size_t cap);

/* A short English description of a minilib_status. */
const char *minilib_strerror(int status);

#endif /* MINILIB_H */
