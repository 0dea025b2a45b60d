/* The few kernel32 functions the wfp backend calls, exported under their Windows names so that
 * harness/platforms/wfp/kernel32.py runs the very same ctypes code on Linux as on Windows.
 * wchar_t is the platform's (UTF-32 here, UTF-16 on Windows), as ctypes' c_wchar is. */
#include "fake.h"

#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ERROR_INSUFFICIENT_BUFFER 122

static DWORD g_last_error;

DWORD GetLastError(void) { return g_last_error; }

void GetSystemTimePreciseAsFileTime(FILETIME *out) {
    uint64_t t = filetime_now();
    out->dwLowDateTime = (uint32_t)t;
    out->dwHighDateTime = (uint32_t)(t >> 32);
}

/* The native callback's clock, thread id and hold (harness/platforms/wfp/native.py). The counter
 * runs at 10 MHz by default, as Windows' QueryPerformanceCounter does on today's machines, over
 * CLOCK_MONOTONIC (what perf_counter_ns reads here): the native path's stamps then compare with
 * the sender's, at Windows' 100 ns resolution. FakeSetQpcFrequency sets another rate (older
 * machines count at 3,579,545 Hz or at the TSC's rate) to exercise the tick-to-ns conversion. */
#include <pthread.h>

static int64_t g_qpc_frequency = 10000000;

void FakeSetQpcFrequency(int64_t hz) { g_qpc_frequency = hz > 0 ? hz : 10000000; }

BOOL QueryPerformanceFrequency(int64_t *out) {
    if (!out) return 0;
    *out = g_qpc_frequency;
    return 1;
}

BOOL QueryPerformanceCounter(int64_t *out) {
    struct timespec ts;
    if (!out) return 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    __int128 f = g_qpc_frequency;  /* floor(ns * f / 1e9): the tick that was current at that ns */
    *out = (int64_t)(((__int128)ts.tv_sec * 1000000000 + ts.tv_nsec) * f / 1000000000);
    return 1;
}

/* never 0, as on Windows; read from thread-local memory after the first call, as Windows reads it
 * from the thread's TEB (a gettid system call per event would make the fake slower than Windows) */
DWORD GetCurrentThreadId(void) {
    static __thread DWORD id;
    if (!id) id = (DWORD)syscall(SYS_gettid);
    return id;
}

/* Events (CreateEventW, SetEvent, WaitForSingleObject, closed by CloseHandle), as a held native
 * callback waits for the trial's release: manual or auto reset, a timeout in ms or INFINITE. A
 * handle that is not an open event fails with ERROR_INVALID_HANDLE (WAIT_FAILED for a wait), and
 * FakeOpenEventHandles counts the events not closed. */
#define EVENT_MAGIC 0x45564e54u
#define WAIT_OBJECT_0 0u
#define WAIT_TIMEOUT 258u
#define WAIT_FAILED 0xFFFFFFFFu
#define INFINITE 0xFFFFFFFFu

typedef struct { uint32_t magic; int manual, signalled; pthread_mutex_t lock; pthread_cond_t changed; } fake_event;

static int g_event_handles, g_thread_handles;

static fake_event *event_of(HANDLE h) {
    fake_event *e = h;
    if (!e || e->magic != EVENT_MAGIC) { g_last_error = 6; return NULL; }  /* ERROR_INVALID_HANDLE */
    return e;
}

