/* A fake fwpuclnt for Linux tests: the subset of the WFP management API that the harness's wfp
 * backend calls, with the documented semantics, plus a dispatcher that follows the field notes
 * (next queue Q, system buffer B, batch turnaround) and an injection entry point in place of traffic.
 *
 * Documented behaviour it keeps (learn.microsoft.com, fwpmu.h):
 *   - objects added in a dynamic session vanish when the session closes;
 *   - FwpmEngineSetOption0 fails inside a transaction (FWP_E_TXN_IN_PROGRESS) and from a dynamic
 *     session (FWP_E_DYNAMIC_SESSION_IN_PROGRESS); options are global and outlive sessions;
 *   - a filter or sublayer needs displayData.name (FWP_E_NULL_DISPLAY_NAME);
 *   - a template with a duplicated condition is refused (FWP_E_DUPLICATE_CONDITION);
 *   - FwpmNetEventSubscribeN delivers FWPM_NET_EVENT(N+1) on a thread of its own; the event memory
 *     is the caller's and is gone after the callback returns;
 *   - FwpmNetEventUnsubscribe0 returns only after a running callback has returned;
 *   - everything the API allocates is released with FwpmFreeMemory0.
 * Structures use fixed-width types in the SDK's x64 layout; FakeLayout() reports sizes and offsets
 * so the tests hold this file to ../shared/wfp-abi/x64-layouts.json as well.
 * Build: cc -shared -fPIC -O2 -pthread [-DMAX_SUBSCRIBE=N] -o libfake_fwpuclnt.so fake_fwpuclnt.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MAX_SUBSCRIBE
#define MAX_SUBSCRIBE 4
#endif

typedef uint32_t DWORD;
typedef int32_t BOOL;
typedef void *HANDLE;

/* ---- SDK structures (x64 layout) ------------------------------------------------------------ */
typedef struct { uint32_t Data1; uint16_t Data2, Data3; uint8_t Data4[8]; } GUID;
typedef struct { uint32_t dwLowDateTime, dwHighDateTime; } FILETIME;
typedef struct { uint32_t size; uint8_t *data; } FWP_BYTE_BLOB;
typedef struct { uint8_t byteArray16[16]; } FWP_BYTE_ARRAY16;
typedef struct { uint32_t addr, mask; } FWP_V4_ADDR_AND_MASK;
typedef struct FWP_VALUE0_ {
    uint32_t type;
    union { uint8_t uint8; uint16_t uint16; uint32_t uint32; uint64_t *uint64; FWP_BYTE_BLOB *byteBlob; void *ptr; };
} FWP_VALUE0;
typedef struct { FWP_VALUE0 valueLow, valueHigh; } FWP_RANGE0;
typedef struct {
    uint32_t type;
    union { uint8_t uint8; uint16_t uint16; uint32_t uint32; uint64_t *uint64; FWP_BYTE_BLOB *byteBlob;
            FWP_V4_ADDR_AND_MASK *v4AddrMask; FWP_RANGE0 *rangeValue; void *ptr; };
} FWP_CONDITION_VALUE0;
typedef struct { void *name; void *description; } FWPM_DISPLAY_DATA0;
typedef struct { GUID sessionKey; FWPM_DISPLAY_DATA0 displayData; uint32_t flags; uint32_t txnWaitTimeoutInMSec;
                 DWORD processId; void *sid; void *username; BOOL kernelMode; } FWPM_SESSION0;
typedef struct { GUID subLayerKey; FWPM_DISPLAY_DATA0 displayData; uint32_t flags; GUID *providerKey;
                 FWP_BYTE_BLOB providerData; uint16_t weight; } FWPM_SUBLAYER0;
typedef struct { uint32_t type; union { GUID filterType; GUID calloutKey; }; } FWPM_ACTION0;
typedef struct { GUID fieldKey; uint32_t matchType; FWP_CONDITION_VALUE0 conditionValue; } FWPM_FILTER_CONDITION0;
typedef struct { GUID filterKey; FWPM_DISPLAY_DATA0 displayData; uint32_t flags; GUID *providerKey;
                 FWP_BYTE_BLOB providerData; GUID layerKey; GUID subLayerKey; FWP_VALUE0 weight;
                 uint32_t numFilterConditions; FWPM_FILTER_CONDITION0 *filterCondition; FWPM_ACTION0 action;
                 union { uint64_t rawContext; GUID providerContextKey; }; GUID *reserved; uint64_t filterId;
                 FWP_VALUE0 effectiveWeight; } FWPM_FILTER0;
