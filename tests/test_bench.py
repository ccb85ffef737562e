"""The benchmark harness: agreement checks, skipping, output. Tiny sizes (``--quick``) only."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytest

from fastgru import bench
from fastgru._config import usable_cores


def _quick_cfg(**kwargs) -> bench.BenchConfig:
    """Tiny sizes, one thread, everything in this process (fast; isolation has its own tests)."""
    cfg = bench.BenchConfig(quick=True, threads=[1], isolate=False, **bench.sizes_for(True))
    for key, value in kwargs.items():
        setattr(cfg, key, value)
    return cfg


def _fake_peer(library, check, module="numpy", workloads=("B",), run=lambda: None):
    """A peer whose ``check()`` returns ``check(workload)`` for the given workloads."""

    def candidates(w):
        if w.key not in workloads:
            return []
        return [bench.Candidate(f"{library} impl", library,
                                lambda nt: bench.Runner(run, lambda: check(w)))]

    return bench.Peer(library, module, candidates)


def _rows(report, library):
    return [r for r in report["results"] if r["library"] == library]


def test_a_peer_that_computes_something_else_is_reported_and_not_timed():
    wrong = _fake_peer("wrong", lambda w: [np.asarray(w.reference()[0]) + 0.01])
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"]), peers=[wrong])
    (row,) = _rows(report, "wrong")
    assert row["status"] == "mismatch"
    assert "exceeds tolerance" in row["note"]
    assert row["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert "median" not in row and "ratio" not in row


def test_a_peer_with_the_wrong_shape_is_a_mismatch():
    wrong = _fake_peer("wrong", lambda w: [np.zeros((3, 3))])
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"]), peers=[wrong])
    assert _rows(report, "wrong")[0]["status"] == "mismatch"


def test_a_peer_that_agrees_is_timed_with_ratio_to_fastgru():
    right = _fake_peer("right", lambda w: w.reference(), workloads=("B", "D.fwd"))
    report = bench.run_benchmarks(_quick_cfg(workloads=["B", "D"]), peers=[right])
    rows = _rows(report, "right")
    assert [r["workload"] for r in rows] == ["B", "D.fwd"]
    for r in rows:
        assert r["status"] == "ok" and r["max_abs_diff"] <= r["tolerance"]
        assert r["min"] <= r["q1"] <= r["median"] <= r["q3"] <= r["max"]
        assert r["ratio"] > 0
    for r in rows:  # GFLOP/s of the GRU's matmuls, for the window (B) as for the batch (D)
        assert r["gflops"] > 0


def test_main_exits_1_and_says_mismatch_loudly(monkeypatch, capsys):
    wrong = _fake_peer("wrong", lambda w: [np.asarray(w.reference()[0]) * 2 + 1])
    monkeypatch.setattr(bench.peers, "PEERS", [wrong])
    assert bench.main(["--quick", "--workloads", "B", "--threads", "1"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.err
    assert "mismatch" in captured.out


def test_a_missing_peer_is_skipped_with_a_note(monkeypatch, capsys, tmp_path):
    ghost = _fake_peer("ghost", lambda w: w.reference(), module="fastgru_no_such_peer_module")
    monkeypatch.setattr(bench.peers, "PEERS", [ghost])
    path = tmp_path / "out.json"
    assert bench.main(["--quick", "--workloads", "B", "--threads", "1", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert "ghost: not installed, skipped" in report["notes"]
    assert not _rows(report, "ghost")
    assert "note: ghost: not installed, skipped" in capsys.readouterr().out


def test_a_peer_that_raises_is_an_error_row_and_the_run_goes_on():
    def boom(w):
        raise RuntimeError("peer exploded")

    report = bench.run_benchmarks(_quick_cfg(workloads=["B"]),
                                  peers=[_fake_peer("boom", boom)])
    (row,) = _rows(report, "boom")
    assert row["status"] == "error" and "peer exploded" in row["note"]
    assert "error: RuntimeError: peer exploded" in bench.format_table(report)
    assert any(r["status"] == "ok" for r in _rows(report, "fastgru"))


def test_a_long_note_is_one_table_cell():
    # cut where the JSON keeps it whole
    cell = bench.report.one_line("error: " + "x" * 150 + "\n" + "y" * 150)
    assert "\n" not in cell and len(cell) == 200 and cell.endswith("...")


def test_json_report_structure(monkeypatch, tmp_path):
    monkeypatch.setattr(bench.peers, "PEERS", [])
    path = tmp_path / "report.json"
    code = bench.main(["--quick", "--workloads", "A,B,C,D", "--threads", "1",
                       "--repeats", "2", "--json", str(path)])
    assert code == 0
    report = json.loads(path.read_text())
    assert set(report) >= {"machine", "config", "matmul", "results", "notes", "flops_note"}
    assert report["machine"]["cores"] >= 1
    assert report["config"]["threads"] == [1] and report["config"]["repeats"] == 2
    (mm,) = report["matmul"]
    assert mm["threads"] == 1 and mm["gflops"] > 0
    assert {r["workload"] for r in report["results"]} == {"A", "B", "C", "D.fwd", "D.fwd+bwd"}
    units = {r["workload"]: r["unit"] for r in report["results"]}
    assert units == {"A": "s", "B": "us", "C": "us", "D.fwd": "ms", "D.fwd+bwd": "ms"}
    for r in report["results"]:
        assert r["library"] == "fastgru" and r["threads"] == 1
        assert r["status"] == "ok", r
        assert r["repeats"] == (2 if r["workload"] != "A" else report["config"]["epoch_repeats"])
        assert r["median"] > 0 and r["max_abs_diff"] <= r["tolerance"]
        assert r["compared_with"]


def test_real_peers_agree_with_fastgru_on_every_workload():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    report = bench.run_benchmarks(_quick_cfg(peers=["torch", "onnxruntime"], isolate=True,
                                             threads=[1, 2]))
    pids = {(r["library"], r["threads"]): r["pid"] for r in report["results"]}
    assert len(pids) == 6 and len(set(pids.values())) == 6  # a process per library and count
    peers = [r for r in report["results"] if r["library"] != "fastgru"]
    assert {r["workload"] for r in peers if r["library"] == "torch"} == {
        "A", "B", "C", "D.fwd", "D.fwd+bwd"}
    assert {r["workload"] for r in peers if r["library"] == "onnxruntime"} == {"B", "C", "D.fwd"}
    for r in peers:
        assert r["status"] == "ok", r


def test_table_and_plot(tmp_path):
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"]), peers=[
        _fake_peer("wrong", lambda w: [np.zeros((1, 1)) + 5])])
    table = bench.format_table(report)
    assert table.splitlines()[1].split()[:3] == ["workload", "implementation", "thr"]
    assert "mismatch" in table and "fastgru PackedGRU.forward" in table
    pytest.importorskip("matplotlib")
    out = tmp_path / "b.png"
    assert bench.write_plot(report, str(out)) and out.stat().st_size > 0


def test_time_calls_batches_short_calls_and_counts_every_one():
    calls = []
    stats = bench.time_calls(lambda: calls.append(1), repeats=5, warmup=1, per_call=True,
                             min_rep_seconds=0.001)
    assert stats["min"] <= stats["q1"] <= stats["median"] <= stats["q3"] <= stats["max"]
    assert stats["number"] > 1 and stats["repeats"] == 5  # a ~0.1 us call is batched
    # warm-up, the calibration rounds, then exactly repeats * number timed calls
    assert len(calls) >= 1 + 5 * stats["number"]
    assert stats["median"] < 1e-4


def test_time_budget_stops_repetitions_but_keeps_one():
    calls = []
    stats = bench.time_calls(lambda: (calls.append(1), sum(range(20000))), repeats=50,
                             warmup=5, per_call=False, min_rep_seconds=0, max_seconds=0.0)
    assert stats["repeats"] == 1 and len(calls) == 2  # one warm-up, one timed


def test_one_librarys_implementations_take_turns():
    # fit and the bare loop (or predict and forward) alternate repetition by repetition, so
    # that a machine's drift reaches both alike; each is warmed up and calibrated on its own.
    order = []
    stats = bench.time_in_turns([lambda: order.append("a"), lambda: order.append("b")],
                                repeats=3, warmup=1, per_call=False, min_rep_seconds=0)
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert [s["repeats"] for s in stats] == [3, 3]


def test_a_failing_implementation_leaves_the_turns_and_the_others_go_on():
    calls = []

    def fails_on_third_call():
        calls.append("x")
        if len(calls) == 3:
            raise RuntimeError("boom")

    stats = bench.time_in_turns([fails_on_third_call, lambda: None], repeats=4, warmup=1,
                                per_call=False, min_rep_seconds=0)
    assert isinstance(stats[0]["error"], RuntimeError) and len(calls) == 3
    assert stats[1]["repeats"] == 4
    with pytest.raises(ZeroDivisionError):  # time_calls, with one function, raises it
        bench.time_calls(lambda: 1 / 0, repeats=2, warmup=0, per_call=False, min_rep_seconds=0)


def test_the_time_budget_is_each_implementations_own():
    slow = lambda: sum(range(200000))  # noqa: E731
    stats = bench.time_in_turns([slow, lambda: None], repeats=5, warmup=0, per_call=False,
                                min_rep_seconds=0, max_seconds=1e-4)
    assert stats[0]["repeats"] == 1 and stats[1]["repeats"] == 5


def test_threads_option_parses_all_and_dedupes():
    assert bench.cli.parse_threads("1,all,1") == [1] + ([usable_cores()] if usable_cores() > 1 else [])
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and"):
        bench.cli.parse_threads("0")


@pytest.mark.parametrize("argv, message", [
    (["--workloads", "Z"], "--workloads: unknown Z"),
    (["--workloads", ","], "--workloads: none given"),
    (["--threads", "abc"], "whole numbers or 'all'; got 'abc'"),
    (["--threads", "0"], "between 1 and"),
    (["--threads", "100000"], "between 1 and"),
    (["--threads", ","], "no thread count given"),
    (["--peers", "tourch"], "--peers: unknown ['tourch']"),
    (["--json", "/no/such/folder/r.json"], "does not exist"),
    (["--plot", "."], "is a folder"),
])
def test_a_bad_command_line_is_a_usage_error_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_table_names_the_cpu_and_the_simd_path():
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"]), peers=[])
    first = bench.format_table(report).splitlines()[0]
    machine = report["machine"]
    assert machine["processor"] in first and f"SIMD path {machine['fastgru_config']['simd']}" in first


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu avx512f

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: Something Else
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0c

processor\t: 1
CPU part\t: 0xd40
"""


