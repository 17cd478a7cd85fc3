"""Run records: written and read back whole, bad files named; the comparison table read from them."""
import json
import math

import pytest

from panopticlab.engine.comparison import (
    SUMMARY_COLUMNS,
    comparison_markdown,
    comparison_rows,
    ranking,
    replace_marked_section,
)
from panopticlab.engine.runs import (
    RUN_FILE,
    TrainingRun,
    book_runs,
    read_run,
    save_book_run,
    shipped_run,
    shipped_run_path,
    shipped_runs,
    thin_series,
    train_network,
    write_run,
)
from panopticlab.models import zoo


def group(pq, sq, rq, n=3):
    return {"pq": pq, "sq": sq, "rq": rq, "n": n}


def results(pq_th, pq_st):
    both = {"All": group((pq_th + pq_st) / 2, 0.8, 0.7), "Things": group(pq_th, 0.75, 0.5),
            "Stuff": group(pq_st, 0.9, 0.95)}
    return {**both, "by_size": {size: {"All": group(v, 0.8, 0.7)} for size, v in
                                (("small", 0.1), ("medium", 0.4), ("large", float("nan")))},
            "pq_dagger": {"All": {"pq": 0.6, "n": 6}}, "num_images": 50}


def run(model="panoptic-fpn-tiny", **changes):
    values = dict(model=model, profile="laptop", seed=0, recipes={model: {"steps": 750}},
                  training_seconds={model: 240.0}, parameters=2_500_000, results=results(0.25, 0.85),
                  inference={"network": 0.05, "postprocess": 0.004})
    return TrainingRun(**{**values, **changes})


def test_a_record_reads_back_as_written(tmp_path):
    written = run(ablations={"instance_only": results(0.2, 0.0)}, miou=0.7, losses={"loss": [[1, 2.0], [2, 1.5]]})
    path = write_run(tmp_path, written)
    assert path == tmp_path / RUN_FILE
    read = read_run(tmp_path)
    assert read.to_dict() == written.to_dict()
    assert math.isnan(written.results["by_size"]["large"]["All"]["pq"])
    assert read.results["by_size"]["large"]["All"]["pq"] is None  # NaN is not JSON: written as null
    assert read.steps == 750 and read.total_training_seconds == 240.0


def test_bad_records_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="panopticlab train"):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=f"{RUN_FILE}: not JSON"):
        read_run(tmp_path)
    values = run().to_dict()
    del values["results"]
    values["colour"] = "red"
    (tmp_path / RUN_FILE).write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['results'\]; unknown field\(s\) \['colour'\]"):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({**run().to_dict(), "format_version": 99}))
    with pytest.raises(ValueError, match="newer than this panopticlab reads"):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({**run().to_dict(), "results": {"pq": 0.5}}))
    with pytest.raises(ValueError, match="no 'All' group"):
        read_run(tmp_path)


def test_thin_series_keeps_the_ends_and_the_limit():
    steps = range(1, 1001)
    thinned = thin_series(steps, [1.0 / s for s in steps], limit=200)
    assert len(thinned) == 200 and thinned[0] == [1, 1.0] and thinned[-1] == [1000, 0.001]
    assert all(a[0] < b[0] for a, b in zip(thinned, thinned[1:]))
    assert thin_series([1, 2], [3.0, 4.0]) == [[1, 3.0], [2, 4.0]]


def test_comparison_table_reads_every_column_from_the_records():
    runs = {"Panoptic FPN": run(), "Panoptic-DeepLab": run("panoptic-deeplab-tiny", results=results(0.3, 0.9),
                                                           inference={})}
    rows = comparison_rows(runs)
    assert rows[0]["PQ_th"].mean == 0.25 and rows[1]["PQ_st"].mean == 0.9 and rows[0]["PQ_L"] is None  # NaN
    assert rows[0]["net (ms/img)"].mean == pytest.approx(50.0) and rows[1]["net (ms/img)"] is None
    table = comparison_markdown(runs).splitlines()
    assert table[0].startswith("| model | PQ | SQ | RQ | PQ_th") and len(table) == 4
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    header = [c.strip() for c in table[0].split("|")[1:-1]]
    row = dict(zip(header, cells))
    assert row == {**row, "model": "Panoptic FPN", "PQ": "55.0", "PQ_th": "25.0", "PQ_S": "10.0", "PQ_L": "-",
                   "PQ†": "60.0", "params (M)": "2.50", "steps": "750", "train (min)": "4.0", "net (ms/img)": "50.0",
                   "post (ms/img)": "4.0"}
    assert table[3].split("|")[-2].strip() == "-"  # no timing in that record


def test_replace_marked_section():
    text = "intro\n<!-- t:start -->\nold\n<!-- t:end -->\nafter\n"
    assert replace_marked_section(text, "t", "new table\n") == "intro\n<!-- t:start -->\nnew table\n<!-- t:end -->\nafter\n"
    with pytest.raises(ValueError, match="found 0"):
        replace_marked_section("no markers", "t", "x")


def test_shipped_records_are_complete():
    runs = shipped_runs()
    networks = {name for row in zoo.MODELS.values() for name in row.components}
    assert set(runs) == {row.name for row in zoo.MODELS.values() if row.size == "tiny" and row.name not in networks}
    seeds = {name: [record.seed for record in group] for name, group in runs.items()}
    assert len(set(map(tuple, seeds.values()))) == 1, f"every model has the same seeds: {seeds}"
    budgets = {record.budget_seconds for group in runs.values() for record in group}
    assert len(budgets) == 1, f"every run has the same budget: {budgets}"
    for name, group in runs.items():
        for record in group:
            assert record.model == name and record.profile == "laptop"
            assert shipped_run_path(record).is_file()
            assert 0.3 < record.results["All"]["pq"] < 1 and record.inference["network"] > 0
            assert record.total_training_seconds > 0 and record.losses
    assert shipped_run("upsnet-tiny").seed == min(seeds["upsnet-tiny"])
    with pytest.raises(KeyError, match="no shipped run record for 'nothing'"):
        shipped_run("nothing")


