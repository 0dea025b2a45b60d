/* Classification of UDP packets at the four layers, as WFP does it for a loopback datagram.
 *
 * Outgoing copy: ALE_AUTH_CONNECT_V4, then OUTBOUND_TRANSPORT_V4 (local = source).
 * Incoming copy: only if the outgoing copy was not dropped, and only where a UDP socket listens on
 * the destination (Microsoft's "UDP packet flows": without a listener a datagram takes the
 * INBOUND_IPPACKET discard path and never reaches the transport or ALE receive layers); then
 * INBOUND_TRANSPORT_V4, then ALE_AUTH_RECV_ACCEPT_V4 (local = destination).
 * The first blocking filter that matches drops the packet and makes one CLASSIFY_DROP event.
 * The app id of a packet is the image of the process that owns its local port's socket
 * (/proc/thread-self/net/udp -> socket inode -> /proc/<pid>/fd -> /proc/<pid>/exe).
 * Undocumented on Windows, configurable here: with RECLASSIFY=0 an ALE layer remembers a blocked
 * tuple for 60 s and drops its later packets without a new event.
 * Every event made is also kept in a log ring (time, tuple, filter) for an enumerable store.
 */
#include "fake.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTL_100NS (60ull * 10000000ull)
#define LOG_SIZE 65536

static pthread_mutex_t c_mu = PTHREAD_MUTEX_INITIALIZER;    /* socket table, owners, tuples, log */
static pthread_mutex_t app_mu = PTHREAD_MUTEX_INITIALIZER;  /* interned app ids (taken inside c_mu) */

uint64_t filetime_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 10000000ull + (uint64_t)ts.tv_nsec / 100ull + 116444736000000000ull;
}

/* ---- app ids ------------------------------------------------------------------------------------ */
static struct { uint32_t size; uint8_t bytes[APP_BYTES]; } g_apps[MAX_APPS + 1];
static int g_napps;

int intern_app(const uint8_t *bytes, uint32_t size) {
    if (!bytes || size == 0 || size > APP_BYTES) return 0;
    pthread_mutex_lock(&app_mu);
    int found = 0;
    for (int i = 1; i <= g_napps && !found; i++)
        if (g_apps[i].size == size && memcmp(g_apps[i].bytes, bytes, size) == 0) found = i;
    if (!found && g_napps < MAX_APPS) {
        found = ++g_napps;
        g_apps[found].size = size;
        memcpy(g_apps[found].bytes, bytes, size);
    }
    pthread_mutex_unlock(&app_mu);
    return found;
}

int app_bytes(int app, const uint8_t **bytes) {
    if (app <= 0 || app > g_napps) return 0;
    *bytes = g_apps[app].bytes;
    return (int)g_apps[app].size;
}

int app_id_of_path(const char *path, uint8_t *out, uint32_t cap) {
    char text[APP_BYTES / 2];
    int n = snprintf(text, sizeof text, "\\device\\harddiskvolume1%s", path);
    if (n <= 0 || (uint32_t)(2 * (n + 1)) > cap) return 0;
    for (int i = 0; i <= n; i++) {  /* lower case, backslashes, UTF-16LE, NUL included */
        char c = text[i] == '/' ? '\\' : text[i];
        out[2 * i] = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        out[2 * i + 1] = 0;
    }
    return 2 * (n + 1);
}

static int app_of_pid(long pid) {
    char link[64], path[1024];
    snprintf(link, sizeof link, "/proc/%ld/exe", pid);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    uint8_t bytes[APP_BYTES];
    int size = app_id_of_path(path, bytes, sizeof bytes);
    return size > 0 ? intern_app(bytes, (uint32_t)size) : 0;
}

int self_app(void) {
    static int app;
    if (!app) app = app_of_pid((long)getpid());
    return app;
}

/* ---- UDP sockets of this thread's network namespace ------------------------------------------- */
typedef struct { uint32_t addr; uint16_t port; unsigned long inode; int next; } sock_t;
static sock_t *g_socks;
static int g_nsocks, g_capsocks;
static int g_head[65536];
static uint32_t g_head_gen[65536], g_gen = 1;  /* nothing current before the first read */
static uint64_t g_table_time;  /* FILETIME when the table was read */

