"""Hypothesis strategies for kmsnb's tests: sizes around chunk edges, contexts, headers."""

from __future__ import annotations

import random
import string

from hypothesis import strategies as st

CHUNK_SIZE = 16384
UNKNOWN_SIZE = 2**64 - 1


def sizes(max_chunks: int = 3) -> st.SearchStrategy[int]:
    """Plaintext sizes, half of them within two bytes of a chunk boundary."""
    near_edge = st.builds(
        lambda chunks, delta: max(0, chunks * CHUNK_SIZE + delta),
        st.integers(0, max_chunks),
        st.integers(-2, 2),
    )
    return st.one_of(near_edge, st.integers(0, max_chunks * CHUNK_SIZE + CHUNK_SIZE // 2))


def plaintexts(max_chunks: int = 3) -> st.SearchStrategy[bytes]:
    """Random bytes of a size from :func:`sizes`; drawn from a seed, since Hypothesis's own
    buffer is too small for tens of KiB and the content matters less than the length."""
    return st.builds(
        lambda size, seed: random.Random(seed).randbytes(size),
        sizes(max_chunks),
        st.integers(0, 2**32 - 1),
    )


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into consecutive pieces (empty pieces included)."""
    cuts = st.lists(st.integers(0, len(data)), max_size=24).map(sorted)
    return cuts.map(
        lambda points: [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    )


def printable_text(min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[str]:
    """Arbitrary Unicode text without control characters (C0, DEL, C1: category Cc),
    which kmsnb refuses to write into key ids and encryption contexts."""
    alphabet = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


def encryption_contexts() -> st.SearchStrategy[dict[str, str]]:
    """Small encryption contexts of arbitrary printable Unicode (keys are never empty)."""
    return st.dictionaries(printable_text(1, 12), printable_text(0, 24), max_size=5)


printable_ascii = st.text(alphabet=string.printable[:95], max_size=40)  # 0x20..0x7E, no \t\n


def header_fields() -> st.SearchStrategy[dict[str, object]]:
    """Keyword arguments for ``serialize_header`` (without ``data_key``), all valid."""
    return st.fixed_dictionaries(
        {
            "key_id": printable_text(1, 40),
            "key_version_id": printable_text(0, 40),
            "wrapped_key": st.text(
                alphabet=string.ascii_letters + string.digits + "+/=", min_size=1, max_size=200
            ),
            "encryption_context": encryption_contexts(),
            "content_type": printable_ascii,
            "plaintext_size": st.none() | st.integers(0, UNKNOWN_SIZE - 1),
        }
    )
