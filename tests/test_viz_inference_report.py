import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lisalib.reasonseg.masks import centre_point
from lisalib.notebook.report import REPORT_ENV, read_records, record
from lisalib.notebook.main_job import discover, summary_markdown
from lisalib.world.scenes import generate_scene
from lisalib.notebook.viz import overlay_masks, show_gallery

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_overlay_blends_only_inside_the_mask():
    image = Image.new("RGB", (4, 3), (100, 100, 100))
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    out = overlay_masks(image, mask, alpha=0.5, colours=[(200, 0, 0)])
    assert out.dtype == np.uint8 and out.shape == (3, 4, 3)
    assert tuple(out[1, 2]) == (150, 50, 50)
    assert (out[0, 0] == 100).all()
    assert np.array_equal(overlay_masks(image, mask, alpha=0.0), np.asarray(image))


def test_overlay_rejects_bad_input():
    image = Image.new("RGB", (4, 3))
    with pytest.raises(ValueError, match="does not match"):
        overlay_masks(image, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="alpha"):
        overlay_masks(image, np.zeros((3, 4), bool), alpha=2)


def test_gallery_draws_every_scene():
    scenes = [generate_scene((0, i)) for i in range(3)]
    fig = show_gallery(scenes, columns=2, titles=["a", "b", "c"])
    assert len([ax for ax in fig.axes if ax.images]) == 3


def test_centre_point_is_inside_even_for_concave_masks():
    mask = np.zeros((20, 20), bool)
    mask[2:18, 2:6] = True  # an L shape: its centroid lies outside
    mask[14:18, 2:18] = True
    x, y = centre_point(mask)
    assert mask[int(y), int(x)]


def test_record_is_a_no_op_without_the_runner(monkeypatch, tmp_path):
    monkeypatch.delenv(REPORT_ENV, raising=False)
    assert record("x", 3) == 3
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(path))
    record("count", np.int64(7), unit="params")
    record("ratio", 1.23456789)
    assert [(r["name"], r["value"]) for r in read_records(path)] == [("count", 7), ("ratio", 1.235)]
    assert read_records(tmp_path / "missing.jsonl") == []


def test_summary_lists_status_and_figures():
    results = [{"notebook": "00_tour.ipynb", "ok": True, "error": None, "seconds": 3.5,
                "figures": [{"name": "acc", "value": 0.95, "unit": "", "note": "held-out"}]},
               {"notebook": "01_x.ipynb", "ok": False, "error": "AssertionError", "seconds": 1.0, "figures": []}]
    text = summary_markdown(results, "tiny")
    assert "| 00_tour.ipynb | ok | 3.5 |" in text and "FAILED: AssertionError" in text
    assert "| acc | 0.95 |  | held-out |" in text


def test_discover_finds_numbered_notebooks_in_order():
    found = discover(NOTEBOOKS)
    assert found and [p.name for p in found] == sorted(p.name for p in found)
    assert found[0].name.startswith("00_")
    assert [p.name for p in discover(NOTEBOOKS, only=["01"])] == ["01_parameter_accounting.ipynb"]
    with pytest.raises(SystemExit):
        discover(NOTEBOOKS, only=["99"])


def test_main_job_takes_the_notebook_folder_from_the_command_line(tmp_path, monkeypatch, capfd):
    """No editable install needed: the folder is an argument (default ./notebooks), and no kernel logs
    "Kernel is running over TCP without encryption"."""
    import nbformat

    from lisalib.notebook.main_job import main

    folder = tmp_path / "elsewhere"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), folder / "00_one.ipynb")
    monkeypatch.chdir(tmp_path)
    assert main(["--notebooks", str(folder), "--out", "out"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["notebook"] for r in summary] == ["00_one.ipynb"] and summary[0]["ok"]
    executed = nbformat.read(tmp_path / "out" / "notebooks" / "00_one.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    with pytest.raises(SystemExit):  # ./notebooks does not exist here
        main(["--out", "out2"])


def test_runner_executes_a_notebook_and_collects_its_figures(tmp_path, monkeypatch):
    """A two-cell notebook in its own folder: the kernel's cwd differs from ours, as in the real runs."""
    import nbformat

    from lisalib.notebook.main_job import execute

    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from lisalib.notebook.report import record\nrecord('answer', 42, unit='things')"),
        nbformat.v4.new_code_cell("import os\nprint(os.environ['LISALIB_PROFILE'])"),
    ])
    nbformat.write(nb, folder / "00_demo.ipynb")
    monkeypatch.chdir(tmp_path)
    result = execute(folder / "00_demo.ipynb", tmp_path / "out", "tiny", timeout=120)
    assert result["ok"], result["error"]
    assert result["figures"] == [{"name": "answer", "value": 42, "unit": "things", "note": ""}]
    executed = nbformat.read(result["executed_copy"], as_version=4)
    assert executed.cells[1].outputs[0]["text"].strip() == "tiny"

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), folder / "01_bad.ipynb")
    failed = execute(folder / "01_bad.ipynb", tmp_path / "out", "tiny", timeout=120)
    assert not failed["ok"] and failed["error"].startswith("ZeroDivisionError")

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]),
                   folder / "02_slow.ipynb")
    slow = execute(folder / "02_slow.ipynb", tmp_path / "out", "tiny", timeout=2)  # recorded, not raised
    assert slow["seconds"] < 25
    assert not slow["ok"] and slow["error"].startswith("CellTimeoutError")


def test_pca_rgb_takes_features_that_numpy_would_refuse():
    """Chapter 2 on a GPU runtime: .numpy() fails on CUDA tensors and on tensors that require grad."""
    import torch

    from lisalib.notebook.viz import pca_rgb

    features = torch.randn(16, 8, dtype=torch.bfloat16, requires_grad=True)
    rgb = pca_rgb(features, 4)
    assert rgb.shape == (4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_short_answers_are_normalised_before_matching():
    from lisalib.zoo.inference import answers_match, normalize_answer

    assert normalize_answer("Two.") == "2" and answers_match("The circle.", "circle")
    assert answers_match("Top left", "top-left") and answers_match("Yes, it is.", "yes, it is")
    assert not answers_match("There are two shapes.", "two")  # a sentence is not a short answer


def test_answer_questions_appends_the_suffix_and_pads_left(monkeypatch):
    from lisalib.constants import chat_prompt
    from lisalib.world import generate_scenes
    from lisalib.zoo import load_vlm
    from lisalib.zoo.inference import answer_questions

    model, processor = load_vlm("tiny-llava")
    processor.tokenizer.padding_side = "right"  # a real checkpoint may ship either
    seen = []
    monkeypatch.setattr("lisalib.zoo.inference.chat_prompt", lambda q: seen.append(q) or chat_prompt(q))
    scene = generate_scenes(1, seed=3)[0]
    answer_questions(model, processor, [scene.render()] * 2, ["how many shapes are there?", "what color is it?"],
                     suffix="Answer the question using a single word or phrase.")
    assert processor.tokenizer.padding_side == "left"
    assert seen == [f"{q}\nAnswer the question using a single word or phrase."
                    for q in ("how many shapes are there?", "what color is it?")]
