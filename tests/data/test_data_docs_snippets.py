"""The Python snippets of docs/data.md run as written (from the repository root)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "data.md"


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_docs_have_snippets():
    assert len(_snippets()) >= 2


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_data_doc_snippet_runs(index: int, shared_data: Path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the snippets use ../shared/data paths
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(_snippets()[index], f"{DOC}:snippet{index}", "exec"), namespace)
    if "record" in namespace:  # the split snippet's stated results
        assert (namespace["record"]["method"], len(namespace["train"]),
                len(namespace["val"])) == ("contiguous", 4, 1)
        assert namespace["polarity"] == "bright" and len(namespace["val_psc"]) == 16
    if "patches" in namespace:
        assert [p.name for p in namespace["patches"]][0] == "train/t150/p0"
        assert namespace["sample"].image.shape == (576, 720)