typedef struct { GUID layerKey; FWPM_DISPLAY_DATA0 displayData; uint32_t flags; uint32_t numFields; void *field;
                 GUID defaultSubLayerKey; uint16_t layerId; } FWPM_LAYER0;
typedef struct { FILETIME startTime, endTime; uint32_t numFilterConditions; FWPM_FILTER_CONDITION0 *filterCondition; }
    FWPM_NET_EVENT_ENUM_TEMPLATE0;
typedef struct { FWPM_NET_EVENT_ENUM_TEMPLATE0 *enumTemplate; uint32_t flags; GUID sessionKey; }
    FWPM_NET_EVENT_SUBSCRIPTION0;

#define HEADER_COMMON \
    FILETIME timeStamp; uint32_t flags; uint32_t ipVersion; uint8_t ipProtocol; \
    union { uint32_t localAddrV4; FWP_BYTE_ARRAY16 localAddrV6; }; \
    union { uint32_t remoteAddrV4; FWP_BYTE_ARRAY16 remoteAddrV6; }; \
    uint16_t localPort; uint16_t remotePort; uint32_t scopeId; FWP_BYTE_BLOB appId; void *userId;
typedef struct { HEADER_COMMON } FWPM_NET_EVENT_HEADER0;
typedef struct { HEADER_COMMON
    union { struct { uint32_t reserved1;
        union { struct { uint8_t reserved2[6]; uint8_t reserved3[6]; uint32_t reserved4; uint32_t reserved5;
                         uint16_t reserved6; uint32_t reserved7; uint32_t reserved8; uint16_t reserved9;
                         uint64_t reserved10; }; }; }; }; } FWPM_NET_EVENT_HEADER1;
typedef struct { HEADER_COMMON uint32_t addressFamily; void *packageSid; } FWPM_NET_EVENT_HEADER2;
typedef struct { HEADER_COMMON uint32_t addressFamily; void *packageSid; void *enterpriseId; uint64_t policyFlags;
                 FWP_BYTE_BLOB effectiveName; } FWPM_NET_EVENT_HEADER3;

#define DROP1_FIELDS uint64_t filterId; uint16_t layerId; uint32_t reauthReason; uint32_t originalProfile; \
    uint32_t currentProfile; uint32_t msFwpDirection; BOOL isLoopback;
typedef struct { DROP1_FIELDS } FWPM_NET_EVENT_CLASSIFY_DROP1;
typedef struct { DROP1_FIELDS FWP_BYTE_BLOB vSwitchId; uint32_t vSwitchSourcePort; uint32_t vSwitchDestinationPort; }
    FWPM_NET_EVENT_CLASSIFY_DROP2;

#define EVENT_UNION(DROP, EXTRA) union { void *ikeMmFailure; void *ikeQmFailure; void *ikeEmFailure; \
    DROP *classifyDrop; void *ipsecDrop; void *idpDrop; EXTRA };
#define WIN8_EXTRA void *classifyAllow; void *capabilityDrop; void *capabilityAllow; void *classifyDropMac;
typedef struct { FWPM_NET_EVENT_HEADER1 header; uint32_t type; EVENT_UNION(FWPM_NET_EVENT_CLASSIFY_DROP1, ) } FWPM_NET_EVENT1;
typedef struct { FWPM_NET_EVENT_HEADER2 header; uint32_t type; EVENT_UNION(FWPM_NET_EVENT_CLASSIFY_DROP2, WIN8_EXTRA) } FWPM_NET_EVENT2;
typedef struct { FWPM_NET_EVENT_HEADER3 header; uint32_t type; EVENT_UNION(FWPM_NET_EVENT_CLASSIFY_DROP2, WIN8_EXTRA) } FWPM_NET_EVENT3;
typedef FWPM_NET_EVENT3 FWPM_NET_EVENT4;
typedef struct { FWPM_NET_EVENT_HEADER3 header; uint32_t type;
                 EVENT_UNION(FWPM_NET_EVENT_CLASSIFY_DROP2, WIN8_EXTRA void *lpmPacketArrival;) } FWPM_NET_EVENT5;

