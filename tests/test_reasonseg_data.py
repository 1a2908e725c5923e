import json

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from lisalib.reasonseg import (
    ReasonSegDataset,
    ReasonSegError,
    ReasonSegWarning,
    answer_templates,
    eval_answer,
    polygon_to_mask,
    question,
    read_annotation,
    read_sample,
)
from lisalib.reasonseg.dataset import collate_list, read_image
from lisalib.reasonseg.synth import (
    SPLITS,
    SynthSample,
    generate_split,
    main,
    mask_to_polygons,
    scene_seed,
    target_masks,
    write_split,
)
from lisalib.world.scenes import generate_scene

SQUARE = [[1, 1], [4, 1], [4, 4], [1, 4]]


def write(folder, name, shapes, text=("the thing",), is_sentence=False, size=(8, 6), raw=None, encoding="utf-8"):
    """An 8x6 (WxH) PNG plus its JSON; ``raw`` replaces the JSON text entirely."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{name}.png"
    Image.new("RGB", size, (10, 20, 30)).save(image)
    body = raw if raw is not None else json.dumps({"text": list(text), "is_sentence": is_sentence, "shapes": shapes},
                                                  ensure_ascii=False)
    (folder / f"{name}.json").write_bytes(body.encode(encoding) if isinstance(body, str) else body)
    return image


def shape(label, points):
    return {"label": label, "points": points, "shape_type": "polygon"}


# ----- prompts --------------------------------------------------------------------------------------
def test_prompts_and_answers():
    assert question("the red circle", False) == \
        "<image>\n What is the red circle in this image? Please output segmentation mask."
    assert question("which shape would roll?", True) == \
        "<image>\n which shape would roll? Please output segmentation mask."
    assert answer_templates()[2] == "Sure, it is <SEG>."
    assert answer_templates("[SEG]") == ["It is [SEG].", "Sure, [SEG].", "Sure, it is [SEG].",
                                         "Sure, the segmentation result is [SEG].", "[SEG]."]
    assert eval_answer() == "<SEG>." and eval_answer("[SEG]") == "[SEG]."


# ----- rasterisation --------------------------------------------------------------------------------
def test_polygon_includes_its_outline_and_truncates_points():
    expected = np.zeros((6, 8), bool)
    expected[1:5, 1:5] = True  # fill plus outline: the boundary rows/columns 1 and 4 are in
    assert np.array_equal(polygon_to_mask(SQUARE, 6, 8), expected)
    nudged = [[x + 0.9, y + 0.9] for x, y in SQUARE]  # int32 truncation, as LISA's np.array(..., np.int32)
    assert np.array_equal(polygon_to_mask(nudged, 6, 8), expected)


@pytest.mark.parametrize("segment, cv2_pixels", [
    # drawn with cv2.line(..., 1, 1, cv2.LINE_8), OpenCV 5.0; skimage.draw.line differs on each
    ((5, 6, 9, 7), [(5, 6), (6, 6), (7, 6), (8, 7), (9, 7)]),
    ((7, 7, 8, 1), [(7, 4), (7, 5), (7, 6), (7, 7), (8, 1), (8, 2), (8, 3)]),
    ((0, 2, 4, 4), [(0, 2), (1, 2), (2, 3), (3, 3), (4, 4)]),
])
def test_degenerate_polygon_is_opencvs_line(segment, cv2_pixels):
    a, b = segment[:2], segment[2:]
    for points in ([a, b, b], [b, a, a]):  # a zero-area polygon paints its outline only, in either direction
        ys, xs = np.nonzero(polygon_to_mask(points, 9, 10))
        assert sorted(zip(xs.tolist(), ys.tolist())) == cv2_pixels


def test_flags_are_skipped_and_ignore_is_255(tmp_path):
    everything = [[0, 0], [7, 0], [7, 5], [0, 5]]
    image = write(tmp_path, "a", [shape("flag", everything), shape("target", SQUARE),
                                  shape("Ignore_blurry", [[5, 0], [7, 0], [7, 2]])])
    mask = read_sample(image).mask
    assert mask.dtype == np.uint8 and mask.shape == (6, 8)
    assert (mask[1:5, 1:5] == 1).all()
    assert mask[0, 6] == 255 and mask[5, 0] == 0  # the flag painted nothing
    assert set(np.unique(mask)) == {0, 1, 255}
    assert [label for label, _ in read_annotation(image.with_suffix(".json")).shapes] == ["target", "Ignore_blurry"]


@pytest.mark.parametrize("order", [0, 1])
def test_larger_polygons_are_painted_first(tmp_path, order):
    big = shape("ignore", [[0, 0], [7, 0], [7, 5], [0, 5]])
    small = shape("target", SQUARE)
    image = write(tmp_path, "a", [big, small] if order == 0 else [small, big])
    mask = read_sample(image).mask
    assert (mask[1:5, 1:5] == 1).all()  # the small target ends on top, whatever the file order
    assert (mask == 255).sum() == 48 - 16


def test_cp1252_fallback(tmp_path):
    image = write(tmp_path, "a", [shape("target", SQUARE)], text=["the caf\u00e9 \u201csign\u201d"], encoding="cp1252")
    assert read_sample(image).texts == ["the caf\u00e9 \u201csign\u201d"]
    bad = write(tmp_path, "b", [], raw=b'{"text": ["\x81"], "is_sentence": false, "shapes": []}')
    with pytest.raises(ReasonSegError, match="b.json.*neither UTF-8 nor cp1252"):
        read_sample(bad)


def test_points_outside_are_clipped_with_a_warning(tmp_path):
    image = write(tmp_path, "edge", [shape("target", [[-3, -2], [4, -2], [4, 4], [-3, 4]])])
    with pytest.warns(ReasonSegWarning, match="edge.json.*outside the 8x6 image"):
        mask = read_sample(image).mask
    expected = np.zeros((6, 8), np.uint8)
    expected[0:5, 0:5] = 1  # the region is clipped; the vertices are not moved
    assert np.array_equal(mask, expected)


BAD_JSON = [
    ('{"text": ["x"], "is_sentence": false, "shapes": [', "not valid JSON"),
    ('[1, 2]', "JSON object"),
    ('{"is_sentence": false, "shapes": []}', r"missing key\(s\) \['text'\]"),
    ('{"text": ["x"], "shapes": []}', r"missing key\(s\) \['is_sentence'\]"),
    ('{"text": ["x"], "is_sentence": false}', r"missing key\(s\) \['shapes'\]"),
    ('{"text": "x", "is_sentence": false, "shapes": []}', "'text' must be a non-empty list"),
    ('{"text": ["x"], "is_sentence": "yes", "shapes": []}', "'is_sentence' must be true or false"),
    ('{"text": ["x"], "is_sentence": false, "shapes": {}}', "'shapes' must be a list"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"points": [[0,0],[1,0],[1,1]]}]}', "shape 0 must be"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"label": 3, "points": []}]}', "'label' must be a string"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"label": "t", "points": [[0,0],[5,5]]}]}',
     "at least 3 points, got 2"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"label": "t", "points": [[0,0],[5],[1,1]]}]}',
     "list of \\[x, y\\] numbers"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"label": "t", "points": [[0,0,1],[5,5,1],[1,1,1]]}]}',
     "must be \\[x, y\\] pairs"),
    ('{"text": ["x"], "is_sentence": false, "shapes": [{"label": "t", "points": [[0,0],[5,5],[1,NaN]]}]}',
     "finite"),
]


@pytest.mark.parametrize("raw, message", BAD_JSON)
def test_malformed_json_names_the_file(tmp_path, raw, message):
    image = write(tmp_path, "broken", [], raw=raw)
    with pytest.raises(ReasonSegError, match=f"broken.json: .*{message}") as caught:
        read_sample(image)
    assert caught.value.path.name == "broken.json"


def test_empty_target_is_an_error_unless_allowed(tmp_path):
    image = write(tmp_path, "void", [shape("ignore", SQUARE), shape("flag", SQUARE)])
    with pytest.raises(ReasonSegError, match="void.json: has no target pixel"):
        read_sample(image)
    mask = read_sample(image, allow_empty=True).mask
    assert (mask == 255).sum() == 16 and not (mask == 1).any()


def test_undecodable_image_and_exif_orientation(tmp_path):
    image = write(tmp_path, "junk", [shape("target", SQUARE)])
    image.write_bytes(b"not a png at all")
    with pytest.raises(ReasonSegError, match="junk.png: cannot be decoded"):
        read_sample(image)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": cv2.imread and LabelMe apply it, so do we
    Image.new("RGB", (8, 6)).save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").size == (6, 8)


def test_dataset_reads_a_folder(tmp_path):
    folder = tmp_path / "val"
    write(folder, "b", [shape("target", SQUARE)], text=["which one would roll?", "the round one"], is_sentence=True)
    write(folder, "a", [shape("target", SQUARE)])
    dataset = ReasonSegDataset(tmp_path, "val")
    assert len(dataset) == 2
    item = dataset[1]
    assert set(item) == {"image", "mask", "texts", "is_sentence", "path"}
    assert item["path"].endswith("b.png") and item["is_sentence"] is True and item["texts"][1] == "the round one"
    assert item["image"].mode == "RGB" and item["mask"].shape == (6, 8)
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate_list)))
    assert [b["path"].rsplit("/", 1)[-1] for b in batch] == ["a.png", "b.png"]
    lengths = ReasonSegDataset(tmp_path, "val", transform=lambda d: int(d["mask"].sum()))
    assert lengths[0] == 16


def test_dataset_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such ReasonSeg folder"):
        ReasonSegDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReasonSegError, match="holds no"):
        ReasonSegDataset(tmp_path / "empty")
    Image.new("RGB", (4, 4)).save(tmp_path / "empty" / "lonely.png")
    with pytest.raises(ReasonSegError, match="lonely.png: has no lonely.json"):
        ReasonSegDataset(tmp_path / "empty")


# ----- the synthetic set ----------------------------------------------------------------------------
def test_mask_to_polygons_round_trips_awkward_masks():
    mask = np.zeros((9, 10), bool)
    mask[0:3, 0:4] = True  # touches the border
    mask[3, 4] = True  # joined diagonally only
    mask[7, 8] = True  # a single pixel
    mask[5:8, 1] = True  # a one-pixel-wide bar
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 3
    assert all(len(p) >= 3 and p.dtype.kind == "i" for p in polygons)
    assert np.array_equal(np.any([polygon_to_mask(p, 9, 10) for p in polygons], axis=0), mask)
    ring = np.zeros((5, 5), bool)
    ring[0:5, 0:5] = True
    ring[2, 2] = False
    with pytest.raises(ValueError, match="hole"):
        mask_to_polygons(ring)


def occluded_scene():
    for i in range(200):
        scene = generate_scene(scene_seed(0, "train", i))
        for target in range(len(scene.objects)):
            visible, ignore = target_masks(scene, target)
            if ignore.any() and visible.any():
                return scene, target
    raise AssertionError("no occluded object in 200 scenes")


def test_occluded_part_of_the_target_reads_back_as_ignore(tmp_path):
    scene, target = occluded_scene()
    sample = SynthSample(scene, target, scene.referring_expressions(target), False, "referring")
    folder = tmp_path / "one"
    folder.mkdir()
    scene.render().save(folder / "s.png")
    (folder / "s.json").write_text(json.dumps(sample.annotation()))
    mask = read_sample(folder / "s.png").mask
    assert np.array_equal(mask == 1, scene.visible_masks()[target])
    assert np.array_equal(mask == 255, scene.full_masks()[target] & ~scene.visible_masks()[target])
    assert (mask == 255).any()


def test_synth_split_round_trips_through_the_reader(tmp_path):
    summary = write_split(tmp_path, "val", 6, seed=3)
    assert summary["n"] == 6 and summary["short"] + summary["long"] == 6
    assert sum(summary["types"].values()) == 6
    samples, _ = generate_split("val", 6, seed=3)
    dataset = ReasonSegDataset(tmp_path, "val")
    assert len(dataset) == 6
    for sample, item in zip(samples, dataset):
        assert np.array_equal(item["mask"], sample.gt_mask())
        assert np.array_equal(item["mask"] == 1, sample.scene.visible_masks()[sample.target])
        assert np.array_equal(np.asarray(item["image"]), np.asarray(sample.scene.render()))  # PNG is lossless
        assert item["texts"] == sample.texts and item["is_sentence"] == sample.is_sentence
        if sample.is_sentence:
            assert sample.texts[0] in [q["text"] for q in sample.scene.reasoning_queries()]
        else:
            assert set(sample.texts) == set(sample.scene.referring_expressions(sample.target))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_split(tmp_path, "val", 2, seed=3)
    assert write_split(tmp_path, "val", 2, seed=3, overwrite=True)["n"] == 2
    assert len(ReasonSegDataset(tmp_path, "val")) == 2  # no stale samples left behind


def test_synth_is_deterministic_and_splits_are_disjoint(tmp_path):
    write_split(tmp_path / "one", "test", 3, seed=1)
    write_split(tmp_path / "two", "test", 3, seed=1)
    for path in sorted((tmp_path / "one" / "test").iterdir()):
        assert path.read_bytes() == (tmp_path / "two" / "test" / path.name).read_bytes()
    seeds = {split: {scene_seed(0, split, i) for i in range(50)} for split in SPLITS}
    assert not (seeds["train"] & seeds["val"]) and not (seeds["val"] & seeds["test"])
    assert not (seeds["train"] & seeds["test"])
    renders = {split: np.asarray(generate_scene(scene_seed(0, split, 0)).render()) for split in SPLITS}
    assert not np.array_equal(renders["train"], renders["val"])
    with pytest.raises(ValueError, match="unknown split"):
        scene_seed(0, "dev", 0)


def test_long_fraction_controls_the_mix():
    all_short, _ = generate_split("train", 4, seed=0, long_fraction=0.0)
    assert not any(s.is_sentence for s in all_short)
    all_long, _ = generate_split("train", 4, seed=0, long_fraction=1.0)
    # a scene without any reasoning query falls back to a short sample
    assert all(s.is_sentence == bool(s.scene.reasoning_queries()) for s in all_long)
    with pytest.raises(ValueError, match="long_fraction"):
        generate_split("train", 1, long_fraction=1.5)


def test_cli_json_summary(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--split", "train", "--n", "4", "--seed", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 4 and summary["split"] == "train"
    assert summary["short"] + summary["long"] == 4 and sum(summary["types"].values()) == 4
    assert len(list((tmp_path / "train").glob("*.png"))) == 4
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--long_fraction" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--split", "train", "--n", "4"])  # refuses to mix with old files
    assert exit_info.value.code == 2


def test_synth_record_reads_what_the_synthetic_set_wrote(synth_data, tmp_path):
    from lisalib.reasonseg.synth import synth_record
    from lisalib.world.scenes import COLOURS, SHAPE_KINDS

    image = sorted((synth_data / "val").glob("*.png"))[0]
    record = synth_record(image)
    colour, kind = record["target_name"].split()
    assert colour in COLOURS and kind in SHAPE_KINDS and "query_type" in record
    assert len(record["scene_seed"]) == 4 and isinstance(record["target"], int)
    annotation = json.loads(image.with_suffix(".json").read_text())
    annotation.pop("synth")
    (tmp_path / "real.json").write_text(json.dumps(annotation))
    assert synth_record(tmp_path / "real.png") == {}  # real ReasonSeg has no such record
    (tmp_path / "broken.json").write_text("{not json")
    assert synth_record(tmp_path / "broken.png") == {} and synth_record(tmp_path / "missing.png") == {}


def test_a_hub_copy_row_becomes_a_sample_lisa_reads(tmp_path):
    """Ricky06662/ReasonSeg_val-style rows (image, text, boolean mask rows) -> image + LabelMe JSON."""
    from PIL import Image

    from lisalib.reasonseg.dataset import ReasonSegDataset
    from lisalib.reasonseg.hub_copy import write_samples
    from lisalib.world import generate_scenes

    scenes = generate_scenes(3, seed=5)
    rows = [{"image": s.render(), "text": t, "mask": s.visible_masks()[0].tolist(), "image_id": f"im{i}", "ann_id": "0"}
            for i, (s, t) in enumerate(zip(scenes, ["the red one", "what would roll down a hill?", "x"]))]
    rows.append({"image": Image.new("RGB", (8, 8)), "text": "nothing", "mask": [[False] * 8] * 8})
    summary = write_samples(rows, tmp_path)
    assert summary["written"] == 3 and summary["skipped_empty"] == 1 and summary["min_polygon_iou"] > 0.97
    data = ReasonSegDataset(tmp_path, "val")
    assert len(data) == 3 and [data[i]["is_sentence"] for i in range(3)] == [False, True, False]
    for i in range(3):  # the outline LISA paints covers the mask it came from
        truth = np.asarray(scenes[i].visible_masks()[0])
        assert ((data[i]["mask"] == 1) & truth).sum() / ((data[i]["mask"] == 1) | truth).sum() > 0.97
    bad = [{"image": Image.new("RGB", (4, 4)), "text": "t", "mask": [[True] * 8] * 8}]
    with pytest.raises(ValueError, match="image"):
        write_samples(bad, tmp_path / "bad")
