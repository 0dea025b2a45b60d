"""Loaded with `-p windows_signals` into a child pytest: Linux has no SIGBREAK (Windows' Ctrl-Break),
so SIGUSR1 stands in for it and the session's Windows signal path runs on Linux."""
import signal

signal.SIGBREAK = signal.SIGUSR1
