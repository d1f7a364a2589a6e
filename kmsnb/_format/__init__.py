"""The kmsnb file format, v1 (private: use :mod:`kmsnb.envelope`).

``header`` assembles, authenticates and parses the envelope header, over the field bounds
and encodings of ``header_fields``; ``stream`` reads the payload, C2SP chunked encryption
from ``cryptography.cobblestone``, which ``writer`` writes; ``payload`` holds the sizes and
the file-object helpers both share; ``seekable`` reads the payload at any offset. The
spec is ``docs/FORMAT.md``.
"""