/* ---- codes (winerror.h, fwptypes.h, fwpmtypes.h) -------------------------------------------- */
#define ERROR_SUCCESS 0
#define ERROR_INVALID_PARAMETER 87
#define ERROR_INVALID_HANDLE 6
#define ERROR_INVALID_STATE 5023
#define FWP_E_CONDITION_NOT_FOUND 0x80320002u
#define FWP_E_FILTER_NOT_FOUND 0x80320003u
#define FWP_E_LAYER_NOT_FOUND 0x80320004u
#define FWP_E_SUBLAYER_NOT_FOUND 0x80320007u
#define FWP_E_ALREADY_EXISTS 0x80320009u
#define FWP_E_DYNAMIC_SESSION_IN_PROGRESS 0x8032000Bu
#define FWP_E_NO_TXN_IN_PROGRESS 0x8032000Du
#define FWP_E_TXN_IN_PROGRESS 0x8032000Eu
#define FWP_E_NULL_DISPLAY_NAME 0x80320023u
#define FWP_E_TYPE_MISMATCH 0x80320027u
#define FWP_E_DUPLICATE_CONDITION 0x8032002Au
#define FWP_UINT8 1
#define FWP_UINT16 2
#define FWP_UINT32 3
#define FWP_V4_ADDR_MASK 256
#define FWP_RANGE_TYPE 258
#define FWP_MATCH_EQUAL 0
#define FWP_MATCH_RANGE 5
#define FWP_ACTION_BLOCK 0x1001u
#define FWPM_SESSION_FLAG_DYNAMIC 1u

static const GUID LAYER_CONNECT = {0xc38d57d1, 0x05a7, 0x4c33, {0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e, 0x82}};
static const GUID LAYER_RECV_ACCEPT = {0xe1cd9fe7, 0xf4b5, 0x4273, {0x96, 0xc0, 0x59, 0x2e, 0x48, 0x7b, 0x86, 0x50}};
static const GUID LAYER_OUT_TRANSPORT = {0x09e61aea, 0xd214, 0x46e2, {0x9b, 0x21, 0xb2, 0x6b, 0x0b, 0x2f, 0x28, 0xc8}};
static const GUID LAYER_IN_TRANSPORT = {0x5926dfc8, 0xe3cf, 0x4426, {0xa2, 0x83, 0xdc, 0x39, 0x3f, 0x5d, 0x0f, 0x9d}};
static const GUID COND_PROTOCOL = {0x3971ef2b, 0x623e, 0x4f9a, {0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9, 0xa7}};
static const GUID COND_REMOTE_ADDRESS = {0xb235ae9a, 0x1d64, 0x49b8, {0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50, 0x45}};
static const GUID COND_LOCAL_ADDRESS = {0xd9ee00de, 0xc1ef, 0x4617, {0xbf, 0xe3, 0xff, 0xd8, 0xf5, 0xa0, 0x89, 0x57}};
static const GUID COND_REMOTE_PORT = {0xc35a604d, 0xd22b, 0x4e1a, {0x91, 0xb4, 0x68, 0xf6, 0x74, 0xee, 0x67, 0x4b}};
static const GUID COND_LOCAL_PORT = {0x0c1ba1af, 0x5765, 0x453f, {0xaf, 0x22, 0xa8, 0xf7, 0x91, 0xac, 0x77, 0x5b}};
static const GUID COND_APP_ID = {0xd78e1e87, 0x8644, 0x4ea5, {0x94, 0x37, 0xd8, 0x09, 0xec, 0xef, 0xc9, 0x71}};
static const GUID COND_NET_EVENT_TYPE = {0x206e9996, 0x490e, 0x40cf, {0xb8, 0x31, 0xb3, 0x86, 0x41, 0xeb, 0x6f, 0xcb}};

static int guid_eq(const GUID *a, const GUID *b) { return memcmp(a, b, sizeof(GUID)) == 0; }
static int guid_zero(const GUID *a) { static const GUID z; return guid_eq(a, &z); }

/* ---- engine state ---------------------------------------------------------------------------- */
#define MAX_SESSIONS 32
#define MAX_OBJECTS 256
#define MAX_SUBS 16
#define MAX_CONDS 8

typedef struct { int used; GUID key; int dynamic; int in_txn; } session_t;

/* a matcher: what a filter or a template condition asks of a packet/event */
typedef struct {
    int has_proto; uint8_t proto;
    int has_raddr; uint32_t raddr, rmask;
    int has_laddr; uint32_t laddr;
    int has_rport; uint16_t rport_lo, rport_hi;
    int has_lport; uint16_t lport_lo, lport_hi;
    int has_type; uint32_t type;
} match_t;

