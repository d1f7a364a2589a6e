"""CachingKms: the ESDK caching CMM's thresholds, zeroing, thread safety and stats."""

from __future__ import annotations

import base64
import io
import threading
from collections import Counter

import pytest

import kmsnb
from kmsnb.errors import KmsAccessDeniedError, WrongKeyError
from kmsnb.kms import CachingKms, Kms
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

MAIN_KEY = "alias/main"
PII_KEY = "alias/pii"


@pytest.fixture
def kms() -> InMemoryKms:
    """An in-memory KMS holding ``alias/main`` and ``alias/pii``."""
    fake = InMemoryKms()
    fake.create_key(alias=MAIN_KEY)
    fake.create_key(alias=PII_KEY)
    return fake


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached_materials(cache: CachingKms[InMemoryKms]) -> list[bytearray]:
    """The cache's own key copies (white-box: to check that they get zeroed)."""
    return [entry.material for entry in cache._entries.values()]


def is_zero(buffer: bytearray) -> bool:
    return not any(buffer)


def test_sized_requests_reuse_one_data_key(kms: InMemoryKms) -> None:
    """Three sized messages under one key and context cost one GenerateDataKey."""
    cache = CachingKms(kms)
    keys = [cache.generate_data_key(MAIN_KEY, {"a": "1"}, plaintext_size=10) for _ in range(3)]
    assert kms.calls["generate_data_key"] == 1
    assert {bytes(k.plaintext) for k in keys} == {bytes(keys[0].plaintext)}
    assert {k.ciphertext_blob for k in keys} == {keys[0].ciphertext_blob}
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.kms_calls_saved) == (2, 1, 2)


def test_envelope_tells_the_cache_the_message_size(kms: InMemoryKms) -> None:
    """encrypt_bytes and encrypt_file reuse a cached data key: the envelope says the size."""
    cache = CachingKms(kms)
    messages = [kmsnb.encrypt_bytes(b"row %d" % i, MAIN_KEY, kms=cache) for i in range(5)]
    assert kms.calls["generate_data_key"] == 1
    assert [b"row %d" % i for i in range(5)] == [
        kmsnb.decrypt_bytes(message, kms=kms) for message in messages
    ]


def test_a_stream_of_unknown_size_never_reuses_a_key(kms: InMemoryKms) -> None:
    """With no size, the byte budget cannot be kept, so every stream gets a fresh key."""
    cache = CachingKms(kms)
    for _ in range(3):
        with kmsnb.open_encrypt(io.BytesIO(), MAIN_KEY, kms=cache) as writer:
            writer.write(b"data")
    assert kms.calls["generate_data_key"] == 3


def test_each_caller_gets_its_own_copy(kms: InMemoryKms) -> None:
    """The envelope wipes what it is given; that must not wipe the cache."""
    cache = CachingKms(kms)
    first = cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    expected = bytes(first.plaintext)
    first.wipe()
    second = cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    assert expected == bytes(second.plaintext)
    assert second.plaintext is not first.plaintext


def test_unknown_size_bypasses_the_cache(kms: InMemoryKms) -> None:
    """As in the ESDK, a message of unknown size always gets a fresh, uncached key."""
    cache = CachingKms(kms)
    for _ in range(3):
        cache.generate_data_key(MAIN_KEY)
    assert kms.calls["generate_data_key"] == 3
    assert cache.stats.entry_count == 0


def test_key_and_context_partition_the_cache(kms: InMemoryKms) -> None:
    cache = CachingKms(kms)
    blobs = {
        cache.generate_data_key(key, context, plaintext_size=1).ciphertext_blob
        for key in (MAIN_KEY, PII_KEY)
        for context in ({}, {"a": "1"}, {"a": "2"})
    }
    assert len(blobs) == 6
    assert kms.calls["generate_data_key"] == 6
    # The context's order does not matter.
    one = cache.generate_data_key(MAIN_KEY, {"x": "1", "y": "2"}, plaintext_size=1)
    two = cache.generate_data_key(MAIN_KEY, {"y": "2", "x": "1"}, plaintext_size=1)
    assert one.ciphertext_blob == two.ciphertext_blob


def test_max_messages(kms: InMemoryKms) -> None:
    """A key encrypts at most max_messages messages, then is zeroed and replaced."""
    cache = CachingKms(kms, max_messages=3)
    blobs = [cache.generate_data_key(MAIN_KEY, plaintext_size=1).ciphertext_blob for _ in range(7)]
    assert list(Counter(blobs).values()) == [3, 3, 1]
    assert kms.calls["generate_data_key"] == 3


