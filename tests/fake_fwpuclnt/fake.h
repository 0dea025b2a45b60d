/* Shared declarations of the fake fwpuclnt (see fake_fwpuclnt.c for what it is and why). */
#ifndef FAKE_H
#define FAKE_H
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

typedef uint32_t DWORD;
typedef int32_t BOOL;
typedef void *HANDLE;

/* ---- SDK structures (x64 layout, fixed-width types) ------------------------------------------ */
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
#define ERROR_FILE_NOT_FOUND 2
#define ERROR_ACCESS_DENIED 5
#define ERROR_INVALID_HANDLE 6
#define ERROR_INVALID_PARAMETER 87
#define FWP_E_CONDITION_NOT_FOUND 0x80320002u
#define FWP_E_FILTER_NOT_FOUND 0x80320003u
#define FWP_E_LAYER_NOT_FOUND 0x80320004u
#define FWP_E_SUBLAYER_NOT_FOUND 0x80320007u
#define FWP_E_ALREADY_EXISTS 0x80320009u
#define FWP_E_DYNAMIC_SESSION_IN_PROGRESS 0x8032000Bu
#define FWP_E_NO_TXN_IN_PROGRESS 0x8032000Du
#define FWP_E_TXN_IN_PROGRESS 0x8032000Eu
#define FWP_E_NET_EVENTS_DISABLED 0x80320013u
#define FWP_E_NULL_DISPLAY_NAME 0x80320023u
#define FWP_E_TYPE_MISMATCH 0x80320027u
#define FWP_E_DUPLICATE_CONDITION 0x8032002Au
#define FWP_UINT8 1
#define FWP_UINT16 2
#define FWP_UINT32 3
#define FWP_BYTE_BLOB_TYPE 12
#define FWP_V4_ADDR_MASK 256
#define FWP_RANGE_TYPE 258
#define FWP_MATCH_EQUAL 0
#define FWP_MATCH_RANGE 5
#define FWP_ACTION_BLOCK 0x1001u
#define FWPM_SESSION_FLAG_DYNAMIC 1u
#define CLASSIFY_DROP 3u
#define CLASSIFY_ALLOW 6u
#define KEYWORD_CLASSIFY_ALLOW 0x10u
#define DEFAULT_PERMIT_FILTER_ID 0xDEFAull  /* the ALE layers' default permit (allow events with the keyword) */
#define FWP_ACTION_PERMIT 0x1002u
#define IPPROTO_UDP_ 17

/* run-time layer ids (FWPS_BUILTIN_LAYERS) */
enum { LAYER_IN_TRANSPORT = 12, LAYER_OUT_TRANSPORT = 16, LAYER_RECV_ACCEPT = 44, LAYER_CONNECT = 48 };
#define DIR_IN_MS 0x3900u
#define DIR_OUT_MS 0x3901u

/* ---- engine state ---------------------------------------------------------------------------- */
#define MAX_SESSIONS 32
#define MAX_OBJECTS 256
#define MAX_SUBS 16
#define MAX_CONDS 8
#define MAX_THREADS 8
#define MAX_APPS 64
#define APP_BYTES 1024

typedef struct { int used; GUID key; int dynamic; int in_txn; } session_t;

/* what a filter or a template asks of an event; app ids are interned (index > 0) */
typedef struct {
    int has_proto; uint8_t proto;
    int has_raddr; uint32_t raddr, rmask;
    int has_laddr; uint32_t laddr, lmask;
    int has_rport; uint16_t rport_lo, rport_hi;
    int has_lport; uint16_t lport_lo, lport_hi;
    int has_type; uint32_t type;
    int app;
    int has_user;  /* ALE_USER_ID in a template: the fake's events carry no user id, so none matches */
    uint32_t n;    /* conditions given */
} match_t;

typedef struct { int used; uint64_t id; uint16_t layer_id; session_t *owner; match_t m; uint32_t action; } filter_t;
typedef struct { int used; GUID key; session_t *owner; } sublayer_t;

typedef struct {
    uint64_t filter_id; uint16_t layer_id; uint8_t proto; uint32_t laddr, raddr; uint16_t lport, rport;
    uint64_t filetime; uint32_t direction; int app;
    int allow;  /* 0: CLASSIFY_DROP (filter_id is the blocking filter's), 1: CLASSIFY_ALLOW (the permit's) */
} event_t;

typedef void (*callback_t)(void *context, const void *event);

typedef struct sub_s sub_t;
typedef struct {                  /* a delivery thread other than the dispatcher (THREADS > 1) */
    sub_t *s; pthread_t thread; pthread_mutex_t mu; pthread_cond_t cv;
    const event_t *batch; uint32_t n; int busy, quit;
    event_t *own;                 /* concurrent delivery: its copy of the batch it delivers */
} worker_t;

