/* The few kernel32 functions the wfp backend calls, exported under their Windows names so that
 * harness/platforms/wfp/winsys.py runs the very same ctypes code on Linux as on Windows.
 * wchar_t is the platform's (UTF-32 here, UTF-16 on Windows), as ctypes' c_wchar is. */
#include "fake.h"

#include <string.h>
#include <unistd.h>

#define ERROR_INSUFFICIENT_BUFFER 122

static DWORD g_last_error;

DWORD GetLastError(void) { return g_last_error; }

void GetSystemTimePreciseAsFileTime(FILETIME *out) {
    uint64_t t = filetime_now();
    out->dwLowDateTime = (uint32_t)t;
    out->dwHighDateTime = (uint32_t)(t >> 32);
}

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
