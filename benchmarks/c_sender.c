/* Baseline for bench_sender.py: send COUNT UDP datagrams (16-byte payload carrying a big-endian
 * sequence number) to 127.0.0.1, one destination port per packet, with sendmmsg in batches of
 * BATCH, as fast as possible; print packets per second. Runs inside the harness's namespace. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: c_sender COUNT PORT_BASE BATCH\n"); return 2; }
    long count = atol(argv[1]), base = atol(argv[2]), batch = atol(argv[3]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    unsigned char *payload = calloc(count, 16);
    struct sockaddr_in *dst = calloc(count, sizeof *dst);
    struct iovec *iov = calloc(count, sizeof *iov);
    struct mmsghdr *msgs = calloc(count, sizeof *msgs);
    for (long i = 0; i < count; i++) {
        uint64_t be = __builtin_bswap64((uint64_t)i);
        memcpy(payload + 16 * i, &be, 8);
        dst[i].sin_family = AF_INET;
        dst[i].sin_port = htons((uint16_t)(base + i % 40000));
        dst[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        iov[i].iov_base = payload + 16 * i;
        iov[i].iov_len = 16;
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
