/* The BFE's own net-event store, its enumeration API, and a subscription that dies.
 *
 * Store: every event the engine collects (FWPM_ENGINE_COLLECT_NET_EVENTS on; allow events only
 * with FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW) goes into a circular log of WFPCAP_FAKE_STORE_EVENTS
 * places (FakeSetStoreSize); when it is full the oldest event makes room. Windows documents a
 * circular log of unstated size for current releases (128 KB, "100 to 150 events" in the Vista
 * era): configurable here so that both a store larger and one smaller than a burst are tested.
 * Enumeration as documented: FwpmNetEventCreateEnumHandle0 takes a snapshot of the log with the
 * template applied (time window and conditions, as a subscription's template), FwpmNetEventEnumN
 * pages through it returning FWPM_NET_EVENTn (one allocation, freed with FwpmFreeMemory0),
 * FwpmNetEventDestroyEnumHandle0 ends it. While FWPM_ENGINE_COLLECT_NET_EVENTS is 0 the store cannot be
 * read (FwpmNetEventEnumN: FWP_E_NET_EVENTS_DISABLED, as documented) and nothing can subscribe (the
 * same code: a subscription would never get an event).
 * A subscription that dies (WFPCAP_FAKE_DELIVER_AT_MOST, FakeSetDeliverAtMost): after that many
 * events its callback is never called again, and nothing says so; TinyWall saw this after BFE
 * trouble. -1 (the default) never dies.
 */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

#define FWP_E_INVALID_INTERVAL 0x80320021u
#define FWP_E_INVALID_ENUMERATOR 0x8032001Du
#define MAX_ENUMS 16

DWORD parse_template(const FWPM_NET_EVENT_ENUM_TEMPLATE0 *t, match_t *m);

static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static event_t *g_store;
static uint32_t g_store_size = 100000, g_store_head, g_store_n;
static long g_deliver_at_most = -1;

typedef struct { int used; session_t *owner; event_t *snap; uint32_t n, next; } enum_t;
static enum_t g_enums[MAX_ENUMS];

__attribute__((constructor)) static void store_from_environment(void) {
    const char *v = getenv("WFPCAP_FAKE_STORE_EVENTS");
    if (v && *v) g_store_size = (uint32_t)strtoul(v, NULL, 10);
    v = getenv("WFPCAP_FAKE_DELIVER_AT_MOST");
    if (v && *v) g_deliver_at_most = strtol(v, NULL, 10);
}

uint32_t event_type(const event_t *e) { return e->allow ? CLASSIFY_ALLOW : CLASSIFY_DROP; }

void store_event(const event_t *e) {
    pthread_mutex_lock(&s_mu);
    if (!g_store && g_store_size) g_store = calloc(g_store_size, sizeof(event_t));
    if (g_store) {
        g_store[(g_store_head + g_store_n) % g_store_size] = *e;
        if (g_store_n < g_store_size) g_store_n++;
        else g_store_head = (g_store_head + 1) % g_store_size;  /* the oldest makes room */
    }
    pthread_mutex_unlock(&s_mu);
}

int subscription_dead(sub_t *s) {
    uint64_t handed = __atomic_fetch_add(&s->handed, 1, __ATOMIC_SEQ_CST);
    long limit = __atomic_load_n(&g_deliver_at_most, __ATOMIC_SEQ_CST);
    return limit >= 0 && handed >= (uint64_t)limit;
}

static int matches(const match_t *m, const event_t *e) {
    return !((m->has_proto && m->proto != e->proto) || (m->has_type && m->type != event_type(e)) ||
             (m->has_laddr && (e->laddr & m->lmask) != (m->laddr & m->lmask)) ||
             (m->has_raddr && (e->raddr & m->rmask) != (m->raddr & m->rmask)) ||
             (m->has_lport && (e->lport < m->lport_lo || e->lport > m->lport_hi)) ||
             (m->has_rport && (e->rport < m->rport_lo || e->rport > m->rport_hi)) || (m->app && m->app != e->app) ||
             m->has_user);
}

static uint64_t ft(FILETIME t) { return ((uint64_t)t.dwHighDateTime << 32) | t.dwLowDateTime; }

DWORD FwpmNetEventCreateEnumHandle0(HANDLE h, const FWPM_NET_EVENT_ENUM_TEMPLATE0 *t, HANDLE *out) {
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    if (!out) return ERROR_INVALID_PARAMETER;
    DWORD code;
    if (fail_point("FwpmNetEventCreateEnumHandle0", &code)) return code;
    if (!g_cfg.elevated) return ERROR_ACCESS_DENIED;
    match_t m;
    DWORD rc = parse_template(t, &m);
    if (rc) return rc;
    uint64_t start = t ? ft(t->startTime) : 0, end = t ? ft(t->endTime) : UINT64_MAX;
    if (end < start) return FWP_E_INVALID_INTERVAL;
    pthread_mutex_lock(&s_mu);
    enum_t *en = NULL;
    for (int i = 0; i < MAX_ENUMS && !en; i++)
        if (!g_enums[i].used) en = &g_enums[i];
    if (!en) { pthread_mutex_unlock(&s_mu); return ERROR_INVALID_PARAMETER; }
    *en = (enum_t){1, s, calloc(g_store_n + 1, sizeof(event_t)), 0, 0};
    for (uint32_t i = 0; i < g_store_n; i++) {  /* the snapshot: later events are not in it */
        const event_t *e = &g_store[(g_store_head + i) % g_store_size];
        if (e->filetime >= start && e->filetime <= end && matches(&m, e)) en->snap[en->n++] = *e;
    }
    pthread_mutex_unlock(&s_mu);
    *out = en;
    return ERROR_SUCCESS;
}

