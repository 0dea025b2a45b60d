/* Net-event subscriptions and the dispatcher of the field notes (as the model platform has it).
 *
 * An event that finds the dispatcher idle opens a batch; what arrives within the dispatch latency
 * of it (by the packets' own times, not by when the capture hands them over) joins that batch
 * (up to Q), and the dispatcher starts it once that window is over. Later ones wait in one FIFO of Q + B places (the next queue, then the system
 * buffer); beyond that they are lost. The dispatcher delivers a batch one callback per event, pauses for the batch
 * turnaround, and takes the next Q waiting events as its next batch.
 * Undocumented on Windows, configurable here: with THREADS > 1 the batches take turns on that many
 * threads, serialized (one batch at a time, each on a different thread), or, with CONCURRENT, the
 * threads are a pool: each batch goes to any free one while the dispatcher goes on with the next.
 * With FRESH_THREADS (serialized delivery only) each batch runs on a new thread that ends after it.
 * FwpmNetEventUnsubscribe0 waits for a running callback; called from a delivery thread of the same
 * subscription it never returns, as it would on Windows.
 */
#include "fake.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

sub_t g_subs[MAX_SUBS];
DWORD parse_template(const FWPM_NET_EVENT_ENUM_TEMPLATE0 *t, match_t *m);
uint64_t subscribe_counted(void);

static void deliver(sub_t *s, const event_t *e) {
    FWPM_NET_EVENT_CLASSIFY_DROP2 drop = {0};
    drop.filterId = e->filter_id;
    drop.layerId = e->layer_id;
    int inbound = e->direction == DIR_IN_MS;
    drop.msFwpDirection = g_cfg.plain_directions ? (inbound ? 1u : 0u) : e->direction;
    drop.isLoopback = 1;
    union { FWPM_NET_EVENT1 v1; FWPM_NET_EVENT2 v2; FWPM_NET_EVENT3 v3; FWPM_NET_EVENT5 v5; } ev;
    memset(&ev, 0, sizeof ev);
    FWPM_NET_EVENT_HEADER0 *h = (FWPM_NET_EVENT_HEADER0 *)&ev;  /* the common header prefix */
    uint64_t stamp = e->filetime - e->filetime % g_cfg.clock_step_100ns;  /* the event clock's resolution */
    h->timeStamp.dwLowDateTime = (uint32_t)stamp;
    h->timeStamp.dwHighDateTime = (uint32_t)(stamp >> 32);
    h->flags = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x100;  /* protocol, addresses, ports, ip version */
    h->ipVersion = 0;
    h->ipProtocol = e->proto;
    h->localAddrV4 = e->laddr;
    h->remoteAddrV4 = e->raddr;
    h->localPort = e->lport;
    h->remotePort = e->rport;
    uint8_t app[APP_BYTES];
    const uint8_t *bytes;
    int n = app_bytes(e->app, &bytes);
    if (n > 0) {  /* the event's own copy of the app id, gone with the event */
        memcpy(app, bytes, (size_t)n);
        h->flags |= 0x20;
        h->appId.size = (uint32_t)n;
        h->appId.data = app;
    }
    switch (s->version) {  /* SubscribeN delivers FWPM_NET_EVENT(N+1) */
    case 0: ev.v1.type = CLASSIFY_DROP; ev.v1.classifyDrop = (FWPM_NET_EVENT_CLASSIFY_DROP1 *)&drop; break;
    case 1: ev.v2.type = CLASSIFY_DROP; ev.v2.classifyDrop = &drop; break;
    case 2: case 3: ev.v3.type = CLASSIFY_DROP; ev.v3.classifyDrop = &drop; break;
    default: ev.v5.type = CLASSIFY_DROP; ev.v5.classifyDrop = &drop; break;
    }
    if (e->allow) {  /* CLASSIFY_ALLOW0 has CLASSIFY_DROP1's members: the same prefix of `drop` */
        if (s->version == 1) { ev.v2.type = CLASSIFY_ALLOW; ev.v2.classifyAllow = &drop; }
        else if (s->version <= 3) { ev.v3.type = CLASSIFY_ALLOW; ev.v3.classifyAllow = &drop; }
        else { ev.v5.type = CLASSIFY_ALLOW; ev.v5.classifyAllow = &drop; }
    }
    if (subscription_dead(s)) return;  /* died (WFPCAP_FAKE_DELIVER_AT_MOST): nothing reaches the callback */
    s->cb(s->ctx, &ev);
    memset(&ev, 0xA5, sizeof ev);  /* the memory is gone once the callback returns */
    memset(&drop, 0xA5, sizeof drop);
    memset(app, 0xA5, sizeof app);
}

static void deliver_batch(sub_t *s, const event_t *batch, uint32_t n) {
    for (uint32_t i = 0; i < n && !__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST); i++) deliver(s, &batch[i]);
}

