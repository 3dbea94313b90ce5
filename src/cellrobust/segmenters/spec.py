"""The segmenter grammar, one for every command: ``[NAME=][KIND:]TARGET[,KEY=VALUE...]``.

Examples::

    dog_otsu                              a baseline (name: dog_otsu)
    dog=dog_otsu,sigma_low=5              baseline with an option, named 'dog'
    runs/a/best.pt                        a cellrobust checkpoint (name: a)
    mine=onnx:export/model.onnx,multiple=16
    zoo=bioimageio:models/psc/rdf.yaml
    cp=cellpose:cyto3,diameter=13,channel=0
    sd=stardist:models/2D_psc
    ext=py:mymodels:build,width=32        a Python factory (runs code: needs allowing)

``KIND`` may be left out when the target says what it is: a baseline name, or a file or folder
that one kind recognises (:func:`cellrobust.segmenters.registry.detect_kind`). ``KEY=VALUE``
options are parsed by :func:`cellrobust._validation.parse_scalar` (``5e-4`` is a float, ``true``
a bool); which keys a kind accepts is listed by ``cellrobust models``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellrobust._validation import InputError, parse_scalar

__all__ = ["SegmenterSpec", "default_name", "parse_spec"]

_NAME = re.compile(r"^[A-Za-z0-9_.+\- ]+$")
_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KIND = re.compile(r"^([a-z][a-z0-9_]*):(.*)$")
#: File stems that say nothing about the model: the folder names it instead.
_GENERIC_STEMS = ("best", "last", "model", "weights", "rdf", "checkpoint")


@dataclass(frozen=True)
class SegmenterSpec:
    """A parsed segmenter spec.

    Attributes
    ----------
    name : str
        Display name in tables and figures.
    spec : str
        The text after ``NAME=`` (kind, target and options as written): the canonical form,
        recorded in configs and used in sweep fingerprints.
    kind : str or None
        Explicit kind prefix (``onnx``, ...), None when the target is to be detected.
    target : str
        Baseline name, file or folder path, pretrained model name, or ``module:attr``.
    options : dict
        Parsed ``KEY=VALUE`` options.
    """

    name: str
    spec: str
    kind: str | None = field(default=None, compare=False)
    target: str = field(default="", compare=False)
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.target:  # built from (name, spec) only: parse the spec
            kind, target, options = _split_body(self.spec)
            object.__setattr__(self, "kind", kind)
            object.__setattr__(self, "target", target)
            object.__setattr__(self, "options", options)

    def __str__(self) -> str:
        return f"{self.name}={self.spec}"


def parse_spec(text: str) -> SegmenterSpec:
    """Parse ``[NAME=][KIND:]TARGET[,KEY=VALUE...]`` (see the module docstring).

    Raises
    ------
    InputError
        Empty spec, empty name or target, or a malformed option.
    """
    text = str(text).strip()
    if not text:
        raise InputError("segmenter: empty spec; give NAME=SPEC, e.g. mine=runs/a/best.pt or "
                         "dog_otsu (see 'cellrobust models')")
    name, body = None, text
    head, sep, rest = text.partition("=")
    if sep and "," not in head and _NAME.match(head) and rest.strip():
        name, body = head.strip(), rest.strip()
    kind, target, options = _split_body(body)
    return SegmenterSpec(name or default_name(kind, target), body, kind, target, options)


def _split_body(body: str) -> tuple[str | None, str, dict[str, Any]]:
    parts = body.split(",")
    first = 1
    while first < len(parts) and not _OPTION.match(parts[first].strip()):
        first += 1  # a comma inside a path: keep it in the target
    target = ",".join(parts[:first]).strip()
    options: dict[str, Any] = {}
    for part in parts[first:]:
        key, _, value = part.strip().partition("=")
        if not _OPTION.match(part.strip()):
            raise InputError(f"segmenter {body!r}: option {part!r} is not KEY=VALUE; separate "
                             "options with commas, e.g. cp=cellpose:cyto3,diameter=13")
        options[key] = parse_scalar(value)
    kind = None
    match = _KIND.match(target)
    if match and not re.match(r"^[A-Za-z]:[\\/]", target):  # not a Windows drive letter
        kind, target = match.group(1), match.group(2).strip()
    if not target:
        raise InputError(f"segmenter {body!r}: nothing after '{kind}:'; give a file, folder "
                         "or model name")
    return kind, target, options


def default_name(kind: str | None, target: str) -> str:
    """Display name of an unnamed spec: the baseline or pretrained name, the ``py:`` factory's
    module and attribute, or the model file's stem (its folder when the stem is generic)."""
    if kind == "py":
        module, _, attr = target.rpartition(":")
        return f"{module.rsplit('.', 1)[-1]}.{attr}" if module else attr
    path = Path(target)
    stem = path.stem if path.suffix else path.name
    if stem.lower() in _GENERIC_STEMS or stem.endswith(".bioimageio"):
        stem = path.parent.name or stem.removesuffix(".bioimageio")
    return stem or target
