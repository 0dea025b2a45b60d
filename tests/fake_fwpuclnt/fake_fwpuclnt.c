/* A fake fwpuclnt for Linux tests: the subset of the WFP management API that the harness's wfp
 * backend calls, held to Windows' behaviour rather than to the harness's convenience.
 *
 * Documented behaviour it keeps (learn.microsoft.com, fwpmu.h):
 *   - objects added in a dynamic session vanish when the session closes; a session key that is
 *     open already, in any process, is refused (FWP_E_ALREADY_EXISTS); a process's sessions end
 *     with the process (sessions.c: one registry for the fake's processes, both configurable);
 *   - FwpmEngineSetOption0 fails inside a transaction (FWP_E_TXN_IN_PROGRESS) and from a dynamic
 *     session (FWP_E_DYNAMIC_SESSION_IN_PROGRESS); options are global, outlive sessions and, with
 *     WFPCAP_FAKE_OPTIONS_FILE, processes (Windows keeps them across reboots); while
 *     FWPM_ENGINE_COLLECT_NET_EVENTS is 0, enumerating net events fails with
 *     FWP_E_NET_EVENTS_DISABLED and no event is made (subscribing then is undocumented: refused the
 *     same way, or with WFPCAP_FAKE_SUBSCRIBE_WHILE_OFF=1 accepted and silent until collection is on);
 *   - a filter or sublayer needs displayData.name (FWP_E_NULL_DISPLAY_NAME); a condition that
 *     the layer does not have is refused (FWP_E_CONDITION_NOT_FOUND); a template with a duplicated
 *     condition is refused (FWP_E_DUPLICATE_CONDITION);
 *   - without administrator rights (WFPCAP_FAKE_ELEVATED=0) changes return ERROR_ACCESS_DENIED;
 *   - FwpmGetAppIdFromFileName0 does not resolve symbolic links; the app-id condition is matched
 *     against the image of the process that owns the packet's socket (classify.c);
 *   - FwpmNetEventSubscribeN delivers FWPM_NET_EVENT(N+1) on threads of its own; the event memory
 *     is the caller's only until the callback returns (dispatch.c);
 *   - FwpmNetEventUnsubscribe0 returns only after a running callback has returned, and called
 *     from the callback's own thread it never returns;
 *   - everything the API allocates is released with FwpmFreeMemory0 (counted).
 * Traffic: real packets on the loopback of the network namespace the first session was opened in
 * (capture.c), classified at the four layers; inbound layers only where a UDP socket listens.
 * Where Windows is undocumented it is configurable both ways (config_t in fake.h; environment
 * variables read at load, or the Fake* entry points below).
 * Structures use fixed-width types in the SDK's x64 layout; FakeLayout() reports sizes and offsets
 * so the tests hold this file to ../shared/wfp-abi/x64-layouts.json as well.
 * Build (build.py): cc -shared -fPIC -O2 -pthread [-DMAX_SUBSCRIBE=N] -o fake.so *.c
 */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
session_t g_sessions[MAX_SESSIONS];
filter_t g_filters[MAX_OBJECTS];
static sublayer_t g_sublayers[MAX_OBJECTS];
uint32_t g_options[6] = {1, 0, 0, 0, 0, 0};
config_t g_cfg = {.queue_limit = 256, .buffer = 16500, .turnaround_us = 100, .dispatch_latency_us = 20, .threads = 1,
                  .concurrent = 0, .reclassify = 1, .foreign_rate = 0.0, .elevated = 1, .plain_directions = 0,
                  .options_file = "", .clock_step_100ns = 1};
static uint64_t g_next_filter_id = 70000;
static long g_outstanding;
static uint32_t g_foreign_subscriptions;
static uint64_t g_subscribe_calls;

