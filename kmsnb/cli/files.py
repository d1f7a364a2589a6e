"""``kmsnb encrypt | decrypt | inspect | rewrap | convert``: the file commands.

Each command parses, calls one library operation (:mod:`kmsnb.envelope`, :mod:`kmsnb.rewrap`,
:mod:`kmsnb.legacy`) and prints one line; paths, URLs (``s3://``, ``oss://``, with
``--storage-option KEY=VALUE``), ``-`` and directories are resolved by
:mod:`kmsnb.cli._stdio`. The KMS and the format are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os

from kmsnb._sizes import format_size_brief
from kmsnb.cli import EXIT_OK, _parser
from kmsnb.cli._display import print_fields
from kmsnb.cli._parser import (
    add_allowed_key_option,
    add_context_option,
    add_key_option,
    add_no_fsync_option,
    add_storage_option,
    exact_size,
    size,
)
from kmsnb.cli._run import connect
from kmsnb.cli._stdio import (
    STDIO,
    Prefixed,
    check_storage_options,
    destination_in,
    is_url,
    open_input,
    open_output,
    progress,
    read_head,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from kmsnb.cli._parser import Commands
    from kmsnb.errors import KmsnbError
    from kmsnb.kms._base import KmsClient

__all__ = ["build_command"]

#: The name ``-o DIR/`` gives an encrypted file: the source's plus this.
ENCRYPTED_SUFFIX = ".kms"


def build_command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of ``name`` (encrypt, decrypt, inspect, rewrap or convert), listed with
    ``help`` in :mod:`kmsnb.cli`'s table of commands."""
    handler, description, arguments = _COMMANDS[name]
    return _parser.build_command(commands, name, handler, help, description, arguments=arguments)


def _encrypt_arguments(encrypt: argparse.ArgumentParser) -> None:
    encrypt.add_argument(
        "src", metavar="SRC", help="the file (or s3://, oss:// URL) to encrypt, or - for stdin"
    )
    _add_output_option(encrypt, "DST", f"DIR/ for DIR/SRC{ENCRYPTED_SUFFIX}")
    add_key_option(encrypt, "the master key; " + _key_naming_help())
    add_context_option(encrypt, "bind KEY=VALUE to the data key (repeatable; not secret)")
    encrypt.add_argument(
        "--chunk-size", type=size, default=None, metavar="N", help="I/O buffer size (e.g. 4M)"
    )
    encrypt.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    add_no_fsync_option(encrypt)
    add_storage_option(encrypt)
    encrypt.add_argument(
        "--expect-size",
        type=exact_size,
        default=None,
        metavar="N",
        help="refuse SRC unless it is exactly N bytes (e.g. 1048576, 64K): a stream cut "
        "short (a killed producer) or too long fails and leaves nothing valid",
    )


def _decrypt_arguments(decrypt: argparse.ArgumentParser) -> None:
    decrypt.add_argument(
        "src", metavar="SRC", help="the encrypted file (or s3://, oss:// URL), or - for stdin"
    )
    _add_output_option(decrypt, "DST", f"DIR/ for DIR/SRC without {ENCRYPTED_SUFFIX}")
    add_context_option(decrypt, "require this encryption context (repeatable)")
    decrypt.add_argument(
        "--chunk-size", type=size, default=None, metavar="N", help="I/O buffer size (e.g. 4M)"
    )
    decrypt.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    add_no_fsync_option(decrypt)
    add_storage_option(decrypt)
    add_allowed_key_option(decrypt)


def _inspect_arguments(inspect: argparse.ArgumentParser) -> None:
    inspect.add_argument(
        "file", metavar="FILE", help="a kmsnb, .cipher or Parquet file (or s3://, oss:// URL), or -"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--with-kms",
        action="store_true",
        help="column-encrypted Parquet: unwrap the footer key (one Decrypt) to read the "
        "footer; no column key is needed",
    )
    add_storage_option(inspect)
    add_allowed_key_option(inspect)


def _rewrap_arguments(rewrap: argparse.ArgumentParser) -> None:
    rewrap.add_argument(
        "file",
        metavar="FILE",
        help="the kmsnb file: its key slot is rewritten in place (the file is copied only "
        "when the new slot does not fit); an s3:// or oss:// object is replaced whole",
    )
    add_key_option(rewrap, "the new master key")
    add_storage_option(rewrap)
    add_allowed_key_option(rewrap)


def _convert_arguments(convert: argparse.ArgumentParser) -> None:
    convert.add_argument("src", metavar="OLD", help="the .cipher file")
    convert.add_argument("-o", "--output", required=True, metavar="NEW", help="the kmsnb file")
    add_key_option(convert, "master key for NEW (default: OLD's)", required=False)
    add_context_option(convert, "encryption context for NEW (repeatable)")
    convert.add_argument("--overwrite", action="store_true", help="replace NEW if it exists")
    add_allowed_key_option(convert)


