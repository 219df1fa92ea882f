"""experiments/bench.py end to end on the CPU: prepared files, tiny studies, the results and the MLflow runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.bench import SHIPPED_ROW
from experiments.peers import NAMES, names_for

ROOT = Path(__file__).resolve().parents[2]


#: A ``sitecustomize`` that hides TensorFlow (and tf2onnx) from a process and its workers, as on the
#: GPU machine: ``importlib.util.find_spec`` answers None and ``import tensorflow`` fails.
NO_TF = "import sys\nfor _name in ('tensorflow', 'tf2onnx'):\n    sys.modules[_name] = None\n"


def bench(*args: str | Path, hide_tf: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = str(ROOT)
    if hide_tf is not None:
        hide_tf.mkdir(exist_ok=True)
        (hide_tf / "sitecustomize.py").write_text(NO_TF)
        path = f"{hide_tf}{os.pathsep}{path}"
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "bench.py"), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """mlp and tf_asr from prepared small files, 4 trials with a snapshot at 2, two calls into one results file.

    tf_asr runs without TensorFlow, as on the GPU machine: from its ONNX export and TF's reference.
    Its tuner and peers are ONNX Runtime's alone: TVM's builds of the unrolled decoder took 85 of
    the call's 107 CPU seconds here, and test_onnx_unroll.py already builds it with TVM.
    """
    tmp = tmp_path_factory.mktemp("bench")
    data = tmp / "data"
    prep = bench("--prepare", data, "--size", "small", "--workloads", "mlp,tf_asr")
    assert prep.returncode == 0, prep.stderr[-3000:]
    common = ("--data", data, "--device", "cpu", "--trials", "4", "--snapshot", "2", "--warmup", "1",
              "--repeats", "3", "--rounds", "2", "--results", tmp / "results", "--work-dir", tmp / "work",
              "--date", "2000-01-01", "--tag", "test")
    only_ort = ("--backends", "onnxruntime", "--peers", "ONNX Runtime default")
    for workload, extra in (("mlp", ()), ("tf_asr", only_ort)):
        proc = bench(*common, "--workloads", workload, *extra, hide_tf=tmp / "no-tf" if workload == "tf_asr" else None)
        assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp / "results" / "2000-01-01-cpu-test.json").read_text())
    return tmp, doc


def test_every_row_has_a_figure_or_a_reason(results: tuple[Path, dict]) -> None:
    _, doc = results
    assert set(doc["workloads"]) == {"mlp", "tf_asr"}  # the second call merged, it did not overwrite
    for name, rec in doc["workloads"].items():
        rows = {r["name"]: r for r in rec["rows"]}
        assert set(rows) == {*NAMES, "tuner best @2", "tuner best @4", SHIPPED_ROW}, name
        for row in rows.values():
            assert (row.get("total_ms") or 0) > 0 or row.get("error"), (name, row)
        assert rows["tuner best @4"]["total_ms"] > 0 and rows["tuner best @4"]["counted"] == 4
    mlp = {r["name"]: r for r in doc["workloads"]["mlp"]["rows"]}
    assert mlp["eager"]["total_ms"] > 0 and mlp["torch.compile default"]["total_ms"] > 0
    assert mlp["TensorFlow"]["error"].startswith("not run")
    tf = {r["name"]: r for r in doc["workloads"]["tf_asr"]["rows"]}
    assert tf["TensorFlow"]["error"] == tf["TensorFlow XLA"]["error"] == "not run: TensorFlow not installed"
    assert tf["torch.compile default"]["error"].startswith("not run")
    assert tf["ONNX Runtime default"]["total_ms"] > 0  # the ONNX export, run without TensorFlow
    assert tf["TVM default pipeline"]["error"] == "not run: left out by --peers"
    assert tf["tuner best @4"]["candidate"].startswith("onnxruntime")


def test_a_tuner_row_is_the_fastest_of_its_finalists_measured_side_by_side(results: tuple[Path, dict]) -> None:
    _, doc = results
    for name, rec in doc["workloads"].items():
        for row in (r for r in rec["rows"] if r["role"] == "tuner"):
            fin = row["finalists"]
            assert 1 <= len(fin) <= 3 and len({f["candidate"] for f in fin}) == len(fin), (name, fin)
            # The study's order: its best objective first, as tune's finalize takes them.
            assert [f["objective_ms"] for f in fin] == sorted(f["objective_ms"] for f in fin)
            assert fin[0]["trial"] == row["study_best_trial"]
            (chosen,) = [f for f in fin if f["chosen"]]
            assert chosen["trial"] == row["trial"] and chosen["side_by_side_ms"] == row["total_ms"]
            assert row["total_ms"] == min(f["side_by_side_ms"] for f in fin if f["side_by_side_ms"] and
                                          not f["error"])


def test_the_written_artifact_is_loaded_and_timed_beside_the_peers(results: tuple[Path, dict]) -> None:
    _, doc = results
    for name, rec in doc["workloads"].items():
        shipped = next(r for r in rec["rows"] if r["name"] == SHIPPED_ROW)
        # The report of the tune call that wrote it says what it came from and how it reloaded.
        assert shipped["role"] == "artifact" and shipped["counted"] == 4, (name, shipped)
        assert shipped["total_ms"] > 0 and shipped["fresh_process_ms"] > 0, (name, shipped)
        assert shipped["candidate"] == shipped["exported_from"]
        assert shipped["accuracy"][0] == rec["measure"]["accuracy"]
        t = rec["targets"]
        assert t["artifact_speedup_vs_best_peer"] == pytest.approx(t["best_peer_ms"] / shipped["total_ms"])
        assert t["target"] == 1.10 and t["artifact_ge_target"] == (t["artifact_speedup_vs_best_peer"] >= 1.10)
        final = next(r for r in rec["rows"] if r["name"] == "tuner best @4")
        assert t["artifact_share"] == pytest.approx(final["total_ms"] / shipped["total_ms"])
        assert t["artifact_share_ok"] == (t["artifact_share"] >= 0.95)


def test_floor_convergence_and_files(results: tuple[Path, dict]) -> None:
    tmp, doc = results
    for name, rec in doc["workloads"].items():
        floor = rec["floor"]
        assert floor["floor_ms"] > 0 and floor["bound"] in ("compute", "memory", "launch"), name
        conv = rec["convergence"]
        assert len(conv["trial"]) == 4 and len(conv["best_ms"]) == 4
        done = [v for v in conv["best_ms"] if v is not None]
        assert done == sorted(done, reverse=True)  # a running minimum
        assert all(r["x_floor"] > 0 for r in rec["rows"] if r.get("total_ms"))
        assert (tmp / "results" / rec["plot_html"]).is_file()
    assert doc["workloads"]["mlp"]["floor"]["launch_bound_ms"] > 0
    md = (tmp / "results" / "2000-01-01-cpu-test.md").read_text()
    assert "## mlp" in md and "## tf_asr" in md and "Floor:" in md and "(its finalists, as `tune` picks)" in md
    # Each measured row lists all its rounds (2 here), the fastest of which is its total.
    eager = next(line for line in md.splitlines() if line.startswith("| eager | ") and " / " in line)
    rounds = [float(x) for x in eager.split(" | ")[2].split(" / ")]
    assert len(rounds) == 2 and f"{min(rounds):.3f}" == eager.split(" | ")[1]


def test_mlflow_runs(results: tuple[Path, dict]) -> None:
    from mlflow import MlflowClient

    tmp, doc = results
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'work' / 'mlflow.db'}")
    for rec in doc["workloads"].values():
        run = client.get_run(rec["mlflow_run_id"])
        assert run.data.params["workload"] == rec["workload"]
        assert run.data.metrics["floor_ms"] == pytest.approx(rec["floor"]["floor_ms"])
        history = client.get_metric_history(run.info.run_id, "tuner_best_ms")
        assert [m.step for m in history] == [i + 1 for i, v in enumerate(rec["convergence"]["best_ms"])
                                             if v is not None]
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {f"{rec['workload']}.json",
                                                                             rec["plot_html"]}


def test_the_tuner_and_the_peers_are_judged_by_one_rule(results: tuple[Path, dict]) -> None:
    import optuna

    tmp, doc = results
    for name, rec in doc["workloads"].items():
        assert rec["measure"]["accuracy"] == "elementwise:0.0001,0.0001"  # o1's default
        storage = f"sqlite:///{tmp / 'work' / 'cpu' / name / 'study.db'}"
        study = optuna.load_study(study_name=f"bench-{name}", storage=storage)
        assert study.user_attrs["accuracy"] == rec["measure"]["accuracy"]
        for row in rec["rows"]:
            if row.get("total_ms"):
                assert row["accuracy_rule"] == rec["measure"]["accuracy"] and row["accuracy_ok"], (name, row)


def test_o2_peers_alone_each_with_its_score_under_the_given_rule(tmp_path: Path) -> None:
    # rel-l2:0.001 on the small MLP: autocast bf16 scores about 0.004 (fails), .half() about 0.0006 (passes).
    proc = bench("--workloads", "mlp", "--size", "small", "--device", "cpu", "--level", "o2", "--accuracy",
                 "rel-l2:0.001", "--phase", "peers", "--peers", "eager,eager autocast bf16,eager .half()",
                 "--warmup", "1", "--repeats", "3", "--rounds", "2", "--work-dir", tmp_path / "work",
                 "--results", tmp_path / "results", "--date", "2000-01-01", "--no-mlflow")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((tmp_path / "results" / "2000-01-01-cpu.json").read_text())["workloads"]["mlp"]
    rows = {r["name"]: r for r in rec["rows"]}
    assert list(rows) == list(names_for("o2"))  # no tuner rows
    assert rec["measure"]["accuracy"] == "rel-l2:0.001" and rec["floor"]["float_bytes"] == 2
    assert rows["eager .half()"]["accuracy_ok"] and rows["eager .half()"]["total_ms"] > 0
    bf16 = rows["eager autocast bf16"]
    assert bf16["accuracy_ok"] is False and bf16["accuracy_score"] > 0.001 and bf16["accuracy_rule"] == "rel-l2:0.001"
    assert rows["torch.compile default .half()"]["error"] == "not run: left out by --peers"
    md = (tmp_path / "results" / "2000-01-01-cpu.md").read_text()
    assert f"fails rel-l2:0.001 (score {bf16['accuracy_score']:.3g})" in md
    assert not (tmp_path / "work" / "cpu" / "mlp" / "study.db").exists()


def test_a_bad_accuracy_rule_is_a_one_line_error(tmp_path: Path) -> None:
    proc = bench("--workloads", "mlp", "--device", "cpu", "--accuracy", "bogus", "--work-dir", tmp_path,
                 "--results", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown accuracy rule 'bogus'")


def test_tf_workload_without_prepared_files_is_a_one_line_error(tmp_path: Path) -> None:
    proc = bench("--workloads", "tf_asr", "--device", "cpu", "--work-dir", tmp_path, "--results", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: tf_asr is measured from prepared files")


def test_a_data_folder_missing_a_workload_is_a_one_line_error_before_anything_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prep = bench("--prepare", data, "--size", "small", "--workloads", "mlp")
    assert prep.returncode == 0, prep.stderr
    proc = bench("--workloads", "mlp,resnet", "--device", "cpu", "--size", "small", "--data", data,
                 "--work-dir", tmp_path / "work", "--results", tmp_path / "results")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {data} holds no prepared files for resnet")
    assert not (tmp_path / "work").exists() and not (tmp_path / "results").exists()