static const GUID LAYER_CONNECT_KEY = {0xc38d57d1, 0x05a7, 0x4c33, {0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e, 0x82}};
static const GUID LAYER_RECV_ACCEPT_KEY = {0xe1cd9fe7, 0xf4b5, 0x4273, {0x96, 0xc0, 0x59, 0x2e, 0x48, 0x7b, 0x86, 0x50}};
static const GUID LAYER_OUT_TRANSPORT_KEY = {0x09e61aea, 0xd214, 0x46e2, {0x9b, 0x21, 0xb2, 0x6b, 0x0b, 0x2f, 0x28, 0xc8}};
static const GUID LAYER_IN_TRANSPORT_KEY = {0x5926dfc8, 0xe3cf, 0x4426, {0xa2, 0x83, 0xdc, 0x39, 0x3f, 0x5d, 0x0f, 0x9d}};
static const GUID COND_PROTOCOL = {0x3971ef2b, 0x623e, 0x4f9a, {0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9, 0xa7}};
static const GUID COND_REMOTE_ADDRESS = {0xb235ae9a, 0x1d64, 0x49b8, {0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50, 0x45}};
static const GUID COND_LOCAL_ADDRESS = {0xd9ee00de, 0xc1ef, 0x4617, {0xbf, 0xe3, 0xff, 0xd8, 0xf5, 0xa0, 0x89, 0x57}};
static const GUID COND_REMOTE_PORT = {0xc35a604d, 0xd22b, 0x4e1a, {0x91, 0xb4, 0x68, 0xf6, 0x74, 0xee, 0x67, 0x4b}};
static const GUID COND_LOCAL_PORT = {0x0c1ba1af, 0x5765, 0x453f, {0xaf, 0x22, 0xa8, 0xf7, 0x91, 0xac, 0x77, 0x5b}};
static const GUID COND_APP_ID = {0xd78e1e87, 0x8644, 0x4ea5, {0x94, 0x37, 0xd8, 0x09, 0xec, 0xef, 0xc9, 0x71}};
static const GUID COND_USER_ID = {0xaf043a0a, 0xb34d, 0x4f86, {0x97, 0x9c, 0xc9, 0x03, 0x71, 0xaf, 0x6e, 0x66}};
static const GUID COND_NET_EVENT_TYPE = {0x206e9996, 0x490e, 0x40cf, {0xb8, 0x31, 0xb3, 0x86, 0x41, 0xeb, 0x6f, 0xcb}};

int guid_eq(const GUID *a, const GUID *b) { return memcmp(a, b, sizeof(GUID)) == 0; }
static int guid_zero(const GUID *a) { static const GUID z; return guid_eq(a, &z); }

/* ---- failure injection: the next call of a function returns a given code --------------------- */
static struct { char function[64]; DWORD code; } g_fail[8];

int fail_point(const char *function, DWORD *code) {
    int hit = 0;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < 8 && !hit; i++)
        if (g_fail[i].function[0] && strncmp(function, g_fail[i].function, strlen(g_fail[i].function)) == 0) {
            *code = g_fail[i].code;
            g_fail[i].function[0] = 0;
            hit = 1;
        }
    pthread_mutex_unlock(&g_mu);
    return hit;
}
#define FAIL_POINT(name) do { DWORD _c; if (fail_point(name, &_c)) return _c; } while (0)

/* ---- configuration ---------------------------------------------------------------------------- */
static void load_options(void) {
    FILE *f = g_cfg.options_file[0] ? fopen(g_cfg.options_file, "r") : NULL;
    if (!f) return;
    for (int i = 0; i < 6; i++)
        if (fscanf(f, "%u", &g_options[i]) != 1) break;
    fclose(f);
}

static void save_options(void) {  /* called with g_mu held */
    if (!g_cfg.options_file[0]) return;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_cfg.options_file);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (int i = 0; i < 6; i++) fprintf(f, "%u\n", g_options[i]);
    fclose(f);
    rename(tmp, g_cfg.options_file);
}

static unsigned env_uint(const char *name, unsigned fallback) {
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : fallback;
}

__attribute__((constructor)) static void configure_from_environment(void) {
    g_cfg.queue_limit = env_uint("WFPCAP_FAKE_QUEUE_LIMIT", g_cfg.queue_limit);
    g_cfg.buffer = env_uint("WFPCAP_FAKE_BUFFER", g_cfg.buffer);
    g_cfg.turnaround_us = env_uint("WFPCAP_FAKE_TURNAROUND_US", g_cfg.turnaround_us);
    g_cfg.dispatch_latency_us = env_uint("WFPCAP_FAKE_DISPATCH_LATENCY_US", g_cfg.dispatch_latency_us);
    g_cfg.threads = env_uint("WFPCAP_FAKE_THREADS", g_cfg.threads);
    g_cfg.concurrent = (int)env_uint("WFPCAP_FAKE_CONCURRENT", (unsigned)g_cfg.concurrent);
    g_cfg.fresh_threads = (int)env_uint("WFPCAP_FAKE_FRESH_THREADS", (unsigned)g_cfg.fresh_threads);
    g_cfg.reclassify = (int)env_uint("WFPCAP_FAKE_RECLASSIFY", (unsigned)g_cfg.reclassify);
    g_cfg.elevated = (int)env_uint("WFPCAP_FAKE_ELEVATED", (unsigned)g_cfg.elevated);
    g_cfg.plain_directions = (int)env_uint("WFPCAP_FAKE_PLAIN_DIRECTIONS", (unsigned)g_cfg.plain_directions);
    g_cfg.clock_step_100ns = env_uint("WFPCAP_FAKE_CLOCK_STEP_100NS", g_cfg.clock_step_100ns);
    g_cfg.allow_from_default = (int)env_uint("WFPCAP_FAKE_ALLOW_FROM_DEFAULT", (unsigned)g_cfg.allow_from_default);
    g_cfg.silent_templates = (int)env_uint("WFPCAP_FAKE_SILENT_TEMPLATES", (unsigned)g_cfg.silent_templates);
    g_cfg.subscribe_while_off = (int)env_uint("WFPCAP_FAKE_SUBSCRIBE_WHILE_OFF", (unsigned)g_cfg.subscribe_while_off);
    if (g_cfg.clock_step_100ns < 1) g_cfg.clock_step_100ns = 1;
    const char *rate = getenv("WFPCAP_FAKE_FOREIGN_RATE");
    if (rate && *rate) g_cfg.foreign_rate = strtod(rate, NULL);
    const char *file = getenv("WFPCAP_FAKE_OPTIONS_FILE");
    if (file) snprintf(g_cfg.options_file, sizeof g_cfg.options_file, "%s", file);
    if (g_cfg.threads < 1) g_cfg.threads = 1;
    if (g_cfg.threads > MAX_THREADS) g_cfg.threads = MAX_THREADS;
    load_options();
}