static enum_t *enum_of(HANDLE h, HANDLE e) {
    enum_t *en = e;
    if (!session_of(h) || en < g_enums || en >= g_enums + MAX_ENUMS || !en->used || en->owner != session_of(h))
        return NULL;
    return en;
}

DWORD FwpmNetEventDestroyEnumHandle0(HANDLE h, HANDLE e) {
    pthread_mutex_lock(&s_mu);
    enum_t *en = enum_of(h, e);
    if (en) { free(en->snap); en->used = 0; }
    pthread_mutex_unlock(&s_mu);
    return en ? ERROR_SUCCESS : ERROR_INVALID_HANDLE;
}

/* One page of FWPM_NET_EVENT<version> in one allocation: the pointer array, then per event its
 * struct and its CLASSIFY_DROP2-sized payload (DROP1 and ALLOW0 are prefixes of it). */
__attribute__((unused)) static DWORD enum_page(int version, HANDLE h, HANDLE e, uint32_t want, void ***entries, uint32_t *got) {
    if (!entries || !got) return ERROR_INVALID_PARAMETER;
    if (!collecting()) return FWP_E_NET_EVENTS_DISABLED;  /* documented for FwpmNetEventEnum0..5 */
    pthread_mutex_lock(&s_mu);
    enum_t *en = enum_of(h, e);
    if (!en) { pthread_mutex_unlock(&s_mu); return FWP_E_INVALID_ENUMERATOR; }
    uint32_t n = en->n - en->next < want ? en->n - en->next : want;
    size_t ev_size = version == 1 ? sizeof(FWPM_NET_EVENT1) : version == 2 ? sizeof(FWPM_NET_EVENT2)
                   : version <= 4 ? sizeof(FWPM_NET_EVENT3) : sizeof(FWPM_NET_EVENT5);
    size_t one = ev_size + sizeof(FWPM_NET_EVENT_CLASSIFY_DROP2);
    uint8_t *block = api_alloc(n * (sizeof(void *) + one) + 1);
    void **arr = (void **)block;
    uint8_t *item = block + n * sizeof(void *);
    for (uint32_t i = 0; i < n; i++, item += one) {
        const event_t *x = &en->snap[en->next + i];
        FWPM_NET_EVENT_CLASSIFY_DROP2 *d = (FWPM_NET_EVENT_CLASSIFY_DROP2 *)(item + ev_size);
        d->filterId = x->filter_id;
        d->layerId = x->layer_id;
        d->msFwpDirection = g_cfg.plain_directions ? (x->direction == DIR_IN_MS ? 1u : 0u) : x->direction;
        d->isLoopback = 1;
        FWPM_NET_EVENT_HEADER0 *hd = (FWPM_NET_EVENT_HEADER0 *)item;  /* the common header prefix */
        hd->timeStamp.dwLowDateTime = (uint32_t)x->filetime;
        hd->timeStamp.dwHighDateTime = (uint32_t)(x->filetime >> 32);
        hd->flags = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x100;
        hd->ipProtocol = x->proto;
        hd->localAddrV4 = x->laddr;
        hd->remoteAddrV4 = x->raddr;
        hd->localPort = x->lport;
        hd->remotePort = x->rport;
        uint32_t type = event_type(x);
        if (version == 1) { FWPM_NET_EVENT1 *v = (void *)item; v->type = type; v->classifyDrop = (void *)d; }
        else if (version == 2) { FWPM_NET_EVENT2 *v = (void *)item; v->type = type; v->classifyDrop = d; }
        else if (version <= 4) { FWPM_NET_EVENT3 *v = (void *)item; v->type = type; v->classifyDrop = d; }
        else { FWPM_NET_EVENT5 *v = (void *)item; v->type = type; v->classifyDrop = d; }
        arr[i] = item;  /* classifyAllow shares classifyDrop's place in the union */
    }
    en->next += n;
    pthread_mutex_unlock(&s_mu);
    *entries = arr;
    *got = n;
    return ERROR_SUCCESS;
}

#define ENUM(N) DWORD FwpmNetEventEnum##N(HANDLE h, HANDLE e, uint32_t want, void ***entries, uint32_t *got) \
    { return enum_page(N, h, e, want, entries, got); }
/* FwpmNetEventSubscribeN delivers FWPM_NET_EVENT(N+1); its enumerator is FwpmNetEventEnum(N+1) */
#if MAX_SUBSCRIBE >= 0
ENUM(1)
#endif
#if MAX_SUBSCRIBE >= 1
ENUM(2)
#endif
#if MAX_SUBSCRIBE >= 2
ENUM(3)
#endif
#if MAX_SUBSCRIBE >= 3
ENUM(4)
#endif
#if MAX_SUBSCRIBE >= 4
ENUM(5)
#endif

/* ---- test entry points ----------------------------------------------------------------------- */
void FakeSetStoreSize(uint32_t events) {  /* empties the store */
    pthread_mutex_lock(&s_mu);
    free(g_store);
    g_store = NULL;
    g_store_size = events;
    g_store_head = g_store_n = 0;
    pthread_mutex_unlock(&s_mu);
}

void FakeSetDeliverAtMost(long events) { __atomic_store_n(&g_deliver_at_most, events, __ATOMIC_SEQ_CST); }

int FakeOpenEnumHandles(void) {
    int n = 0;
    pthread_mutex_lock(&s_mu);
    for (int i = 0; i < MAX_ENUMS; i++) n += g_enums[i].used;
    pthread_mutex_unlock(&s_mu);
    return n;
}