typedef struct { int used; uint64_t id; GUID layer; uint16_t layer_id; session_t *owner; match_t m; uint32_t action; } filter_t;
typedef struct { int used; GUID key; session_t *owner; } sublayer_t;

typedef struct {
    uint64_t filter_id; uint16_t layer_id; uint32_t laddr, raddr; uint16_t lport, rport; uint64_t filetime;
    uint32_t direction;
} event_t;

typedef void (*callback_t)(void *context, const void *event);

typedef struct {
    int used; session_t *owner; int version; callback_t cb; void *ctx; match_t m; GUID session_key;
    pthread_t thread; pthread_mutex_t mu; pthread_cond_t cv; int stop; int busy;
    event_t *forming; uint32_t forming_n;
    event_t *waiting; uint32_t w_head, w_n;  /* next queue + system buffer: one FIFO of Q + B places */
    uint64_t lost, delivered, batches;
} sub_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static session_t g_sessions[MAX_SESSIONS];
static filter_t g_filters[MAX_OBJECTS];
static sublayer_t g_sublayers[MAX_OBJECTS];
static sub_t g_subs[MAX_SUBS];
static uint32_t g_options[6] = {1, 0, 0, 0, 0, 0};
static uint64_t g_next_filter_id = 70000;
static long g_outstanding;
static uint32_t g_queue_limit = 256, g_buffer = 16500, g_turnaround_us = 100;
static uint32_t g_foreign;
static uint64_t g_subscribe_calls;

static void *api_alloc(size_t n) {
    void *p = calloc(1, n);
    if (p) __atomic_add_fetch(&g_outstanding, 1, __ATOMIC_SEQ_CST);
    return p;
}

void FwpmFreeMemory0(void **p) {
    if (p && *p) { free(*p); *p = NULL; __atomic_sub_fetch(&g_outstanding, 1, __ATOMIC_SEQ_CST); }
}

static session_t *session_of(HANDLE h) {
    session_t *s = (session_t *)h;
    if (s < g_sessions || s >= g_sessions + MAX_SESSIONS || !s->used) return NULL;
    return s;
}

/* ---- engine ---------------------------------------------------------------------------------- */
DWORD FwpmEngineOpen0(const void *server, uint32_t authn, const void *identity, const FWPM_SESSION0 *session,
                      HANDLE *out) {
    (void)server; (void)identity;
    if (!out || (authn != 10 && authn != 0xFFFFFFFFu)) return ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&g_mu);
    if (session && !guid_zero(&session->sessionKey))
        for (int i = 0; i < MAX_SESSIONS; i++)
            if (g_sessions[i].used && guid_eq(&g_sessions[i].key, &session->sessionKey)) {
                pthread_mutex_unlock(&g_mu); return FWP_E_ALREADY_EXISTS;
            }
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (!g_sessions[i].used) {
            g_sessions[i] = (session_t){1, session ? session->sessionKey : (GUID){0},
                                        session && (session->flags & FWPM_SESSION_FLAG_DYNAMIC), 0};
            if (guid_zero(&g_sessions[i].key)) g_sessions[i].key.Data1 = 0x5e55 + i;  /* BFE makes one up */
            *out = &g_sessions[i];
            pthread_mutex_unlock(&g_mu);
            return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return ERROR_INVALID_PARAMETER;
}

static void stop_subscription(sub_t *s);

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
    pthread_mutex_unlock(&g_mu);
    return ERROR_SUCCESS;
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
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    if (s->dynamic) return FWP_E_DYNAMIC_SESSION_IN_PROGRESS;
    if (option >= 6 || !value) return ERROR_INVALID_PARAMETER;
    if (value->type != FWP_UINT32) return FWP_E_TYPE_MISMATCH;
    pthread_mutex_lock(&g_mu);
    g_options[option] = value->uint32;
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
    if (guid_eq(layer, &LAYER_CONNECT)) return 48;
    if (guid_eq(layer, &LAYER_RECV_ACCEPT)) return 44;
    if (guid_eq(layer, &LAYER_OUT_TRANSPORT)) return 16;
    if (guid_eq(layer, &LAYER_IN_TRANSPORT)) return 12;
    return -1;
}