/* ---- memory ------------------------------------------------------------------------------------ */
void *api_alloc(size_t n) {
    void *p = calloc(1, n);
    if (p) __atomic_add_fetch(&g_outstanding, 1, __ATOMIC_SEQ_CST);
    return p;
}

void FwpmFreeMemory0(void **p) {
    if (p && *p) { free(*p); *p = NULL; __atomic_sub_fetch(&g_outstanding, 1, __ATOMIC_SEQ_CST); }
}

session_t *session_of(HANDLE h) {
    session_t *s = (session_t *)h;
    if (s < g_sessions || s >= g_sessions + MAX_SESSIONS || !s->used) return NULL;
    return s;
}

/* ---- engine ---------------------------------------------------------------------------------- */
DWORD FwpmEngineOpen0(const void *server, uint32_t authn, const void *identity, const FWPM_SESSION0 *session,
                      HANDLE *out) {
    (void)server; (void)identity;
    FAIL_POINT("FwpmEngineOpen0");
    if (!out || (authn != 10 && authn != 0xFFFFFFFFu)) return ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&g_mu);
    if (session && !guid_zero(&session->sessionKey) && !duplicate_keys_accepted())
        for (int i = 0; i < MAX_SESSIONS; i++)
            if (g_sessions[i].used && guid_eq(&g_sessions[i].key, &session->sessionKey)) {
                pthread_mutex_unlock(&g_mu); return FWP_E_ALREADY_EXISTS;
            }
    int open = 0;
    for (int i = 0; i < MAX_SESSIONS; i++) open += g_sessions[i].used;
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (!g_sessions[i].used) {
            session_t *s = &g_sessions[i];
            *s = (session_t){1, session ? session->sessionKey : (GUID){0},
                             session && (session->flags & FWPM_SESSION_FLAG_DYNAMIC), 0};
            if (guid_zero(&s->key) && getrandom(&s->key, sizeof s->key, 0) != (ssize_t)sizeof s->key)  /* BFE makes one up */
                s->key.Data1 = 0x5e550000u + (uint32_t)i, s->key.Data2 = (uint16_t)getpid();
            DWORD rc = register_session(s);  /* in the machine's registry: other processes' keys count too */
            if (rc) { s->used = 0; pthread_mutex_unlock(&g_mu); return rc; }
            *out = s;
            pthread_mutex_unlock(&g_mu);
            if (open == 0) capture_start();  /* in the network namespace of the caller's thread */
            return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return ERROR_INVALID_PARAMETER;
}

DWORD FwpmEngineClose0(HANDLE h) {
    pthread_mutex_lock(&g_mu);
    session_t *s = session_of(h);
    if (!s) { pthread_mutex_unlock(&g_mu); return ERROR_INVALID_HANDLE; }
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < MAX_SUBS; i++)  /* subscriptions end with their session */
        if (g_subs[i].used && g_subs[i].owner == s) stop_subscription(&g_subs[i]);
    pthread_mutex_lock(&g_mu);
    if (s->dynamic) {
        for (int i = 0; i < MAX_OBJECTS; i++) {
            if (g_filters[i].used && g_filters[i].owner == s) g_filters[i].used = 0;
            if (g_sublayers[i].used && g_sublayers[i].owner == s) g_sublayers[i].used = 0;
        }
    }
    s->used = 0;
    unregister_session(s);
    int open = 0;
    for (int i = 0; i < MAX_SESSIONS; i++) open += g_sessions[i].used;
    pthread_mutex_unlock(&g_mu);
    if (open == 0) capture_stop();
    return ERROR_SUCCESS;
}

int collecting(void) {  /* FWPM_ENGINE_COLLECT_NET_EVENTS */
    pthread_mutex_lock(&g_mu);
    int on = g_options[0] != 0;
    pthread_mutex_unlock(&g_mu);
    return on;
}

