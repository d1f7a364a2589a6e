"""The version of kmsnb, in a module that imports nothing.

Faces and reports (``%kms version``, ``kmsnb --version``) import it from here rather than
``import kmsnb``, which would run the package's re-exports from below them.
"""

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
