/* Engine sessions as the Base Filtering Engine keeps them: one registry for the whole machine, so
 * that the fake's processes see each other's sessions, as Windows' processes do.
 *
 * The registry is a folder (WFPCAP_FAKE_SESSION_DIR, FakeSetSessionRegistry; by default one in the
 * temporary directory for every process of this user), one file per open session named by its key,
 * its process (pid and creation time) and its handle, changed under an flock. A process's sessions
 * end with it: Windows documents that a session closes when the program ends. Undocumented, and
 * configurable both ways (environment at load, or FakeSetSessionRules):
 *   - WFPCAP_FAKE_ACCEPT_DUPLICATE_KEYS (0): FwpmEngineOpen0 with the key of an open session is
 *     refused with FWP_E_ALREADY_EXISTS (what FwpmEngineOpen0's page says), or, with 1, accepted;
 *   - WFPCAP_FAKE_SESSIONS_LINGER (0): with 1, a session of a process that died without closing it
 *     stays open for good (its key refused, its entry enumerated), as if BFE had not noticed.
 * FwpmSessionCreateEnumHandle0 / FwpmSessionEnum0 / FwpmSessionDestroyEnumHandle0 list them (a
 * snapshot at the handle's creation; FWPM_SESSION0 with sessionKey, flags and processId).
 */
#include "fake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LISTED 256
#define MAX_SESSION_ENUMS 8

static char g_dir[512];
static int g_accept_duplicates, g_linger;