/* Read conditions into a matcher; a field may appear once. */
static DWORD parse_conditions(const FWPM_FILTER_CONDITION0 *c, uint32_t n, match_t *m) {
    memset(m, 0, sizeof *m);
    if (n > MAX_CONDS) return ERROR_INVALID_PARAMETER;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (guid_eq(&c[i].fieldKey, &c[j].fieldKey)) return FWP_E_DUPLICATE_CONDITION;
        const FWP_CONDITION_VALUE0 *v = &c[i].conditionValue;
        if (guid_eq(&c[i].fieldKey, &COND_PROTOCOL)) {
            if (v->type != FWP_UINT8) return FWP_E_TYPE_MISMATCH;
            m->has_proto = 1; m->proto = v->uint8;
        } else if (guid_eq(&c[i].fieldKey, &COND_REMOTE_ADDRESS)) {
            m->has_raddr = 1;
            if (v->type == FWP_UINT32) { m->raddr = v->uint32; m->rmask = 0xFFFFFFFFu; }
            else if (v->type == FWP_V4_ADDR_MASK) { m->raddr = v->v4AddrMask->addr; m->rmask = v->v4AddrMask->mask; }
            else return FWP_E_TYPE_MISMATCH;
        } else if (guid_eq(&c[i].fieldKey, &COND_LOCAL_ADDRESS)) {
            if (v->type != FWP_UINT32) return FWP_E_TYPE_MISMATCH;
            m->has_laddr = 1; m->laddr = v->uint32;
        } else if (guid_eq(&c[i].fieldKey, &COND_REMOTE_PORT) || guid_eq(&c[i].fieldKey, &COND_LOCAL_PORT)) {
            uint16_t lo, hi;
            if (v->type == FWP_UINT16 && c[i].matchType == FWP_MATCH_EQUAL) { lo = hi = v->uint16; }
            else if (v->type == FWP_RANGE_TYPE && c[i].matchType == FWP_MATCH_RANGE &&
                     v->rangeValue->valueLow.type == FWP_UINT16 && v->rangeValue->valueHigh.type == FWP_UINT16) {
                lo = v->rangeValue->valueLow.uint16; hi = v->rangeValue->valueHigh.uint16;
            } else return FWP_E_TYPE_MISMATCH;
            if (guid_eq(&c[i].fieldKey, &COND_REMOTE_PORT)) { m->has_rport = 1; m->rport_lo = lo; m->rport_hi = hi; }
            else { m->has_lport = 1; m->lport_lo = lo; m->lport_hi = hi; }
        } else if (guid_eq(&c[i].fieldKey, &COND_NET_EVENT_TYPE)) {
            if (v->type != FWP_UINT32) return FWP_E_TYPE_MISMATCH;
            m->has_type = 1; m->type = v->uint32;
        } else if (guid_eq(&c[i].fieldKey, &COND_APP_ID)) {
            if (v->type != 12 /* FWP_BYTE_BLOB_TYPE */ || !v->byteBlob) return FWP_E_TYPE_MISMATCH;
            /* injected traffic always comes from the calling process: nothing more to check */
        } else return FWP_E_CONDITION_NOT_FOUND;
    }
    return ERROR_SUCCESS;
}

static int matches(const match_t *m, uint8_t proto, uint32_t laddr, uint32_t raddr, uint16_t lport, uint16_t rport,
                   uint32_t type) {
    if (m->has_proto && m->proto != proto) return 0;
    if (m->has_laddr && laddr != m->laddr) return 0;
    if (m->has_raddr && (raddr & m->rmask) != (m->raddr & m->rmask)) return 0;
    if (m->has_rport && (rport < m->rport_lo || rport > m->rport_hi)) return 0;
    if (m->has_lport && (lport < m->lport_lo || lport > m->lport_hi)) return 0;
    if (m->has_type && m->type != type) return 0;
    return 1;
}