@pytest.mark.parametrize("text, expected", [
    (X86_CPUINFO, "AMD EPYC (family 25, model 17)"),
    (ARM_CPUINFO, " (implementer 0x41, part 0xd0c)"),
])
def test_the_cpu_name_gives_the_generation_a_virtual_machine_hides(tmp_path, text, expected):
    # KVM guests of Zen 2 and Zen 4 are both "AMD EPYC": the family and model tell them apart
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    name = bench.run.cpu_name(str(path))
    assert name.endswith(expected) and "Something Else" not in name and "0xd40" not in name
    # no /proc/cpuinfo (macOS, Windows): the platform's own name, not an error
    expected_fallback = platform.processor() or platform.machine() or "?"
    assert bench.run.cpu_name(str(tmp_path / "missing")) == expected_fallback


def test_an_unwritable_output_folder_is_a_usage_error(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root writes anywhere
        pytest.skip("this user can write to a read-only folder")
    with pytest.raises(SystemExit):
        bench.main(["--json", str(folder / "r.json")])
    assert "is not writable" in capsys.readouterr().err


def test_a_peer_that_cannot_load_is_skipped_with_a_note():
    # installed but broken: an ImportError, or an OSError (a missing shared library)
    def broken(w):
        raise OSError("libsomething.so: cannot open shared object file")

    report = bench.run_benchmarks(_quick_cfg(workloads=["B", "C"]),
                                  peers=[bench.Peer("broken", "numpy", broken)])
    assert not _rows(report, "broken")
    assert report["notes"] == ["broken: could not be loaded (OSError: libsomething.so: cannot "
                               "open shared object file), skipped"]


def test_a_child_imports_its_peers_library_before_fastgru(tmp_path):
    # So that PyTorch, which may share fastgru's libgomp, loads it with libgomp's own spin
    # setting rather than the short one fastgru's import picks (fastgru/_openmp.py).
    (tmp_path / "probe_first.py").write_text(
        "import os, sys\n"
        "open(os.environ['PROBE_OUT'], 'w').write(str(any(m.startswith('fastgru') for m in sys.modules)))\n")
    env = dict(os.environ, PROBE_OUT=str(tmp_path / "seen"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    command = bench.run.child_command("probe_first", str(tmp_path / "no-job.json"),
                                      str(tmp_path / "report.json"))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (tmp_path / "seen").read_text() == "False"
    assert done.returncode != 0 and "no-job.json" in done.stderr  # and then fastgru ran the job


def test_a_child_that_dies_fails_the_run(monkeypatch, capsys):
    monkeypatch.setattr(bench.run, "child_command",
                        lambda *args: [sys.executable, "-c", "raise SystemExit(7)"])
    assert bench.main(["--quick", "--workloads", "B", "--threads", "1", "--peers", "none"]) == 1
    captured = capsys.readouterr()
    assert "error: fastgru @ 1 threads: child process failed (exit 7)" in captured.out
    assert "1 child process(es) failed" in captured.err


@pytest.mark.skipif(os.name != "posix", reason="process groups and ps are POSIX")
def test_a_child_that_hangs_is_stopped_with_what_it_started(monkeypatch):
    # The child starts a grandchild that keeps its stderr open: stopping only the child would
    # leave the run waiting for the grandchild.
    hang = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "time.sleep(60)")
    monkeypatch.setattr(bench.run, "child_command", lambda *args: [sys.executable, "-c", hang])
    monkeypatch.setattr(bench.run, "child_timeout", lambda cfg: 1.0)
    started = time.monotonic()
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"], isolate=True, peers=[]))
    assert report["failures"] == ["fastgru @ 1 threads: child process failed (stopped after 1 s)"]
    assert time.monotonic() - started < 30  # not the grandchild's 60 s
    assert "time.sleep(60)" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                   text=True).stdout


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_child_killed_by_someone_else_is_not_called_a_timeout(monkeypatch):
    monkeypatch.setattr(bench.run, "child_command", lambda *args: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"], isolate=True, peers=[]))
    (failure,) = report["failures"]
    assert "stopped after" not in failure and "exit -9" in failure


def test_max_diff_is_normalised_by_the_expected_magnitude():
    abs_diff, rel = bench.max_diff([np.array([101.0])], [np.array([100.0])])
    assert abs_diff == pytest.approx(1.0) and rel == pytest.approx(0.01)
    assert bench.max_diff([np.array([np.nan])], [np.array([1.0])])[1] == float("inf")
    # a NaN in what is expected is no agreement either (max() would skip it)
    assert bench.max_diff([np.array([1.0, 2.0])], [np.array([2.0, np.nan])])[0] == float("inf")
    with pytest.raises(bench.Mismatch):
        bench.max_diff([np.zeros(2)], [np.zeros(3)])


def test_rounds_pool_every_sample_and_a_failure_in_any_round_sticks():
    def row(impl, samples=None, status="ok"):
        r = dict(workload="B", implementation=impl, library="x", threads=1, unit="us",
                 status=status)
        if samples is not None:
            r.update(bench.harness.sample_stats(samples), gflops=1.0 / np.median(samples))
        return r

    pooled = bench.run.pool_rounds([[row("a", [1.0, 2.0, 3.0]), row("b", [1.0])],
                                     [row("a", [4.0, 5.0]), row("b", status="error")]])
    a, b = pooled
    assert a["repeats"] == 5 and a["median"] == 3.0 and a["max"] == 5.0
    assert a["gflops"] == pytest.approx(1.0 / 3.0)  # follows the pooled median
    assert b["status"] == "error"


def test_pooled_rounds_weigh_cpu_per_wall_by_their_timed_seconds():
    def row(samples, number, cpu_per_wall):
        return dict(workload="B", implementation="a", library="x", threads=1, unit="us",
                    status="ok", number=number, cpu_per_wall=cpu_per_wall,
                    **bench.harness.sample_stats(samples))

    # 1 s timed at 1.0 CPU per wall second, then 3 s at 2.0: 7 CPU seconds in 4
    (pooled,) = bench.run.pool_rounds([[row([0.5, 0.5], 1, 1.0)], [row([0.5, 1.0], 2, 2.0)]])
    assert pooled["cpu_per_wall"] == pytest.approx(7.0 / 4.0)
    assert pooled["number"] == 2 and pooled["repeats"] == 4


def test_a_child_process_per_library_and_thread_count():
    """fastgru's rows come from child processes, one per thread count, never this one."""
    report = bench.run_benchmarks(_quick_cfg(workloads=["B"], threads=[1, 2], isolate=True,
                                             peers=[]))
    pids = {r["threads"]: r["pid"] for r in report["results"]}
    assert set(pids) == {1, 2} and len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert all(r["status"] == "ok" for r in report["results"])


def test_chart_labels_say_median_and_ratio_and_the_title_places_the_run():
    peer = dict(median=2.5e-5, unit="us", ratio=4.2, library="torch")
    base = dict(median=6e-6, unit="us", ratio=1.0, library="fastgru")
    assert bench.report.bar_label(peer) == "25 us (4.20x fastgru)"
    assert bench.report.bar_label(base) == "6 us (baseline)"
    title = bench.report.plot_title(dict(
        machine=dict(processor="Some CPU", cores=2, date="2026-01-02 03:04 UTC",
                     fastgru_config=dict(simd="avx2")), config=dict(threads=[1, 2])))
    assert all(s in title for s in ("Some CPU", "avx2", "threads 1,2", "2026-01-02"))
    # a panel spanning less than a decade still starts on a labelled decade, below its bars
    lo, hi = bench.report.decade_limits([2e-4, 3e-4, 5e-4])
    assert lo == pytest.approx(1e-4) and hi > 5e-4


def test_a_rows_thread_count_also_holds_numpys_blas():
    # A "1 thread" row whose NumPy Dense head woke a BLAS pool would spin on the other cores.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import fastgru as fg
    from fastgru.bench.harness import set_all_threads

    before = fg.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):  # restores BLAS afterwards
        try:
            for n in (1, 2):
                set_all_threads(n)
                blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
                assert blas, "NumPy's BLAS not found: the check below would pass on nothing"
                assert fg.get_num_threads() == n
                assert all(p["num_threads"] == n for p in blas)
        finally:
            fg.set_num_threads(before)