static void monotonic_cond(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* Wait on `cond` (a monotonic_cond) until *flag is set or `ms` have passed (INFINITE: no limit), with
 * `lock` held; 1 if it timed out. The wait of an event and of a thread handle. */
static int wait_flag(pthread_mutex_t *lock, pthread_cond_t *cond, const int *flag, DWORD ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    int timed_out = 0;
    while (!*flag && !timed_out) {
        if (ms == INFINITE) pthread_cond_wait(cond, lock);
        else timed_out = pthread_cond_timedwait(cond, lock, &until) != 0 && !*flag;
    }
    return timed_out;
}

HANDLE CreateEventW(void *attributes, BOOL manual_reset, BOOL initial_state, const wchar_t *name) {
    (void)attributes;
    if (name) { g_last_error = ERROR_INVALID_PARAMETER; return NULL; }  /* named events: not needed */
    fake_event *e = calloc(1, sizeof *e);
    if (!e) { g_last_error = 8; return NULL; }
    e->magic = EVENT_MAGIC;
    e->manual = manual_reset != 0;
    e->signalled = initial_state != 0;
    pthread_mutex_init(&e->lock, NULL);
    monotonic_cond(&e->changed);
    __atomic_add_fetch(&g_event_handles, 1, __ATOMIC_SEQ_CST);
    return e;
}

BOOL SetEvent(HANDLE h) {
    fake_event *e = event_of(h);
    if (!e) return 0;
    pthread_mutex_lock(&e->lock);
    e->signalled = 1;
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->lock);
    return 1;
}

/* Threads (CreateThread; a thread handle is signalled when the thread has returned, and is closed
 * by CloseHandle), so that the doctor's native self-test enters the compiled callback from a thread
 * the operating system started and Python never saw, as WFP's delivery threads are. */
#define THREAD_MAGIC 0x54485244u
typedef DWORD (*thread_start)(void *);
typedef struct {
    uint32_t magic; pthread_t thread; thread_start start; void *param;
    pthread_mutex_t lock; pthread_cond_t changed; DWORD tid; int started, done, closed; DWORD code;
} fake_thread;

static void *run_thread(void *arg) {
    fake_thread *t = arg;
    pthread_mutex_lock(&t->lock);
    t->tid = GetCurrentThreadId();
    t->started = 1;
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
    DWORD code = t->start(t->param);
    pthread_mutex_lock(&t->lock);
    t->code = code;
    t->done = 1;
    pthread_cond_broadcast(&t->changed);
    int closed = t->closed;
    pthread_mutex_unlock(&t->lock);
    if (closed) free(t);  /* the handle was closed while it ran: nobody joins it */
    return NULL;
}

HANDLE CreateThread(void *attributes, size_t stack, thread_start start, void *param, DWORD flags, DWORD *tid) {
    (void)attributes; (void)stack;
    if (!start || flags) { g_last_error = ERROR_INVALID_PARAMETER; return NULL; }  /* CREATE_SUSPENDED: not needed */
    fake_thread *t = calloc(1, sizeof *t);
    if (!t) { g_last_error = 8; return NULL; }
    *t = (fake_thread){.magic = THREAD_MAGIC, .start = start, .param = param};
    pthread_mutex_init(&t->lock, NULL);
    monotonic_cond(&t->changed);
    if (pthread_create(&t->thread, NULL, run_thread, t) != 0) { free(t); g_last_error = 8; return NULL; }
    pthread_detach(t->thread);
    pthread_mutex_lock(&t->lock);
    while (!t->started) pthread_cond_wait(&t->changed, &t->lock);
    if (tid) *tid = t->tid;
    pthread_mutex_unlock(&t->lock);
    __atomic_add_fetch(&g_thread_handles, 1, __ATOMIC_SEQ_CST);
    return t;
}

static DWORD wait_for_thread(fake_thread *t, DWORD ms) {
    pthread_mutex_lock(&t->lock);
    int timed_out = wait_flag(&t->lock, &t->changed, &t->done, ms);
    pthread_mutex_unlock(&t->lock);
    return timed_out ? WAIT_TIMEOUT : WAIT_OBJECT_0;
}

static BOOL close_thread(HANDLE h) {
    fake_thread *t = h;
    if (!t || t->magic != THREAD_MAGIC) return 0;
    t->magic = 0;
    pthread_mutex_lock(&t->lock);
    int done = t->done;
    t->closed = 1;
    pthread_mutex_unlock(&t->lock);
    if (done) free(t);  /* else the thread frees it when it returns */
    __atomic_sub_fetch(&g_thread_handles, 1, __ATOMIC_SEQ_CST);
    return 1;
}

int FakeOpenThreadHandles(void) { return __atomic_load_n(&g_thread_handles, __ATOMIC_SEQ_CST); }

