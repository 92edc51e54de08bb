/* Redis store, the master: its address (process-wide, shared by every handle, guarded by
 * pr__rs_mu) and Sentinel's +switch-master messages that move it (see store_redis.c for the
 * design). Also defines the process-wide settings pr__rs_g and their lock. */
#include <stdio.h>
#include <string.h>

#include "store_redis_int.h"

pthread_mutex_t pr__rs_mu = PTHREAD_MUTEX_INITIALIZER;
struct shared pr__rs_g;

/* Copy of the current master address; false when not known yet. */
bool pr__rs_master_addr(char *host, size_t cap, uint16_t *port, uint32_t *gen)
{
    pthread_mutex_lock(&pr__rs_mu);
    bool ok = pr__rs_g.master_gen != 0;
    if (ok) {
        snprintf(host, cap, "%s", pr__rs_g.master_host);
        *port = pr__rs_g.master_port;
        *gen = pr__rs_g.master_gen;
    }
    pthread_mutex_unlock(&pr__rs_mu);
    return ok;
}

/* Record host:port as the master; bumps the generation when it changed. */
void pr__rs_master_set(const char *host, uint16_t port)
{
    pthread_mutex_lock(&pr__rs_mu);
    if (pr__rs_g.master_gen == 0 || strcmp(pr__rs_g.master_host, host) != 0 ||
        pr__rs_g.master_port != port) {
        snprintf(pr__rs_g.master_host, sizeof(pr__rs_g.master_host), "%s", host);
        pr__rs_g.master_port = port;
        pr__rs_g.master_gen++;
        char p[8];
        snprintf(p, sizeof(p), "%u", (unsigned)port);
        pr_info("redis master", "host", host, "#port", p);
    }
    pthread_mutex_unlock(&pr__rs_mu);
}

/* Current master generation (0 = unknown). */
uint32_t pr__rs_master_gen(void)
{
    pthread_mutex_lock(&pr__rs_mu);
    uint32_t gen = pr__rs_g.master_gen;
    pthread_mutex_unlock(&pr__rs_mu);
    return gen;
}

/* +switch-master <name> <old-ip> <old-port> <new-ip> <new-port>: follow our master. */
void pr__rs_switch_master(struct redis_store *rs, const char *msg, size_t len)
{
    char buf[512], name[PR_REDIS_MASTER_MAX + 1], oip[PR_REDIS_HOST_MAX + 1],
        nip[PR_REDIS_HOST_MAX + 1];
    unsigned oport, nport;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (sscanf(buf, "%127s %255s %u %255s %u", name, oip, &oport, nip, &nport) != 5 ||
        strcmp(name, pr__rs_g.url.master) != 0 || nport == 0 || nport > 65535)
        return;
    pr_info("redis sentinel failover", "master", name, "new_host", nip);
    pr__rs_master_set(nip, (uint16_t)nport);
    rs->need_master = false;
}
