"""Build script: fastzk's compiled core is optional.

The Cython extensions listed in ``EXTENSIONS`` are built from ``src/``.
When Cython or a C compiler is missing, or a build fails, a warning is
printed and fastzk installs as pure Python (the ``fastzk._codec``-style
fallbacks stand in).  Environment variables, read at build time:

``FASTZK_NO_EXTENSIONS=1``
    skip the extensions altogether (pure-Python install).
``FASTZK_REQUIRE_EXTENSIONS=1``
    make any extension build failure fatal (for CI and wheel builds).
``FASTZK_LIMITED_API=1``
    compile against CPython's Limited API (stable ABI, Cython's
    ``CYTHON_LIMITED_API``), for one ``abi3`` wheel serving CPython
    ``LIMITED_API_MIN`` and every later version.  Not used for releases:
    it is slower, and ``src/_ccodec.pyx`` (with the ``src/codec/*.pxi``
    files it includes) uses CPython macros outside the Limited API
    (``PyBytes_AS_STRING``, ``PyList_SET_ITEM``, a direct ``tp_alloc``),
    so this build does not compile until they are replaced.

Cython compiler directives common to every module are in
``CYTHON_DIRECTIVES``; per-module ones (``boundscheck`` ...) belong in the
``# cython:`` header of each ``.pyx``.
"""

import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

#: The files ``src/_ccodec.pyx`` includes (its bodies, one job each).
CCODEC_INCLUDES = [
    "src/codec/primitives.pxi",
    "src/codec/encoders.pxi",
    "src/codec/decoders.pxi",
    "src/codec/sending.pxi",
    "src/codec/reader.pxi",
]

#: Extension modules: append other ``src/*.pyx`` modules here.  ``depends``
#: lists what a module includes or cimports, so that editing one of those
#: files rebuilds it.
EXTENSIONS = [
    Extension("fastzk._ccodec", ["src/_ccodec.pyx"],
              depends=CCODEC_INCLUDES + ["fastzk/protocol/constants.pxd"]),
]

CYTHON_DIRECTIVES = {"language_level": "3"}

#: Oldest CPython an abi3 build runs on (``FASTZK_LIMITED_API=1``): the
#: buffer protocol the frame reader uses joined the Limited API in 3.11.
LIMITED_API_MIN = (3, 11)


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def _warn(message):
    bar = "*" * 75
    sys.stderr.write("\n%s\nWARNING: %s\n%s\n\n" % (bar, message, bar))


class OptionalBuildExt(build_ext):
    """Cythonize and compile the extensions, tolerating failure.

    A failed extension is left out (fastzk then runs on its pure-Python
    modules) unless ``FASTZK_REQUIRE_EXTENSIONS`` is set.
    """

    def finalize_options(self):
        # Translate .pyx to .c before setuptools inspects the extensions.
        dist = self.distribution
        if dist.ext_modules and not getattr(dist, "_fastzk_cythonized", False):
            dist._fastzk_cythonized = True
            try:
                dist.ext_modules = self._cythonize(dist.ext_modules)
            except Exception as exc:
                if _flag("FASTZK_REQUIRE_EXTENSIONS"):
                    raise
                _warn("Cython could not translate fastzk's extensions (%s); "
                      "installing the pure-Python implementation." % (exc,))
                dist.ext_modules = []
        super().finalize_options()

    def _cythonize(self, extensions):
        try:
            from Cython.Build import cythonize
        except ImportError:
            # No Cython: build from generated C sources if they were shipped.
            for ext in extensions:
                ext.sources = [
                    os.path.splitext(s)[0] + ".c" if s.endswith(".pyx") else s
                    for s in ext.sources
                ]
                missing = [s for s in ext.sources if not os.path.exists(s)]
                if missing:
                    raise RuntimeError("Cython is not installed and %s is "
                                       "missing" % ", ".join(missing))
            return extensions
        return cythonize(
            extensions,
            compiler_directives=CYTHON_DIRECTIVES,
            quiet=True,
        )

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # no compiler, missing headers, ...
            if _flag("FASTZK_REQUIRE_EXTENSIONS"):
                raise
            _warn("could not compile %s (%s); installing the pure-Python "
                  "implementation instead." % (ext.name, exc))


def _extensions():
    if _flag("FASTZK_NO_EXTENSIONS"):
        _warn("FASTZK_NO_EXTENSIONS is set: installing fastzk without its "
              "compiled extensions (pure Python).")
        return []
    if sys.platform == "win32" or sys.implementation.name != "cpython":
        _warn("fastzk's compiled extensions need CPython on a POSIX system; "
              "installing the pure-Python implementation.")
        return []
    if _flag("FASTZK_LIMITED_API"):
        return [_limited_api(ext) for ext in EXTENSIONS]
    return list(EXTENSIONS)


def _limited_api(ext):
    """``ext`` built for the stable ABI of CPython ``LIMITED_API_MIN``+."""
    major, minor = LIMITED_API_MIN
    version = "0x%02x%02x0000" % (major, minor)
    ext.py_limited_api = True
    ext.define_macros = list(ext.define_macros or []) + [
        ("Py_LIMITED_API", version),
        ("CYTHON_LIMITED_API", version),
    ]
    return ext


def _options():
    """The wheel tag of an abi3 build (``cp39-abi3``)."""
    if _flag("FASTZK_LIMITED_API") and not _flag("FASTZK_NO_EXTENSIONS"):
        return {"bdist_wheel": {"py_limited_api": "cp%d%d" % LIMITED_API_MIN}}
    return {}


setup(
    packages=find_packages(include=["fastzk", "fastzk.*"]),
    package_data={"fastzk": ["py.typed", "_ccodec.pyi"],
                  "fastzk.protocol": ["constants.pxd"]},
    include_package_data=False,
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
    options=_options(),
)
