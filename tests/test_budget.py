"""The Colab budget estimate: every notebook has a row, training scales with its steps, memory is chapter 1's."""
import dataclasses

import pytest

from lisalib.bench.budget import T4, format_budgets, micro_batch_seconds, notebook_budgets


@pytest.fixture(scope="module")
def real():
    from lisalib.profile import HUB_MAP_ENV, get_profile

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(HUB_MAP_ENV, raising=False)  # the real budgets, not the miniatures' smoke ones
        return get_profile("real", require_gpu=False)


def test_every_notebook_has_a_row_and_training_fits_8_gb(real):
    rows = notebook_budgets(real)
    names = [r["notebook"] for r in rows]
    assert names[:5] == ["00_tour", "01_parameter_accounting", "02_single_pass_vision_encoding",
                         "03_projection_training", "04_reasonseg_eval"]
    assert all(r["minutes"] > 0 and 0 < r["peak_gib"] < 8 for r in rows)
    assert "estimated on a Tesla T4" in format_budgets(rows)


def test_training_minutes_grow_with_the_steps_and_dual_costs_more(real):
    longer = dataclasses.replace(real, train_steps=2 * real.train_steps)
    by_name = {r["notebook"]: r["minutes"] for r in notebook_budgets(real)}
    by_name_longer = {r["notebook"]: r["minutes"] for r in notebook_budgets(longer)}
    assert by_name_longer["03_projection_training"] > 1.8 * by_name["03_projection_training"] * 0.9
    assert micro_batch_seconds("dual", T4) > micro_batch_seconds("vlm", T4)
