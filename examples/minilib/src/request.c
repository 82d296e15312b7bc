/*
 * request.c - a toy HTTP/1.x request path: parse -> validate -> serialize.
 *
 * The four public functions are noinline and their helpers always_inline, so
 * a profile attributes all of the path's time to exactly those four names.
 */
#include "minilib.h"

#include <string.h>

#include "knob.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- shared helpers ------------------------------------------------------ */

INLINE uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

INLINE bool is_token_char(unsigned char c)
{
    /* RFC 9110 tchar */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

INLINE bool has_control_char(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* ---- parse --------------------------------------------------------------- */

INLINE int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0, n) into dst (cap bytes including the NUL). */
INLINE int percent_decode(char *dst, size_t cap, const char *src, size_t n, bool plus_is_space)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return MINILIB_E_SYNTAX;   /* truncated escape */
            int hi = hex_value((unsigned char)src[i + 1]);
            int lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return MINILIB_E_SYNTAX;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (out + 1 >= cap)
            return MINILIB_E_TOO_LONG;
        dst[out++] = (char)c;
    }
    dst[out] = '\0';
    return MINILIB_OK;
}

INLINE const char *find_char(const char *p, const char *end, char c)
{
    while (p < end && *p != c)
        p++;
    return p;
}

INLINE const char *find_crlf(const char *p, const char *end)
{
    while (p + 1 < end && !(p[0] == '\r' && p[1] == '\n'))
        p++;
    return p + 1 < end ? p : end;
}

INLINE minilib_method method_from(const char *p, size_t n)
{
    static const struct {
        const char *name;
        minilib_method method;
    } methods[] = {
        {"GET", MINILIB_METHOD_GET},   {"HEAD", MINILIB_METHOD_HEAD},
        {"POST", MINILIB_METHOD_POST}, {"PUT", MINILIB_METHOD_PUT},
        {"DELETE", MINILIB_METHOD_DELETE},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == n && memcmp(methods[i].name, p, n) == 0)
            return methods[i].method;
    return MINILIB_METHOD_UNKNOWN;
}

INLINE int parse_query(const char *p, const char *end, minilib_request *req)
{
    while (p < end) {
        const char *amp = find_char(p, end, '&');
        if (amp > p) {       /* skip empty segments ("a=1&&b=2") */
            if (req->param_count == MINILIB_MAX_PARAMS)
                return MINILIB_E_TOO_MANY;
            minilib_field *f = &req->params[req->param_count];
            const char *eq = find_char(p, amp, '=');
            int rc = percent_decode(f->name, sizeof f->name, p, (size_t)(eq - p), true);
            if (rc != MINILIB_OK)
                return rc;
            const char *v = eq < amp ? eq + 1 : amp;
            rc = percent_decode(f->value, sizeof f->value, v, (size_t)(amp - v), true);
            if (rc != MINILIB_OK)
                return rc;
            f->name_hash = fnv1a(f->name);
            req->param_count++;
        }
        p = amp < end ? amp + 1 : end;
    }
    return MINILIB_OK;
}

INLINE int parse_header(const char *line, const char *eol, minilib_request *req)
{
    if (req->header_count == MINILIB_MAX_HEADERS)
        return MINILIB_E_TOO_MANY;
    minilib_field *f = &req->headers[req->header_count];
    const char *colon = find_char(line, eol, ':');
    if (colon == eol || colon == line)
        return MINILIB_E_SYNTAX;
    size_t n = (size_t)(colon - line);
    if (n >= sizeof f->name)
        return MINILIB_E_TOO_LONG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (!is_token_char(c))
            return MINILIB_E_SYNTAX;
        f->name[i] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
    }
    f->name[n] = '\0';
    const char *v = colon + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    const char *vend = eol;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    size_t vn = (size_t)(vend - v);
    if (vn >= sizeof f->value)
        return MINILIB_E_TOO_LONG;
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return MINILIB_E_SYNTAX;    /* no control characters in field values */
        f->value[i] = (char)c;
    }
    f->value[vn] = '\0';
    f->name_hash = fnv1a(f->name);
    if (strcmp(f->name, "content-length") == 0) {
        size_t value = 0;
        if (vn == 0)
            return MINILIB_E_LENGTH;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9' || value > (SIZE_MAX - 9) / 10)
                return MINILIB_E_LENGTH;
            value = value * 10 + (size_t)(v[i] - '0');
        }
        req->has_content_length = true;
        req->content_length = value;
    }
    req->header_count++;
    return MINILIB_OK;
}