static void *worker_loop(void *arg) {
    worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->busy) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        pthread_mutex_unlock(&w->mu);
        deliver_batch(w->s, w->batch, w->n);
        pthread_mutex_lock(&w->mu);
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Serialized: batch k runs on thread k % threads (0 = the dispatcher itself) and the dispatcher
 * waits for it. Concurrent: a pool of `threads`; the dispatcher hands a copy of the batch to any
 * free pool thread (waiting while none is) and goes on, so a held callback holds only its thread. */
static void hand_to_pool(sub_t *s, const event_t *batch, uint32_t n) {
    for (;;) {
        for (int i = 0; i < s->nworkers; i++) {
            worker_t *w = &s->workers[(s->batches + (uint64_t)i) % (uint64_t)s->nworkers];
            pthread_mutex_lock(&w->mu);
            if (!w->busy) {
                memcpy(w->own, batch, n * sizeof(event_t));
                w->batch = w->own; w->n = n; w->busy = 1;
                pthread_cond_broadcast(&w->cv);
                pthread_mutex_unlock(&w->mu);
                return;
            }
            pthread_mutex_unlock(&w->mu);
        }
        if (__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) return;
        struct timespec ts = {0, 50000L};
        nanosleep(&ts, NULL);
    }
}

struct fresh_job { sub_t *s; const event_t *batch; uint32_t n; };

static void *fresh_thread(void *arg) {
    struct fresh_job *job = arg;
    job->s->fresh_thread = pthread_self();  /* before any callback: Unsubscribe from one must hang */
    __atomic_store_n(&job->s->fresh_running, 1, __ATOMIC_SEQ_CST);
    deliver_batch(job->s, job->batch, job->n);
    __atomic_store_n(&job->s->fresh_running, 0, __ATOMIC_SEQ_CST);
    return NULL;
}

/* FRESH_THREADS: the batch runs on a new thread that ends after it; the dispatcher waits for it. */
static int run_on_fresh_thread(sub_t *s, const event_t *batch, uint32_t n) {
    struct fresh_job job = {s, batch, n};
    pthread_t t;
    if (pthread_create(&t, NULL, fresh_thread, &job) != 0) return 0;
    pthread_join(t, NULL);
    return 1;
}