static void add_socket(uint32_t addr, uint16_t port, unsigned long inode) {  /* addr in host order */
    if (g_nsocks == g_capsocks) {
        g_capsocks = g_capsocks ? 2 * g_capsocks : 1024;
        g_socks = realloc(g_socks, sizeof(sock_t) * (size_t)g_capsocks);
    }
    sock_t *s = &g_socks[g_nsocks];
    s->addr = addr;
    s->port = port;
    s->inode = inode;
    s->next = g_head_gen[port] == g_gen ? g_head[port] : -1;
    g_head[port] = g_nsocks;
    g_head_gen[port] = g_gen;
    g_nsocks++;
}

/* The IPv4 UDP sockets from the kernel's socket diagnostics (NETLINK_SOCK_DIAG): linear in their
 * number, where /proc/net/udp is not (0.5 s for the 12,000 receivers of one inbound trial, read
 * again every 100 ms of traffic). Returns 0 if the dump could not be had. */
static int read_by_sock_diag(void) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return 0;
    struct { struct nlmsghdr h; struct inet_diag_req_v2 r; } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.r.sdiag_family = AF_INET;
    req.r.sdiag_protocol = IPPROTO_UDP_;
    req.r.idiag_states = ~0u;
    if (send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req) { close(fd); return 0; }
    static char buf[1 << 16];
    int done = 0, ok = 1;
    while (!done && ok) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) { ok = 0; break; }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (h->nlmsg_type == NLMSG_ERROR) { ok = 0; break; }
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            add_socket(ntohl(m->id.idiag_src[0]), ntohs(m->id.idiag_sport), m->idiag_inode);
        }
    }
    close(fd);
    return ok;
}

static void read_udp_table(void) {
    g_table_time = filetime_now();
    g_nsocks = 0;
    g_gen++;
    if (read_by_sock_diag()) return;
    g_nsocks = 0;
    g_gen++;
    FILE *f = fopen("/proc/thread-self/net/udp", "r");
    if (!f) return;
    char line[512];
    if (!fgets(line, sizeof line, f)) { fclose(f); return; }
    unsigned addr, port;
    unsigned long inode;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, " %*d: %x:%x %*x:%*x %*x %*x:%*x %*x:%*x %*x %*u %*u %lu", &addr, &port, &inode) == 3)
            add_socket(ntohl(addr), (uint16_t)port, inode);
    fclose(f);
}

/* A socket bound to addr:port (or to any address on port). The table is read again on a miss when
 * it is older than the packet (a socket bound before the packet was sent is always seen), and on a
 * hit when it is more than 100 ms older (a socket closed since then is soon forgotten). */
static const sock_t *socket_on(uint32_t addr, uint16_t port, uint64_t packet_time) {
    if (g_table_time + 1000000u < packet_time) read_udp_table();
    for (int pass = 0; pass < 2; pass++) {
        if (g_head_gen[port] == g_gen)
            for (int i = g_head[port]; i >= 0; i = g_socks[i].next)
                if (g_socks[i].addr == addr || g_socks[i].addr == 0) return &g_socks[i];
        if (pass == 0 && g_table_time <= packet_time) read_udp_table();
        else break;
    }
    return NULL;
}

/* Which process owns a socket: one pass over every process's open files records the owner of
 * every socket inode at once (an inbound trial has a receiver per packet: a pass per socket would
 * be a pass per packet), made again only when an inode is missing and the socket table has been
 * read since the last pass. Called with c_mu held. */
#define OWNERS (1u << 17)
static struct { unsigned long inode; int app; } g_owner[OWNERS];
static uint32_t g_owner_gen;  /* g_gen of the socket table when the owners were last read */

static void remember_owner(unsigned long inode, int app) {
    for (uint32_t k = 0; k < OWNERS; k++) {
        uint32_t i = (uint32_t)((inode * 2654435761u + k) & (OWNERS - 1));
        if (g_owner[i].inode == 0 || g_owner[i].inode == inode) { g_owner[i].inode = inode; g_owner[i].app = app; return; }
    }
}

