"""The kmsnb file format, v1 (private: use :mod:`kmsnb.envelope`).

``header`` parses and serializes the envelope header; ``stream`` runs the payload, C2SP
chunked encryption from ``cryptography.cobblestone``. The spec is ``docs/FORMAT.md``.
"""