def test_max_messages_one_never_caches(kms: InMemoryKms) -> None:
    cache = CachingKms(kms, max_messages=1)
    for _ in range(3):
        cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    assert kms.calls["generate_data_key"] == 3
    assert cache.stats.entry_count == 0


def test_max_bytes(kms: InMemoryKms) -> None:
    """Bytes are counted with the message that would be added, the first use included."""
    cache = CachingKms(kms, max_bytes=100)
    first = cache.generate_data_key(MAIN_KEY, plaintext_size=40)
    second = cache.generate_data_key(MAIN_KEY, plaintext_size=40)
    third = cache.generate_data_key(MAIN_KEY, plaintext_size=40)  # 120 > 100: a new key
    assert first.ciphertext_blob == second.ciphertext_blob != third.ciphertext_blob
    assert kms.calls["generate_data_key"] == 2


def test_message_larger_than_max_bytes_is_not_cached(kms: InMemoryKms) -> None:
    cache = CachingKms(kms, max_bytes=100)
    cache.generate_data_key(MAIN_KEY, plaintext_size=101)
    assert cache.stats.entry_count == 0
    cache.generate_data_key(MAIN_KEY, plaintext_size=100)  # exactly used up: not kept either
    assert cache.stats.entry_count == 0


def test_max_age_expires_encrypt_and_decrypt_entries(kms: InMemoryKms) -> None:
    clock = FakeClock()
    cache = CachingKms(kms, max_age=60, clock=clock)
    blob = cache.generate_data_key(MAIN_KEY, plaintext_size=1).ciphertext_blob
    cache.decrypt_data_key(blob)
    materials = cached_materials(cache)
    assert len(materials) == 2
    clock.now += 59.9
    assert blob == cache.generate_data_key(MAIN_KEY, plaintext_size=1).ciphertext_blob
    cache.decrypt_data_key(blob)
    assert (kms.calls["generate_data_key"], kms.calls["decrypt_data_key"]) == (1, 1)
    clock.now += 0.1
    assert blob != cache.generate_data_key(MAIN_KEY, plaintext_size=1).ciphertext_blob
    cache.decrypt_data_key(blob)
    assert (kms.calls["generate_data_key"], kms.calls["decrypt_data_key"]) == (2, 2)
    assert all(is_zero(material) for material in materials)


def test_expired_entries_are_zeroed_at_the_next_operation(kms: InMemoryKms) -> None:
    clock = FakeClock()
    cache = CachingKms(kms, max_age=10, clock=clock)
    cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    (material,) = cached_materials(cache)
    clock.now += 10
    assert cache.stats.entry_count == 0
    assert is_zero(material)


def test_used_up_entries_are_zeroed_at_once(kms: InMemoryKms) -> None:
    cache = CachingKms(kms, max_messages=2)
    cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    (material,) = cached_materials(cache)
    key = cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    assert is_zero(material)
    assert not is_zero(key.plaintext)  # the caller's copy was taken first
    assert cache.stats.entry_count == 0


def test_capacity_evicts_least_recently_used_and_zeroes_it(kms: InMemoryKms) -> None:
    cache = CachingKms(kms, capacity=2)
    cache.generate_data_key(MAIN_KEY, {"n": "a"}, plaintext_size=1)
    cache.generate_data_key(MAIN_KEY, {"n": "b"}, plaintext_size=1)
    material_a, material_b = cached_materials(cache)
    cache.generate_data_key(MAIN_KEY, {"n": "a"}, plaintext_size=1)  # a is now most recent
    cache.generate_data_key(MAIN_KEY, {"n": "c"}, plaintext_size=1)  # so b goes
    assert cache.stats.entry_count == 2
    assert (is_zero(material_a), is_zero(material_b)) == (False, True)
    assert kms.calls["generate_data_key"] == 3
    assert cache.stats.evictions == 1


@pytest.mark.parametrize("how", ["clear", "close", "with"])
def test_clear_and_close_zero_everything(kms: InMemoryKms, how: str) -> None:
    cache = CachingKms(kms)
    blob = cache.generate_data_key(MAIN_KEY, plaintext_size=1).ciphertext_blob
    cache.decrypt_data_key(blob)
    materials = cached_materials(cache)
    if how == "clear":
        cache.clear()
    elif how == "close":
        cache.close()
    else:
        with cache:
            pass
    assert cache.stats.entry_count == 0
    assert all(is_zero(material) for material in materials)


