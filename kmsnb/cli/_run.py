"""The wrapper that runs a command, and the KMS a command connects to.

:func:`run_command` wraps each command (:func:`kmsnb.cli._parser.add_command` applies it):
failures become ``kmsnb: error: ...`` plus a hint (exit 1,
:func:`kmsnb.cli._display.report_error`), Ctrl-C exit 130 without a traceback, and SIGTERM
or SIGHUP (``timeout``, ``docker stop``, a closed terminal) stop it as Ctrl-C does: the
partial output is discarded and the status is 128 + the signal's number.

Apart from kmsnb.cli's own, only the standard library is imported here; :func:`connect`
imports the KMS backend the URI names when a command runs. ``kmsnb --help`` runs no
command, so it never imports this module (nor contextlib).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Iterator

from kmsnb.cli import EXIT_FAILURE, EXIT_INTERRUPTED

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: a command need not import typing
if TYPE_CHECKING:
    from kmsnb.cli._parser import Handler
    from kmsnb.errors import NewKeystoreWarning
    from kmsnb.kms._base import KmsClient

__all__ = ["connect", "note_new_keystore", "run_command"]


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C, so partial outputs are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _terminate_on_signals() -> Iterator[None]:
    # _signal, the C module under signal: signal builds its enums when imported (start-up)
    # and a handler needs only the numbers. signal is imported to name one that stopped us.
    # mypy has no stub for _signal; signal's functions are the same ones.
    if TYPE_CHECKING:
        import signal
    else:
        import _signal as signal

    def handle(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    previous = {}
    # A host's own handler stays in charge. Only the main thread may set handlers: in
    # another, signal.signal raises ValueError (asked rather than threading, which a CLI
    # call need not import: start-up).
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            try:
                previous[signum] = signal.signal(signum, handle)
            except ValueError:
                break
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_command(handler: Handler) -> Handler:
    """``handler`` inside the error handling of the module's docstring."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from kmsnb.errors import KmsnbError

        try:
            with _terminate_on_signals():
                return handler(args)
        except KeyboardInterrupt:
            print("kmsnb: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _Terminated as terminated:
            import signal

            name = signal.Signals(terminated.signum).name
            print(f"kmsnb: stopped by {name}", file=sys.stderr)
            return 128 + terminated.signum
        except BrokenPipeError:
            from kmsnb.cli._stdio import discard_stdout

            discard_stdout()  # the reader went away (| head); say nothing more
            return EXIT_FAILURE
        except (KmsnbError, ValueError, OSError, ImportError) as error:
            from kmsnb.cli._display import report_error

            return report_error(
                error,
                key=getattr(args, "key", None),
                kms_location=getattr(args, "kms_location", None),
            )

    return run


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[KmsClient]:
    """The KMS that ``--kms`` (else ``$KMSNB_KMS``, else the local emulator) names.

    Its location is kept on ``args`` so that an error can say which KMS answered. A
    keystore that opening it created is said once on stderr (a mistyped path makes one).
    """
    from kmsnb.connection import connect_noting_new_keystore, describe_kms

    kms, new_keystore = connect_noting_new_keystore(
        args.kms, allow_insecure_http=getattr(args, "allow_insecure_http", False)
    )
    note_new_keystore(new_keystore)
    args.kms_location = describe_kms(kms)
    try:
        yield kms
    finally:
        close = getattr(kms, "close", None)
        if callable(close):
            close()


def note_new_keystore(notice: NewKeystoreWarning | None) -> None:
    """Say on stderr, once per command, that opening a ``local:`` keystore created it.

    Every command that opens a keystore says it this way (``--kms local:PATH``, ``emulator
    serve --data``), since a mistyped path makes a new, empty keystore too.
    """
    if notice is not None:
        print(f"kmsnb: note: {notice}", file=sys.stderr)