static int owner_of(unsigned long inode, int *app) {
    for (uint32_t k = 0; k < OWNERS; k++) {
        uint32_t i = (uint32_t)((inode * 2654435761u + k) & (OWNERS - 1));
        if (g_owner[i].inode == inode) { *app = g_owner[i].app; return 1; }
        if (g_owner[i].inode == 0) return 0;
    }
    return 0;
}

static void read_owners(void) {
    memset(g_owner, 0, sizeof g_owner);
    g_owner_gen = g_gen;
    DIR *proc = opendir("/proc");
    if (!proc) return;
    struct dirent *p;
    while ((p = readdir(proc))) {
        char *end;
        long pid = strtol(p->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
        DIR *fds = opendir(dir);
        if (!fds) continue;
        int app = -1;  /* the process's image, read at its first socket */
        struct dirent *d;
        while ((d = readdir(fds))) {
            char link[320], target[64];
            unsigned long inode;
            snprintf(link, sizeof link, "%s/%s", dir, d->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = 0;
            if (sscanf(target, "socket:[%lu]", &inode) != 1) continue;
            if (app < 0) app = app_of_pid(pid);
            remember_owner(inode, app);
        }
        closedir(fds);
    }
    closedir(proc);
}

static int app_of_socket(const sock_t *s) {
    if (!s) return 0;
    int app;
    if (owner_of(s->inode, &app)) return app;
    if (g_owner_gen != g_gen) {  /* a socket the last pass cannot have seen */
        read_owners();
        if (owner_of(s->inode, &app)) return app;
    }
    remember_owner(s->inode, 0);  /* no process owns it (closed meanwhile): no app id */
    return 0;
}

/* ---- blocked tuples (RECLASSIFY=0) and authorized flows (allow events) ---------------------------- */
typedef struct { uint32_t laddr, raddr; uint16_t lport, rport; uint64_t filter_id, time; } tuple_t;
#define TUPLES (1u << 16)
static tuple_t g_tuples[TUPLES];  /* blocked tuples */
static tuple_t g_flows[TUPLES];   /* flows ALE permitted (allow events): apart, so neither evicts the other */

static tuple_t *slot_in(tuple_t *table, const event_t *e, int *found) {
    /* the local port mixed into the low bits: shifted out of them, tuples that differ only in it
     * (a fresh socket to a blocked destination) shared one probe window and evicted each other */
    uint32_t h = (e->laddr * 2654435761u) ^ (e->raddr * 40503u) ^ ((uint32_t)e->lport * 0x85EBCA6Bu) ^ e->rport;
    h ^= h >> 16;
    tuple_t *oldest = NULL;
    for (uint32_t k = 0; k < 8; k++) {
        tuple_t *t = &table[(h + k) & (TUPLES - 1)];
        if (t->time && t->laddr == e->laddr && t->raddr == e->raddr && t->lport == e->lport &&
            t->rport == e->rport && t->filter_id == e->filter_id && e->filetime - t->time < TTL_100NS) {
            *found = 1;
            return t;
        }
        if (!oldest || t->time < oldest->time) oldest = t;
    }
    *found = 0;
    return oldest;
}

static tuple_t *tuple_slot(const event_t *e, int *found) { return slot_in(g_tuples, e, found); }

void classify_reset(void) {  /* a new capture (another namespace) or another configuration */
    pthread_mutex_lock(&c_mu);
    memset(g_tuples, 0, sizeof g_tuples);
    memset(g_flows, 0, sizeof g_flows);
    g_nsocks = 0;
    g_gen++;
    g_table_time = 0;
    g_owner_gen = 0;
    pthread_mutex_unlock(&c_mu);
}

/* ---- the event log ------------------------------------------------------------------------------ */
static event_t g_log[LOG_SIZE];
static uint64_t g_logged;

void emit(const event_t *e) {
    pthread_mutex_lock(&c_mu);
    g_log[g_logged % LOG_SIZE] = *e;
    g_logged++;
    pthread_mutex_unlock(&c_mu);
    sub_t *targets[MAX_SUBS];
    int nt = 0;
    pthread_mutex_lock(&g_mu);
    /* FWPM_ENGINE_COLLECT_NET_EVENTS; allow events only with FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW set */
    int collect = g_options[0] && (!e->allow || (g_options[1] & KEYWORD_CLASSIFY_ALLOW));
    if (collect) store_event(e);
    if (collect)
        for (int i = 0; i < MAX_SUBS; i++) {
            const match_t *m = &g_subs[i].m;
            if (!g_subs[i].used || g_subs[i].stop || e->filetime < g_subs[i].created) continue;
            if (e->allow && g_subs[i].version < 1) continue;  /* FWPM_NET_EVENT1 has no classifyAllow */
            if ((m->has_proto && m->proto != e->proto) || (m->has_type && m->type != event_type(e)) ||
                (m->has_laddr && (e->laddr & m->lmask) != (m->laddr & m->lmask)) ||
                (m->has_raddr && (e->raddr & m->rmask) != (m->raddr & m->rmask)) ||
                (m->has_lport && (e->lport < m->lport_lo || e->lport > m->lport_hi)) ||
                (m->has_rport && (e->rport < m->rport_lo || e->rport > m->rport_hi)) ||
                (m->app && m->app != e->app) || m->has_user || (g_cfg.silent_templates && m->n))
                continue;
            targets[nt++] = &g_subs[i];
        }
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < nt; i++) offer(targets[i], e);
}

/* ---- classification ----------------------------------------------------------------------------- */
typedef struct { uint32_t laddr, raddr; uint16_t lport, rport; uint64_t time; } view_t;

/* Returns 1 if a blocking filter at `layer` drops the packet; makes its event unless `quiet`. */
static int at_layer(int layer, const view_t *v, uint32_t direction, int app_hint, int quiet) {
    filter_t active[16];
    int n = 0;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_OBJECTS && n < 16; i++)
        if (g_filters[i].used && g_filters[i].layer_id == layer &&
            (g_filters[i].action == FWP_ACTION_BLOCK || g_filters[i].action == FWP_ACTION_PERMIT))
            active[n++] = g_filters[i];
    pthread_mutex_unlock(&g_mu);
    int ale = layer == LAYER_CONNECT || layer == LAYER_RECV_ACCEPT;
    int permitted = -1;  /* a matching permit filter: an allow event unless a block wins */
    for (int i = 0; i < n; i++) {
        const match_t *m = &active[i].m;
        if ((m->has_proto && m->proto != IPPROTO_UDP_) ||
            (m->has_laddr && (v->laddr & m->lmask) != (m->laddr & m->lmask)) ||
            (m->has_raddr && (v->raddr & m->rmask) != (m->raddr & m->rmask)) ||
            (m->has_lport && (v->lport < m->lport_lo || v->lport > m->lport_hi)) ||
            (m->has_rport && (v->rport < m->rport_lo || v->rport > m->rport_hi)))
            continue;
        pthread_mutex_lock(&c_mu);
        int app = app_hint > 0 ? app_hint : ale ? app_of_socket(socket_on(v->laddr, v->lport, v->time)) : 0;
        if (m->app && m->app != app) { pthread_mutex_unlock(&c_mu); continue; }
        if (active[i].action == FWP_ACTION_PERMIT) {
            if (permitted < 0) permitted = i;
            pthread_mutex_unlock(&c_mu);
            continue;
        }
        event_t e = {active[i].id, (uint16_t)layer, IPPROTO_UDP_, v->laddr, v->raddr, v->lport, v->rport,
                     v->time, direction, app, 0};
        int silent = 0;
        if (ale && !g_cfg.reclassify) {
            int found;
            tuple_t *t = tuple_slot(&e, &found);
            silent = found;
            *t = (tuple_t){e.laddr, e.raddr, e.lport, e.rport, e.filter_id, e.filetime};
        }
        pthread_mutex_unlock(&c_mu);
        if (!quiet && !silent) emit(&e);
        return 1;
    }
    if (permitted >= 0 && !quiet) {
        int app = app_hint > 0 ? app_hint : 0;
        if (!app && ale) {
            pthread_mutex_lock(&c_mu);
            app = app_of_socket(socket_on(v->laddr, v->lport, v->time));
            pthread_mutex_unlock(&c_mu);
        }
        uint64_t id = g_cfg.allow_from_default ? DEFAULT_PERMIT_FILTER_ID : active[permitted].id;
        event_t e = {id, (uint16_t)layer, IPPROTO_UDP_, v->laddr, v->raddr, v->lport, v->rport, v->time, direction, app, 1};
        emit(&e);
    } else if (permitted < 0 && ale && !quiet) {
        pthread_mutex_lock(&g_mu);
        int keyword = (g_options[1] & KEYWORD_CLASSIFY_ALLOW) != 0;
        pthread_mutex_unlock(&g_mu);
        if (!keyword) return 0;
        /* with the keyword, every ALE authorization that nothing blocked is an allow event, by the
         * layer's default permit: once per flow (a flow's later packets are not authorized again
         * while it lives; each packet keeps it alive) */
        event_t e = {DEFAULT_PERMIT_FILTER_ID, (uint16_t)layer, IPPROTO_UDP_, v->laddr, v->raddr, v->lport, v->rport,
                     v->time, direction, app_hint > 0 ? app_hint : 0, 1};
        pthread_mutex_lock(&c_mu);
        if (!e.app) e.app = app_of_socket(socket_on(v->laddr, v->lport, v->time));
        int found;
        tuple_t *t = slot_in(g_flows, &e, &found);
        *t = (tuple_t){e.laddr, e.raddr, e.lport, e.rport, e.filter_id, e.filetime};
        pthread_mutex_unlock(&c_mu);
        if (!found) emit(&e);
    }
    return 0;
}

