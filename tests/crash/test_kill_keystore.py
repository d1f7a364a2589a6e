"""Killing keystore writers: ``kmsnb key create --alias`` and key rotations, in a loop,
kill -9 at random moments. After every round the keystore opens, and every change that was
acknowledged (its call returned, and said so) is there and works.

The only change a kill may leave done yet unacknowledged and that matters is an alias
moved (the writer announces it first): the first look after the kill settles it, and from
then on the keystore must keep what it showed. Each change lost counts once."""

from __future__ import annotations

import random
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kmsnb.emulator import KeyStore
from kmsnb.emulator.store import StoreState
from kmsnb.kms.local import LocalKms

from .conftest import ROUNDS, Tally, Zygote

pytestmark = [pytest.mark.crash, pytest.mark.slow]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY = re.compile(_UUID)  # kmsnb key create prints the new key's id alone
_ALIAS = re.compile(rf"alias (alias/\S+) -> ({_UUID})")
_VERSION = re.compile(rf"key ({_UUID}): new primary version (\S+)")
_ANNOUNCE = re.compile(rf"announce (alias/\S+) ({_UUID})")
# A writer's first lines: its first key's id, that key's alias, its first rotation. The kill
# comes at a random moment after them, so that every round has made a key and a version.
_FIRST_ROTATION_LINES = 3


@dataclass
class Acknowledged:
    """What the writers said was done, and the alias change each left in flight."""

    keys: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # version id -> key id
    in_flight: dict[str, str] = field(default_factory=dict)

    def read(self, log: str) -> set[str]:
        """Take in a writer's log (complete lines only); return the keys it made."""
        made: set[str] = set()
        for line in log.split("\n")[:-1]:  # a line cut by the kill was not acknowledged
            if _KEY.fullmatch(line):
                made.add(line)
            elif match := _ALIAS.fullmatch(line):
                self.aliases[match[1]] = match[2]
                self.in_flight.pop(match[1], None)
            elif match := _VERSION.fullmatch(line):
                self.versions[match[2]] = match[1]
            elif match := _ANNOUNCE.fullmatch(line):
                self.in_flight[match[1]] = match[2]
        self.keys |= made
        return made

    def lost(self, state: StoreState) -> set[str]:
        """The acknowledged changes missing from ``state``, after settling the alias
        change left in flight: done (though never acknowledged) if ``state`` shows it.

        Settled here, once: an in-flight change forgotten after its round would pass for
        a lost one in every later round, and one allowed for ever would hide its loss.
        """
        for alias, key_id in self.in_flight.items():
            if state.aliases.get(alias) == key_id:
                self.aliases[alias] = key_id
        self.in_flight = {}
        lost = {f"key {key_id}" for key_id in self.keys - set(state.keys)}
        for alias, key_id in self.aliases.items():
            if state.aliases.get(alias) != key_id:
                lost.add(f"{alias} -> {key_id}")
        for version, key_id in self.versions.items():
            found = state.versions.get(version)
            if found is None or found.key_id != key_id:
                lost.add(f"version {version} of {key_id}")
        return lost


def test_kill_9_during_keystore_writes(
    zygote: Zygote, tmp_path: Path, kms_uri: str, local_kms: LocalKms, tally: Tally,
    rng: random.Random,
) -> None:  # fmt: skip
    store = Path(kms_uri.removeprefix("local:"))
    acknowledged = Acknowledged()
    lost: set[str] = set()
    log = tmp_path / "log"
    for round_number in range(ROUNDS):
        log.write_bytes(b"")
        request = {
            "kind": "keystore",
            "kms_uri": kms_uri,
            "tag": f"r{round_number}",
            "log": str(log),
            "kill_after_s": rng.uniform(0.05, 0.5),
            "kill_after_lines": _FIRST_ROTATION_LINES,
        }
        reply = zygote.run(request)
        assert reply["exit"] == -signal.SIGKILL, (reply, log.read_text())
        tally.rounds += 1
        tally.killed += 1
        new_keys = acknowledged.read(log.read_text())

        reopened = KeyStore(store)  # loadable, and sweeps a killed writer's temporary file
        lost |= acknowledged.lost(reopened.snapshot())
        tally.acknowledged_lost = len(lost)
        reopened.close()
        for key_id in sorted(new_keys):  # and they work
            with local_kms.generate_data_key(key_id, {"round": str(round_number)}) as data_key:
                unwrapped = local_kms.decrypt_data_key(
                    data_key.ciphertext_blob, {"round": str(round_number)}
                )
                assert unwrapped.plaintext == data_key.plaintext
    tally.notes.append(
        f"{len(acknowledged.keys)} keys, {len(acknowledged.aliases)} aliases, "
        f"{len(acknowledged.versions)} versions acknowledged"
    )
    assert tally.problems() == {}, sorted(lost)
    assert len(acknowledged.keys) >= ROUNDS  # the writers got work done between kills
    assert len(acknowledged.versions) >= ROUNDS


def test_an_alias_change_a_kill_left_unacknowledged_is_settled_once() -> None:
    """The bookkeeping itself: the change in flight when a writer died is taken as done if
    the keystore shows it, in that round and every later one (it once passed for a lost
    change in each of the rounds after, acknowledged_lost=11); undone later, it is lost."""
    first, second = "1" * 8 + "-1111-1111-1111-" + "1" * 12, "2" * 8 + "-2222-2222-2222-" + "2" * 12
    acknowledged = Acknowledged()
    acknowledged.read(
        f"announce alias/r5-stable {first}\nalias alias/r5-stable -> {first}\n"
        f"announce alias/r5-stable {second}\n"  # killed after the change, before its line
    )
    moved = StoreState(aliases={"alias/r5-stable": second})
    assert acknowledged.lost(moved) == set()
    acknowledged.read("")  # the next rounds' writers work on their own aliases
    assert acknowledged.lost(moved) == set()
    assert acknowledged.lost(StoreState(aliases={"alias/r5-stable": first})) == {
        f"alias/r5-stable -> {second}"
    }

    kept = Acknowledged()
    kept.read(f"alias alias/r6-stable -> {first}\nannounce alias/r6-stable {second}\n")
    assert kept.lost(StoreState(aliases={"alias/r6-stable": first})) == set()
    assert kept.lost(StoreState(aliases={"alias/r6-stable": second})) == {
        f"alias/r6-stable -> {first}"
    }
