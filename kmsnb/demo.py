"""``make demo``: Alibaba Cloud's envelope-encryption tutorial, on the local KMS emulator.

Run from the repository root with ``python -m kmsnb.demo``. Nothing leaves the machine:
the master key lives in ``./.kmsnb-demo/kms``, the files in ``./data``. The steps are the
tutorial's (help.aliyun.com/document_detail/116782): create a master key (CMK), give it the
alias ``alias/Apollo/WorkKey``, encrypt ``./data/sales.csv`` with a data key from
GenerateDataKey, decrypt it again with Decrypt. Running it twice reuses the key and
replaces its own files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from kmsnb.connection import connect_noting_new_keystore
from kmsnb.envelope import decrypt_file, encrypt_file, inspect
from kmsnb.kms._base import KmsClient

__all__ = ["ALIAS", "main"]

ALIAS = "alias/Apollo/WorkKey"
STORE = Path(".kmsnb-demo") / "kms"
DATA = Path("data")
SALES = """\
region,quarter,product,units,revenue_cny
cn-hangzhou,2024Q1,Apollo Basic,1200,358800.00
cn-hangzhou,2024Q2,Apollo Pro,640,447360.00
cn-shanghai,2024Q1,Apollo Basic,980,293020.00
cn-shanghai,2024Q2,Apollo Pro,710,496290.00
cn-beijing,2024Q2,Apollo Enterprise,85,254915.00
"""


def _step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}")


def work_key(kms: KmsClient) -> str:
    """The key behind ``alias/Apollo/WorkKey``, created (or replaced, if unusable) as needed."""
    for alias in kms.list_aliases():
        if alias.alias_name == ALIAS:
            key = kms.describe_key(alias.key_id)
            if key.key_state == "Enabled":
                print(f"    reusing master key {key.key_id} ({ALIAS})")
                return key.key_id
            # Someone disabled or scheduled it for deletion: point the alias at a new key.
            key_id = kms.create_key("kmsnb demo: the Apollo project's work key").key_id
            kms.update_alias(ALIAS, key_id)
            print(f"    {alias.key_id} is {key.key_state}; {ALIAS} now -> new key {key_id}")
            return key_id
    key_id = kms.create_key("kmsnb demo: the Apollo project's work key").key_id
    kms.create_alias(ALIAS, key_id)
    print(f"    created master key {key_id}, alias {ALIAS}")
    return key_id


def shell_command() -> tuple[str, str]:
    """How this shell calls the ``kmsnb`` of this Python, and what to do to call it ``kmsnb``.

    ``make demo`` installs kmsnb in ``.venv``, which is not on ``PATH`` until activated:
    then the command is ``.venv/bin/kmsnb``, with the advice to activate the venv.
    """
    script = Path(sys.executable).with_name("kmsnb")
    if not script.exists():
        return f"{sys.executable} -m kmsnb", ""
    found = shutil.which("kmsnb")
    if found is not None and Path(found).resolve() == script.resolve():
        return "kmsnb", ""
    try:
        shown = script.absolute().relative_to(Path.cwd())
    except ValueError:
        shown = script.absolute()
    activate = shown.with_name("activate")
    return str(shown), f" (or `source {activate}` first, then just `kmsnb`)"


def main() -> int:
    plaintext, encrypted, decrypted = (
        DATA / "sales.csv",
        DATA / "sales.csv.kms",
        DATA / "decrypted_sales.csv",
    )
    print("kmsnb demo: the envelope-encryption tutorial on the local KMS emulator")
    _step(1, f"master key: a KMS emulator keystore in {STORE}/")
    STORE.parent.mkdir(exist_ok=True)
    kms, new_keystore = connect_noting_new_keystore(f"local:{STORE}")
    if new_keystore is not None:
        print("    a new keystore: no keys yet")
    try:
        work_key(kms)

        _step(2, f"plaintext: {plaintext}")
        DATA.mkdir(exist_ok=True)
        plaintext.write_text(SALES, encoding="utf-8")
        print(f"    {plaintext.stat().st_size} bytes, {SALES.count(chr(10)) - 1} rows of sales")

        _step(3, f"encrypt with a fresh data key from GenerateDataKey -> {encrypted}")
        encrypt_file(plaintext, encrypted, ALIAS, kms=kms, overwrite=True)

        _step(4, f"inspect {encrypted}: only ciphertext and the wrapped data key")
        info = inspect(encrypted)
        for name, value in (
            ("format", f"kmsnb v{info.format_version}, {info.algorithm}"),
            ("master key", f"{info.key_id} (version {info.key_version_id})"),
            ("wrapped data key", f"{info.wrapped_key_size} chars, opened only by the KMS"),
            ("plaintext size", f"{info.plaintext_size} bytes"),
            ("file size", f"{info.file_size} bytes"),
        ):
            print(f"    {name + ':':<18} {value}")
        print("    the data key itself is not in the file: it was wiped after use")

        _step(5, f"decrypt: Decrypt unwraps the data key -> {decrypted}")
        decrypt_file(encrypted, decrypted, kms=kms, overwrite=True)
        same = decrypted.read_bytes() == plaintext.read_bytes()
        print(f"    {decrypted} {'matches' if same else 'DIFFERS FROM'} {plaintext}")
    finally:
        close = getattr(kms, "close", None)
        if callable(close):
            close()

    kmsnb, advice = shell_command()
    print(f"\nThe same from a shell{advice}:")
    kms_option = f"--kms local:{STORE}"
    print(f"    {kmsnb} {kms_option} encrypt {plaintext} -o {encrypted} --key {ALIAS} --overwrite")
    print(f"    {kmsnb} inspect {encrypted}")
    print(f"    {kmsnb} {kms_option} decrypt {encrypted} -o {decrypted} --overwrite")
    print(f"Files: {plaintext}, {encrypted}, {decrypted}; master key in {STORE}/")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