DWORD FwpmEngineGetOption0(HANDLE h, uint32_t option, FWP_VALUE0 **value) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    if (option >= 6 || !value) return ERROR_INVALID_PARAMETER;
    FWP_VALUE0 *v = api_alloc(sizeof *v);
    v->type = FWP_UINT32;
    pthread_mutex_lock(&g_mu);
    v->uint32 = g_options[option];
    pthread_mutex_unlock(&g_mu);
    *value = v;
    return ERROR_SUCCESS;
}

DWORD FwpmEngineSetOption0(HANDLE h, uint32_t option, const FWP_VALUE0 *value) {
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    FAIL_POINT("FwpmEngineSetOption0");
    if (!g_cfg.elevated) return ERROR_ACCESS_DENIED;
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    if (s->dynamic) return FWP_E_DYNAMIC_SESSION_IN_PROGRESS;
    if (option >= 6 || !value) return ERROR_INVALID_PARAMETER;
    if (value->type != FWP_UINT32) return FWP_E_TYPE_MISMATCH;
    pthread_mutex_lock(&g_mu);
    g_options[option] = value->uint32;
    save_options();
    pthread_mutex_unlock(&g_mu);
    return ERROR_SUCCESS;
}

DWORD FwpmTransactionBegin0(HANDLE h, uint32_t flags) {
    (void)flags;
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    s->in_txn = 1;
    return ERROR_SUCCESS;
}

DWORD FwpmTransactionCommit0(HANDLE h) {
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    if (!s->in_txn) return FWP_E_NO_TXN_IN_PROGRESS;
    s->in_txn = 0;
    return ERROR_SUCCESS;
}

DWORD FwpmTransactionAbort0(HANDLE h) { return FwpmTransactionCommit0(h); }

/* ---- sublayers and filters ------------------------------------------------------------------- */
DWORD FwpmSubLayerAdd0(HANDLE h, const FWPM_SUBLAYER0 *sl, const void *sd) {
    (void)sd;
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    FAIL_POINT("FwpmSubLayerAdd0");
    if (!g_cfg.elevated) return ERROR_ACCESS_DENIED;
    if (!sl->displayData.name) return FWP_E_NULL_DISPLAY_NAME;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (g_sublayers[i].used && guid_eq(&g_sublayers[i].key, &sl->subLayerKey)) {
            pthread_mutex_unlock(&g_mu); return FWP_E_ALREADY_EXISTS;
        }
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (!g_sublayers[i].used) {
            g_sublayers[i] = (sublayer_t){1, sl->subLayerKey, s};
            pthread_mutex_unlock(&g_mu);
            return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return ERROR_INVALID_PARAMETER;
}

DWORD FwpmSubLayerDeleteByKey0(HANDLE h, const GUID *key) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (g_sublayers[i].used && guid_eq(&g_sublayers[i].key, key)) {
            g_sublayers[i].used = 0; pthread_mutex_unlock(&g_mu); return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return FWP_E_SUBLAYER_NOT_FOUND;
}

static int layer_id_of(const GUID *layer) {
    if (guid_eq(layer, &LAYER_CONNECT_KEY)) return LAYER_CONNECT;
    if (guid_eq(layer, &LAYER_RECV_ACCEPT_KEY)) return LAYER_RECV_ACCEPT;
    if (guid_eq(layer, &LAYER_OUT_TRANSPORT_KEY)) return LAYER_OUT_TRANSPORT;
    if (guid_eq(layer, &LAYER_IN_TRANSPORT_KEY)) return LAYER_IN_TRANSPORT;
    return -1;
}

#define TEMPLATE (-1)
/* Read conditions into a matcher; a field may appear once. `layer` is a layer id, or TEMPLATE for
 * a net-event template: NET_EVENT_TYPE exists only there, ALE_APP_ID only there and at ALE layers
 * (learn.microsoft.com: filtering conditions available at each filtering layer). */
static DWORD parse_conditions(const FWPM_FILTER_CONDITION0 *c, uint32_t n, match_t *m, int layer) {
    memset(m, 0, sizeof *m);
    if (n > MAX_CONDS) return ERROR_INVALID_PARAMETER;
    m->n = n;
    int ale = layer == LAYER_CONNECT || layer == LAYER_RECV_ACCEPT;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (guid_eq(&c[i].fieldKey, &c[j].fieldKey)) return FWP_E_DUPLICATE_CONDITION;
        const FWP_CONDITION_VALUE0 *v = &c[i].conditionValue;
        const GUID *k = &c[i].fieldKey;
        if (guid_eq(k, &COND_PROTOCOL)) {
            if (v->type != FWP_UINT8) return FWP_E_TYPE_MISMATCH;
            m->has_proto = 1; m->proto = v->uint8;
        } else if (guid_eq(k, &COND_REMOTE_ADDRESS) || guid_eq(k, &COND_LOCAL_ADDRESS)) {
            uint32_t addr, mask;
            if (v->type == FWP_UINT32) { addr = v->uint32; mask = 0xFFFFFFFFu; }
            else if (v->type == FWP_V4_ADDR_MASK) { addr = v->v4AddrMask->addr; mask = v->v4AddrMask->mask; }
            else return FWP_E_TYPE_MISMATCH;
            if (guid_eq(k, &COND_REMOTE_ADDRESS)) { m->has_raddr = 1; m->raddr = addr; m->rmask = mask; }
            else { m->has_laddr = 1; m->laddr = addr; m->lmask = mask; }
        } else if (guid_eq(k, &COND_REMOTE_PORT) || guid_eq(k, &COND_LOCAL_PORT)) {
            uint16_t lo, hi;
            if (v->type == FWP_UINT16 && c[i].matchType == FWP_MATCH_EQUAL) { lo = hi = v->uint16; }
            else if (v->type == FWP_RANGE_TYPE && c[i].matchType == FWP_MATCH_RANGE &&
                     v->rangeValue->valueLow.type == FWP_UINT16 && v->rangeValue->valueHigh.type == FWP_UINT16) {
                lo = v->rangeValue->valueLow.uint16; hi = v->rangeValue->valueHigh.uint16;
            } else return FWP_E_TYPE_MISMATCH;
            if (guid_eq(k, &COND_REMOTE_PORT)) { m->has_rport = 1; m->rport_lo = lo; m->rport_hi = hi; }
            else { m->has_lport = 1; m->lport_lo = lo; m->lport_hi = hi; }
        } else if (guid_eq(k, &COND_NET_EVENT_TYPE) && layer == TEMPLATE) {
            if (v->type != FWP_UINT32) return FWP_E_TYPE_MISMATCH;
            m->has_type = 1; m->type = v->uint32;
        } else if (guid_eq(k, &COND_USER_ID) && layer == TEMPLATE) {  /* the documented eight: a SID */
            if (v->type != 13 /* FWP_SID */ || !v->ptr) return FWP_E_TYPE_MISMATCH;
            m->has_user = 1;
        } else if (guid_eq(k, &COND_APP_ID) && (layer == TEMPLATE || ale)) {
            if (v->type != FWP_BYTE_BLOB_TYPE || !v->byteBlob) return FWP_E_TYPE_MISMATCH;
            m->app = intern_app(v->byteBlob->data, v->byteBlob->size);
            if (m->app <= 0) return ERROR_INVALID_PARAMETER;
        } else return FWP_E_CONDITION_NOT_FOUND;
    }
    return ERROR_SUCCESS;
}