static void run_batch(sub_t *s, const event_t *batch, uint32_t n) {
    if (s->concurrent) { hand_to_pool(s, batch, n); return; }
    if (s->fresh && run_on_fresh_thread(s, batch, n)) return;
    uint32_t k = (uint32_t)(s->batches % (uint64_t)(s->nworkers + 1));
    if (k == 0) { deliver_batch(s, batch, n); return; }
    worker_t *w = &s->workers[k - 1];
    pthread_mutex_lock(&w->mu);
    w->batch = batch; w->n = n; w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* The first batch stays open for the dispatch latency after its first packet (by the clock the
 * packets' times are on), unless it is full or a later packet has been seen already. */
static void wait_dispatch_latency(sub_t *s) {
    uint64_t until = s->forming_since + (uint64_t)g_cfg.dispatch_latency_us * 10u;
    while (!s->stop && s->forming_n < s->queue_limit && !s->forming_closed && filetime_now() < until) {
        uint64_t unix_100ns = until - 116444736000000000ull;
        struct timespec at = {(time_t)(unix_100ns / 10000000u), (long)(unix_100ns % 10000000u) * 100L};
        pthread_cond_timedwait(&s->cv, &s->mu, &at);  /* CLOCK_REALTIME, the packets' clock */
    }
}

static void *dispatcher(void *arg) {
    sub_t *s = arg;
    uint32_t q = s->queue_limit, total = s->queue_limit + s->buffer;
    event_t *batch = malloc(sizeof(event_t) * (q ? q : 1));
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->forming_n == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        wait_dispatch_latency(s);
        if (s->stop) break;
        uint32_t n = s->forming_n;  /* the first batch */
        memcpy(batch, s->forming, n * sizeof(event_t));
        s->forming_n = 0;
        s->forming_closed = 0;
        s->busy = 1;
        for (;;) {
            pthread_mutex_unlock(&s->mu);
            run_batch(s, batch, n);
            if (g_cfg.turnaround_us) {  /* kernel packets released, next batch prepared */
                struct timespec ts = {0, (long)g_cfg.turnaround_us * 1000L};
                nanosleep(&ts, NULL);
            }
            pthread_mutex_lock(&s->mu);
            s->delivered += n;
            s->batches++;
            if (s->stop || s->w_n == 0) break;
            n = s->w_n < q ? s->w_n : q;  /* next queue becomes the batch */
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

void offer(sub_t *s, const event_t *e) {
    pthread_mutex_lock(&s->mu);
    uint32_t total = s->queue_limit + s->buffer;
    uint64_t window = (uint64_t)g_cfg.dispatch_latency_us * 10u;  /* FILETIME ticks */
    if (s->stop || e->filetime < s->created) {
        /* unsubscribing, or a slot taken over by a later subscription: not for this one */
    } else if (!s->busy && (s->forming_n == 0 ||
                            (s->forming_n < s->queue_limit && e->filetime <= s->forming_since + window))) {
        if (s->forming_n == 0) s->forming_since = e->filetime;
        s->forming[s->forming_n++] = *e;
        pthread_cond_signal(&s->cv);
    } else if (s->w_n < total) {
        s->waiting[(s->w_head + s->w_n) % total] = *e;
        s->w_n++;
        if (!s->busy) {  /* the first batch's window is over: the dispatcher need not wait longer */
            s->forming_closed = 1;
            pthread_cond_signal(&s->cv);
        }
    } else {
        s->lost++;
    }
    pthread_mutex_unlock(&s->mu);
}

__attribute__((unused)) static DWORD subscribe(int version, HANDLE h, const FWPM_NET_EVENT_SUBSCRIPTION0 *sub, callback_t cb, void *ctx,
                       HANDLE *out) {
    session_t *s = session_of(h);
    subscribe_counted();
    if (!s) return ERROR_INVALID_HANDLE;
    DWORD code;
    if (fail_point("FwpmNetEventSubscribe", &code)) return code;
    if (!g_cfg.elevated) return ERROR_ACCESS_DENIED;
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    if (!sub || !cb || !out) return ERROR_INVALID_PARAMETER;
    /* FWPM_ENGINE_COLLECT_NET_EVENTS is 0: undocumented for SubscribeN, so refused as EnumN is, or
       accepted; accepted, it gets nothing while collection is off (classify.c makes no event then) */
    if (!collecting() && !g_cfg.subscribe_while_off) return FWP_E_NET_EVENTS_DISABLED;
    match_t m;
    DWORD rc = parse_template(sub->enumTemplate, &m);
    if (rc) return rc;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_SUBS; i++)
        if (!g_subs[i].used) {
            sub_t *n = &g_subs[i];
            memset(n, 0, sizeof *n);
            n->used = 1; n->owner = s; n->version = version; n->cb = cb; n->ctx = ctx; n->m = m;
            n->session_key = sub->sessionKey;
            n->created = filetime_now();
            n->queue_limit = g_cfg.queue_limit;
            n->buffer = g_cfg.buffer;
            n->forming = calloc(n->queue_limit ? n->queue_limit : 1, sizeof(event_t));
            n->waiting = calloc((size_t)n->queue_limit + n->buffer + 1, sizeof(event_t));
            pthread_mutex_init(&n->mu, NULL);
            pthread_cond_init(&n->cv, NULL);
            n->concurrent = g_cfg.concurrent;
            n->fresh = g_cfg.fresh_threads && !n->concurrent;
            n->nworkers = (int)g_cfg.threads - (n->concurrent ? 0 : 1);  /* concurrent: a pool; the dispatcher hands out */
            for (int k = 0; k < n->nworkers; k++) {
                worker_t *w = &n->workers[k];
                w->s = n;
                w->own = calloc(n->queue_limit ? n->queue_limit : 1, sizeof(event_t));
                pthread_mutex_init(&w->mu, NULL);
                pthread_cond_init(&w->cv, NULL);
                pthread_create(&w->thread, NULL, worker_loop, w);
            }
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
#if MAX_SUBSCRIBE >= 0
SUBSCRIBE(0)
#endif
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

static int is_delivery_thread(const sub_t *s) {
    if (pthread_equal(pthread_self(), s->thread)) return 1;
    if (__atomic_load_n(&s->fresh_running, __ATOMIC_SEQ_CST) && pthread_equal(pthread_self(), s->fresh_thread)) return 1;
    for (int k = 0; k < s->nworkers; k++)
        if (pthread_equal(pthread_self(), s->workers[k].thread)) return 1;
    return 0;
}

void stop_subscription(sub_t *s) {
    if (is_delivery_thread(s))  /* waits for the running callback: its own. Windows hangs here. */
        for (;;) sleep(3600);
    pthread_mutex_lock(&s->mu);
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);  /* returns only once a running callback has returned */
    for (int k = 0; k < s->nworkers; k++) {
        worker_t *w = &s->workers[k];
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        free(w->own);
    }
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
    DWORD code;
    if (fail_point("FwpmNetEventUnsubscribe0", &code)) return code;  /* still subscribed */
    stop_subscription(s);
    return ERROR_SUCCESS;
}

/* Events this subscription lost because its queue and buffer were full. */
uint64_t FakeLost(HANDLE events) { return events ? ((sub_t *)events)->lost : 0; }
/* Events whose batch has been delivered and whose delivery thread has returned (FRESH_THREADS: joined). */
uint64_t FakeDelivered(HANDLE events) {
    if (!events) return 0;
    sub_t *s = (sub_t *)events;
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->delivered;
    pthread_mutex_unlock(&s->mu);
    return n;
}
