/* The fake's view of the network: every IPv4 UDP packet on the loopback of the network namespace
 * in which the first engine session was opened, read from an AF_PACKET ring (TPACKET_V2) bound to
 * ETH_P_ALL (only such taps see outgoing packets), both copies of each datagram: the outgoing one (PACKET_OUTGOING) for the outbound layers and the
 * incoming one (PACKET_HOST) for the inbound layers. Started when the first session opens and
 * stopped when the last one closes, so that each test gets a capture in its own namespace.
 * In a namespace with any interface but the loopback (the machine's own) nothing is captured: host
 * traffic never reaches the fake. A second thread makes the foreign drops: CLASSIFY_DROP events of a filter that is not
 * the caller's, for tuples of their own, at WFPCAP_FAKE_FOREIGN_RATE per second.
 */
#include "fake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_SIZE 128u
#define BLOCK_SIZE (1u << 22)
#define BLOCKS 8u
#define FOREIGN_FILTER_ID 0xF00Dull

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_fd = -1, g_stop;
static uint8_t *g_ring;
static pthread_t g_reader, g_foreign;
static int g_running;
static uint64_t g_packets, g_drops;
static int g_state;  /* 1 capturing, 0 never started, -1 host namespace, -2 cannot open (errno in g_errno) */
static int g_errno;

/* A namespace that a test made has nothing but its loopback; the machine's own has more. */
static int in_host_namespace(void) {
    struct if_nameindex *all = if_nameindex();
    if (!all) return 1;
    int others = 0;
    for (struct if_nameindex *i = all; i->if_index; i++) others += strcmp(i->if_name, "lo") != 0;
    if_freenameindex(all);
    return others > 0;
}

static int open_ring(void) {
    int fd = socket(AF_PACKET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    int version = TPACKET_V2;
    struct tpacket_req req = {BLOCK_SIZE, BLOCKS, FRAME_SIZE, BLOCK_SIZE / FRAME_SIZE * BLOCKS};
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex("lo")};
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) { close(fd); return -1; }
    g_ring = mmap(NULL, (size_t)BLOCK_SIZE * BLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (g_ring == MAP_FAILED || bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
        if (g_ring != MAP_FAILED) munmap(g_ring, (size_t)BLOCK_SIZE * BLOCKS);
        g_ring = NULL;
        close(fd);
        return -1;
    }
    return fd;
}

static void count_drops(void) {
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(g_fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {  /* reading resets them */
        __atomic_add_fetch(&g_packets, st.tp_packets, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&g_drops, st.tp_drops, __ATOMIC_SEQ_CST);
    }
}

static void handle(const uint8_t *ip, uint32_t len, uint8_t pkttype, uint64_t filetime) {
    if (len < 28 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP_) return;
    uint32_t ihl = (ip[0] & 0xF) * 4u;
    if (len < ihl + 8) return;
    uint32_t src = ((uint32_t)ip[12] << 24) | ((uint32_t)ip[13] << 16) | ((uint32_t)ip[14] << 8) | ip[15];
    uint32_t dst = ((uint32_t)ip[16] << 24) | ((uint32_t)ip[17] << 16) | ((uint32_t)ip[18] << 8) | ip[19];
    uint16_t sport = (uint16_t)((ip[ihl] << 8) | ip[ihl + 1]), dport = (uint16_t)((ip[ihl + 2] << 8) | ip[ihl + 3]);
    if (pkttype == PACKET_OUTGOING) classify_outgoing(src, dst, sport, dport, filetime, 0);
    else if (pkttype == PACKET_HOST) classify_incoming(src, dst, sport, dport, filetime, 0);
}

static void *reader(void *arg) {
    (void)arg;
    const uint32_t frames = BLOCK_SIZE / FRAME_SIZE * BLOCKS;
    uint32_t k = 0;
    while (!__atomic_load_n(&g_stop, __ATOMIC_SEQ_CST)) {
        struct tpacket2_hdr *h = (struct tpacket2_hdr *)(g_ring + (size_t)k * FRAME_SIZE);
        if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            count_drops();
            struct pollfd p = {g_fd, POLLIN, 0};
            poll(&p, 1, 50);
            continue;
        }
        const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof *h));
        /* capture time: when the kernel saw the packet, i.e. when WFP would have classified it */
        uint64_t filetime = (uint64_t)h->tp_sec * 10000000ull + h->tp_nsec / 100u + 116444736000000000ull;
        if (sll->sll_protocol == htons(ETH_P_IP))
            handle((uint8_t *)h + h->tp_net, h->tp_snaplen, sll->sll_pkttype, filetime);
        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        k = (k + 1) % frames;
    }
    count_drops();
    return NULL;
}

static void *foreign(void *arg) {
    (void)arg;
    uint32_t n = 0;
    while (!__atomic_load_n(&g_stop, __ATOMIC_SEQ_CST)) {
        double rate = g_cfg.foreign_rate;
        struct timespec ts = {0, rate > 0 ? (long)(1e9 / rate) : 50000000L};
        if (rate > 0 && rate < 1) ts = (struct timespec){(time_t)(1 / rate), 0};
        nanosleep(&ts, NULL);
        if (rate <= 0) continue;
        n++;  /* someone else's blocked connection: another filter, another tuple, ports anywhere */
        event_t e = {FOREIGN_FILTER_ID, LAYER_CONNECT, IPPROTO_UDP_, 0x7F000001u, 0x7F000001u,
                     (uint16_t)(50000 + n % 10000), (uint16_t)(1 + (n * 7919u) % 65535u), filetime_now(), DIR_OUT_MS, 0, 0};
        emit(&e);
    }
    return NULL;
}

void capture_start(void) {
    pthread_mutex_lock(&cap_mu);
    if (!g_running) {
        g_stop = 0;
        classify_reset();
        if (in_host_namespace()) {
            g_state = -1;
        } else if ((g_fd = open_ring()) < 0) {
            g_state = -2;
            g_errno = errno;
        } else {
            g_state = 1;
            pthread_create(&g_reader, NULL, reader, NULL);
        }
        pthread_create(&g_foreign, NULL, foreign, NULL);
        g_running = 1;
    }
    pthread_mutex_unlock(&cap_mu);
}

void capture_stop(void) {
    pthread_mutex_lock(&cap_mu);
    if (g_running) {
        __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
        if (g_state == 1) pthread_join(g_reader, NULL);
        pthread_join(g_foreign, NULL);
        if (g_fd >= 0) {
            munmap(g_ring, (size_t)BLOCK_SIZE * BLOCKS);
            close(g_fd);
            g_fd = -1;
        }
        g_running = 0;
    }
    pthread_mutex_unlock(&cap_mu);
}

/* state: 1 capturing, 0 not started, -1 a namespace with more than a loopback (nothing captured), -2 the
 * capture could not be opened (errno in *error); packets seen and dropped by the ring so far. */
int FakeCaptureStats(uint64_t *packets, uint64_t *drops, int *error) {
    *packets = __atomic_load_n(&g_packets, __ATOMIC_SEQ_CST);
    *drops = __atomic_load_n(&g_drops, __ATOMIC_SEQ_CST);
    *error = g_errno;
    return g_state;
}

__attribute__((destructor)) static void report_drops(void) {
    if (g_drops)  /* a lost packet is an event the fake failed to make: never silent */
        fprintf(stderr, "fake fwpuclnt: the capture ring dropped %llu packets\n", (unsigned long long)g_drops);
}