INLINE int parse_into(const char *text, size_t len, minilib_request *req)
{
    const char *p = text, *end = text + len;
    req->method = MINILIB_METHOD_UNKNOWN;
    req->version_minor = -1;
    req->path[0] = '\0';
    req->param_count = 0;
    req->header_count = 0;
    req->has_content_length = false;
    req->content_length = 0;
    req->body = NULL;
    req->body_len = 0;

    /* request line: METHOD SP target SP HTTP/1.x CRLF */
    const char *eol = find_crlf(p, end);
    if (eol == end)
        return MINILIB_E_SYNTAX;
    const char *sp = find_char(p, eol, ' ');
    if (sp == eol || sp == p)
        return MINILIB_E_SYNTAX;
    req->method = method_from(p, (size_t)(sp - p));
    const char *target = sp + 1;
    const char *target_end = find_char(target, eol, ' ');
    if (target_end == eol || target_end == target)
        return MINILIB_E_SYNTAX;
    const char *query = find_char(target, target_end, '?');
    int rc = percent_decode(req->path, sizeof req->path, target, (size_t)(query - target), false);
    if (rc != MINILIB_OK)
        return rc;
    if (query < target_end) {
        rc = parse_query(query + 1, target_end, req);
        if (rc != MINILIB_OK)
            return rc;
    }
    const char *version = target_end + 1;
    if (eol - version != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
        version[7] > '9')
        return MINILIB_E_SYNTAX;
    req->version_minor = version[7] - '0';

    /* header lines until an empty line */
    p = eol + 2;
    for (;;) {
        eol = find_crlf(p, end);
        if (eol == end)
            return MINILIB_E_SYNTAX;   /* headers must end with an empty line */
        if (eol == p)
            break;
        rc = parse_header(p, eol, req);
        if (rc != MINILIB_OK)
            return rc;
        p = eol + 2;
    }
    p = eol + 2;
    req->body = p;
    req->body_len = (size_t)(end - p);
    return MINILIB_OK;
}

__attribute__((noinline)) int minilib_parse_request(const char *text, size_t len, minilib_request *req)
{
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_PARSE_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    int rc = MINILIB_OK;
    for (int pass = 0; pass < passes; pass++) {
        rc = parse_into(text, len, req);
        MINILIB_KEEP_ALIVE(req);
    }
    return rc;
}

/* ---- validate ------------------------------------------------------------ */

INLINE int check_path(const char *path)
{
    if (path[0] != '/')
        return MINILIB_E_PATH;
    const char *segment = path + 1;
    for (const char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - segment);
            /* "." and ".." could escape the document root */
            if ((n == 1 && segment[0] == '.') || (n == 2 && segment[0] == '.' && segment[1] == '.'))
                return MINILIB_E_PATH;
            if (*p == '\0')
                break;
            segment = p + 1;
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
            return MINILIB_E_PATH;
        }
    }
    return MINILIB_OK;
}

INLINE int check_params(const minilib_request *req)
{
    for (size_t i = 0; i < req->param_count; i++) {
        const minilib_field *f = &req->params[i];
        if (f->name[0] == '\0')
            return MINILIB_E_SYNTAX;
        for (const char *p = f->name; *p != '\0'; p++) {
            char c = *p;
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.';
            if (!ok)
                return MINILIB_E_SYNTAX;
        }
        if (has_control_char(f->value))
            return MINILIB_E_SYNTAX;
    }
    return MINILIB_OK;
}

