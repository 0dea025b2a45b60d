/* The Windows system calls the doctor needs beside fwpuclnt, exported under their Windows names
 * (shell32 IsUserAnAdmin; advapi32's service control manager) so that harness/platforms/wfp/
 * admin_services.py runs the same ctypes code here. The Base Filtering Engine's state is configurable
 * (WFPCAP_FAKE_BFE_STATE, FakeSetBfeState: SERVICE_RUNNING = 4, SERVICE_STOPPED = 1). */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

typedef struct { DWORD dwServiceType, dwCurrentState, dwControlsAccepted, dwWin32ExitCode,
                 dwServiceSpecificExitCode, dwCheckPoint, dwWaitHint; } SERVICE_STATUS;

#define ERROR_SERVICE_DOES_NOT_EXIST 1060
static DWORD g_bfe_state = 4;
static DWORD g_sys_error;
static int g_manager, g_service;  /* their addresses are the handles */

__attribute__((constructor)) static void system_from_environment(void) {
    const char *v = getenv("WFPCAP_FAKE_BFE_STATE");
    if (v && *v) g_bfe_state = (DWORD)strtoul(v, NULL, 10);
}

BOOL IsUserAnAdmin(void) { return g_cfg.elevated ? 1 : 0; }

void *OpenSCManagerW(const wchar_t *machine, const wchar_t *database, DWORD access) {
    (void)machine; (void)database; (void)access;
    return &g_manager;
}

void *OpenServiceW(void *manager, const wchar_t *name, DWORD access) {
    (void)access;
    if (manager != &g_manager || !name || wcscmp(name, L"BFE") != 0) { g_sys_error = ERROR_SERVICE_DOES_NOT_EXIST; return NULL; }
    return &g_service;
}

BOOL QueryServiceStatus(void *service, SERVICE_STATUS *status) {
    if (service != &g_service || !status) { g_sys_error = ERROR_INVALID_HANDLE; return 0; }
    memset(status, 0, sizeof *status);
    status->dwServiceType = 0x20;  /* SERVICE_WIN32_SHARE_PROCESS: BFE runs in a svchost */
    status->dwCurrentState = g_bfe_state;
    return 1;
}

BOOL CloseServiceHandle(void *handle) { return handle == &g_manager || handle == &g_service; }

DWORD FakeSystemLastError(void) { return g_sys_error; }
void FakeSetBfeState(DWORD state) { g_bfe_state = state; }