DWORD FwpmFilterAdd0(HANDLE h, const FWPM_FILTER0 *f, const void *sd, uint64_t *id) {
    (void)sd;
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    if (!f->displayData.name) return FWP_E_NULL_DISPLAY_NAME;
    int layer_id = layer_id_of(&f->layerKey);
    if (layer_id < 0) return FWP_E_LAYER_NOT_FOUND;
    match_t m;
    DWORD rc = parse_conditions(f->filterCondition, f->numFilterConditions, &m);
    if (rc) return rc;
    pthread_mutex_lock(&g_mu);
    if (!guid_zero(&f->subLayerKey)) {
        int found = 0;
        for (int i = 0; i < MAX_OBJECTS; i++) found |= g_sublayers[i].used && guid_eq(&g_sublayers[i].key, &f->subLayerKey);
        if (!found) { pthread_mutex_unlock(&g_mu); return FWP_E_SUBLAYER_NOT_FOUND; }
    }
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (!g_filters[i].used) {
            g_filters[i] = (filter_t){1, g_next_filter_id++, f->layerKey, (uint16_t)layer_id, s, m, f->action.type};
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
    const GUID *key = id == 48 ? &LAYER_CONNECT : id == 44 ? &LAYER_RECV_ACCEPT : id == 16 ? &LAYER_OUT_TRANSPORT
                    : id == 12 ? &LAYER_IN_TRANSPORT : NULL;
    if (!key) return FWP_E_LAYER_NOT_FOUND;
    FWPM_LAYER0 *l = api_alloc(sizeof *l);
    l->layerKey = *key;
    l->layerId = id;
    *layer = l;
    return ERROR_SUCCESS;
}

DWORD FwpmGetAppIdFromFileName0(const void *name, FWP_BYTE_BLOB **app_id) {
    if (!name || !app_id) return ERROR_INVALID_PARAMETER;
    FWP_BYTE_BLOB *b = api_alloc(sizeof *b + 16);  /* one allocation, as the real API returns */
    b->size = 16;
    b->data = (uint8_t *)(b + 1);
    memcpy(b->data, "\\device\\fake\\py", 16);
    *app_id = b;
    return ERROR_SUCCESS;
}

/* ---- the dispatcher of the field notes ------------------------------------------------------- */
static uint64_t filetime_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 10000000ull + (uint64_t)ts.tv_nsec / 100ull + 116444736000000000ull;
}

static void deliver(sub_t *s, const event_t *e) {
    FWPM_NET_EVENT_CLASSIFY_DROP2 drop = {0};
    drop.filterId = e->filter_id;
    drop.layerId = e->layer_id;
    drop.msFwpDirection = e->direction;
    drop.isLoopback = 1;
    union { FWPM_NET_EVENT1 v1; FWPM_NET_EVENT2 v2; FWPM_NET_EVENT3 v3; FWPM_NET_EVENT5 v5; } ev;
    memset(&ev, 0, sizeof ev);
    FWPM_NET_EVENT_HEADER0 *h = (FWPM_NET_EVENT_HEADER0 *)&ev;  /* the common header prefix */
    h->timeStamp.dwLowDateTime = (uint32_t)e->filetime;
    h->timeStamp.dwHighDateTime = (uint32_t)(e->filetime >> 32);
    h->flags = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x100;  /* protocol, addresses, ports, ip version */
    h->ipVersion = 0;
    h->ipProtocol = 17;
    h->localAddrV4 = e->laddr;
    h->remoteAddrV4 = e->raddr;
    h->localPort = e->lport;
    h->remotePort = e->rport;
    switch (s->version) {  /* SubscribeN delivers FWPM_NET_EVENT(N+1) */
    case 0: ev.v1.type = 3; ev.v1.classifyDrop = (FWPM_NET_EVENT_CLASSIFY_DROP1 *)&drop; break;
    case 1: ev.v2.header.addressFamily = 0; ev.v2.type = 3; ev.v2.classifyDrop = &drop; break;
    case 2: case 3: ev.v3.header.addressFamily = 0; ev.v3.type = 3; ev.v3.classifyDrop = &drop; break;
    default: ev.v5.header.addressFamily = 0; ev.v5.type = 3; ev.v5.classifyDrop = &drop; break;
    }
    s->cb(s->ctx, &ev);
    memset(&ev, 0xA5, sizeof ev);  /* the memory is gone once the callback returns */
    memset(&drop, 0xA5, sizeof drop);
}

static void *dispatcher(void *arg) {
    sub_t *s = arg;
    uint32_t cap = g_queue_limit;
    event_t *batch = malloc(sizeof(event_t) * (cap ? cap : 1));
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->forming_n == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        uint32_t n = s->forming_n;  /* the batch formed while the dispatcher woke up */
        memcpy(batch, s->forming, n * sizeof(event_t));
        s->forming_n = 0;
        s->busy = 1;
        for (;;) {
            pthread_mutex_unlock(&s->mu);
            for (uint32_t i = 0; i < n && !s->stop; i++) deliver(s, &batch[i]);
            if (g_turnaround_us) {  /* kernel packets released, next batch prepared */
                struct timespec ts = {0, (long)g_turnaround_us * 1000L};
                nanosleep(&ts, NULL);
            }
            pthread_mutex_lock(&s->mu);
            s->delivered += n;
            s->batches++;
            if (s->stop || s->w_n == 0) break;
            n = s->w_n < g_queue_limit ? s->w_n : g_queue_limit;  /* next queue becomes the batch */
            uint32_t total = g_queue_limit + g_buffer;
            for (uint32_t i = 0; i < n; i++) batch[i] = s->waiting[(s->w_head + i) % total];
            s->w_head = (s->w_head + n) % total;
            s->w_n -= n;
        }
        s->busy = 0;
        if (s->stop) break;
    }
    pthread_mutex_unlock(&s->mu);
    free(batch);
    return NULL;
}