DWORD parse_template(const FWPM_NET_EVENT_ENUM_TEMPLATE0 *t, match_t *m) {
    if (!t) { memset(m, 0, sizeof *m); return ERROR_SUCCESS; }
    return parse_conditions(t->filterCondition, t->numFilterConditions, m, TEMPLATE);
}

DWORD FwpmFilterAdd0(HANDLE h, const FWPM_FILTER0 *f, const void *sd, uint64_t *id) {
    (void)sd;
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    FAIL_POINT("FwpmFilterAdd0");
    if (!g_cfg.elevated) return ERROR_ACCESS_DENIED;
    if (!f->displayData.name) return FWP_E_NULL_DISPLAY_NAME;
    int layer_id = layer_id_of(&f->layerKey);
    if (layer_id < 0) return FWP_E_LAYER_NOT_FOUND;
    match_t m;
    DWORD rc = parse_conditions(f->filterCondition, f->numFilterConditions, &m, layer_id);
    if (rc) return rc;
    pthread_mutex_lock(&g_mu);
    if (!guid_zero(&f->subLayerKey)) {
        int found = 0;
        for (int i = 0; i < MAX_OBJECTS; i++) found |= g_sublayers[i].used && guid_eq(&g_sublayers[i].key, &f->subLayerKey);
        if (!found) { pthread_mutex_unlock(&g_mu); return FWP_E_SUBLAYER_NOT_FOUND; }
    }
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (!g_filters[i].used) {
            g_filters[i] = (filter_t){1, g_next_filter_id++, (uint16_t)layer_id, s, m, f->action.type};
            if (id) *id = g_filters[i].id;
            pthread_mutex_unlock(&g_mu);
            return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return ERROR_INVALID_PARAMETER;
}

DWORD FwpmFilterDeleteById0(HANDLE h, uint64_t id) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (g_filters[i].used && g_filters[i].id == id) { g_filters[i].used = 0; pthread_mutex_unlock(&g_mu); return 0; }
    pthread_mutex_unlock(&g_mu);
    return FWP_E_FILTER_NOT_FOUND;
}