struct sub_s {
    int used; session_t *owner; int version; callback_t cb; void *ctx; match_t m; GUID session_key;
    uint64_t created;  /* FILETIME: only events of later packets are delivered to it */
    pthread_t thread; pthread_mutex_t mu; pthread_cond_t cv; int stop; int busy;
    event_t *forming; uint32_t forming_n; uint64_t forming_since;  /* FILETIME of its first event */
    int forming_closed;  /* a packet later than the dispatch latency has been seen */
    event_t *waiting; uint32_t w_head, w_n;  /* next queue + system buffer: one FIFO of Q + B places */
    uint32_t queue_limit, buffer;
    int concurrent; int nworkers; worker_t workers[MAX_THREADS];
    int fresh;  /* each batch on a thread of its own (FRESH_THREADS, copied at subscribe) */
    pthread_t fresh_thread; int fresh_running;  /* that thread, while it delivers */
    uint64_t lost, delivered, batches;
    uint64_t handed;  /* events handed to the callback so far (netevents.c: a subscription that dies) */
};

typedef struct {
    uint32_t queue_limit, buffer, turnaround_us;
    uint32_t dispatch_latency_us; /* an idle dispatcher's first batch: what arrives this soon after its first event */
    uint32_t threads;          /* delivery threads per subscription (batches take turns) */
    int concurrent;            /* 1: the delivery threads are a pool; each batch goes to any free one */
    int fresh_threads;         /* 1: each batch runs on a thread made for it, which ends after it (a pool
                                  that retires idle threads, as the RPC runtime's does; glibc then hands
                                  the next thread the same stack, so the same thread id). Serialized
                                  delivery only: with CONCURRENT=1 the pool's threads deliver */
    int reclassify;            /* 1: every packet of a blocked tuple is classified again at ALE */
    double foreign_rate;       /* CLASSIFY_DROP events per second from a filter that is not the caller's */
    int elevated;              /* 0: calls that need administrator rights return ERROR_ACCESS_DENIED */
    int plain_directions;      /* 1: msFwpDirection as FWP_DIRECTION_OUTBOUND/INBOUND (0/1) */
    char options_file[512];    /* engine options persist here, as Windows keeps them across reboots */
    uint32_t clock_step_100ns; /* event header timestamps are multiples of this: how fine Windows stamps
                                  net events is undocumented (1 = FILETIME's own 100 ns) */
    int silent_templates;      /* 1: a subscription with any template condition is accepted and gets no
                                  event at all (a template that suppresses everything) */
    int allow_from_default;    /* 1: an allow carries the layer's default permit's filter id, not that of the
                                  permit that matched (which filter id an allow carries when several
                                  sublayers permit is undocumented) */
    int subscribe_while_off;   /* 1: FwpmNetEventSubscribeN is accepted while FWPM_ENGINE_COLLECT_NET_EVENTS is
                                  0, and the subscription is silent until collection is on again (Microsoft
                                  Learn documents FWP_E_NET_EVENTS_DISABLED for FwpmNetEventEnumN only);
                                  0: refused with FWP_E_NET_EVENTS_DISABLED */
} config_t;

extern pthread_mutex_t g_mu;
extern session_t g_sessions[MAX_SESSIONS];
extern filter_t g_filters[MAX_OBJECTS];
extern sub_t g_subs[MAX_SUBS];
extern uint32_t g_options[6];
extern config_t g_cfg;

/* fake_fwpuclnt.c */
int fail_point(const char *function, DWORD *code);
void *api_alloc(size_t n);
session_t *session_of(HANDLE h);
int guid_eq(const GUID *a, const GUID *b);
/* dispatch.c */
void offer(sub_t *s, const event_t *e);
void stop_subscription(sub_t *s);
/* classify.c */
int classify_outgoing(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint64_t filetime, int app_hint);
int classify_incoming(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint64_t filetime, int app_hint);
void emit(const event_t *e);
int intern_app(const uint8_t *bytes, uint32_t size);
int app_bytes(int app, const uint8_t **bytes);
int app_id_of_path(const char *path, uint8_t *out, uint32_t cap);
int self_app(void);
void classify_reset(void);
uint64_t filetime_now(void);
int collecting(void);
/* netevents.c */
void store_event(const event_t *e);
int subscription_dead(sub_t *s);
uint32_t event_type(const event_t *e);
/* sessions.c */
DWORD register_session(session_t *s);
void unregister_session(const session_t *s);
int duplicate_keys_accepted(void);
/* kernel32.c */
uint64_t process_created(int pid);
/* capture.c */
void capture_start(void);
void capture_stop(void);
#endif