static void offer(sub_t *s, const event_t *e) {
    pthread_mutex_lock(&s->mu);
    uint32_t total = g_queue_limit + g_buffer;
    if (!s->busy && s->forming_n < g_queue_limit) {
        s->forming[s->forming_n++] = *e;
        pthread_cond_signal(&s->cv);
    } else if (s->w_n < total) {
        s->waiting[(s->w_head + s->w_n) % total] = *e;
        s->w_n++;
    } else {
        s->lost++;
    }
    pthread_mutex_unlock(&s->mu);
}

static DWORD subscribe(int version, HANDLE h, const FWPM_NET_EVENT_SUBSCRIPTION0 *sub, callback_t cb, void *ctx,
                       HANDLE *out) {
    session_t *s = session_of(h);
    __atomic_add_fetch(&g_subscribe_calls, 1, __ATOMIC_SEQ_CST);
    if (!s) return ERROR_INVALID_HANDLE;
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    if (!sub || !cb || !out) return ERROR_INVALID_PARAMETER;
    match_t m = {0};
    if (sub->enumTemplate) {
        DWORD rc = parse_conditions(sub->enumTemplate->filterCondition, sub->enumTemplate->numFilterConditions, &m);
        if (rc) return rc;
    }
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_SUBS; i++)
        if (!g_subs[i].used) {
            sub_t *n = &g_subs[i];
            memset(n, 0, sizeof *n);
            n->used = 1; n->owner = s; n->version = version; n->cb = cb; n->ctx = ctx; n->m = m;
            n->session_key = sub->sessionKey;
            n->forming = calloc(g_queue_limit ? g_queue_limit : 1, sizeof(event_t));
            n->waiting = calloc((size_t)g_queue_limit + g_buffer + 1, sizeof(event_t));
            pthread_mutex_init(&n->mu, NULL);
            pthread_cond_init(&n->cv, NULL);
            pthread_create(&n->thread, NULL, dispatcher, n);
            *out = n;
            pthread_mutex_unlock(&g_mu);
            return ERROR_SUCCESS;
        }
    pthread_mutex_unlock(&g_mu);
    return ERROR_INVALID_PARAMETER;
}

#define SUBSCRIBE(N) \
    DWORD FwpmNetEventSubscribe##N(HANDLE h, const FWPM_NET_EVENT_SUBSCRIPTION0 *sub, callback_t cb, void *ctx, \
                                   HANDLE *out) { return subscribe(N, h, sub, cb, ctx, out); }
SUBSCRIBE(0)
#if MAX_SUBSCRIBE >= 1
SUBSCRIBE(1)
#endif
#if MAX_SUBSCRIBE >= 2
SUBSCRIBE(2)
#endif
#if MAX_SUBSCRIBE >= 3
SUBSCRIBE(3)
#endif
#if MAX_SUBSCRIBE >= 4
SUBSCRIBE(4)
#endif

static void stop_subscription(sub_t *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);  /* returns only once a running callback has returned */
    pthread_mutex_lock(&g_mu);
    free(s->forming);
    free(s->waiting);
    s->used = 0;
    pthread_mutex_unlock(&g_mu);
}

DWORD FwpmNetEventUnsubscribe0(HANDLE h, HANDLE events) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    if (!events) return ERROR_SUCCESS;
    sub_t *s = events;
    if (s < g_subs || s >= g_subs + MAX_SUBS || !s->used) return ERROR_INVALID_HANDLE;
    if (pthread_equal(pthread_self(), s->thread)) return ERROR_INVALID_STATE;  /* Windows would hang here */
    stop_subscription(s);
    return ERROR_SUCCESS;
}