DWORD WaitForSingleObject(HANDLE h, DWORD ms) {
    if (h && ((fake_thread *)h)->magic == THREAD_MAGIC) return wait_for_thread(h, ms);
    fake_event *e = event_of(h);
    if (!e) return WAIT_FAILED;
    pthread_mutex_lock(&e->lock);
    int timed_out = wait_flag(&e->lock, &e->changed, &e->signalled, ms);
    if (e->signalled && !e->manual) e->signalled = 0;
    pthread_mutex_unlock(&e->lock);
    return timed_out ? WAIT_TIMEOUT : WAIT_OBJECT_0;
}

static BOOL close_event(HANDLE h) {
    fake_event *e = h;
    if (!e || e->magic != EVENT_MAGIC) return 0;
    e->magic = 0;
    pthread_cond_destroy(&e->changed);
    pthread_mutex_destroy(&e->lock);
    free(e);
    __atomic_sub_fetch(&g_event_handles, 1, __ATOMIC_SEQ_CST);
    return 1;
}

int FakeOpenEventHandles(void) { return __atomic_load_n(&g_event_handles, __ATOMIC_SEQ_CST); }

/* GetModuleFileNameW(NULL, ...): the image of the calling process (the interpreter that runs, not
 * a venv's launcher or symlink). Truncates like Windows: returns nSize and sets
 * ERROR_INSUFFICIENT_BUFFER when the path does not fit. */
DWORD GetModuleFileNameW(void *module, wchar_t *buffer, DWORD size) {
    char path[1024];
    ssize_t n = module ? -1 : readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || !buffer || size == 0) { g_last_error = ERROR_INVALID_PARAMETER; return 0; }
    path[n] = 0;
    DWORD i = 0;
    for (; i < (DWORD)n && i + 1 < size; i++) buffer[i] = (wchar_t)(unsigned char)path[i];
    buffer[i] = 0;
    g_last_error = i < (DWORD)n ? ERROR_INSUFFICIENT_BUFFER : ERROR_SUCCESS;
    return i < (DWORD)n ? size : i;
}

/* ---- processes: is a registered harness run still alive? (harness/live_runs.py) ----------------
 * OpenProcess / GetExitCodeProcess / GetProcessTimes / CloseHandle over /proc, as strict as Windows:
 * - a pid that names no process (or 0) fails to open with ERROR_INVALID_PARAMETER;
 * - a process that has exited but is still referenced (here: a zombie its parent has not reaped)
 *   opens, and reports its exit code, not STILL_ACTIVE; a handle keeps naming the process it opened
 *   (if the pid is reused meanwhile, the handle's process has exited);
 * - the query calls need a handle opened with PROCESS_QUERY_(LIMITED_)INFORMATION, else
 *   ERROR_ACCESS_DENIED; every handle must be closed (FakeOpenProcessHandles counts them).
 * The creation time is the process's start (boot time + start ticks) as a FILETIME, at the
 * kernel's clock-tick resolution: the same value on every call, different for a reused pid. */
#include <stdio.h>
#include <stdlib.h>

#define STILL_ACTIVE 259
#define PROCESS_QUERY_INFORMATION 0x0400
#define PROCESS_QUERY_LIMITED_INFORMATION 0x1000
#define ERROR_INVALID_HANDLE 6
#define PROCESS_MAGIC 0x50524f43u

typedef struct { uint32_t magic; DWORD access; int pid; uint64_t created; } fake_process;
typedef struct { int found; char state; uint64_t created, kernel, user; DWORD exit_code; } proc_stat;

static int g_process_handles;

static uint64_t boot_seconds(void) {
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    unsigned long long btime = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1) break;
    if (f) fclose(f);
    return btime;
}

