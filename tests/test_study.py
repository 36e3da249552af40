"""The study's rows show the two thresholds of docs/theory.md §9 (a small configuration of the
default's family and features: N_query = 18, N_rows = 36)."""
import json
import math

import pytest

from gomaml.study import DEFAULT_CONFIG, d_value, medians, run_study, validate_config

SMALL = dict(n_tasks=6, n_test_tasks=4, k_support=3, k_query=3,
             d=[8, 16, 18, 24, 36, 80, 160, "inf"],
             seeds=[0, 1], max_iter=2000, time_budget=1e9, path_d=[8, 80])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    with open(out / "table.txt", "w") as table:
        rows = run_study(SMALL, out=str(out), progress=False, make_plot=True, stream=table)
    return rows, out


@pytest.fixture(scope="module")
def rows(study):
    return study[0]


def test_default_is_the_documented_configuration():
    cfg = validate_config({})
    assert (cfg["family"], cfg["features"], cfg["n_tasks"], cfg["k_support"],
            cfg["k_query"]) == ("linear", "relu", 20, 5, 5)
    assert cfg["d"][0] < 100 and 65536 in cfg["d"] and cfg["d"][-2:] == [10**6, math.inf]
    assert cfg["seeds"] == [0, 1, 2]
    assert DEFAULT_CONFIG["time_budget"] > 60             # a safety net, not the limit


def test_rows_show_both_thresholds(rows):
    assert {r["stopped_by"] for r in rows} <= {"converged", "max_iter"}
    for r in rows:
        assert r["N_query"] == 18 and r["N_rows"] == 36
        assert r["gap"] <= r["linear_term"] * (1 + 1e-9) + 1e-15
        assert r["linear_term"] <= r["bound"] * (1 + 1e-9) + 1e-15
        assert r["bound"] <= r["bound_R0"] * (1 + 1e-9) + 1e-15
        if d_value(r["d"]) < r["N_query"]:
            assert r["L_comparator"] > 1e-6
        if r["minimizer_rank"] == r["N_query"]:
            assert r["L_comparator"] <= 1e-12
            assert 1.98 <= r["bound_over_gap"] <= 2.02
        assert r["backend"] == ("kernel" if d_value(r["d"]) >= 36 else "features")
        if d_value(r["d"]) >= 2 * r["N_rows"]:
            assert r["feature_rank"] == r["N_rows"]
            assert r["repr_floor"] <= 1e-12
            assert r["bound_R0"] == pytest.approx(r["R0"] * r["eps"], rel=1e-6)
    for seed in (0, 1):                  # interpolating rows exist for every seed from 2·N_query
        assert any(r["seed"] == seed and d_value(r["d"]) >= 36 and r["minimizer_rank"] == 18
                   for r in rows)


def test_medians_table_and_paths(rows, study):
    table = medians(rows)
    assert [m["d"] for m in table] == SMALL["d"][:-1] + [math.inf]
    assert all(m["n_seeds"] == 2 for m in table)
    m = table[-1]
    vals = sorted(r["eps"] for r in rows if d_value(r["d"]) == m["d"])
    assert m["eps"] == pytest.approx(sum(vals) / 2)      # the median of two
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())
    out = study[1]
    paths = [json.loads(line) for line in open(out / "paths.jsonl")]
    assert sorted((p["seed"], p["d"]) for p in paths) == [(0, 8), (0, 80)]
    for p in paths:
        its = [q["iter"] for q in p["path"]]
        assert its[:3] == [1, 2, 4] and all(b == 2 * a for a, b in zip(its, its[1:]))
        for q in p["path"]:
            slack = 1e-12 * (abs(q["linear_term"]) + q["bound"]) + 1e-15
            assert q["gap"] <= q["linear_term"] + slack
            assert q["linear_term"] <= q["bound"] + slack
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
