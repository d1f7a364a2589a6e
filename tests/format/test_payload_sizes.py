"""kmsnb._format.payload.plaintext_size_for_payload: the final-chunk rule, inverted.

The seekable reader (for a stream of unknown size) and the ``kmsnb::`` file system's
``info`` both size a payload by it; here it is checked against the forward rule,
:func:`encrypted_payload_size`, on the boundary grid and on every payload size near a
chunk boundary.
"""

from __future__ import annotations

import pytest

from kmsnb._format.payload import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    PAYLOAD_PREFIX_SIZE,
    TAG_SIZE,
    encrypted_payload_size,
    plaintext_size_for_payload,
)

pytestmark = [pytest.mark.unit]

CS = CHUNK_SIZE
GRID_SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS + 500]


@pytest.mark.parametrize("size", GRID_SIZES, ids=lambda size: f"size-{size}")
def test_it_inverts_the_payload_size(size: int) -> None:
    assert size == plaintext_size_for_payload(encrypted_payload_size(size))


def test_every_payload_size_near_the_boundaries_has_at_most_one_plaintext() -> None:
    """Each payload size is either the payload of exactly one plaintext size, or of none:
    the ones ending on a chunk boundary, or with a final chunk shorter than a tag."""
    real = {encrypted_payload_size(size): size for size in range(0, 3 * CS + 2)}
    for payload_size in range(0, PAYLOAD_PREFIX_SIZE + 3 * ENCRYPTED_CHUNK_SIZE + TAG_SIZE):
        assert real.get(payload_size) == plaintext_size_for_payload(payload_size), payload_size


@pytest.mark.parametrize(
    ("payload_size", "why"),
    [
        (0, "nothing at all"),
        (PAYLOAD_PREFIX_SIZE, "a prefix and no chunk"),
        (PAYLOAD_PREFIX_SIZE + TAG_SIZE - 1, "a final chunk shorter than a tag"),
        (PAYLOAD_PREFIX_SIZE + ENCRYPTED_CHUNK_SIZE, "ends on a chunk boundary"),
        (PAYLOAD_PREFIX_SIZE + 2 * ENCRYPTED_CHUNK_SIZE + 3, "a final chunk of 3 bytes"),
    ],
)
def test_impossible_payload_sizes_have_none(payload_size: int, why: str) -> None:
    assert plaintext_size_for_payload(payload_size) is None, why