DWORD FwpmNetEventSubscriptionsGet0(HANDLE h, FWPM_NET_EVENT_SUBSCRIPTION0 ***entries, uint32_t *count) {
    if (!session_of(h)) return ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_mu);
    uint32_t n = g_foreign;
    for (int i = 0; i < MAX_SUBS; i++) n += g_subs[i].used;
    /* one allocation: the pointer array, then the entries */
    FWPM_NET_EVENT_SUBSCRIPTION0 **arr = api_alloc(n * (sizeof(void *) + sizeof(FWPM_NET_EVENT_SUBSCRIPTION0)) + 1);
    FWPM_NET_EVENT_SUBSCRIPTION0 *items = (FWPM_NET_EVENT_SUBSCRIPTION0 *)(arr + n);
    uint32_t k = 0;
    for (uint32_t i = 0; i < g_foreign; i++, k++) { items[k].sessionKey.Data1 = 0xF0F0 + i; arr[k] = &items[k]; }
    for (int i = 0; i < MAX_SUBS; i++)
        if (g_subs[i].used) { items[k].sessionKey = g_subs[i].owner->key; arr[k] = &items[k]; k++; }
    pthread_mutex_unlock(&g_mu);
    *entries = arr;
    *count = n;
    return ERROR_SUCCESS;
}

/* ---- test entry points ----------------------------------------------------------------------- */
void FakeConfigure(uint32_t queue_limit, uint32_t buffer, uint32_t turnaround_us) {
    g_queue_limit = queue_limit; g_buffer = buffer; g_turnaround_us = turnaround_us;
}

void FakeSetForeignSubscriptions(uint32_t n) { g_foreign = n; }
long FakeOutstandingAllocations(void) { return __atomic_load_n(&g_outstanding, __ATOMIC_SEQ_CST); }
uint64_t FakeSubscribeCalls(void) { return __atomic_load_n(&g_subscribe_calls, __ATOMIC_SEQ_CST); }
uint32_t FakeOption(uint32_t option) { return option < 6 ? g_options[option] : 0; }

int FakeObjectCounts(int *sessions, int *filters, int *sublayers, int *subscriptions) {
    pthread_mutex_lock(&g_mu);
    *sessions = *filters = *sublayers = *subscriptions = 0;
    for (int i = 0; i < MAX_SESSIONS; i++) *sessions += g_sessions[i].used;
    for (int i = 0; i < MAX_OBJECTS; i++) { *filters += g_filters[i].used; *sublayers += g_sublayers[i].used; }
    for (int i = 0; i < MAX_SUBS; i++) *subscriptions += g_subs[i].used;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

/* One UDP datagram from 127.0.0.1:lport to raddr:rport, sent by this process over loopback. It meets
 * the outbound layers (ALE connect, transport) and then, looped back, the inbound ones (transport, ALE
 * receive/accept, where remote and local change places). The first blocking filter drops it and
 * every live subscription whose template matches is offered a CLASSIFY_DROP event. Returns 1 if
 * dropped, 0 if it passed. Addresses in host order, as WFP reports them. */
int FakeInjectUdp(uint32_t raddr, uint16_t rport, uint16_t lport) {
    const uint32_t laddr = 0x7F000001u;
    static const uint16_t order[4] = {48, 16, 12, 44};
    event_t e = {0};
    int dropped = 0;
    pthread_mutex_lock(&g_mu);
    for (int step = 0; step < 4 && !dropped; step++) {
        int inbound = order[step] == 12 || order[step] == 44;
        uint32_t r = inbound ? laddr : raddr;
        uint16_t lp = inbound ? rport : lport, rp = inbound ? lport : rport;
        for (int i = 0; i < MAX_OBJECTS; i++) {
            filter_t *f = &g_filters[i];
            if (f->used && f->layer_id == order[step] && f->action == FWP_ACTION_BLOCK &&
                matches(&f->m, 17, inbound ? raddr : laddr, r, lp, rp, 3)) {
                e = (event_t){f->id, f->layer_id, inbound ? raddr : laddr, r, lp, rp, filetime_now(),
                              inbound ? 0x3900u : 0x3901u};
                dropped = 1;
                break;
            }
        }
    }
    int collect = g_options[0];
    sub_t *targets[MAX_SUBS];
    int nt = 0;
    if (dropped && collect)
        for (int i = 0; i < MAX_SUBS; i++)
            if (g_subs[i].used && !g_subs[i].stop && matches(&g_subs[i].m, 17, e.laddr, e.raddr, e.lport, e.rport, 3))
                targets[nt++] = &g_subs[i];
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < nt; i++) offer(targets[i], &e);
    return dropped;
}

uint64_t FakeLost(HANDLE events) { return events ? ((sub_t *)events)->lost : 0; }

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