INLINE int check_headers(const minilib_request *req)
{
    static const char *const singletons[] = {"host", "content-length", "content-type", "authorization"};
    uint32_t singleton_hash[4];
    for (size_t k = 0; k < 4; k++)
        singleton_hash[k] = fnv1a(singletons[k]);
    bool have_host = false;
    for (size_t i = 0; i < req->header_count; i++) {
        const minilib_field *f = &req->headers[i];
        if (f->name[0] == '\0')
            return MINILIB_E_HEADER;
        for (size_t k = 0; k < 4; k++) {
            if (f->name_hash != singleton_hash[k] || strcmp(f->name, singletons[k]) != 0)
                continue;
            if (k == 0)
                have_host = true;
            for (size_t j = 0; j < i; j++)      /* a singleton header may appear once */
                if (req->headers[j].name_hash == f->name_hash &&
                    strcmp(req->headers[j].name, f->name) == 0)
                    return MINILIB_E_HEADER;
        }
    }
    if (req->version_minor >= 1 && !have_host)
        return MINILIB_E_HEADER;
    return MINILIB_OK;
}

INLINE int validate_once(const minilib_request *req)
{
    if (req->method == MINILIB_METHOD_UNKNOWN)
        return MINILIB_E_METHOD;
    if (req->version_minor != 0 && req->version_minor != 1)
        return MINILIB_E_SYNTAX;
    int rc = check_path(req->path);
    if (rc == MINILIB_OK)
        rc = check_params(req);
    if (rc == MINILIB_OK)
        rc = check_headers(req);
    if (rc != MINILIB_OK)
        return rc;
    bool needs_body = req->method == MINILIB_METHOD_POST || req->method == MINILIB_METHOD_PUT;
    if (needs_body && !req->has_content_length)
        return MINILIB_E_LENGTH;
    if (req->has_content_length ? req->content_length != req->body_len : req->body_len != 0)
        return MINILIB_E_LENGTH;
    return MINILIB_OK;
}

__attribute__((noinline)) int minilib_validate_request(const minilib_request *req)
{
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_VALIDATE_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    int rc = MINILIB_OK;
    for (int pass = 0; pass < passes; pass++) {
        rc = validate_once(req);
        MINILIB_KEEP_VALUE(rc);
    }
    return rc;
}

/* ---- serialize ----------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
} writer;

INLINE void put_bytes(writer *w, const char *s, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

INLINE void put_str(writer *w, const char *s)
{
    put_bytes(w, s, strlen(s));
}

INLINE void put_uint(writer *w, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put_bytes(w, digits + sizeof digits - n, n);
}

INLINE bool json_needs_escape(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c == 0x7f;
}

INLINE void put_json_string(writer *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put_bytes(w, "\"", 1);
    while (*s != '\0') {
        size_t run = 0;     /* copy runs of plain characters in one go */
        while (s[run] != '\0' && !json_needs_escape((unsigned char)s[run]))
            run++;
        put_bytes(w, s, run);
        s += run;
        if (*s == '\0')
            break;
        unsigned char c = (unsigned char)*s++;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put_bytes(w, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put_bytes(w, esc, 6);
        }
    }
    put_bytes(w, "\"", 1);
}

INLINE void put_fields(writer *w, const minilib_field *fields, size_t count)
{
    put_bytes(w, "{", 1);
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            put_bytes(w, ",", 1);
        put_json_string(w, fields[i].name);
        put_bytes(w, ":", 1);
        put_json_string(w, fields[i].value);
    }
    put_bytes(w, "}", 1);
}

/* Value of the first header called name (lower case), "" if absent. */
INLINE const char *find_header(const minilib_request *req, const char *name)
{
    uint32_t hash = fnv1a(name);
    for (size_t i = 0; i < req->header_count; i++)
        if (req->headers[i].name_hash == hash && strcmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return "";
}

INLINE const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    default: return "Internal Server Error";
    }
}

INLINE const char *method_name(minilib_method m)
{
    switch (m) {
    case MINILIB_METHOD_GET: return "GET";
    case MINILIB_METHOD_HEAD: return "HEAD";
    case MINILIB_METHOD_POST: return "POST";
    case MINILIB_METHOD_PUT: return "PUT";
    case MINILIB_METHOD_DELETE: return "DELETE";
    default: return "UNKNOWN";
    }
}

/* Room reserved in front of the body for the status line and headers, which
 * are written after the body because they include its length and hash. */
#define HEAD_ROOM 256

