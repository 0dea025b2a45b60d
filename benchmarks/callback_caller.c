/* Calls a callback n times from a thread Python did not start, as WFP's delivery thread does,
   and returns the nanoseconds it took. Built by bench_callback_floor.py. */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef void (*callback_t)(void *context, const void *event);
struct job { callback_t callback; void *context; const void *event; long n; int64_t ns; };

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *run(void *arg) {
    struct job *job = arg;
    int64_t start = now_ns();
    for (long i = 0; i < job->n; i++)
        job->callback(job->context, job->event);
    job->ns = now_ns() - start;
    return NULL;
}

int64_t call_from_new_thread(callback_t callback, void *context, const void *event, long n) {
    struct job job = {callback, context, event, n, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, run, &job) != 0)
        return -1;
    pthread_join(thread, NULL);
    return job.ns;
}
