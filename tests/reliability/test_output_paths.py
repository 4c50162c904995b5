"""Issue 24 item 3: every command that writes a file or a folder refuses an output that is,
holds or lies in one of its inputs, before it opens anything (exit 2, inputs untouched).

`petal papers import F --rejects F` was fixed alone last round; `petal review apply F
--rejects F` still emptied the decision file. One guard (`petal_labeller.outputs`) now
serves every writing command, each tried here with four spellings of the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.outputs import OutputPathError, refuse_inputs_as_outputs

SPELLINGS = ["same", "dot", "hardlink", "symlink"]


def _spell(path: Path, spelling: str) -> Path:
    """Another name for `path`: itself, through `./`, a hard link or a symlink."""
    if spelling == "same":
        return path
    if spelling == "dot":
        return path.parent / "." / ".." / path.parent.name / path.name
    other = path.with_name(f"{spelling}-{path.name}")
    if spelling == "hardlink":
        os.link(path, other)
    else:
        other.symlink_to(path)
    return other


def _inputs(tmp_path: Path) -> dict[str, Path]:
    """Small input files; their bytes are checked after each refused command."""
    files = {
        "papers": tmp_path / "papers.jsonl",
        "taxonomy": tmp_path / "taxonomy.json",
        "model": tmp_path / "model.tar.gz",
        "decisions": tmp_path / "decisions.jsonl",
    }
    for name, path in files.items():
        path.write_bytes(f"{name}: keep me\n".encode())
    return files


def _commands(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each writing command over `files` with `out` as its output."""
    f = {k: str(v) for k, v in files.items()}
    return {
        "papers import --rejects": ["papers", "import", f["papers"], "--rejects", str(out)],
        "review apply --rejects": ["review", "apply", f["decisions"], "--rejects", str(out)],
        "model predict --output": [
            "model", "predict", "--model", f["model"], "--papers", f["papers"],
            "--output", str(out),
        ],
    }  # fmt: skip


CLASHES = [
    ("papers import --rejects", "papers"),
    ("review apply --rejects", "decisions"),
    ("model predict --output", "papers"),
    ("model predict --output", "model"),
]


def _run(args: list[str]) -> tuple[int, str]:
    # An unreachable database: the guard must refuse before any connection is tried.
    dead = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    result = CliRunner().invoke(main, ["--database-url", dead, *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize(("command", "target"), CLASHES)
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(
    tmp_path, command, target, spelling
):
    files = _inputs(tmp_path)
    before = {name: path.read_bytes() for name, path in files.items()}
    out = _spell(files[target], spelling)
    code, output = _run(_commands(files, out)[command])
    assert code == 2, output
    assert "would overwrite" in output and "cannot connect" not in output
    assert {name: path.read_bytes() for name, path in files.items()} == before


def test_predict_refuses_an_input_where_its_partial_file_goes(tmp_path):
    files = _inputs(tmp_path)
    partial = tmp_path / "out.jsonl.partial"
    os.link(files["papers"], partial)
    args = ["model", "predict", "--model", str(files["model"]), "--papers", str(partial)]
    code, output = _run([*args, "--output", str(tmp_path / "out.jsonl")])
    assert code == 2 and "would overwrite" in output
    assert partial.read_bytes() == b"papers: keep me\n"


def test_predict_refuses_an_output_inside_an_unpacked_model_folder(tmp_path):
    files = _inputs(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "labels.json").write_text("[]")
    args = ["model", "predict", "--model", str(model), "--papers", str(files["papers"])]
    code, output = _run([*args, "--output", str(model / "labels.json")])
    assert code == 2 and "would overwrite --model" in output
    assert (model / "labels.json").read_text() == "[]"


def test_train_refuses_an_output_folder_whose_artefact_or_report_is_an_input(tmp_path):
    out = tmp_path / "out"
    (out / "evaluation").mkdir(parents=True)
    papers = out / "model.tar.gz"
    papers.write_text("papers: keep me\n")
    taxonomy = out / "evaluation" / "taxonomy.json"
    taxonomy.write_text("[]")
    code, output = _run(
        ["model", "train", "--papers", str(papers), "--taxonomy", str(taxonomy),
         "--output", str(out)]
    )  # fmt: skip
    assert code == 2 and "would overwrite --papers" in output
    assert papers.read_text() == "papers: keep me\n" and taxonomy.read_text() == "[]"


def test_evaluate_refuses_a_report_folder_holding_an_input(tmp_path):
    files = _inputs(tmp_path)
    args = ["model", "evaluate", "--model", str(files["model"]), "--papers", str(files["papers"])]
    code, output = _run([*args, "--report", str(tmp_path)])
    assert code == 2 and "would overwrite" in output


def test_distinct_paths_pass_and_the_library_check_names_both():
    refuse_inputs_as_outputs([("--output", Path("/nonexistent/a"))], [("--papers", Path("/b"))])
    with pytest.raises(OutputPathError, match="--output /tmp would overwrite --papers"):
        refuse_inputs_as_outputs([("--output", Path("/tmp"))], [("--papers", Path("/tmp/x"))])