INLINE size_t serialize_once(const minilib_request *req, int status, char *buf, size_t cap)
{
    if (cap < HEAD_ROOM)
        return 0;
    writer body = {buf + HEAD_ROOM, cap - HEAD_ROOM, 0, false};
    if (status == 200) {
        put_str(&body, "{\"method\":");
        put_json_string(&body, method_name(req->method));
        put_str(&body, ",\"path\":");
        put_json_string(&body, req->path);
        put_str(&body, ",\"params\":");
        put_fields(&body, req->params, req->param_count);
        put_str(&body, ",\"host\":");
        put_json_string(&body, find_header(req, "host"));
        put_str(&body, ",\"request_id\":");
        put_json_string(&body, find_header(req, "x-request-id"));
        put_str(&body, ",\"header_count\":");
        put_uint(&body, req->header_count);
        put_str(&body, ",\"body_bytes\":");
        put_uint(&body, req->body_len);
        put_str(&body, "}\n");
    } else {
        put_str(&body, "{\"error\":");
        put_json_string(&body, reason_phrase(status));
        put_str(&body, ",\"status\":");
        put_uint(&body, (uint64_t)status);
        put_str(&body, "}\n");
    }
    if (body.overflow)
        return 0;

    uint32_t etag = 2166136261u;
    for (size_t i = 0; i < body.len; i++) {
        etag ^= (unsigned char)body.buf[i];
        etag *= 16777619u;
    }
    char head_buf[HEAD_ROOM];
    writer head = {head_buf, sizeof head_buf, 0, false};
    put_str(&head, "HTTP/1.1 ");
    put_uint(&head, (uint64_t)status);
    put_str(&head, " ");
    put_str(&head, reason_phrase(status));
    put_str(&head, "\r\nContent-Type: application/json\r\nContent-Length: ");
    put_uint(&head, body.len);
    put_str(&head, "\r\nETag: \"");
    static const char hex[] = "0123456789abcdef";
    char tag[8];
    for (int i = 0; i < 8; i++)
        tag[i] = hex[(etag >> (28 - 4 * i)) & 15u];
    put_bytes(&head, tag, sizeof tag);
    put_str(&head, "\"\r\nCache-Control: no-store\r\nServer: minilib/" MINILIB_VERSION "\r\n\r\n");
    if (head.overflow)
        return 0;
    memmove(buf + head.len, body.buf, body.len);
    memcpy(buf, head.buf, head.len);
    return head.len + body.len;
}

__attribute__((noinline)) size_t minilib_serialize_response(const minilib_request *req, int status,
                                                            char *buf, size_t cap)
{
    static double credit;
    /* volatile data, not a constant: builds with any knob value run the same code */
    static volatile double knob_pct __attribute__((section(".data"))) = MINILIB_SLOW_SERIALIZE_PCT;
    int passes = MINILIB_KNOB_PASSES(credit, knob_pct);
    size_t n = 0;
    for (int pass = 0; pass < passes; pass++) {
        n = serialize_once(req, status, buf, cap);
        MINILIB_KEEP_ALIVE(buf);
    }
    return n;
}

/* ---- handle -------------------------------------------------------------- */

INLINE int status_for(int rc)
{
    switch (rc) {
    case MINILIB_OK: return 200;
    case MINILIB_E_METHOD: return 405;
    case MINILIB_E_TOO_LONG:
    case MINILIB_E_TOO_MANY: return 413;
    case MINILIB_E_LENGTH: return 411;
    default: return 400;
    }
}

__attribute__((noinline)) size_t minilib_handle_request(const char *text, size_t len, char *out, size_t cap)
{
    minilib_request req;
    int rc = minilib_parse_request(text, len, &req);
    if (rc == MINILIB_OK)
        rc = minilib_validate_request(&req);
    return minilib_serialize_response(&req, status_for(rc), out, cap);
}

const char *minilib_strerror(int status)
{
    switch (status) {
    case MINILIB_OK: return "ok";
    case MINILIB_E_SYNTAX: return "malformed request";
    case MINILIB_E_TOO_LONG: return "path, name or value too long";
    case MINILIB_E_TOO_MANY: return "too many parameters or headers";
    case MINILIB_E_METHOD: return "method not supported";
    case MINILIB_E_PATH: return "invalid path";
    case MINILIB_E_HEADER: return "invalid or duplicated header";
    case MINILIB_E_LENGTH: return "missing or wrong Content-Length";
    case MINILIB_E_NO_ROOM: return "output buffer too small";
    default: return "unknown status";
    }
}
