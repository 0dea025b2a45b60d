/* Baseline for bench_sender.py: send COUNT UDP datagrams (16-byte payload carrying a big-endian
 * sequence number) to 127.0.0.1, one destination port per packet, with sendmmsg in batches of
 * BATCH, as fast as possible; print packets per second. Runs inside the harness's namespace.
 * KIND udp (default): through a UDP socket; raw: whole IPv4 packets through an IPPROTO_RAW socket
 * (the kernel fills in the IP checksum and length, as for the harness's raw sender).
 * CPU (optional): pinned and prioritised as the harness pins its sender (harness/traffic/cores.py):
 * that core, nice -20, a session and autogroup of its own at nice -20, so both loops run alike. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 16
#define HEADERS 28  /* IPv4 + UDP */

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    if (setpriority(PRIO_PROCESS, 0, -20) != 0) perror("setpriority");
    if (getsid(0) != getpid()) setsid();
    FILE *f = fopen("/proc/self/autogroup", "w");
    if (f) { fputs("-20", f); fclose(f); }
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) { fprintf(stderr, "usage: c_sender COUNT PORT_BASE BATCH [udp|raw] [CPU]\n"); return 2; }
    long count = atol(argv[1]), base = atol(argv[2]), batch = atol(argv[3]);
    int raw = argc >= 5 && strcmp(argv[4], "raw") == 0;
    if (argc == 6) pin(atoi(argv[5]));
    int fd = raw ? socket(AF_INET, SOCK_RAW, IPPROTO_RAW) : socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    size_t size = raw ? HEADERS + PAYLOAD : PAYLOAD;
    unsigned char *data = calloc(count, size);
    struct sockaddr_in *dst = calloc(count, sizeof *dst);
    struct iovec *iov = calloc(count, sizeof *iov);
    struct mmsghdr *msgs = calloc(count, sizeof *msgs);
    for (long i = 0; i < count; i++) {
        unsigned char *p = data + size * i;
        uint16_t port = htons((uint16_t)(base + i % 40000));
        if (raw) {
            p[0] = 0x45;                                   /* IPv4, 20-byte header */
            uint16_t total = htons((uint16_t)size);
            memcpy(p + 2, &total, 2);
            p[6] = 0x40;                                   /* don't fragment */
            p[8] = 64;                                     /* TTL */
            p[9] = IPPROTO_UDP;
            uint32_t lo = htonl(INADDR_LOOPBACK);
            memcpy(p + 12, &lo, 4);
            memcpy(p + 16, &lo, 4);
            uint16_t sport = htons(40000), ulen = htons(8 + PAYLOAD);
            memcpy(p + 20, &sport, 2);
            memcpy(p + 22, &port, 2);
            memcpy(p + 24, &ulen, 2);                      /* UDP checksum 0: none */
        }
        uint64_t be = __builtin_bswap64((uint64_t)i);
        memcpy(p + (raw ? HEADERS : 0), &be, 8);
        dst[i].sin_family = AF_INET;
        dst[i].sin_port = raw ? 0 : port;
        dst[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        iov[i].iov_base = p;
        iov[i].iov_len = size;
        msgs[i].msg_hdr.msg_name = &dst[i];
        msgs[i].msg_hdr.msg_namelen = sizeof dst[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long sent = 0;
    while (sent < count) {
        long n = count - sent < batch ? count - sent : batch;
        int r = sendmmsg(fd, msgs + sent, (unsigned)n, 0);
        if (r < 0) { perror("sendmmsg"); return 1; }
        sent += r;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.1f\n", count / s);
    return 0;
}