DWORD FwpmLayerGetById0(HANDLE h, uint16_t id, FWPM_LAYER0 **layer) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    const GUID *key = id == LAYER_CONNECT ? &LAYER_CONNECT_KEY : id == LAYER_RECV_ACCEPT ? &LAYER_RECV_ACCEPT_KEY
                    : id == LAYER_OUT_TRANSPORT ? &LAYER_OUT_TRANSPORT_KEY
                    : id == LAYER_IN_TRANSPORT ? &LAYER_IN_TRANSPORT_KEY : NULL;
    if (!key) return FWP_E_LAYER_NOT_FOUND;
    FWPM_LAYER0 *l = api_alloc(sizeof *l);
    l->layerKey = *key;
    l->layerId = id;
    *layer = l;
    return ERROR_SUCCESS;
}

/* The file's NT path as an app id, like Windows: "\device\harddiskvolume1\..." in lower case, UTF-16LE
 * with its terminating NUL. Symbolic links are NOT resolved: a venv's python is not the interpreter
 * image that sends, just as a venv's python.exe on Windows is a launcher. */
DWORD FwpmGetAppIdFromFileName0(const wchar_t *name, FWP_BYTE_BLOB **app_id) {
    if (!name || !app_id) return ERROR_INVALID_PARAMETER;
    char path[1024];
    if (wcstombs(path, name, sizeof path) == (size_t)-1) return ERROR_INVALID_PARAMETER;
    struct stat st;
    if (path[0] != '/' || stat(path, &st) != 0) return ERROR_FILE_NOT_FOUND;
    uint8_t bytes[APP_BYTES];
    int n = app_id_of_path(path, bytes, sizeof bytes);
    if (n <= 0) return ERROR_INVALID_PARAMETER;
    FWP_BYTE_BLOB *b = api_alloc(sizeof *b + (size_t)n);  /* one allocation, as the real API returns */
    b->size = (uint32_t)n;
    b->data = (uint8_t *)(b + 1);
    memcpy(b->data, bytes, (size_t)n);
    *app_id = b;
    return ERROR_SUCCESS;
}

DWORD FwpmNetEventSubscriptionsGet0(HANDLE h, FWPM_NET_EVENT_SUBSCRIPTION0 ***entries, uint32_t *count) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_mu);
    uint32_t n = g_foreign_subscriptions;
    for (int i = 0; i < MAX_SUBS; i++) n += g_subs[i].used;
    /* one allocation: the pointer array, then the entries */
    FWPM_NET_EVENT_SUBSCRIPTION0 **arr = api_alloc(n * (sizeof(void *) + sizeof(FWPM_NET_EVENT_SUBSCRIPTION0)) + 1);
    FWPM_NET_EVENT_SUBSCRIPTION0 *items = (FWPM_NET_EVENT_SUBSCRIPTION0 *)(arr + n);
    uint32_t k = 0;
    for (uint32_t i = 0; i < g_foreign_subscriptions; i++, k++) { items[k].sessionKey.Data1 = 0xF0F0 + i; arr[k] = &items[k]; }
    for (int i = 0; i < MAX_SUBS; i++)
        if (g_subs[i].used) { items[k].sessionKey = g_subs[i].owner->key; arr[k] = &items[k]; k++; }
    pthread_mutex_unlock(&g_mu);
    *entries = arr;
    *count = n;
    return ERROR_SUCCESS;
}

uint64_t subscribe_counted(void) { return __atomic_add_fetch(&g_subscribe_calls, 1, __ATOMIC_SEQ_CST); }

/* WFPCAP_FAKE_EXIT_REPORT: at process exit (after the interpreter is gone), how many subscriptions
 * were still open, written to that file: none should be, or WFP could still enter freed code. */
__attribute__((destructor)) static void report_at_exit(void) {
    const char *path = getenv("WFPCAP_FAKE_EXIT_REPORT");
    if (!path || !*path) return;
    int open = 0;
    for (int i = 0; i < MAX_SUBS; i++) open += g_subs[i].used;
    FILE *f = fopen(path, "w");
    if (f) { fprintf(f, "%d\n", open); fclose(f); }
}

/* ---- test entry points ----------------------------------------------------------------------- */
void FakeConfigure(uint32_t queue_limit, uint32_t buffer, uint32_t turnaround_us) {
    g_cfg.queue_limit = queue_limit; g_cfg.buffer = buffer; g_cfg.turnaround_us = turnaround_us;
}

/* Delivery threads per subscription, reclassification of blocked tuples, direction style. */
void FakeConfigureDelivery(uint32_t threads, int reclassify, int plain_directions) {
    g_cfg.threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    g_cfg.reclassify = reclassify;
    g_cfg.plain_directions = plain_directions;
    classify_reset();
}

