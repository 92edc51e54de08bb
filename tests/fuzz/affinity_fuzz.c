/* libFuzzer target: arbitrary bytes -> fake request head -> pr_affinity_extract, and the same
 * bytes -> Engine.IO sid sniffer in fuzzer-chosen chunks. Must never crash, leak or break
 * the invariants checked below (which abort so the fuzzer reports them).
 *
 * Input layout: line 1 = method, line 2 = request target, further lines = "Name: value"
 * headers (split at the first ':'; OWS after it skipped), up to PR_MAX_HEADERS. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/affinity.h"
#include "podrouter/http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[] = "fuzz-secret-fuzz-secret-fuzz-sec";

/* Aborts unless out holds only valid keys and consistent flags. */
static void check_affinity(const struct pr_affinity *a)
{
    if (a->sid_len && (!pr_key_valid(a->sid, a->sid_len) || a->sid[a->sid_len] != '\0'))
        abort();
    if (a->room_len && (!pr_key_valid(a->room, a->room_len) || a->room[a->room_len] != '\0'))
        abort();
    if (a->participant_len && (!pr_key_valid(a->participant, a->participant_len) ||
                               a->participant[a->participant_len] != '\0'))
        abort();
    if (a->handshake && (!a->engineio || a->sid_len))
        abort();
    if (a->browser_redirect && !a->room_len)
        abort();
    /* Nobody can forge an HMAC by fuzzing; a verified cookie would mean a broken check. */
    if (a->cookie_pod_len)
        abort();
}

/* Runs one input through the head parser and the sniffer. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *lines[2 + PR_MAX_HEADERS];
    size_t lens[2 + PR_MAX_HEADERS], n = 0;
    while (p < end && n < 2 + PR_MAX_HEADERS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        lines[n] = p;
        lens[n++] = (size_t)(e - p);
        p = nl ? nl + 1 : end;
    }
    struct pr_header hs[PR_MAX_HEADERS];
    struct pr_request_head h = {"", 0, "", 0, hs, 0};
    if (n > 0) {
        h.method = lines[0];
        h.method_len = lens[0];
    }
    if (n > 1) {
        h.url = lines[1];
        h.url_len = lens[1];
    }
    for (size_t i = 2; i < n; i++) {
        const char *colon = memchr(lines[i], ':', lens[i]);
        struct pr_header *hd = &hs[h.nheaders++];
        hd->name = lines[i];
        hd->name_len = (uint32_t)(colon ? (size_t)(colon - lines[i]) : lens[i]);
        const char *v = colon ? colon + 1 : lines[i] + lens[i];
        const char *ve = lines[i] + lens[i];
        while (v < ve && *v == ' ')
            v++;
        hd->value = v;
        hd->value_len = (uint32_t)(ve - v);
    }

    struct pr_affinity_config cfg = {"roomId", "participantId", "pr_affinity", secret,
                                     sizeof(secret) - 1};
    struct pr_affinity a;
    const char *bad = NULL;
    int rc = pr_affinity_extract(&cfg, &h, &a, &bad);
    if (rc == 0) {
        if (bad != NULL)
            abort();
        check_affinity(&a);
    } else if (bad == NULL) {
        abort();
    }

    /* Sniffer: chunk sizes come from the first byte (1..16), so split reads get explored. */
    struct pr_sid_sniffer s;
    pr_sid_sniffer_init(&s);
    size_t step = size ? (size_t)(data[0] & 15) + 1 : 1;
    char sid[PR_KEY_MAX + 1];
    size_t sid_len = 0;
    int last = 0;
    for (size_t off = 0; off < size; off += step) {
        size_t len = size - off < step ? size - off : step;
        int r = pr_sid_sniffer_feed(&s, (const char *)data + off, len, sid, &sid_len);
        if (last != 0 && r != last)
            abort(); /* decided answers are sticky */
        if (r == 1 && (!pr_key_valid(sid, sid_len) || sid[sid_len] != '\0'))
            abort();
        last = r;
    }

    /* Cookie verification straight on the raw bytes. */
    char pod[PR_POD_NAME_MAX + 1];
    if (pr_cookie_verify(secret, sizeof(secret) - 1, (const char *)data, size, pod) == 0)
        abort();
    return 0;
}
