"""The wfpcap command run in this process (harness.cli.main, what `python -m harness` calls), for
tests whose subject is what a command does (its lines, exit status and files), not the process that
runs it: a child interpreter costs 1.5-2 s of CPU to import the harness. The entry point itself, as
a process, is held by tests/test_report.py::test_cli_bad_input_is_one_line."""
from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from harness.cli import main


@dataclass(frozen=True)
class Ran:
    """What a finished `wfpcap ...` gave, as subprocess.CompletedProcess names it."""
    returncode: int
    stdout: str
    stderr: str


# what Python's default filters do not print in a child process (outside __main__)
SILENT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def wfpcap(*args: object) -> Ran:
    """Run `wfpcap ARGS` in this process. An exception escapes as the process would print its
    traceback (the test fails); a warning is written to stderr as the process would print it (a
    numpy RuntimeWarning breaks "one line"), not swallowed by pytest's warning capture."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse refuses before main's body, as the process would exit
            code = exc.code
    for w in caught:
        if not issubclass(w.category, SILENT):
            err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    return Ran(0 if code is None else code, out.getvalue(), err.getvalue())
