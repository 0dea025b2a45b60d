/* What the native send loop and its pinning call on Windows (harness/platforms/wfp/native_send.py,
 * threads.py), exported under the Windows names with Windows' signatures, so that the loop's Windows
 * branch runs on Linux as it runs on Windows and only the final binding differs:
 * - ws2_32: sendto (a SOCKET, int lengths) and WSAGetLastError. The send is real (the sendto system
 *   call on the socket's descriptor) and its errors become the WSA codes Windows gives: a send that a
 *   filter refuses fails with WSAEACCES, a full send buffer with WSAEWOULDBLOCK or WSAENOBUFS.
 * - kernel32: waitable timers (CreateWaitableTimerExW, SetWaitableTimer, WaitForSingleObjectEx), at
 *   Windows' resolutions: a high-resolution timer fires when due, any other at the next tick of the
 *   default 15.625 ms timer; SwitchToThread, which really gives the core away (sched_yield);
 *   the process's affinity mask and a thread's priority.
 *   The priority is kept and read back, not applied: Linux has no thread priority classes.
 * <sys/socket.h> is not included: its sendto has Linux's signature. */
#include "fake.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t SOCKET;  /* UINT_PTR */

#define SOCKET_ERROR (-1)
#define WSAEINTR 10004
#define WSAEACCES 10013
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEWOULDBLOCK 10035
#define WSAENOTSOCK 10038
#define WSAEMSGSIZE 10040
#define WSAEADDRNOTAVAIL 10049
#define WSAENETUNREACH 10051
#define WSAENOBUFS 10055
#define WSAEHOSTUNREACH 10065

static __thread int t_wsa_error;  /* per thread, as Windows keeps it */

int WSAGetLastError(void) { return t_wsa_error; }

static int wsa_code(int e) {
    switch (e) {
    case EAGAIN: return WSAEWOULDBLOCK;
    case ENOBUFS: return WSAENOBUFS;
    case EPERM: case EACCES: return WSAEACCES;  /* Linux answers a netfilter drop on output with EPERM */
    case EMSGSIZE: return WSAEMSGSIZE;
    case EBADF: case ENOTSOCK: return WSAENOTSOCK;
    case EINVAL: return WSAEINVAL;
    case EINTR: return WSAEINTR;
    case EFAULT: return WSAEFAULT;
    case ENETUNREACH: return WSAENETUNREACH;
    case EHOSTUNREACH: return WSAEHOSTUNREACH;
    case EADDRNOTAVAIL: return WSAEADDRNOTAVAIL;
    default: return 10000 + e;
    }
}

int sendto(SOCKET s, const char *buf, int len, int flags, const void *to, int tolen) {
    if (len < 0 || tolen < 0) { t_wsa_error = WSAEFAULT; return SOCKET_ERROR; }
    long r = syscall(SYS_sendto, (int)s, buf, (size_t)len, flags, to, (unsigned)tolen);
    if (r < 0) { t_wsa_error = wsa_code(errno); return SOCKET_ERROR; }
    return (int)r;
}

/* ---- waitable timers ---------------------------------------------------------------------------- */
#define TIMER_MAGIC 0x544d5257u
#define CREATE_WAITABLE_TIMER_MANUAL_RESET 0x1u
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x2u
#define WAIT_OBJECT_0 0u
#define WAIT_TIMEOUT 258u
#define WAIT_FAILED 0xFFFFFFFFu
#define INFINITE 0xFFFFFFFFu
#define DEFAULT_TICK_NS 15625000LL

typedef struct { uint32_t magic; int manual, high_resolution, armed; int64_t due_ns; } fake_timer;

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int g_high_resolution_timers = 1;  /* 0: as before Windows 10 1803, which refuses the flag */

void FakeSetHighResolutionTimers(int available) { g_high_resolution_timers = available != 0; }

HANDLE CreateWaitableTimerExW(void *attributes, const wchar_t *name, DWORD flags, DWORD access) {
    (void)attributes; (void)access;
    if (name || (flags & ~(CREATE_WAITABLE_TIMER_MANUAL_RESET | CREATE_WAITABLE_TIMER_HIGH_RESOLUTION))) return NULL;
    if ((flags & CREATE_WAITABLE_TIMER_HIGH_RESOLUTION) && !g_high_resolution_timers) return NULL;
    fake_timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->magic = TIMER_MAGIC;
    t->manual = (flags & CREATE_WAITABLE_TIMER_MANUAL_RESET) != 0;
    t->high_resolution = (flags & CREATE_WAITABLE_TIMER_HIGH_RESOLUTION) != 0;
    return t;
}