int classify_outgoing(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint64_t filetime, int app_hint) {
    view_t v = {src, dst, sport, dport, filetime};
    return at_layer(LAYER_CONNECT, &v, DIR_OUT_MS, app_hint, 0) ||
           at_layer(LAYER_OUT_TRANSPORT, &v, DIR_OUT_MS, app_hint, 0);
}

static int outgoing_dropped(const view_t *v, int app_hint) {
    return at_layer(LAYER_CONNECT, v, DIR_OUT_MS, app_hint, 1) || at_layer(LAYER_OUT_TRANSPORT, v, DIR_OUT_MS, app_hint, 1);
}

int classify_incoming(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint64_t filetime, int app_hint) {
    view_t out = {src, dst, sport, dport, filetime};
    if (outgoing_dropped(&out, app_hint)) return 0;  /* this copy never existed */
    pthread_mutex_lock(&c_mu);
    int listening = socket_on(dst, dport, filetime) != NULL;
    pthread_mutex_unlock(&c_mu);
    if (!listening) return 0;  /* the discard path: no transport or ALE receive classification */
    view_t in = {dst, src, dport, sport, filetime};
    return at_layer(LAYER_IN_TRANSPORT, &in, DIR_IN_MS, app_hint, 0) ||
           at_layer(LAYER_RECV_ACCEPT, &in, DIR_IN_MS, app_hint, 0);
}

/* ---- test entry points -------------------------------------------------------------------------- */
/* How many events the fake has made (its own filters' and foreign ones), and the index-th of the
 * last LOG_SIZE: filter id, layer id, local/remote address and port, FILETIME. */
uint64_t FakeGeneratedEvents(void) { return __atomic_load_n(&g_logged, __ATOMIC_SEQ_CST); }

int FakeLoggedEvent(uint64_t index, uint64_t *filter_id, uint16_t *layer_id, uint32_t *laddr, uint32_t *raddr,
                    uint16_t *lport, uint16_t *rport, uint64_t *filetime) {
    pthread_mutex_lock(&c_mu);
    int ok = index < g_logged && g_logged - index <= LOG_SIZE;
    if (ok) {
        const event_t *e = &g_log[index % LOG_SIZE];
        *filter_id = e->filter_id; *layer_id = e->layer_id; *laddr = e->laddr; *raddr = e->raddr;
        *lport = e->lport; *rport = e->rport; *filetime = e->filetime;
    }
    pthread_mutex_unlock(&c_mu);
    return ok;
}
