/* argv -> config, secrets, start/stop order. Nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podrouter/config.h"
#include "podrouter/drain.h"
#include "podrouter/log.h"
#include "podrouter/loop.h"
#include "podrouter/register.h"
#include "podrouter/registry.h"

/* Read a small secret file, trimming trailing whitespace. 0 or negative errno. */
static int read_secret(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    if ((size_t)n == cap)
        return -EFBIG;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    if (n == 0)
        return -ENODATA;
    *len = (size_t)n;
    return 0;
}

static int serve(int argc, char **argv)
{
    struct pr_config cfg;
    char err[512] = "";
    pr_config_defaults(&cfg);
    enum pr_config_result r = pr_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == PR_CONFIG_HELP) {
        fputs(pr_config_usage(), stdout);
        return 0;
    }
    if (r != PR_CONFIG_OK) {
        fprintf(stderr, "pod-router: %s\n", err);
        return 2;
    }
    pr_log_init(cfg.log_level, cfg.log_format);

    uint8_t secret[32];
    if (cfg.cookie_secret_file[0]) {
        char buf[4096];
        size_t len = 0;
        int rc = read_secret(cfg.cookie_secret_file, buf, sizeof(buf), &len);
        if (rc) {
            fprintf(stderr, "pod-router: --cookie-secret-file: cannot read %s: %s\n",
                    cfg.cookie_secret_file, strerror(-rc));
            return 2;
        }
        SHA256((const unsigned char *)buf, len, secret);
        memset(buf, 0, sizeof(buf));
    } else {
        if (RAND_bytes(secret, sizeof(secret)) != 1) {
            fprintf(stderr, "pod-router: cannot generate a cookie secret\n");
            return 1;
        }
        if (cfg.cookie_name[0])
            pr_warn("no --cookie-secret-file: using a random per-process cookie key; affinity "
                    "cookies will not verify on other replicas or after a restart");
    }
    char token[4096];
    size_t token_len = 0;
    if (cfg.token_file[0]) {
        int rc = read_secret(cfg.token_file, token, sizeof(token), &token_len);
        if (rc) {
            fprintf(stderr, "pod-router: --token-file: cannot read %s: %s\n", cfg.token_file,
                    strerror(-rc));
            return 2;
        }
    } else {
        pr_warn("no --token-file: admin writes are accepted from loopback peers only");
    }

    signal(SIGPIPE, SIG_IGN);
    struct pr_registry *reg = pr_registry_create(cfg.pod_ttl_ms);
    if (!reg) {
        fprintf(stderr, "pod-router: out of memory\n");
        return 1;
    }
    pr_registry_set_fall(reg, cfg.pod_fall);
    int rc = pr_loop_run(&cfg, reg, secret, token_len ? token : NULL, token_len, err,
                         sizeof(err));
    memset(token, 0, sizeof(token));
    pr_registry_destroy(reg);
    if (rc) {
        fprintf(stderr, "pod-router: %s\n", err[0] ? err : strerror(-rc));
        return err[0] && strncmp(err, "--", 2) == 0 ? 2 : 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
        printf("pod-router %s\n", PR_VERSION);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        printf("pod-router %s: session-affinity router for Socket.IO pods\n\n"
               "usage: pod-router [serve] [flags]   run the router (default)\n"
               "       pod-router register [flags]  registration sidecar for a pod\n"
               "       pod-router drain [flags] NAME drain a pod (--wait-empty: until no active "
               "room)\n"
               "       pod-router --version\n\n"
               "pod-router serve --help and pod-router register --help list the flags.\n",
               PR_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "register") == 0)
        return pr_register_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "drain") == 0)
        return pr_drain_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "pod-router: unknown command \"%s\" (try --help)\n", argv[1]);
        return 2;
    }
    return serve(argc - 1, argv + 1);
}