typedef struct { GUID key; uint32_t pid; uint64_t created; int dynamic; } entry_t;
typedef struct { int used; session_t *owner; entry_t *snap; uint32_t n, next; } session_enum_t;
static session_enum_t g_session_enums[MAX_SESSION_ENUMS];
static pthread_mutex_t r_mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void sessions_from_environment(void) {
    const char *dir = getenv("WFPCAP_FAKE_SESSION_DIR");
    const char *tmp = getenv("TMPDIR");
    if (dir && *dir) snprintf(g_dir, sizeof g_dir, "%s", dir);
    else snprintf(g_dir, sizeof g_dir, "%s/wfpcap-fake-sessions-%u", tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
    const char *v = getenv("WFPCAP_FAKE_ACCEPT_DUPLICATE_KEYS");
    g_accept_duplicates = v && *v ? atoi(v) : 0;
    v = getenv("WFPCAP_FAKE_SESSIONS_LINGER");
    g_linger = v && *v ? atoi(v) : 0;
}

static void key_text(const GUID *k, char *out, size_t n) {
    snprintf(out, n, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", k->Data1, k->Data2, k->Data3, k->Data4[0],
             k->Data4[1], k->Data4[2], k->Data4[3], k->Data4[4], k->Data4[5], k->Data4[6], k->Data4[7]);
}

static int parse_entry(const char *name, entry_t *e) {
    unsigned d1, d2, d3, b[8], pid, dynamic;
    unsigned long long created;
    void *slot;
    if (sscanf(name, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x.%u.%llu.%u.%p", &d1, &d2, &d3, &b[0], &b[1], &b[2], &b[3],
               &b[4], &b[5], &b[6], &b[7], &pid, &created, &dynamic, &slot) != 15)
        return 0;
    e->key = (GUID){d1, (uint16_t)d2, (uint16_t)d3, {0}};
    for (int i = 0; i < 8; i++) e->key.Data4[i] = (uint8_t)b[i];
    e->pid = pid;
    e->created = created;
    e->dynamic = (int)dynamic;
    return 1;
}

static void entry_path(const GUID *key, const session_t *s, char *out, size_t n) {
    char text[40];
    key_text(key, text, sizeof text);
    snprintf(out, n, "%s/%s.%u.%llu.%d.%p", g_dir, text, (unsigned)getpid(),
             (unsigned long long)process_created((int)getpid()), s->dynamic, (const void *)s);
}

static int lock_registry(void) {  /* the registry's lock, -1 when it cannot be had (then: this process only) */
    mkdir(g_dir, 0777);
    char path[600];
    snprintf(path, sizeof path, "%s/.lock", g_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) { close(fd); fd = -1; }
    return fd;
}

static void unlock_registry(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

/* Open sessions (of live processes; of dead ones too while they linger), `key` only unless NULL.
 * Entries of processes that are gone are removed unless they linger. Called under the lock. */
static uint32_t open_sessions(const GUID *key, entry_t *out, uint32_t cap) {
    DIR *d = opendir(g_dir);
    if (!d) return 0;
    uint32_t n = 0;
    struct dirent *f;
    while ((f = readdir(d))) {
        entry_t e;
        if (!parse_entry(f->d_name, &e)) continue;
        int alive = process_created((int)e.pid) == e.created;
        if (!alive && !g_linger) {
            char path[800];
            snprintf(path, sizeof path, "%s/%s", g_dir, f->d_name);
            unlink(path);
            continue;
        }
        if (key && !guid_eq(key, &e.key)) continue;
        if (n < cap) out[n] = e;
        n++;
    }
    closedir(d);
    return n;
}

DWORD register_session(session_t *s) {
    int lock = lock_registry();
    if (lock < 0) return ERROR_SUCCESS;  /* no registry here: sessions are this process's only */
    entry_t same[1];
    if (!g_accept_duplicates && open_sessions(&s->key, same, 1) > 0) { unlock_registry(lock); return FWP_E_ALREADY_EXISTS; }
    char path[800];
    entry_path(&s->key, s, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0) close(fd);
    unlock_registry(lock);
    return ERROR_SUCCESS;
}

void unregister_session(const session_t *s) {
    char path[800];
    entry_path(&s->key, s, path, sizeof path);
    int lock = lock_registry();
    unlink(path);
    unlock_registry(lock);
}

int duplicate_keys_accepted(void) { return g_accept_duplicates; }

DWORD FwpmSessionCreateEnumHandle0(HANDLE h, const void *enum_template, HANDLE *out) {
    (void)enum_template;  /* FWPM_SESSION_ENUM_TEMPLATE0 has only a reserved member */
    session_t *s = session_of(h);
    if (!s) return ERROR_INVALID_HANDLE;
    if (!out) return ERROR_INVALID_PARAMETER;
    if (s->in_txn) return FWP_E_TXN_IN_PROGRESS;
    pthread_mutex_lock(&r_mu);
    session_enum_t *en = NULL;
    for (int i = 0; i < MAX_SESSION_ENUMS && !en; i++)
        if (!g_session_enums[i].used) en = &g_session_enums[i];
    if (!en) { pthread_mutex_unlock(&r_mu); return ERROR_INVALID_PARAMETER; }
    *en = (session_enum_t){1, s, calloc(MAX_LISTED, sizeof(entry_t)), 0, 0};
    int lock = lock_registry();
    uint32_t n = open_sessions(NULL, en->snap, MAX_LISTED);
    unlock_registry(lock);
    en->n = n < MAX_LISTED ? n : MAX_LISTED;
    pthread_mutex_unlock(&r_mu);
    *out = en;
    return ERROR_SUCCESS;
}

static session_enum_t *session_enum_of(HANDLE h, HANDLE e) {
    session_enum_t *en = e;
    if (!session_of(h) || en < g_session_enums || en >= g_session_enums + MAX_SESSION_ENUMS || !en->used ||
        en->owner != session_of(h))
        return NULL;
    return en;
}

/* One page in one allocation: the pointer array, then the entries (freed with FwpmFreeMemory0). */
DWORD FwpmSessionEnum0(HANDLE h, HANDLE e, uint32_t want, FWPM_SESSION0 ***entries, uint32_t *got) {
    if (!entries || !got) return ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&r_mu);
    session_enum_t *en = session_enum_of(h, e);
    if (!en) { pthread_mutex_unlock(&r_mu); return 0x8032001Du; }  /* FWP_E_INVALID_ENUMERATOR */
    uint32_t n = en->n - en->next < want ? en->n - en->next : want;
    FWPM_SESSION0 **arr = api_alloc(n * (sizeof(void *) + sizeof(FWPM_SESSION0)) + 1);
    FWPM_SESSION0 *items = (FWPM_SESSION0 *)(arr + n);
    for (uint32_t i = 0; i < n; i++) {
        const entry_t *x = &en->snap[en->next + i];
        items[i].sessionKey = x->key;
        items[i].flags = x->dynamic ? FWPM_SESSION_FLAG_DYNAMIC : 0;
        items[i].processId = x->pid;
        arr[i] = &items[i];
    }
    en->next += n;
    pthread_mutex_unlock(&r_mu);
    *entries = arr;
    *got = n;
    return ERROR_SUCCESS;
}

DWORD FwpmSessionDestroyEnumHandle0(HANDLE h, HANDLE e) {
    pthread_mutex_lock(&r_mu);
    session_enum_t *en = session_enum_of(h, e);
    if (en) { free(en->snap); en->used = 0; }
    pthread_mutex_unlock(&r_mu);
    return en ? ERROR_SUCCESS : ERROR_INVALID_HANDLE;
}

/* ---- test entry points ----------------------------------------------------------------------- */
void FakeSetSessionRegistry(const char *dir) { snprintf(g_dir, sizeof g_dir, "%s", dir); }
void FakeSetSessionRules(int accept_duplicates, int linger) { g_accept_duplicates = accept_duplicates; g_linger = linger; }
