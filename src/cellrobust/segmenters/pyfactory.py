"""``py:module:attr``: a Python callable that returns a segmenter (any model, any library).

``module`` is imported (from the installed packages and the working directory) and ``attr`` is
called with the spec's options as keyword arguments; it must return an object with
``segment(images) -> labels`` (see :class:`~cellrobust.segmenters.Segmenter`). This runs code,
so :func:`~cellrobust.segmenters.build_segmenter` refuses it unless code is allowed explicitly:
a spec read from a configuration file or a shared ``study.json`` never runs code by itself.
"""

from __future__ import annotations

import importlib

from cellrobust._validation import InputError

__all__ = ["KIND"]


def _build(spec):
    module, _, attr = spec.target.rpartition(":")
    if not module or not attr:
        raise InputError(f"segmenter {spec}: expected py:MODULE:FACTORY, e.g. "
                         "py:mymodels:build")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise InputError(f"segmenter {spec}: cannot import module {module!r} ({exc}); run from "
                         "the folder that holds it or put that folder on PYTHONPATH") from None
    except AttributeError:
        raise InputError(f"segmenter {spec}: module {module!r} has no {attr!r}") from None
    segmenter = factory(**spec.options)
    if getattr(segmenter, "name", None) in (None, "", "factory"):
        try:
            segmenter.name = spec.name
        except AttributeError:
            pass
    return segmenter


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="py", summary="a Python factory returning a segmenter (runs code)",
                target="MODULE:FACTORY (an installed module or a .py file in the working "
                       "directory)",
                options=None, requires=(), extra=None,
                example="ext=py:mymodels:build,width=32", build=_build, runs_code=True)


KIND = _kind()