/* due: 100 ns units, negative = relative to now, positive = an absolute UTC FILETIME */
BOOL SetWaitableTimer(HANDLE h, const int64_t *due, int32_t period, void *routine, void *argument, BOOL resume) {
    (void)routine; (void)argument; (void)resume;
    fake_timer *t = h;
    if (!t || t->magic != TIMER_MAGIC || !due || period < 0) return 0;
    int64_t now = monotonic_ns();
    int64_t wait = *due < 0 ? -*due * 100 : ((int64_t)*due - (int64_t)filetime_now()) * 100;
    t->due_ns = now + (wait > 0 ? wait : 0);
    if (!t->high_resolution)  /* the next tick of the default timer */
        t->due_ns = (t->due_ns + DEFAULT_TICK_NS - 1) / DEFAULT_TICK_NS * DEFAULT_TICK_NS;
    t->armed = 1;
    return 1;
}

DWORD WaitForSingleObjectEx(HANDLE h, DWORD ms, BOOL alertable) {
    (void)alertable;
    fake_timer *t = h;
    if (!t || t->magic != TIMER_MAGIC) return WAIT_FAILED;
    int64_t until = ms == INFINITE ? INT64_MAX : monotonic_ns() + (int64_t)ms * 1000000LL;
    int fires = t->armed && t->due_ns <= until;
    if (!t->armed && ms == INFINITE) return WAIT_FAILED;  /* Windows would wait forever */
    int64_t end = fires ? t->due_ns : until;
    struct timespec ts = {(time_t)(end / 1000000000LL), (long)(end % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    if (!fires) return WAIT_TIMEOUT;
    if (!t->manual) t->armed = 0;  /* a synchronization timer resets when a wait is satisfied */
    return WAIT_OBJECT_0;
}

/* ---- yielding the processor ---------------------------------------------------------------------- */
static long g_switch_calls;

/* Windows: another thread ready to run on this processor runs now, and the answer is nonzero if one
 * did. Here sched_yield, which likewise offers only this core's run queue; whether another thread ran
 * is read from the calling thread's involuntary context switches (a yield that switched is one). */
BOOL SwitchToThread(void) {
    __atomic_add_fetch(&g_switch_calls, 1, __ATOMIC_SEQ_CST);
    struct rusage before, after;
    getrusage(RUSAGE_THREAD, &before);
    sched_yield();
    getrusage(RUSAGE_THREAD, &after);
    return after.ru_nivcsw != before.ru_nivcsw;
}

long FakeSwitchToThreadCalls(void) { return __atomic_load_n(&g_switch_calls, __ATOMIC_SEQ_CST); }

/* ---- affinity and priority ---------------------------------------------------------------------- */
#define CURRENT_PROCESS ((HANDLE)(intptr_t)-1)
#define CURRENT_THREAD ((HANDLE)(intptr_t)-2)

HANDLE GetCurrentProcess(void) { return CURRENT_PROCESS; }
HANDLE GetCurrentThread(void) { return CURRENT_THREAD; }

static uint64_t mask_of(const cpu_set_t *set) {
    uint64_t m = 0;
    for (int i = 0; i < 64; i++)
        if (CPU_ISSET(i, set)) m |= 1ull << i;
    return m;
}

static cpu_set_t set_of(uint64_t mask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < 64; i++)
        if (mask >> i & 1) CPU_SET(i, &set);
    return set;
}

static uint64_t system_mask(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static uint64_t g_process_mask;  /* 0: as the process started (its main thread's affinity) */

static uint64_t process_mask(void) {
    if (g_process_mask) return g_process_mask;
    cpu_set_t set;
    return sched_getaffinity(getpid(), sizeof set, &set) == 0 ? mask_of(&set) : system_mask();
}

BOOL GetProcessAffinityMask(HANDLE process, uint64_t *process_out, uint64_t *system_out) {
    if (process != CURRENT_PROCESS || !process_out || !system_out) return 0;
    *process_out = process_mask();
    *system_out = system_mask();
    return 1;
}

/* every thread of the process, and those it starts from now on (they inherit their creator's) */
BOOL SetProcessAffinityMask(HANDLE process, uint64_t mask) {
    if (process != CURRENT_PROCESS || !mask || (mask & ~system_mask())) return 0;
    cpu_set_t set = set_of(mask);
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return 0;
    int ok = 1;
    for (struct dirent *e; (e = readdir(tasks));)
        if (e->d_name[0] != '.' && sched_setaffinity((pid_t)atoi(e->d_name), sizeof set, &set) != 0 && errno != ESRCH)
            ok = 0;
    closedir(tasks);
    if (ok) g_process_mask = mask;
    return ok;
}

static __thread int t_priority;  /* THREAD_PRIORITY_NORMAL */

BOOL SetThreadPriority(HANDLE thread, int priority) {
    if (thread != CURRENT_THREAD) return 0;
    if (!(priority == -15 || priority == 15 || (priority >= -2 && priority <= 2))) return 0;
    t_priority = priority;
    return 1;
}

int GetThreadPriority(HANDLE thread) { return thread == CURRENT_THREAD ? t_priority : 0x7FFFFFFF; }
