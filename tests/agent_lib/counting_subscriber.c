/* A user's native subscriber for the tests: `void on_event(const void *event, void *context)`, as
 * --subscriber-lib PATH:on_event names it. Per call it counts (in the library and in the context the
 * harness hands it), reads the FWPM_NET_EVENT header it was given (UDP events, by ipProtocol at its
 * SDK offset), and spins for the time set_spin_ns() asked, so that the harness's measured
 * per-event cost of "the user's code" can be held to a known value. Calls may come from several
 * threads at once: the counters are atomic. */
#include <stdint.h>
#include <time.h>

static int64_t calls, udp_events, spin_ns;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void on_event(const void *event, void *context) {
    __atomic_fetch_add(&calls, 1, __ATOMIC_SEQ_CST);
    if (context) __atomic_fetch_add((int64_t *)context, 1, __ATOMIC_SEQ_CST);
    if (event && ((const uint8_t *)event)[16] == 17) __atomic_fetch_add(&udp_events, 1, __ATOMIC_SEQ_CST);
    int64_t spin = __atomic_load_n(&spin_ns, __ATOMIC_RELAXED);
    if (spin > 0) {
        int64_t until = now_ns() + spin;
        while (now_ns() < until) {}
    }
}

void set_spin_ns(int64_t ns) { __atomic_store_n(&spin_ns, ns, __ATOMIC_SEQ_CST); }
int64_t calls_seen(void) { return __atomic_load_n(&calls, __ATOMIC_SEQ_CST); }
int64_t udp_events_seen(void) { return __atomic_load_n(&udp_events, __ATOMIC_SEQ_CST); }
void reset_counts(void) { __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST); __atomic_store_n(&udp_events, 0, __ATOMIC_SEQ_CST); }
