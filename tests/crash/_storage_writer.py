"""One writer for test_kill_storage: streams SIZE deterministic bytes to an s3:// URL through
kmsnb.storage.open_output, printing a line each time a part's worth has been written.

The suite forks it from a zygote that has imported s3fs (``{"kind": "storage"}``, see
``_zygote.py``): importing botocore costs about a second, which twenty rounds per test
would pay again and again. Run alone: ``python _storage_writer.py URL ENDPOINT SEED SIZE
PART_SIZE overwrite|create``.
"""

from __future__ import annotations

import sys

from kmsnb.storage import open_output

STEP = 256 * 1024


def payload(seed: int, size: int) -> bytes:
    """The bytes of round ``seed`` (the test recomputes them to compare)."""
    import random

    return random.Random(seed).randbytes(size)


def write(url: str, endpoint: str, seed: int, size: int, part_size: int, mode: str) -> int:
    """Write round ``seed``'s bytes to ``url``; a line per part, then ``committed``."""
    data = payload(seed, size)
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    written = 0
    with open_output(
        url, overwrite=mode == "overwrite", storage_options=options, part_size=part_size
    ) as output:
        for start in range(0, len(data), STEP):
            written += output.write(data[start : start + STEP])
            if written % part_size < STEP:
                print(f"part {written // part_size}", flush=True)
    print("committed", flush=True)
    return 0


def main() -> int:
    url, endpoint, seed, size, part_size, mode = sys.argv[1:7]
    return write(url, endpoint, int(seed), int(size), int(part_size), mode)


if __name__ == "__main__":
    sys.exit(main())
