"""The decorator of the compiled (Numba) kernels: `njit(nogil=True)` with an on-disk cache
of the machine code, so a Spark Python worker loads the kernels (well under a second)
instead of compiling them (about eight seconds on tier L's first batch, per worker).

Numba's own cache keys a function by its file's path and time stamp, which does not work
for the job code: it travels as a zip that Spark copies to a new directory for every
application, so nothing would ever be found again. Here the key is the source text of
every kernel module (a kernel inlines helpers from the others), read through the module's
loader, zip or not; the cache lives in `NIGHTSHELF_KERNEL_CACHE` (default: a directory of
this user's in the system's temporary directory). Where that directory cannot be written,
the kernels are compiled as without a cache. Numba's index also checks its own version
and the machine's CPU, so a cache is never used by other code or on another machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile

import numba
from numba.core import caching

KERNEL_MODULES = ("training.topk", "training.rowwise")
CACHE_ENV = "NIGHTSHELF_KERNEL_CACHE"


def _sources_digest() -> str:
    h = hashlib.sha256()
    for name in KERNEL_MODULES:
        spec = importlib.util.find_spec(name)
        h.update((spec.loader.get_source(name) or "").encode())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        tempfile.gettempdir(), f"nightshelf-kernels-{os.getuid()}")


class _SourceLocator(caching._CacheLocator):
    """Cache files of a kernel under `cache_dir()`, stamped by the kernels' sources."""

    _digest: str | None = None

    def __init__(self, py_func, py_file):
        if _SourceLocator._digest is None:
            _SourceLocator._digest = _sources_digest()
        self._lineno = py_func.__code__.co_firstlineno
        self._path = os.path.join(cache_dir(), py_func.__module__)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return _SourceLocator._digest

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [_SourceLocator]


class _Cache(caching.FunctionCache):
    _impl_class = _Impl


def kernel(**options):
    """`numba.njit(nogil=True, **options)`, its machine code cached as above."""
    def wrap(fn):
        dispatcher = numba.njit(nogil=True, **options)(fn)
        try:
            dispatcher._cache = _Cache(dispatcher.py_func)
        except RuntimeError:  # no writable cache directory: compiled on first use
            pass
        return dispatcher
    return wrap
