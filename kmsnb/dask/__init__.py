"""Encrypted Parquet datasets for Dask: one envelope-encrypted file per partition.

::

    import kmsnb.dask
    kmsnb.dask.to_parquet(ddf, "sales.kmsds", "alias/Apollo/WorkKey", kms="aliyun:cn-hangzhou")
    ddf = kmsnb.dask.read_parquet("sales.kmsds", kms="aliyun:cn-hangzhou")

Works on ``dask.distributed`` and on Dask's default (threaded) scheduler. A dataset is a
directory holding one *generation* of files and a manifest that names it::

    _kmsnb_manifest.json           written last: names the generation, lists its files
    gen-<dataset id>/              the generation (one per write)
        part.00000.parquet.kms     one partition: Parquet, envelope-encrypted (kmsnb format)
        part.00001.parquet.kms     ... each under its own data key
        _meta.parquet.kms          the Dask meta (an empty frame: column names and dtypes),
                                   encrypted with the same master key

The manifest is specified in ``docs/dask-dataset.md`` (its fields, format versions 1 and
2, and how a reader validates it). **It holds no secret and no column name**: the schema
lives in the encrypted ``_meta.parquet.kms``. **Binding**: every file's encryption context
is the caller's plus ``kmsnb.dataset``, ``kmsnb.parts`` and ``kmsnb.part``, authenticated
in its header and by the KMS, so a part swapped, taken from another dataset or dropped
with a rewritten manifest is refused although the manifest is not signed.

**Secrets stay out of the task graph.** Tasks carry the KMS as a URI, the key id, the
encryption context and the dataset's layout; each worker process connects to the KMS
itself and asks it for a fresh data key per partition (:mod:`._kms_ref`). A client object
passed as ``kms=`` cannot be shipped to other processes: it works only with Dask's
in-process schedulers.

**Atomicity.** Each write makes a new generation; the manifest, written last and replaced
by a rename, switches the dataset in one step, so the path holds the old dataset whole or
the new one whole whatever happens (``kill -9``, a full disk, a KMS outage halfway); the
old generation and leftovers of killed writes are removed after (:mod:`._generations`).
A reader already reading the old dataset when it was replaced fails with
:class:`~kmsnb.errors.IntegrityError`; it never mixes parts.

The package, like Dask's own ``io/parquet``: ``_manifest`` (the wire structure and the
binding), ``_graph`` (:func:`to_parquet`, :func:`read_parquet`: planning on the client,
one task per partition), ``_partitions`` (what a task does with one file),
``_generations`` (the directory on disk, the switch, the sweep) and ``_kms_ref`` (how a
task reaches the KMS).
"""

from __future__ import annotations

try:
    import dask.dataframe  # noqa: F401  (fails here, with the advice, when missing)
    import pyarrow  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "kmsnb.dask needs dask[dataframe] and pyarrow; did you forget to install kmsnb[dask]?"
    ) from error

from kmsnb.dask._graph import read_parquet, to_parquet
from kmsnb.dask._manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    META_NAME,
    RESERVED_CONTEXT_PREFIX,
    Manifest,
    PartInfo,
    read_manifest,
)

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "META_NAME",
    "RESERVED_CONTEXT_PREFIX",
    "Manifest",
    "PartInfo",
    "read_manifest",
    "read_parquet",
    "to_parquet",
]