/* 1: with several delivery threads, callbacks of consecutive batches run at the same time. */
void FakeSetConcurrentDelivery(int concurrent) { g_cfg.concurrent = concurrent; }
/* 1: every batch on a new thread that ends after it (serialized delivery only). */
void FakeSetFreshThreads(int fresh) { g_cfg.fresh_threads = fresh; }
void FakeSetDispatchLatency(uint32_t us) { g_cfg.dispatch_latency_us = us; }
void FakeSetElevated(int elevated) { g_cfg.elevated = elevated; }
void FakeSetClockStep(uint32_t step_100ns) { g_cfg.clock_step_100ns = step_100ns ? step_100ns : 1; }
void FakeSetForeignRate(double per_second) { g_cfg.foreign_rate = per_second; }
/* 1: allow events carry the layer's default permit's filter id instead of the matching permit's. */
void FakeSetAllowFromDefault(int on) { g_cfg.allow_from_default = on; }
/* 1: every subscription template is accepted and suppresses every event. */
void FakeSetSilentTemplates(int on) { g_cfg.silent_templates = on; }
/* 1: subscribing while net-event collection is off is accepted (and silent until it is on); 0: refused. */
void FakeSetSubscribeWhileOff(int accepted) { g_cfg.subscribe_while_off = accepted; }
void FakeSetForeignSubscriptions(uint32_t n) { g_foreign_subscriptions = n; }