def _key_naming_help() -> str:
    from kmsnb._keynames import KEY_NAMING_HELP

    return KEY_NAMING_HELP


def _add_output_option(parser: argparse.ArgumentParser, metavar: str, into: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar=metavar,
        help=f"the file (or s3://, oss:// URL) to write, - for stdout, or {into} (an "
        "existing directory, or a path ending in /, as cp does)",
    )


def _is_legacy(head: bytes) -> bool:
    # Not from kmsnb.legacy: a kmsnb file needs none of the legacy reader.
    from kmsnb._legacy_sniff import looks_like_legacy

    return looks_like_legacy(head)


def _buffer_options(args: argparse.Namespace) -> dict[str, Any]:
    """``buffer_size=`` for the envelope when ``--chunk-size`` is given (else its default)."""
    return {} if args.chunk_size is None else {"buffer_size": args.chunk_size}


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from kmsnb.envelope import open_encrypt
    from kmsnb.errors import KmsnbError

    args.output = destination_in(args.output, args.src, suffix=ENCRYPTED_SUFFIX, decrypting=False)
    check_storage_options(args.storage_options, args.src, args.output)
    expected: int | None = args.expect_size
    with (
        connect(args) as kms,
        open_input(args.src, storage_options=args.storage_options) as (source, size),
        open_output(
            args.output,
            overwrite=args.overwrite,
            source=args.src,
            binary_to_terminal=False,
            durable=not args.no_fsync,
            storage_options=args.storage_options,
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
            **_buffer_options(args),
        )
        with writer, progress(declared, f"encrypt {os.path.basename(args.src)}") as advance:
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
        print(
            f"encrypted {args.src} -> {args.output} ({format_size_brief(writer.plaintext_size)}, "
            f"master key {header.key_id})"
        )
    return EXIT_OK


def _wrong_length(args: argparse.Namespace, got: int, expected: int | None) -> KmsnbError:
    from kmsnb.errors import KmsnbError

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
    args.output = destination_in(args.output, args.src, suffix=ENCRYPTED_SUFFIX, decrypting=True)
    check_storage_options(args.storage_options, args.src, args.output)
    with (
        open_input(args.src, storage_options=args.storage_options) as (source, _),
        connect(args) as kms,
    ):
        head = read_head(source)
        legacy = _is_legacy(head)
        # The destination is checked before the KMS is asked anything.
        with open_output(
            args.output,
            overwrite=args.overwrite,
            source=args.src,
            durable=not args.no_fsync,
            storage_options=args.storage_options,
        ) as output:
            if legacy:
                written = _decrypt_legacy(args, kms, Prefixed(head, source), output)
            else:
                written = _decrypt_kmsnb(args, kms, Prefixed(head, source), output)
    if args.output != STDIO and legacy:
        print(
            f"decrypted {args.src} -> {args.output} ({format_size_brief(written)}, a tutorial "
            ".cipher file, AES-EAX)"
        )
        print(f"to move it to the kmsnb format: kmsnb convert {args.src} -o NEW")
    elif args.output != STDIO:
        print(f"decrypted {args.src} -> {args.output} ({format_size_brief(written)})")
    return EXIT_OK


def _decrypt_kmsnb(
    args: argparse.Namespace, kms: KmsClient, source: Prefixed, output: BinaryIO
) -> int:
    from kmsnb.envelope import open_decrypt

    reader = open_decrypt(  # a KMS error names the file's key and the KMS
        source,  # type: ignore[arg-type]
        kms=kms,
        encryption_context=args.context,
        allowed_keys=args.allowed_keys,
        **_buffer_options(args),
    )
    written = 0
    with (
        reader,
        progress(reader.header.plaintext_size, f"decrypt {os.path.basename(args.src)}") as advance,
    ):
        while block := reader.read_verified():
            output.write(block)
            written += len(block)
            advance(len(block))
    return written


def _decrypt_legacy(
    args: argparse.Namespace, kms: KmsClient, source: Prefixed, output: BinaryIO
) -> int:
    from kmsnb.legacy import decrypt_legacy, read_legacy

    named = args.src != STDIO and not is_url(args.src)  # else: the open source
    envelope = read_legacy(args.src if named else source)  # type: ignore[arg-type]
    plaintext = decrypt_legacy(
        envelope, kms=kms, encryption_context=args.context, allowed_keys=args.allowed_keys
    )
    output.write(plaintext)
    return len(plaintext)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kmsnb.envelope import inspect
    from kmsnb.legacy import read_legacy

    check_storage_options(args.storage_options, args.file)
    with open_input(args.file, storage_options=args.storage_options) as (source, _):
        head = read_head(source)
        fileobj: Any = Prefixed(head, source)
        if head[:4] in (b"PAR1", b"PARE"):
            return _inspect_parquet(args)
        named = args.file != STDIO  # a path or URL: its size is shown too
        if _is_legacy(head):
            legacy_source = args.file if named and not is_url(args.file) else fileobj
            fields = read_legacy(legacy_source).describe()
        else:
            info = inspect(args.file if named else fileobj, storage_options=args.storage_options)
            fields = {"format": f"kmsnb v{info.format_version}", **asdict(info)}
            del fields["format_version"]
    if args.json:
        from kmsnb._text import json_for_display

        print(json_for_display(fields, indent=2))
    else:
        print_fields(fields)
    return EXIT_OK


def _inspect_parquet(args: argparse.Namespace) -> int:
    from kmsnb._inspect import inspect
    from kmsnb._pme_inspect import ParquetInfo
    from kmsnb._text import json_for_display

    if args.file == STDIO:
        raise ValueError("a Parquet file is read from its end: give its path, not -")
    with connect(args) if args.with_kms else contextlib.nullcontext(None) as kms:
        info = inspect(
            args.file,
            kms=kms,
            allowed_keys=args.allowed_keys,
            storage_options=args.storage_options,
        )
    if not isinstance(info, ParquetInfo):
        raise AssertionError("kmsnb: internal error: a Parquet magic without Parquet")
    if args.json:
        print(json_for_display(info.to_dict(), indent=2))
    else:
        print_fields(dict(info.fields()))
    return EXIT_OK


def _refuse_urls(command: str, *paths: str) -> None:
    """``convert`` rewrites local files; a URL is refused, not taken for a path (which
    would fail as "No such file ... s3:/...")."""
    from kmsnb.errors import UnsupportedStorageError

    for path in paths:
        if is_url(path):
            raise UnsupportedStorageError(
                f"kmsnb {command} works on local files, not {path}; download it, "
                f"{command} it, and upload the result (kmsnb encrypt/decrypt take URLs)"
            )


def _cmd_rewrap(args: argparse.Namespace) -> int:
    from kmsnb.rewrap import rewrap_file

    check_storage_options(args.storage_options, args.file)
    with connect(args) as kms:
        info = rewrap_file(
            args.file,
            args.key,
            kms=kms,
            allowed_keys=args.allowed_keys,
            storage_options=args.storage_options,
        )
    print(f"rewrapped {args.file}: master key {info.key_id}, version {info.key_version_id}")
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    from kmsnb.errors import FormatError
    from kmsnb.legacy import convert_legacy_file

    _refuse_urls("convert", args.src, args.output)
    with open(args.src, "rb") as source:
        if not _is_legacy(read_head(source)):
            raise FormatError(
                f"{args.src} is not a tutorial .cipher file (to move a kmsnb file to another "
                "key, use kmsnb rewrap)"
            )
    with connect(args) as kms:
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


#: Each command's handler, description (``None``: its help line) and arguments.
_COMMANDS: dict[
    str,
    tuple[
        Callable[[argparse.Namespace], int],
        str | None,
        Callable[[argparse.ArgumentParser], None],
    ],
] = {
    "encrypt": (
        _cmd_encrypt,
        "Encrypt SRC into DST under the master key KEY. A fresh data key from the KMS "
        "encrypts the data locally; only its wrapped form is stored. '-' is stdin/stdout. "
        "From a pipe, kmsnb cannot tell a finished stream from a producer that died: "
        "'producer | kmsnb encrypt -' makes a shorter, valid file, with status 0, if the "
        "producer is killed. Pass --expect-size N to refuse any other length.",
        _encrypt_arguments,
    ),
    "decrypt": (
        _cmd_decrypt,
        "Decrypt SRC into DST. DST appears only once every byte has been authenticated; "
        "with -o - (stdout) verified data streams out, and a later failure leaves what "
        "was written. Also reads the four-line .cipher files of Alibaba Cloud's "
        "envelope-encryption tutorial.",
        _decrypt_arguments,
    ),
    "inspect": (
        _cmd_inspect,
        "Show what an encrypted file reveals: a kmsnb file's header, a tutorial .cipher "
        "file, or a column-encrypted Parquet file's keys (with --with-kms, also its schema "
        "and which columns need which master key, even when the footer is encrypted).",
        _inspect_arguments,
    ),
    "rewrap": (_cmd_rewrap, None, _rewrap_arguments),
    "convert": (
        _cmd_convert,
        "Decrypt a file made by Alibaba Cloud's envelope-encryption tutorial (four base64 "
        "lines, AES-EAX) and encrypt it as a kmsnb file, by default under the same master key.",
        _convert_arguments,
    ),
}
