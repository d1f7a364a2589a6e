"""The file and key commands of ``kmsnb``: encrypt, decrypt, inspect, rewrap, convert,
``key ...`` and ``alias ...``.

:mod:`kmsnb.cli` builds the parser and calls :func:`add_file_commands` and
:func:`add_key_commands`. Each command is a small ``_cmd_*`` function wrapped by
:func:`_command`, which turns failures into ``kmsnb: error: ...`` plus a hint (exit 1) and
Ctrl-C into exit 130 without a traceback. Everything heavier than :mod:`kmsnb.errors` is
imported inside the commands, so ``kmsnb --help`` stays fast.

``-`` names stdin or stdout. Decrypting to stdout writes each run of plaintext as soon as
it has been authenticated; like ``age``, a file that fails later leaves what was already
written on stdout (and exits 1). Decrypting to a file writes nothing unless all of it
verified. Character devices and FIFOs (``-o /dev/null``) are written through, like stdout.

SIGTERM and SIGHUP (``timeout``, ``docker stop``, a closed terminal) stop a command as
Ctrl-C does: the partial output is discarded and the status is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import io
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, BinaryIO

from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsnbError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from kmsnb.kms._base import KmsClient

    _Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["EXIT_INTERRUPTED", "add_file_commands", "add_key_commands", "report_error"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
STDIO = "-"
_MAGIC_SIZE = 8  # len(kmsnb._format.header.MAGIC), without importing the format at startup

_Handler = Callable[[argparse.Namespace], int]

# Most specific first: the first match gives the hint.
_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (FileExistsError, "pass --overwrite to replace it"),
    (TruncatedError, "the file was cut short; copy or download it again"),
    (IntegrityError, "restore the file from a good copy; kmsnb released no unverified data"),
    (ContextMismatchError, "pass the --context the file was made with (kmsnb inspect shows it)"),
    (WrongKeyError, "use the --context and the KMS (--kms, $KMSNB_KMS) the file was made with"),
    (KmsAccessDeniedError, "check the key's state (kmsnb key describe KEY) and your permissions"),
    (KmsUnavailableError, "check --kms or $KMSNB_KMS and your network, then retry"),
    (KmsError, "the code is the KMS's own; its API documentation explains it"),
    (FormatError, "kmsnb reads kmsnb files and the tutorial's .cipher files; check the path"),
    (FileNotFoundError, "check the path"),
    (IsADirectoryError, "name a file, e.g. -o DIR/NAME"),
    (PermissionError, "check the permissions of the file and of its folder"),
    (ImportError, "install the extra it names, e.g. pip install 'kmsnb[aliyun]'"),
)


def report_error(error: BaseException) -> int:
    """Print ``kmsnb: error: ...`` and, when one fits, ``kmsnb: hint: ...``; return 1."""
    print(f"kmsnb: error: {error}", file=sys.stderr)
    for error_class, hint in _HINTS:
        if isinstance(error, error_class):
            print(f"kmsnb: hint: {hint}", file=sys.stderr)
            break
    return EXIT_FAILURE


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C, so partial outputs are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _terminate_on_signals() -> Iterator[None]:
    def handle(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    previous = {}
    # Only the main thread may set handlers, and a host's own handler stays in charge.
    in_main_thread = threading.current_thread() is threading.main_thread()
    for name in ("SIGTERM", "SIGHUP") if in_main_thread else ():
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _command(handler: _Handler) -> _Handler:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            with _terminate_on_signals():
                return handler(args)
        except KeyboardInterrupt:
            print("kmsnb: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _Terminated as terminated:
            name = signal.Signals(terminated.signum).name
            print(f"kmsnb: stopped by {name}", file=sys.stderr)
            return 128 + terminated.signum
        except BrokenPipeError:
            _discard_stdout()  # the reader went away (| head); say nothing more
            return EXIT_FAILURE
        except (KmsnbError, ValueError, OSError, ImportError) as error:
            return report_error(error)

    return run


def _discard_stdout() -> None:
    # Python flushes stdout at exit; pointing it at /dev/null spares a second traceback.
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# --- argument types -------------------------------------------------------------------


class _ContextAction(argparse.Action):
    """Collect repeated ``--context KEY=VALUE`` into a dict; a repeated key is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        key, sep, value = str(values).partition("=")
        if not sep or not key:
            parser.error(f"--context takes KEY=VALUE, not {values!r}")
        try:
            str(values).encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 arrive as lone surrogates (PEP 383).
            shown = os.fsencode(str(values))
            parser.error(f"--context must be UTF-8 text; {shown!r} is not")
        context: dict[str, str] = dict(getattr(namespace, self.dest) or {})
        if key in context:
            parser.error(f"--context names {key!r} twice")
        context[key] = value
        setattr(namespace, self.dest, context)


