"""Output guard: inputs and user files are never overwritten; output names never collide."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellrobust._guard import (
    MARKER,
    check_output,
    foreign_entries,
    read_marker,
    record_outputs,
    unique_output_names,
)
from cellrobust._io import write_text
from cellrobust._validation import InputError

OUTPUTS = ("results.csv", "best.pt", "report.html", "x.tif")


def guarded_write(out: Path, *, overwrite: bool = False) -> None:
    """What every stage does: check, write its outputs, record them."""
    check_output(out, owner="stage", overwrite=overwrite, reuse=True)
    for name in OUTPUTS:
        write_text(out / name, "cellrobust output")
    record_outputs(out, owner="stage", files=[out / n for n in OUTPUTS])


_names = st.one_of(st.sampled_from(OUTPUTS + (MARKER, "cells", ".hidden")),
                   st.text(st.characters(whitelist_categories=("L", "N"),
                                         whitelist_characters="._-"), min_size=1, max_size=12))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(_names.filter(lambda n: n not in (".", "..")),
                             st.binary(max_size=64), min_size=1, max_size=5))
def test_user_files_survive_a_guarded_write(tmp_path_factory, files):
    out = tmp_path_factory.mktemp("out")
    for name, data in files.items():
        (out / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="holds files cellrobust did not write|results of a"):
        guarded_write(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_own_run_is_reused_and_new_user_files_block_it(tmp_path: Path):
    out = tmp_path / "run"
    guarded_write(out)
    assert read_marker(out)["stage"] == "stage" and foreign_entries(out) == []
    guarded_write(out)  # the stage's own earlier run: allowed with reuse
    with pytest.raises(InputError, match="holds an earlier 'stage' run"):
        check_output(out, owner="stage")
    with pytest.raises(InputError, match="holds the results of a 'stage' run"):
        check_output(out, owner="train")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"did not write \('notes.txt'\)"):
        guarded_write(out)
    guarded_write(out, overwrite=True)  # explicit: writes its files, never deletes others
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("case", ["same", "inside", "contains", "file_in_out"])
def test_output_overlapping_an_input_is_refused(tmp_path: Path, case: str):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cell.tif").write_bytes(b"image")
    out, inputs = {"same": (data, [data]), "inside": (data / "res", [data]),
                   "contains": (tmp_path, [data]),
                   "file_in_out": (data, [data / "cell.tif"])}[case]
    with pytest.raises(InputError, match="output .*(is the input|inside the input|contains)"):
        check_output(out, inputs=inputs, owner="corrupt")
    if case == "same":  # an input is protected even when overwriting is allowed
        with pytest.raises(InputError, match="is the input"):
            check_output(out, inputs=inputs, owner="corrupt", overwrite=True)
    assert (data / "cell.tif").read_bytes() == b"image"


def test_single_file_outputs(tmp_path: Path):
    image = tmp_path / "in.tif"
    image.write_bytes(b"image")
    with pytest.raises(InputError, match="is the input"):
        check_output(image, inputs=[image], owner="gallery", kind="file", overwrite=True)
    with pytest.raises(InputError, match="already exists"):
        check_output(image, owner="gallery", kind="file")
    assert check_output(image, owner="gallery", kind="file", overwrite=True) == image.resolve()
    assert check_output(tmp_path / "new.png", owner="gallery", kind="file").name == "new.png"
    with pytest.raises(InputError, match="is an existing file, expected a folder"):
        check_output(image, owner="sweep")


def test_unique_output_names(tmp_path: Path):
    for rel in ("a/x.tif", "b/x.tif", "b/x.png", "b/y.tif", "c/Y.tif"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    paths = [tmp_path / r for r in ("a/x.tif", "b/x.tif", "b/x.png")]
    assert unique_output_names(paths) == ["a__x", "b__x_tif", "b__x_png"]
    names = unique_output_names([tmp_path / "b/y.tif", tmp_path / "c/Y.tif"])
    assert len({n.casefold() for n in names}) == 2  # case-insensitive file systems too
    assert unique_output_names([tmp_path / "b/y.tif", tmp_path / "a/x.tif"]) == ["y", "x"]
    with pytest.raises(InputError, match="would all be written as 'x'"):
        unique_output_names(paths, on_collision="error")
    with pytest.raises(InputError, match="given twice"):
        unique_output_names([paths[0], tmp_path / "a" / ".." / "a" / "x.tif"])


def test_a_study_file_naming_python_code_does_not_run_it(tmp_path, capsys):
    """A shared study.json (or --config file) naming a py: segmenter imports nothing unless
    the person starting the run allows code on the command line."""
    from cellrobust.cli import main

    marker = tmp_path / "ran.txt"
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\ndef build():\n    raise SystemExit(9)\n")
    config = tmp_path / "study.yaml"
    config.write_text("models: ['x=py:evil_module:build']\nrecipes: []\n"
                      "artefacts: [gaussian_noise]\nn_eval_frames: 1\npatch_size: 64\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        code = main(["study", "--config", str(config), "--out", str(tmp_path / "out"),
                     "--quiet"])
    finally:
        sys.path.remove(str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "runs Python code" in err and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "out").exists()