static proc_stat read_proc(int pid) {
    proc_stat out = {0};
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return out;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');  /* the command name may hold spaces and parentheses */
    if (!p) return out;
    unsigned long long field[64] = {0};
    char state = 0;
    int i = 3;  /* p + 2 is field 3 (state) of proc(5) */
    for (char *tok = strtok(p + 2, " \n"); tok && i < 64; tok = strtok(NULL, " \n"), i++) {
        if (i == 3) state = tok[0];
        else field[i] = strtoull(tok, NULL, 10);
    }
    uint64_t hz = (uint64_t)sysconf(_SC_CLK_TCK);
    out.found = 1;
    out.state = state;
    out.created = 116444736000000000ull + boot_seconds() * 10000000ull + field[22] * 10000000ull / hz;
    out.user = field[14] * 10000000ull / hz;
    out.kernel = field[15] * 10000000ull / hz;
    out.exit_code = (DWORD)((field[52] >> 8) & 0xff);  /* waitpid status of a zombie: its exit status */
    return out;
}

/* The creation time of a running process, 0 if there is none or it has exited: with the pid, what
 * names one process for good (the sessions' registry, sessions.c). */
uint64_t process_created(int pid) {
    proc_stat st = pid > 0 ? read_proc(pid) : (proc_stat){0};
    return st.found && st.state != 'Z' && st.state != 'X' ? st.created : 0;
}

static void set_filetime(FILETIME *ft, uint64_t t) {
    if (!ft) return;
    ft->dwLowDateTime = (uint32_t)t;
    ft->dwHighDateTime = (uint32_t)(t >> 32);
}

static fake_process *process_of(HANDLE h, DWORD need) {
    fake_process *p = h;
    if (!p || p->magic != PROCESS_MAGIC) { g_last_error = ERROR_INVALID_HANDLE; return NULL; }
    if (need && !(p->access & need)) { g_last_error = ERROR_ACCESS_DENIED; return NULL; }
    return p;
}

HANDLE OpenProcess(DWORD access, BOOL inherit, DWORD pid) {
    (void)inherit;
    proc_stat st = pid ? read_proc((int)pid) : (proc_stat){0};
    if (!st.found) { g_last_error = ERROR_INVALID_PARAMETER; return NULL; }
    fake_process *p = malloc(sizeof *p);
    if (!p) { g_last_error = 8; return NULL; }  /* ERROR_NOT_ENOUGH_MEMORY */
    *p = (fake_process){PROCESS_MAGIC, access, (int)pid, st.created};
    __atomic_add_fetch(&g_process_handles, 1, __ATOMIC_SEQ_CST);
    g_last_error = ERROR_SUCCESS;
    return p;
}

BOOL GetExitCodeProcess(HANDLE h, DWORD *code) {
    fake_process *p = process_of(h, PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION);
    if (!p) return 0;
    if (!code) { g_last_error = ERROR_INVALID_PARAMETER; return 0; }
    proc_stat st = read_proc(p->pid);
    if (!st.found || st.created != p->created) *code = 0;  /* reaped (or the pid reused): it exited */
    else *code = (st.state == 'Z' || st.state == 'X') ? st.exit_code : STILL_ACTIVE;
    return 1;
}

BOOL GetProcessTimes(HANDLE h, FILETIME *creation, FILETIME *exit_time, FILETIME *kernel, FILETIME *user) {
    fake_process *p = process_of(h, PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION);
    if (!p) return 0;
    if (!creation || !exit_time || !kernel || !user) { g_last_error = ERROR_INVALID_PARAMETER; return 0; }
    proc_stat st = read_proc(p->pid);
    int same = st.found && st.created == p->created;
    set_filetime(creation, p->created);
    set_filetime(exit_time, same && st.state != 'Z' ? 0 : filetime_now());
    set_filetime(kernel, same ? st.kernel : 0);
    set_filetime(user, same ? st.user : 0);
    return 1;
}

BOOL CloseHandle(HANDLE h) {
    if (close_event(h) || close_thread(h)) return 1;
    fake_process *p = process_of(h, 0);
    if (!p) return 0;
    p->magic = 0;
    free(p);
    __atomic_sub_fetch(&g_process_handles, 1, __ATOMIC_SEQ_CST);
    return 1;
}

int FakeOpenProcessHandles(void) { return __atomic_load_n(&g_process_handles, __ATOMIC_SEQ_CST); }