def _size(text: str) -> int:
    """A byte count: ``65536``, ``64K``, ``1M`` (powers of 1024)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    scale = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r} (e.g. 65536, 64K, 1M)")
    return int(digits) * scale


def _exact_size(text: str) -> int:
    """A byte count that may be zero: ``0``, ``1048576``, ``64K``."""
    return 0 if text == "0" else _size(text)


def _alias_name(name: str) -> str:
    """Aliases always start with ``alias/``; let users leave it out."""
    return name if name.startswith("alias/") else f"alias/{name}"


def _add_context_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--context", action=_ContextAction, default=None, metavar="KEY=VALUE", help=help
    )


def _add_no_fsync_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip the fsyncs, for scratch outputs: DST still appears only once complete, "
        "but a power cut may leave it missing or short",
    )


def _add_allowed_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allowed-key",
        dest="allowed_keys",
        action="append",
        default=None,
        metavar="KEY",
        help="refuse the file unless the KMS unwraps it with this master key (id, "
        "alias/NAME or ARN; repeatable: any of them)",
    )


def _add_group(commands: _Commands, name: str, help: str) -> _Commands:
    group = commands.add_parser(name, help=help, description=help)
    group.set_defaults(parser=group)  # run bare, it prints its usage (kmsnb.cli.main)
    subcommands: _Commands = group.add_subparsers(title="commands", metavar="COMMAND")
    return subcommands


def _add(
    commands: _Commands, name: str, handler: _Handler, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description or help
    )
    parser.set_defaults(handler=_command(handler), parser=parser)
    return parser


# --- kmsnb encrypt | decrypt | inspect | rewrap | convert -----------------------------


def add_file_commands(commands: _Commands) -> None:
    """Add ``encrypt``, ``decrypt``, ``inspect``, ``rewrap`` and ``convert``."""
    encrypt = _add(
        commands,
        "encrypt",
        _cmd_encrypt,
        "encrypt a file under a KMS master key",
        "Encrypt SRC into DST under the master key KEY. A fresh data key from the KMS "
        "encrypts the data locally; only its wrapped form is stored. '-' is stdin/stdout. "
        "From a pipe, kmsnb cannot tell a finished stream from a producer that died: "
        "'producer | kmsnb encrypt -' makes a shorter, valid file, with status 0, if the "
        "producer is killed. Pass --expect-size N to refuse any other length.",
    )
    encrypt.add_argument("src", metavar="SRC", help="the file to encrypt, or - for stdin")
    encrypt.add_argument("-o", "--output", required=True, metavar="DST", help="or - for stdout")
    encrypt.add_argument("--key", required=True, help="master key: id, alias/NAME or ARN")
    _add_context_option(encrypt, "bind KEY=VALUE to the data key (repeatable; not secret)")
    encrypt.add_argument(
        "--chunk-size", type=_size, default=None, metavar="N", help="I/O buffer size (e.g. 4M)"
    )
    encrypt.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    _add_no_fsync_option(encrypt)
    encrypt.add_argument(
        "--expect-size",
        type=_exact_size,
        default=None,
        metavar="N",
        help="refuse SRC unless it is exactly N bytes (e.g. 1048576, 64K): a stream cut "
        "short (a killed producer) or too long fails and leaves nothing valid",
    )

    decrypt = _add(
        commands,
        "decrypt",
        _cmd_decrypt,
        "decrypt a kmsnb file (or a tutorial .cipher file)",
        "Decrypt SRC into DST. DST appears only once every byte has been authenticated; "
        "with -o - (stdout) verified data streams out, and a later failure leaves what "
        "was written. Also reads the four-line .cipher files of Alibaba Cloud's "
        "envelope-encryption tutorial.",
    )
    decrypt.add_argument("src", metavar="SRC", help="the encrypted file, or - for stdin")
    decrypt.add_argument("-o", "--output", required=True, metavar="DST", help="or - for stdout")
    _add_context_option(decrypt, "require this encryption context (repeatable)")
    decrypt.add_argument(
        "--chunk-size", type=_size, default=None, metavar="N", help="I/O buffer size (e.g. 4M)"
    )
    decrypt.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    _add_no_fsync_option(decrypt)
    _add_allowed_key_option(decrypt)

    inspect = _add(
        commands,
        "inspect",
        _cmd_inspect,
        "show what an encrypted file's header says, without the KMS",
        "Show what an encrypted file reveals: a kmsnb file's header, a tutorial .cipher "
        "file, or a column-encrypted Parquet file's keys (with --with-kms, also its schema "
        "and which columns need which master key, even when the footer is encrypted).",
    )
    inspect.add_argument("file", metavar="FILE", help="a kmsnb, .cipher or Parquet file, or -")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--with-kms",
        action="store_true",
        help="column-encrypted Parquet: unwrap the footer key (one Decrypt) to read the "
        "footer; no column key is needed",
    )
    _add_allowed_key_option(inspect)

    rewrap = _add(
        commands,
        "rewrap",
        _cmd_rewrap,
        "move a file to another master key without re-encrypting its data",
    )
    rewrap.add_argument("file", metavar="FILE", help="the kmsnb file, rewritten in place")
    rewrap.add_argument("--key", required=True, help="the new master key")
    _add_allowed_key_option(rewrap)

    convert = _add(
        commands,
        "convert",
        _cmd_convert,
        "rewrite a tutorial .cipher file as a kmsnb file",
        "Decrypt a file made by Alibaba Cloud's envelope-encryption tutorial (four base64 "
        "lines, AES-EAX) and encrypt it as a kmsnb file, by default under the same master key.",
    )
    convert.add_argument("src", metavar="OLD", help="the .cipher file")
    convert.add_argument("-o", "--output", required=True, metavar="NEW", help="the kmsnb file")
    convert.add_argument("--key", default=None, help="master key for NEW (default: OLD's)")
    _add_context_option(convert, "encryption context for NEW (repeatable)")
    convert.add_argument("--overwrite", action="store_true", help="replace NEW if it exists")
    _add_allowed_key_option(convert)


@contextlib.contextmanager
def _connect(args: argparse.Namespace) -> Iterator[KmsClient]:
    from kmsnb.connection import connect

    kms = connect(args.kms, allow_insecure_http=getattr(args, "allow_insecure_http", False))
    try:
        yield kms
    finally:
        close = getattr(kms, "close", None)
        if callable(close):
            close()


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """Yield the source and its size (``None`` for stdin, pipes and devices)."""
    if path == STDIO:
        yield _standard_stream(sys.stdin, "stdin", "<"), None
        return
    with open(path, "rb") as source:
        status = os.fstat(source.fileno())
        yield source, status.st_size if stat.S_ISREG(status.st_mode) else None


@contextlib.contextmanager
def _open_output(
    path: str,
    *,
    overwrite: bool,
    source: str,
    binary_to_terminal: bool = True,
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """Yield stdout, or a file that appears at ``path`` only if the block completes."""
    from kmsnb._files import atomic_output

    if path == STDIO:
        stdout = _standard_stream(sys.stdout, "stdout", ">")
        if not binary_to_terminal and sys.stdout.isatty():
            raise ValueError("refusing to write ciphertext to a terminal; redirect stdout")
        yield stdout
        stdout.flush()
        return
    if source != STDIO and os.path.exists(path) and os.path.samefile(source, path):
        raise ValueError(f"{path} is both the source and the destination")
    with contextlib.ExitStack() as stack:
        # atomic_output checks the destination (exists, a directory, a device...) on entry.
        try:
            output = stack.enter_context(atomic_output(path, overwrite=overwrite, durable=durable))
        except FileExistsError:
            raise FileExistsError(f"{path} exists") from None  # the hint names --overwrite
        yield output


def _standard_stream(stream: Any, name: str, redirect: str) -> BinaryIO:
    """The binary side of stdin or stdout; a clear error when the shell closed it."""
    if stream is None:  # what Python makes of a descriptor closed at start (<&- or >&-)
        raise OSError(
            errno.EBADF, f"{name} is closed; give a file instead of -, or {redirect} a file"
        )
    return stream.buffer  # type: ignore[no-any-return]


def _progress(total: int | None, description: str) -> contextlib.AbstractContextManager[Any]:
    """A progress bar on a terminal for large files; otherwise a no-op."""
    from kmsnb._progress import progress_bar

    return progress_bar(total if sys.stderr.isatty() else None, description)


def _read_head(source: BinaryIO) -> bytes:
    head = b""
    while len(head) < _MAGIC_SIZE and (more := source.read(_MAGIC_SIZE - len(head))):
        head += more
    return head


class _Prefixed(io.RawIOBase):
    """``source`` with ``head``, already read from it to sniff the format, put back."""

    def __init__(self, head: bytes, source: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size], self._head = self._head[:size], self._head[size:]
            return size
        return self._source.readinto(target)  # type: ignore[attr-defined,no-any-return]


def _is_legacy(head: bytes) -> bool:
    from kmsnb.legacy import looks_like_legacy

    return looks_like_legacy(head)


def _buffer_size(args: argparse.Namespace) -> int:
    from kmsnb._format.stream import DEFAULT_BUFFER_SIZE

    return int(args.chunk_size or DEFAULT_BUFFER_SIZE)


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from kmsnb.envelope import open_encrypt

    expected: int | None = args.expect_size
    with (
        _connect(args) as kms,
        _open_input(args.src) as (source, size),
        _open_output(
            args.output,
            overwrite=args.overwrite,
            source=args.src,
            binary_to_terminal=False,
            durable=not args.no_fsync,
        ) as output,
    ):
        if expected is not None and size is not None and size != expected:
            raise KmsnbError(f"{args.src} is {size} bytes, not the {expected} of --expect-size")
        declared = size if size is not None else expected
        writer = open_encrypt(
            output,
            args.key,
            kms=kms,
            encryption_context=args.context,
            plaintext_size=declared,
            buffer_size=_buffer_size(args),
        )
        with writer, _progress(declared, f"encrypt {os.path.basename(args.src)}") as advance:
            view = memoryview(bytearray(writer.step_size))
            while count := source.readinto(view):  # type: ignore[attr-defined]
                if declared is not None and writer.plaintext_size + count > declared:
                    raise _wrong_length(args, writer.plaintext_size + count, expected)
                writer.write(view[:count])
                advance(count)
            if declared is not None and writer.plaintext_size != declared:
                raise _wrong_length(args, writer.plaintext_size, expected)
        header = writer.header
    if args.output != STDIO:
        print(f"encrypted {args.src} -> {args.output} (master key {header.key_id})")
    return EXIT_OK


def _wrong_length(args: argparse.Namespace, got: int, expected: int | None) -> KmsnbError:
    name = "stdin" if args.src == STDIO else args.src
    written = "the output on stdout is incomplete and will not decrypt"
    if args.output != STDIO:
        written = "nothing was written"
    if expected is None:
        return KmsnbError(f"{name} changed size while it was read; {written}")
    if got > expected:
        return KmsnbError(f"{name} gave more than the {expected} bytes of --expect-size; {written}")
    return KmsnbError(
        f"{name} ended after {got} bytes, not the {expected} of --expect-size (was the "
        f"producer stopped?); {written}"
    )


def _cmd_decrypt(args: argparse.Namespace) -> int:
    with _open_input(args.src) as (source, _), _connect(args) as kms:
        head = _read_head(source)
        legacy = _is_legacy(head)
        # The destination is checked before the KMS is asked anything.
        with _open_output(
            args.output, overwrite=args.overwrite, source=args.src, durable=not args.no_fsync
        ) as output:
            if legacy:
                _decrypt_legacy(args, kms, _Prefixed(head, source), output)
            else:
                _decrypt_kmsnb(args, kms, _Prefixed(head, source), output)
    if args.output != STDIO and legacy:
        print(f"decrypted {args.src} -> {args.output} (a tutorial .cipher file, AES-EAX)")
        print(f"to move it to the kmsnb format: kmsnb convert {args.src} -o NEW")
    elif args.output != STDIO:
        print(f"decrypted {args.src} -> {args.output}")
    return EXIT_OK


def _decrypt_kmsnb(
    args: argparse.Namespace, kms: KmsClient, source: _Prefixed, output: BinaryIO
) -> None:
    from kmsnb.envelope import open_decrypt

    reader = open_decrypt(
        source,  # type: ignore[arg-type]
        kms=kms,
        encryption_context=args.context,
        allowed_keys=args.allowed_keys,
        buffer_size=_buffer_size(args),
    )
    with (
        reader,
        _progress(reader.header.plaintext_size, f"decrypt {os.path.basename(args.src)}") as advance,
    ):
        while block := reader.read_verified():
            output.write(block)
            advance(len(block))


def _decrypt_legacy(
    args: argparse.Namespace, kms: KmsClient, source: _Prefixed, output: BinaryIO
) -> None:
    from kmsnb.legacy import decrypt_legacy, read_legacy

    envelope = read_legacy(args.src if args.src != STDIO else source)  # type: ignore[arg-type]
    plaintext = decrypt_legacy(
        envelope, kms=kms, encryption_context=args.context, allowed_keys=args.allowed_keys
    )
    output.write(plaintext)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from kmsnb.envelope import inspect
    from kmsnb.legacy import read_legacy

    with _open_input(args.file) as (source, _):
        head = _read_head(source)
        fileobj: Any = _Prefixed(head, source)
        if head[:4] in (b"PAR1", b"PARE"):
            return _inspect_parquet(args)
        if _is_legacy(head):
            fields = read_legacy(args.file if args.file != STDIO else fileobj).describe()
        else:
            info = inspect(args.file if args.file != STDIO else fileobj)
            fields = {"format": f"kmsnb v{info.format_version}", **asdict(info)}
            del fields["format_version"]
    if args.json:
        from kmsnb._text import json_for_display

        print(json_for_display(fields, indent=2))
    else:
        _print_fields(fields)
    return EXIT_OK


def _inspect_parquet(args: argparse.Namespace) -> int:
    from kmsnb._pme_inspect import inspect_parquet
    from kmsnb._text import json_for_display

    if args.file == STDIO:
        raise ValueError("a Parquet file is read from its end: give its path, not -")
    with _connect(args) if args.with_kms else contextlib.nullcontext(None) as kms:
        info = inspect_parquet(args.file, kms=kms, allowed_keys=args.allowed_keys)
    if args.json:
        print(json_for_display(info.to_dict(), indent=2))
    else:
        _print_fields(dict(info.fields()))
    return EXIT_OK


def _print_fields(fields: Mapping[str, object]) -> None:
    """``name: value`` lines; what a file says is shown with control characters escaped."""
    from kmsnb._text import escape_control_characters, json_for_display

    width = max(len(name) for name in fields) + 1
    for name, value in fields.items():
        shown = json_for_display(value) if isinstance(value, dict) else value
        text = "-" if value is None else escape_control_characters(str(shown))
        print(f"{name + ':':<{width}} {text}")


def _cmd_rewrap(args: argparse.Namespace) -> int:
    from kmsnb.rewrap import rewrap_file

    with _connect(args) as kms:
        info = rewrap_file(args.file, args.key, kms=kms, allowed_keys=args.allowed_keys)
    print(f"rewrapped {args.file}: master key {info.key_id}, version {info.key_version_id}")
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    from kmsnb.legacy import convert_legacy_file

    with open(args.src, "rb") as source:
        if not _is_legacy(_read_head(source)):
            raise FormatError(
                f"{args.src} is not a tutorial .cipher file (to move a kmsnb file to another "
                "key, use kmsnb rewrap)"
            )
    with _connect(args) as kms:
        info = convert_legacy_file(
            args.src,
            args.output,
            kms=kms,
            key_id=args.key,
            encryption_context=args.context,
            overwrite=args.overwrite,
            allowed_keys=args.allowed_keys,
        )
    print(f"converted {args.src} -> {args.output} (master key {info.key_id})")
    return EXIT_OK


# --- kmsnb key ... | kmsnb alias ... --------------------------------------------------


def add_key_commands(commands: _Commands) -> None:
    """Add the ``key`` and ``alias`` command groups (master-key management)."""
    key = _add_group(commands, "key", "manage master keys (CMKs)")
    create = _add(key, "create", _cmd_key_create, "create a master key; prints its id")
    create.add_argument("--alias", default=None, help="also give it this alias")
    create.add_argument("--description", default="", help="a description")
    _add(key, "list", _cmd_key_list, "list master keys")
    for name, handler, help in (
        ("describe", _cmd_key_describe, "show a master key, its aliases and versions"),
        ("enable", _cmd_key_enable, "enable a master key"),
        ("disable", _cmd_key_disable, "disable a master key (its files can't be decrypted)"),
        ("rotate", _cmd_key_rotate, "make a new primary key version (old files still open)"),
        ("cancel-deletion", _cmd_key_cancel_deletion, "cancel a scheduled deletion"),
    ):
        _add(key, name, handler, help).add_argument("key", metavar="KEY")
    schedule = _add(
        key, "schedule-deletion", _cmd_key_schedule_deletion, "delete a key after N days"
    )
    schedule.add_argument("key", metavar="KEY")
    schedule.add_argument("--days", type=int, required=True, help="waiting period (7..366)")

    alias = _add_group(commands, "alias", "manage aliases (alias/NAME) of master keys")
    for name, handler, help in (
        ("create", _cmd_alias_create, "point a new alias at a key"),
        ("update", _cmd_alias_update, "point an alias at another key"),
    ):
        parser = _add(alias, name, handler, help)
        parser.add_argument("name", metavar="NAME", help="alias/NAME (the prefix may be omitted)")
        parser.add_argument("key", metavar="KEY")
    _add(alias, "delete", _cmd_alias_delete, "delete an alias (never the key)").add_argument(
        "name", metavar="NAME"
    )
    listing = _add(alias, "list", _cmd_alias_list, "list aliases")
    listing.add_argument("--key", default=None, help="only the aliases of this key")


def _cmd_key_create(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        info = kms.create_key(args.description)
        if args.alias:
            kms.create_alias(_alias_name(args.alias), info.key_id)
    print(info.key_id)  # alone on stdout, for KEY=$(kmsnb key create)
    if args.alias:
        print(f"alias {_alias_name(args.alias)} -> {info.key_id}", file=sys.stderr)
    return EXIT_OK


def _cmd_key_list(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        keys = kms.list_keys()
        aliases = kms.list_aliases()
    names: dict[str, list[str]] = {}
    for alias in aliases:
        names.setdefault(alias.key_id, []).append(alias.alias_name)
    rows = [
        (k.key_id, k.key_state, ",".join(sorted(names.get(k.key_id, []))) or "-", k.description)
        for k in keys
    ]
    _print_table(("KEY ID", "STATE", "ALIASES", "DESCRIPTION"), rows)
    return EXIT_OK


def _cmd_key_describe(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        info = kms.describe_key(args.key)
        aliases = kms.list_aliases(info.key_id)
        versions = kms.list_key_versions(info.key_id)
    fields: dict[str, object] = dict(asdict(info))
    fields["aliases"] = ", ".join(a.alias_name for a in aliases) or None
    fields["versions"] = ", ".join(v.key_version_id for v in versions)
    _print_fields(fields)
    return EXIT_OK


def _key_action(args: argparse.Namespace, action: str, done: str) -> int:
    with _connect(args) as kms:
        getattr(kms, action)(args.key)
    print(f"key {args.key} {done}")
    return EXIT_OK


def _cmd_key_enable(args: argparse.Namespace) -> int:
    return _key_action(args, "enable_key", "enabled")


def _cmd_key_disable(args: argparse.Namespace) -> int:
    return _key_action(args, "disable_key", "disabled; its files cannot be decrypted until enabled")


def _cmd_key_cancel_deletion(args: argparse.Namespace) -> int:
    return _key_action(args, "cancel_key_deletion", "is no longer scheduled for deletion")


def _cmd_key_rotate(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        version = kms.create_key_version(args.key)
    print(f"key {version.key_id}: new primary version {version.key_version_id}")
    return EXIT_OK


def _cmd_key_schedule_deletion(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        kms.schedule_key_deletion(args.key, args.days)
    print(
        f"key {args.key} will be deleted in {args.days} days, and every file under it lost; "
        f"to undo: kmsnb key cancel-deletion {args.key}"
    )
    return EXIT_OK


def _cmd_alias_create(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        kms.create_alias(_alias_name(args.name), args.key)
    print(f"alias {_alias_name(args.name)} -> {args.key}")
    return EXIT_OK


def _cmd_alias_update(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        kms.update_alias(_alias_name(args.name), args.key)
    print(f"alias {_alias_name(args.name)} -> {args.key}")
    return EXIT_OK


def _cmd_alias_delete(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        kms.delete_alias(_alias_name(args.name))
    print(f"alias {_alias_name(args.name)} deleted")
    return EXIT_OK


def _cmd_alias_list(args: argparse.Namespace) -> int:
    with _connect(args) as kms:
        aliases = kms.list_aliases(args.key)
    _print_table(("ALIAS", "KEY ID"), [(a.alias_name, a.key_id) for a in aliases])
    return EXIT_OK


def _print_table(titles: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(titles, *rows, strict=False)]
    for row in (titles, *rows):
        print(
            "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        )