def test_a_model_with_several_seeds_shows_their_mean_and_spread():
    runs = {"FPN": [run(results=results(0.2, 0.9)), run(seed=1, results=results(0.3, 0.9))], "single": run()}
    rows = comparison_rows(runs)
    assert rows[0]["seeds"] == [0, 1] and rows[0]["PQ_th"].values == (0.2, 0.3)
    assert rows[0]["PQ_th"].mean == pytest.approx(0.25) and rows[0]["PQ_th"].sd == pytest.approx(0.0707107, abs=1e-6)
    assert rows[1]["PQ_th"].sd is None
    row = comparison_markdown(runs, columns=("PQ_th", "PQ_st")).splitlines()[2]
    assert row == "| FPN | 25.0 ± 7.1 | 90.0 ± 0.0 |"  # a score's spread is shown even when it is 0
    row = comparison_markdown(runs, columns=("params (M)",)).splitlines()[2]
    assert row == f"| FPN | {run().parameters / 1e6:.2f} |"  # a setting alike in every run: no spread
    with pytest.raises(ValueError, match="runs of different models"):
        comparison_rows({"mixed": [run(), run("upsnet-tiny")]})
    with pytest.raises(ValueError, match="empty: no run records"):
        comparison_rows({"empty": []})


def test_the_ranking_calls_a_model_ahead_only_when_every_seed_says_so():
    def seeds(*pq_th):
        return [run(seed=k, results=results(value, 0.9)) for k, value in enumerate(pq_th)]

    runs = {"a": seeds(0.50, 0.52, 0.54), "b": seeds(0.45, 0.51, 0.47), "c": seeds(0.30, 0.35, 0.33)}
    order = ranking(runs, "PQ_th")
    assert [label for label, _, _ in order] == ["a", "b", "c"]
    assert order[0][2] == ["c"]  # a's worst run (0.50) is below b's best (0.51): not called ahead of b
    assert order[1][2] == ["c"] and order[2][2] == []
    assert order[0][1].mean == pytest.approx(0.52)
    with pytest.raises(KeyError, match="no column 'PQ_x'"):
        ranking(runs, "PQ_x")


def test_the_shipped_records_show_what_chapter_7_says_of_them():
    """Chapter 7's reading of its table, held here for the shipped records (a reader's own
    runs may differ): stuff is the easy half for every model, and against chapter 2's
    simulated second annotator the best model is further behind in RQ than in SQ on things."""
    from panopticlab import metrics
    from panopticlab.data import SYNTHETIC_CATEGORIES
    from panopticlab.engine import recipes

    records = shipped_runs()
    for name, group in records.items():
        for record in group:
            assert record.results["Stuff"]["pq"] > record.results["Things"]["pq"], (name, record.seed)
    first = next(iter(records.values()))[0]
    images = recipes.val_data(size=first.inference["image_size"], num=first.results["num_images"], seed=0)
    annotator = metrics.evaluate_pairs([(images[i].panoptic, images.second_annotation(i)) for i in range(len(images))],
                                       SYNTHETIC_CATEGORIES)
    best = max((r for group in records.values() for r in group), key=lambda r: r.results["All"]["pq"]).results
    gap = {key: annotator["Things"][key] - best["Things"][key] for key in ("sq", "rq")}
    assert gap["rq"] > gap["sq"] > -0.05, gap


def test_the_readme_table_is_made_from_the_shipped_records():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- model-comparison:start -->")[1].split("<!-- model-comparison:end -->")[0]
    order = ("baseline-tiny", "panoptic-fpn-tiny", "upsnet-tiny", "panoptic-deeplab-tiny")
    runs = shipped_runs()
    assert comparison_markdown({name: runs[name] for name in order}, SUMMARY_COLUMNS) in section, \
        "run `python scripts/compare_models.py --readme README.md` after changing the shipped records"


def test_the_chapters_records_are_kept_in_the_work_folder_by_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("PANOPTICLAB_WORK_DIR", str(tmp_path))
    assert book_runs("laptop") == {}
    path = save_book_run(run("upsnet-tiny"))
    assert path == tmp_path / "runs" / "upsnet-tiny" / RUN_FILE
    save_book_run(run("baseline-tiny", profile="ci"))
    assert {name: r.to_dict() for name, r in book_runs("laptop").items()} == {"upsnet-tiny": run("upsnet-tiny").to_dict()}
    assert set(book_runs("ci")) == {"baseline-tiny"}


def test_train_network_starts_every_run_of_a_recipe_from_the_same_weights(one_torch_thread):
    import torch

    from panopticlab.engine import recipes

    recipe = recipes.recipe("pspnet-tiny", "ci", steps=1)
    (first, trained), (second, _) = (train_network(recipe, seed=5, progress=False) for _ in range(2))
    assert trained.name == "pspnet-tiny" and trained.recipe == recipe and trained.seconds > 0
    assert trained.history.steps("loss") == [1]
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    other, _ = train_network(recipe, seed=6, progress=False)
    assert any(not torch.equal(value, other.state_dict()[name]) for name, value in first.state_dict().items())
