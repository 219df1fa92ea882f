"""Bad input, as a user meets it: the real ``tune`` process, one line on stderr, exit code 2, nothing written.

Each case runs ``python -m tuner.api.cli`` (the ``tune`` console script's entry) in a subprocess and
checks that stderr is exactly one line ``tune: error: <problem>: <fix>`` with no traceback, and
that the output dir is as it was (absent, or byte for byte unchanged when it held a study).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_samples

ROOT = Path(__file__).resolve().parents[3]

#: A model and its test data from a factory; fast to load.
TINY = ("--model", "tests.cli_workloads:make_tiny")
#: Cheap settings for the runs that are meant to get as far as tuning.
CHEAP = ("--device", "cpu", "--trials", "1", "--backends", "eager")


def tune(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = [str(ROOT), *([str(extra_path)] if extra_path else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, "-m", "tuner.api.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def snapshot(folder: Path) -> dict[str, str] | None:
    """Every file under ``folder`` with its digest (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, stdout empty, stderr exactly one ``tune: error: problem: fix`` line naming ``needles``."""
    assert out.returncode == 2, out.stderr
    assert out.stdout == "", out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("tune: error: "), line
    problem, sep, fix = line.removeprefix("tune: error: ").rpartition(": ")
    assert sep and problem and fix, f"no 'problem: fix' in {line!r}"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.pt"
    torch.save(tiny_samples(), path)
    return path


# -- the model file --------------------------------------------------------------------------------


def test_missing_model_file(tmp_path, data):
    out = tune("--model", str(tmp_path / "decoder.pt"), "--test-data", str(data), "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "decoder.pt does not exist", "--model")
    assert snapshot(tmp_path / "o") is None


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_corrupt_model_file(tmp_path, data, suffix):
    model = tmp_path / f"decoder{suffix}"
    model.write_bytes(b"not a model, just bytes\n" * 10)
    out = tune("--model", str(model), "--test-data", str(data), "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, f"decoder{suffix} is not a readable")
    assert snapshot(tmp_path / "o") is None


# -- the test data ---------------------------------------------------------------------------------


def test_corrupt_test_data_file(tmp_path):
    (tmp_path / "data.pt").write_bytes(b"garbage")
    out = tune(*TINY, "--test-data", str(tmp_path / "data.pt"), "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "data.pt is not a readable torch.save file", "torch.save(samples, path)")
    assert snapshot(tmp_path / "o") is None


@pytest.mark.parametrize(
    ("sample", "needle"),
    [
        ((torch.randn(2, 5), torch.randn(2, 5)), "(2, 5):float32"),  # shapes
        ((torch.randn(2, 16).double(), torch.randn(2, 16).double()), "(2, 16):float64"),  # dtypes
        ((torch.randn(2, 16),), "missing 1 required positional argument"),  # inputs: one too few
        ((torch.randn(2, 16),) * 3, "takes 3 positional arguments but 4 were given"),  # one too many
    ],
    ids=["shape", "dtype", "too-few-inputs", "too-many-inputs"],
)
def test_test_data_that_does_not_fit_the_model(tmp_path, sample, needle):
    torch.save([sample], tmp_path / "bad.pt")
    out = tune(*TINY, "--test-data", str(tmp_path / "bad.pt"), "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "test sample 0", "does not fit the model", needle,
                          "give test data with the inputs, shapes and dtypes the model takes")
    assert snapshot(tmp_path / "o") is None


# -- backends --------------------------------------------------------------------------------------


def test_unknown_backend(tmp_path):
    out = tune(*TINY, "--backends", "eager,nosuch", "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "unknown backend 'nosuch'", "choose from eager")
    assert snapshot(tmp_path / "o") is None


def test_backend_whose_framework_is_not_installed(tmp_path):
    # A sitecustomize that sets sys.modules["tvm"] = None: Python's own way of making a module
    # unimportable (import raises ModuleNotFoundError, importlib.util.find_spec returns None),
    # exactly as if TVM were not installed.
    blocker = tmp_path / "no-tvm"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["tvm"] = None\n')
    out = tune(*TINY, "--device", "cpu", "--backends", "eager,tvm", "--output-dir", str(tmp_path / "o"),
               extra_path=blocker)
    assert_one_line_error(out, "backend 'tvm' is not available", "not installed", "pip install")
    assert snapshot(tmp_path / "o") is None


# -- where results go ------------------------------------------------------------------------------


def test_storage_host_that_cannot_be_reached(tmp_path):
    url = f"postgresql://tuner:secret@127.0.0.1:{closed_port()}/studies"
    out = tune(*TINY, *CHEAP, "--storage", url, "--output-dir", str(tmp_path / "o"))
    line = assert_one_line_error(out, "cannot be reached", "--storage")
    assert "secret" not in line  # the password is not echoed
    assert snapshot(tmp_path / "o") is None


def test_storage_file_that_is_not_a_database(tmp_path):
    db = tmp_path / "study.db"
    db.write_text("notes, not a database\n")
    out = tune(*TINY, *CHEAP, "--storage", f"sqlite:///{db}", "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "is not an sqlite database", "--storage")
    assert db.read_text() == "notes, not a database\n"
    assert snapshot(tmp_path / "o") is None


def test_mlflow_server_that_cannot_be_reached_and_the_flag_to_run_without(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    out = tune(*TINY, *CHEAP, "--mlflow-uri", uri, "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, f"MLflow tracking server {uri} does not answer", "--no-mlflow")
    assert snapshot(tmp_path / "o") is None
    # The flag the message names runs the study without tracking, and says so.
    out = tune(*TINY, *CHEAP, "--mlflow-uri", uri, "--no-mlflow", "--output-dir", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    assert "MLflow tracking is off (--no-mlflow)" in out.stderr
    assert not (tmp_path / "o" / "mlflow.db").exists()


@pytest.mark.parametrize("trials", ["0", "-5"])
def test_trials_zero_or_negative(tmp_path, trials):
    out = tune(*TINY, "--trials", trials, "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, f"--trials must be at least 1, got {trials}", "pass --trials 1 or more")
    assert snapshot(tmp_path / "o") is None


@pytest.mark.parametrize(("rule", "needle"), [("l2:0.1", "unknown accuracy rule 'l2:0.1'"),
                                              ("cosine:3", "at most 1"),
                                              ("no_such_module_xyz:score", "cannot be loaded")])
def test_an_accuracy_rule_that_cannot_be_used(tmp_path, rule, needle):
    out = tune(*TINY, *CHEAP, "--accuracy", rule, "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, needle, "--accuracy")
    assert snapshot(tmp_path / "o") is None


def test_output_dir_under_a_file(tmp_path):
    (tmp_path / "results").write_text("a file where a folder should be\n")
    out = tune(*TINY, *CHEAP, "--output-dir", str(tmp_path / "results" / "o"))
    assert_one_line_error(out, "is not a folder", "pass a writable folder to --output-dir")
    assert (tmp_path / "results").read_text() == "a file where a folder should be\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders; the under-a-file case covers root")
def test_output_dir_that_is_read_only(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    out = tune(*TINY, *CHEAP, "--output-dir", str(tmp_path / "ro" / "o"))
    assert_one_line_error(out, "is not writable", "pass a writable folder to --output-dir")
    assert snapshot(tmp_path / "ro") == {}


# -- one study, one workload -----------------------------------------------------------------------


def test_a_study_refuses_another_model_and_nothing_changes(tmp_path):
    first = tune(*TINY, *CHEAP, "--study-name", "dec", "--output-dir", str(tmp_path / "o"))
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path / "o")
    assert before and "dec/best/report.json" in before and "study.db" in before and "mlflow.db" in before
    out = tune("--model", "tests.cli_workloads:make_other_tiny", *CHEAP, "--study-name", "dec",
               "--output-dir", str(tmp_path / "o"))
    assert_one_line_error(out, "study 'dec' holds another workload", "tests.cli_workloads:make_tiny",
                          "pass a new --study-name")
    assert snapshot(tmp_path / "o") == before


# -- TensorFlow graphs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "names", "needle"), [("--inputs", "encoder_memory_placeholder,nosuch", "nosuch"),
                                                       ("--outputs", "score,nosuch", "nosuch")])
def test_tf_tensor_names_that_do_not_exist(tmp_path, flag, names, needle):
    pytest.importorskip("tensorflow")
    from experiments.workloads import tf_asr

    files = tf_asr.write_files(tmp_path / "asr")
    names_of = {"--inputs": ",".join(tf_asr.INPUTS), "--outputs": ",".join(tf_asr.OUTPUTS)}
    names_of[flag] = names
    out = tune("--model", str(files["model"]), "--inputs", names_of["--inputs"], "--outputs", names_of["--outputs"],
               "--test-data", str(files["test_bc4"]), "--output-dir", str(tmp_path / "out"), *CHEAP)
    assert_one_line_error(out, needle)
    assert snapshot(tmp_path / "out") is None