void FakeFailNext(const char *function, DWORD code) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < 8; i++)
        if (!g_fail[i].function[0]) {
            snprintf(g_fail[i].function, sizeof g_fail[i].function, "%s", function);
            g_fail[i].code = code;
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

long FakeOutstandingAllocations(void) { return __atomic_load_n(&g_outstanding, __ATOMIC_SEQ_CST); }
uint64_t FakeSubscribeCalls(void) { return __atomic_load_n(&g_subscribe_calls, __ATOMIC_SEQ_CST); }
uint32_t FakeOption(uint32_t option) { return option < 6 ? g_options[option] : 0; }

void FakeResetOptions(void) {  /* Windows' defaults: collection on, no keywords */
    pthread_mutex_lock(&g_mu);
    memset(g_options, 0, sizeof g_options);
    g_options[0] = 1;
    pthread_mutex_unlock(&g_mu);
}

int FakeObjectCounts(int *sessions, int *filters, int *sublayers, int *subscriptions) {
    pthread_mutex_lock(&g_mu);
    *sessions = *filters = *sublayers = *subscriptions = 0;
    for (int i = 0; i < MAX_SESSIONS; i++) *sessions += g_sessions[i].used;
    for (int i = 0; i < MAX_OBJECTS; i++) { *filters += g_filters[i].used; *sublayers += g_sublayers[i].used; }
    for (int i = 0; i < MAX_SUBS; i++) *subscriptions += g_subs[i].used;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

/* One UDP datagram from 127.0.0.1:lport to raddr:rport sent by this process, without a network:
 * classified as its outgoing copy and then, looped back, as its incoming copy, exactly as the
 * capture classifies real packets. For unit tests only. Returns 1 if a filter dropped it. */
int FakeInjectUdp(uint32_t raddr, uint16_t rport, uint16_t lport) {
    uint64_t now = filetime_now();
    return classify_outgoing(0x7F000001u, raddr, lport, rport, now, self_app()) ||
           classify_incoming(0x7F000001u, raddr, lport, rport, now, self_app());
}

/* Sizes and offsets as this compiler laid them out, for the layout test. */
#define SZ(S) {#S, NULL, sizeof(S), _Alignof(S)}
#define OF(S, f) {#S, #f, offsetof(S, f), 0}
static const struct { const char *s, *f; size_t v, a; } LAYOUT[] = {
    SZ(GUID), OF(GUID, Data4), SZ(FILETIME), OF(FILETIME, dwHighDateTime), SZ(FWP_BYTE_BLOB), OF(FWP_BYTE_BLOB, data),
    SZ(FWP_VALUE0), OF(FWP_VALUE0, uint32), OF(FWP_VALUE0, uint64), SZ(FWP_RANGE0), OF(FWP_RANGE0, valueHigh),
    SZ(FWP_CONDITION_VALUE0), OF(FWP_CONDITION_VALUE0, v4AddrMask), OF(FWP_CONDITION_VALUE0, rangeValue),
    SZ(FWP_V4_ADDR_AND_MASK), SZ(FWPM_DISPLAY_DATA0), OF(FWPM_DISPLAY_DATA0, description),
    SZ(FWPM_SESSION0), OF(FWPM_SESSION0, displayData), OF(FWPM_SESSION0, flags), OF(FWPM_SESSION0, txnWaitTimeoutInMSec),
    OF(FWPM_SESSION0, processId), OF(FWPM_SESSION0, sid), OF(FWPM_SESSION0, username), OF(FWPM_SESSION0, kernelMode),
    SZ(FWPM_SUBLAYER0), OF(FWPM_SUBLAYER0, flags), OF(FWPM_SUBLAYER0, providerKey), OF(FWPM_SUBLAYER0, providerData),
    OF(FWPM_SUBLAYER0, weight), SZ(FWPM_ACTION0), OF(FWPM_ACTION0, filterType),
    SZ(FWPM_FILTER_CONDITION0), OF(FWPM_FILTER_CONDITION0, matchType), OF(FWPM_FILTER_CONDITION0, conditionValue),
    SZ(FWPM_FILTER0), OF(FWPM_FILTER0, displayData), OF(FWPM_FILTER0, flags), OF(FWPM_FILTER0, providerKey),
    OF(FWPM_FILTER0, providerData), OF(FWPM_FILTER0, layerKey), OF(FWPM_FILTER0, subLayerKey), OF(FWPM_FILTER0, weight),
    OF(FWPM_FILTER0, numFilterConditions), OF(FWPM_FILTER0, filterCondition), OF(FWPM_FILTER0, action),
    OF(FWPM_FILTER0, rawContext), OF(FWPM_FILTER0, providerContextKey), OF(FWPM_FILTER0, reserved),
    OF(FWPM_FILTER0, filterId), OF(FWPM_FILTER0, effectiveWeight),
    SZ(FWPM_LAYER0), OF(FWPM_LAYER0, defaultSubLayerKey), OF(FWPM_LAYER0, layerId),
    SZ(FWPM_NET_EVENT_ENUM_TEMPLATE0), OF(FWPM_NET_EVENT_ENUM_TEMPLATE0, numFilterConditions),
    OF(FWPM_NET_EVENT_ENUM_TEMPLATE0, filterCondition), SZ(FWPM_NET_EVENT_SUBSCRIPTION0),
    OF(FWPM_NET_EVENT_SUBSCRIPTION0, flags), OF(FWPM_NET_EVENT_SUBSCRIPTION0, sessionKey),
    SZ(FWPM_NET_EVENT_HEADER0), OF(FWPM_NET_EVENT_HEADER0, ipProtocol), OF(FWPM_NET_EVENT_HEADER0, localAddrV4),
    OF(FWPM_NET_EVENT_HEADER0, remoteAddrV4), OF(FWPM_NET_EVENT_HEADER0, localPort), OF(FWPM_NET_EVENT_HEADER0, remotePort),
    OF(FWPM_NET_EVENT_HEADER0, appId), OF(FWPM_NET_EVENT_HEADER0, userId),
    SZ(FWPM_NET_EVENT_HEADER1), OF(FWPM_NET_EVENT_HEADER1, reserved1), OF(FWPM_NET_EVENT_HEADER1, reserved2),
    OF(FWPM_NET_EVENT_HEADER1, reserved6), OF(FWPM_NET_EVENT_HEADER1, reserved9), OF(FWPM_NET_EVENT_HEADER1, reserved10),
    SZ(FWPM_NET_EVENT_HEADER2), OF(FWPM_NET_EVENT_HEADER2, addressFamily), OF(FWPM_NET_EVENT_HEADER2, packageSid),
    SZ(FWPM_NET_EVENT_HEADER3), OF(FWPM_NET_EVENT_HEADER3, enterpriseId), OF(FWPM_NET_EVENT_HEADER3, policyFlags),
    OF(FWPM_NET_EVENT_HEADER3, effectiveName),
    SZ(FWPM_NET_EVENT_CLASSIFY_DROP1), OF(FWPM_NET_EVENT_CLASSIFY_DROP1, layerId),
    OF(FWPM_NET_EVENT_CLASSIFY_DROP1, msFwpDirection), OF(FWPM_NET_EVENT_CLASSIFY_DROP1, isLoopback),
    SZ(FWPM_NET_EVENT_CLASSIFY_DROP2), OF(FWPM_NET_EVENT_CLASSIFY_DROP2, vSwitchId),
    OF(FWPM_NET_EVENT_CLASSIFY_DROP2, vSwitchDestinationPort),
    SZ(FWPM_NET_EVENT1), OF(FWPM_NET_EVENT1, type), OF(FWPM_NET_EVENT1, classifyDrop),
    SZ(FWPM_NET_EVENT2), OF(FWPM_NET_EVENT2, type), OF(FWPM_NET_EVENT2, classifyDrop), OF(FWPM_NET_EVENT2, classifyAllow),
    SZ(FWPM_NET_EVENT3), OF(FWPM_NET_EVENT3, type), OF(FWPM_NET_EVENT3, classifyDrop),
    SZ(FWPM_NET_EVENT5), OF(FWPM_NET_EVENT5, type), OF(FWPM_NET_EVENT5, lpmPacketArrival),
};

/* index-th entry: writes struct name, field name ("" for the size) and value; returns 0 past the end */
int FakeLayout(int index, const char **s, const char **f, size_t *value, size_t *align) {
    if (index < 0 || (size_t)index >= sizeof LAYOUT / sizeof LAYOUT[0]) return 0;
    *s = LAYOUT[index].s;
    *f = LAYOUT[index].f ? LAYOUT[index].f : "";
    *value = LAYOUT[index].v;
    *align = LAYOUT[index].a;
    return 1;
}
