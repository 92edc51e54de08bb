/* A small async HTTP/1.1 client on libuv + llhttp: http:// only, one request at a time. */
#ifndef PODROUTER_HTTP_CLIENT_H
#define PODROUTER_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PR_HTTP_CLIENT_MAX_BODY (64 * 1024) /* larger response bodies fail with UV_EMSGSIZE */
#define PR_HTTP_CLIENT_MAX_HEAD (16 * 1024) /* status line + headers, same error */
#define PR_HTTP_CLIENT_MAX_HEADERS 64       /* response headers kept; more fail, same error */
#define PR_HTTP_CLIENT_CONNECT_TIMEOUT_MS 3000
#define PR_HTTP_CLIENT_TIMEOUT_MS 10000

/* A parsed http:// URL: host without brackets, port, path prefix ("" or "/x", no trailing /). */
struct pr_http_url {
    char host[256];
    uint16_t port;
    char path[256];
};

struct pr_http_header {
    const char *name;
    const char *value;
};

/* One request. Strings are copied by pr_http_client_request(); nothing is kept after it. */
struct pr_http_request {
    const char *method;                   /* "GET", "PUT", "POST", "DELETE", "HEAD", ... */
    const char *path;                     /* origin form, "/v1/pods/x"; appended to the URL path */
    const struct pr_http_header *headers; /* extra headers; the client sets Host, Content-Length,
                                             Connection and User-Agent itself */
    size_t nheaders;
    const void *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    uint64_t connect_timeout_ms; /* DNS + TCP connect; 0: PR_HTTP_CLIENT_CONNECT_TIMEOUT_MS */
    uint64_t timeout_ms;         /* the whole exchange; 0: PR_HTTP_CLIENT_TIMEOUT_MS */
};

/* A response, borrowed: valid only during the callback. body is NUL-terminated. */
struct pr_http_response {
    int status;
    const char *body;
    size_t body_len;
    size_t nheaders;
    struct pr_http_header headers[PR_HTTP_CLIENT_MAX_HEADERS];
};

struct pr_http_client;

/* err is 0 with res set, or a negative libuv code with res NULL: UV_ECONNREFUSED,
 * UV_ETIMEDOUT, UV_EAI_* (name resolution), UV_EMSGSIZE (over a limit), UV_EPROTO (bad
 * response), UV_ECONNRESET (closed before the response ended), UV_ECANCELED. */
typedef void (*pr_http_client_cb)(struct pr_http_client *client, int err,
                                  const struct pr_http_response *res, void *data);

/* Parses "http://host[:port][/path]" (host a name, IPv4 or [IPv6]). 0 or -EINVAL. */
int pr_http_url_parse(const char *url, struct pr_http_url *out);

/* A client for base_url on loop, or NULL (bad URL, no memory). keep_alive reuses one
 * connection between requests; the host is resolved again for every new connection. */
struct pr_http_client *pr_http_client_create(uv_loop_t *loop, const char *base_url,
                                             bool keep_alive);

/* Starts req; cb runs exactly once, never before this returns. 0, -EBUSY (a request is in
 * flight), -EINVAL (bad method/path/header, CR or LF anywhere) or -ENOMEM. */
int pr_http_client_request(struct pr_http_client *client, const struct pr_http_request *req,
                           pr_http_client_cb cb, void *data);

/* true while a request is in flight. */
bool pr_http_client_busy(const struct pr_http_client *client);

/* Aborts the request in flight, if any: its cb runs now with UV_ECANCELED. */
void pr_http_client_cancel(struct pr_http_client *client);

/* Cancels as above, closes the connection and frees the client once libuv has closed its
 * handles (run the loop). Accepts NULL. */
void pr_http_client_destroy(struct pr_http_client *client);

/* The value of response header name (case-insensitive), or NULL. */
const char *pr_http_response_header(const struct pr_http_response *res, const char *name);

#endif