def test_decrypt_reuses_unwrapped_keys_per_blob_and_context(kms: InMemoryKms) -> None:
    cache = CachingKms(kms)
    data_key = kms.generate_data_key(MAIN_KEY, {"a": "1"})
    expected = bytes(data_key.plaintext)
    for _ in range(3):
        key = cache.decrypt_data_key(data_key.ciphertext_blob, {"a": "1"})
        assert expected == bytes(key.plaintext)
        # The cached key comes back with the master key the KMS named when it unwrapped it.
        assert (data_key.key_id, data_key.key_version_id) == (key.key_id, key.key_version_id)
        key.wipe()  # the caller wipes its copy; the cache keeps its own
    assert kms.calls["decrypt_data_key"] == 1
    with pytest.raises(WrongKeyError):
        cache.decrypt_data_key(data_key.ciphertext_blob, {"a": "2"})
    assert cache.stats.entry_count == 1  # a refusal is not cached
    assert (cache.stats.decrypt_hits, cache.stats.decrypt_misses) == (2, 2)


def test_repr_and_stats_never_show_key_bytes(kms: InMemoryKms) -> None:
    cache = CachingKms(kms)
    key = cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    secret = bytes(key.plaintext)
    for text in (repr(cache), repr(key), repr(cache.stats), repr(cache.sized(5))):
        for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert form not in text
    assert "max_age=300" in repr(cache)


def test_thread_safety(kms: InMemoryKms) -> None:
    """Many threads at once: no key serves more than max_messages, and the books balance."""
    cache = CachingKms(kms, max_messages=25)
    blobs: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(100):
                key = cache.generate_data_key(MAIN_KEY, plaintext_size=1)
                plain = cache.decrypt_data_key(key.ciphertext_blob)
                if bytes(plain.plaintext) != bytes(key.plaintext):
                    raise AssertionError(f"mismatched key at {i}")
                with lock:
                    blobs.append(key.ciphertext_blob)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(blobs) == 800
    assert max(Counter(blobs).values()) <= 25
    stats = cache.stats
    assert stats.encrypt_hits + stats.encrypt_misses == 800
    assert kms.calls["generate_data_key"] == stats.encrypt_misses
    assert kms.calls["decrypt_data_key"] == stats.decrypt_misses
    assert stats.entry_count <= cache.capacity


def test_stats_reset(kms: InMemoryKms) -> None:
    cache = CachingKms(kms)
    cache.generate_data_key(MAIN_KEY, plaintext_size=1)
    cache.reset_stats()
    assert (cache.stats.hits, cache.stats.misses, cache.stats.entry_count) == (0, 0, 1)


def test_management_passes_through_and_invalidating_calls_clear(kms: InMemoryKms) -> None:
    cache = CachingKms(kms)
    assert isinstance(cache, Kms)
    assert kms.location == cache.location
    new_key = cache.create_key(alias="alias/new")
    assert cache.wrapped is kms
    cache.generate_data_key(new_key, plaintext_size=1)
    (material,) = cached_materials(cache)
    cache.disable_key("alias/new")
    assert is_zero(material)
    with pytest.raises(KmsAccessDeniedError):
        cache.generate_data_key(new_key, plaintext_size=1)
    with pytest.raises(AttributeError):
        cache.no_such_method  # noqa: B018


def test_sized_view_with_the_envelope(kms: InMemoryKms) -> None:
    """Files sharing a cached data key still have distinct content keys (Cobblestone salt)."""
    cache = CachingKms(kms)
    first = kmsnb.encrypt_bytes(b"same plaintext", MAIN_KEY, kms=cache.sized(14))
    second = kmsnb.encrypt_bytes(b"same plaintext", MAIN_KEY, kms=cache.sized(14))
    assert kms.calls["generate_data_key"] == 1
    info = kmsnb.inspect(io.BytesIO(first))
    assert info.key_id == kmsnb.inspect(io.BytesIO(second)).key_id
    assert first[info.header_size :] != second[info.header_size :]
    for message in (first, second):
        assert kmsnb.decrypt_bytes(message, kms=kms) == b"same plaintext"  # no cache needed


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_age": 0}, ValueError),
        ({"max_age": True}, ValueError),
        ({"max_messages": 0}, ValueError),
        ({"max_bytes": -1}, ValueError),
        ({"capacity": 1.5}, ValueError),
    ],
)
def test_bad_settings(kms: InMemoryKms, kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        CachingKms(kms, **kwargs)  # type: ignore[arg-type]


def test_bad_arguments(kms: InMemoryKms) -> None:
    with pytest.raises(TypeError):
        CachingKms(object())  # type: ignore[type-var]
    cache = CachingKms(kms)
    with pytest.raises(ValueError, match="negative"):
        cache.generate_data_key(MAIN_KEY, plaintext_size=-1)
    with pytest.raises(TypeError):
        cache.generate_data_key(MAIN_KEY, plaintext_size=1.0)  # type: ignore[arg-type]
