"""kmsnb._eax against the EAX paper's vectors and, on random inputs, against pycryptodome."""

from __future__ import annotations

import os
import random

import pytest
from Crypto.Cipher import AES
from cryptography.exceptions import InvalidTag

from kmsnb import _eax
from kmsnb._eax import eax_decrypt, eax_encrypt

pytestmark = pytest.mark.unit

# Bellare, Rogaway, Wagner, "The EAX Mode of Operation" (FSE 2004), appendix, AES-128:
# (message, key, nonce, header, ciphertext ‖ tag). Also in pycryptodome's
# Crypto/SelfTest/Cipher/test_EAX.py (TestVectorsPaper).
PAPER_VECTORS = [
    (
        "",
        "233952DEE4D5ED5F9B9C6D6FF80FF478",
        "62EC67F9C3A4A407FCB2A8C49031A8B3",
        "6BFB914FD07EAE6B",
        "E037830E8389F27B025A2D6527E79D01",
    ),
    (
        "F7FB",
        "91945D3F4DCBEE0BF45EF52255F095A4",
        "BECAF043B0A23D843194BA972C66DEBD",
        "FA3BFD4806EB53FA",
        "19DD5C4C9331049D0BDAB0277408F67967E5",
    ),
    (
        "1A47CB4933",
        "01F74AD64077F2E704C0F60ADA3DD523",
        "70C3DB4F0D26368400A10ED05D2BFF5E",
        "234A3463C1264AC6",
        "D851D5BAE03A59F238A23E39199DC9266626C40F80",
    ),
    (
        "481C9E39B1",
        "D07CF6CBB7F313BDDE66B727AFD3C5E8",
        "8408DFFF3C1A2B1292DC199E46B7D617",
        "33CCE2EABFF5A79D",
        "632A9D131AD4C168A4225D8E1FF755939974A7BEDE",
    ),
    (
        "40D0C07DA5E4",
        "35B6D0580005BBC12B0587124557D2C2",
        "FDB6B06676EEDC5C61D74276E1F8E816",
        "AEB96EAEBE2970E9",
        "071DFE16C675CB0677E536F73AFE6A14B74EE49844DD",
    ),
    (
        "4DE3B35C3FC039245BD1FB7D",
        "BD8E6E11475E60B268784C38C62FEB22",
        "6EAC5C93072D8E8513F750935E46DA1B",
        "D4482D1CA78DCE0F",
        "835BB4F15D743E350E728414ABB8644FD6CCB86947C5E10590210A4F",
    ),
    (
        "8B0A79306C9CE7ED99DAE4F87F8DD61636",
        "7C77D6E813BED5AC98BAA417477A2E7D",
        "1A8C98DCD73D38393B2BF1569DEEFC19",
        "65D2017990D62528",
        "02083E3979DA014812F59F11D52630DA30137327D10649B0AA6E1C181DB617D7F2",
    ),
    (
        "1BDA122BCE8A8DBAF1877D962B8592DD2D56",
        "5FFF20CAFAB119CA2FC73549E20F5B0D",
        "DDE59B97D722156D4D9AFF2BC7559826",
        "54B9F04E6A09189A",
        "2EC47B2C4954A489AFC7BA4897EDCDAE8CC33B60450599BD02C96382902AEF7F832A",
    ),
    (
        "6CF36720872B8513F6EAB1A8A44438D5EF11",
        "A4A4782BCFFD3EC5E7EF6D8C34A56123",
        "B781FCF2F75FA5A8DE97A9CA48E522EC",
        "899A175897561D7E",
        "0DE18FD0FDD91E7AF19F1D8EE8733938B1E8E7F6D2231618102FDB7FE55FF1991700",
    ),
    (
        "CA40D7446E545FFAED3BD12A740A659FFBBB3CEAB7",
        "8395FCF1E95BEBD697BD010BC766AAC3",
        "22E7ADD93CFC6393C57EC0B3C17D6B44",
        "126735FCC320D25A",
        "CB8920F87A6C75CFF39627B56E3ED197C552D295A7CFC46AFC253B4652B1AF3795B124AB6E",
    ),
]


@pytest.mark.parametrize(("message", "key", "nonce", "header", "expected"), PAPER_VECTORS)
def test_paper_vectors(message: str, key: str, nonce: str, header: str, expected: str) -> None:
    """Encrypting gives the paper's ciphertext and tag; decrypting gives the message back."""
    message_, key_, nonce_, header_ = (bytes.fromhex(x) for x in (message, key, nonce, header))
    ciphertext, tag = eax_encrypt(key_, nonce_, message_, header_)
    assert bytes.fromhex(expected) == ciphertext + tag
    assert message_ == eax_decrypt(key_, nonce_, ciphertext, tag, header_)


@pytest.mark.parametrize("seed", range(8))
def test_random_inputs_agree_with_pycryptodome(seed: int) -> None:
    """Random keys of every size, nonces, headers and lengths around block boundaries."""
    rng = random.Random(seed)
    for size in (0, 1, 15, 16, 17, 31, 32, 33, rng.randrange(34, 5000)):
        key = os.urandom(rng.choice((16, 24, 32)))
        nonce = os.urandom(rng.choice((1, 8, 12, 16, 17, 40)))
        header = os.urandom(rng.choice((0, 1, 16, 33)))
        message = os.urandom(size)
        tag_size = rng.choice((4, 12, 16))
        reference = AES.new(key, AES.MODE_EAX, nonce=nonce, mac_len=tag_size)
        reference.update(header)
        expected = reference.encrypt_and_digest(message)
        assert expected == eax_encrypt(key, nonce, message, header, tag_size=tag_size)
        assert message == eax_decrypt(key, nonce, *expected, header)


@pytest.mark.parametrize("low_bits", [2**32 - 2, 2**64 - 2])
def test_counter_carries_over_the_whole_block(low_bits: int) -> None:
    """EAX's counter is all 128 bits (unlike GCM's 32): a carry must reach the high half."""
    key = os.urandom(16)
    counter = ((0xA5 << 120) | low_bits).to_bytes(16, "big")
    message = os.urandom(16 * 5)
    reference = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=counter)
    assert reference.encrypt(message) == _eax._ctr(key, counter, message)


def test_bad_tag_is_refused_before_any_decryption(monkeypatch: pytest.MonkeyPatch) -> None:
    key, nonce = os.urandom(32), os.urandom(16)
    ciphertext, tag = eax_encrypt(key, nonce, b"secret rows")

    def no_decryption(*args: object) -> bytes:
        raise AssertionError("decrypted before the tag was checked")

    monkeypatch.setattr(_eax, "_ctr", no_decryption)
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    with pytest.raises(InvalidTag):
        eax_decrypt(key, nonce, ciphertext, flipped)
    with pytest.raises(InvalidTag):
        eax_decrypt(key, nonce, bytes([ciphertext[0] ^ 0x80]) + ciphertext[1:], tag)
    with pytest.raises(InvalidTag):
        eax_decrypt(key, nonce, ciphertext, tag, b"associated data that was not there")


@pytest.mark.parametrize(
    ("key", "nonce", "tag_size"),
    [(bytes(15), b"n", 16), (bytes(16), b"", 16), (bytes(16), b"n", 0), (bytes(16), b"n", 17)],
)
def test_misuse_raises_value_error(key: bytes, nonce: bytes, tag_size: int) -> None:
    with pytest.raises(ValueError, match=r"key|nonce|tag"):
        eax_encrypt(key, nonce, b"", tag_size=tag_size)
