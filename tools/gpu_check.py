"""The GPU check behind `tools/gpu_check.sh`: every GPU-side claim of the project, measured
in one run on a machine with an NVIDIA GPU, as one table.

    python -m tools.gpu_check [--work DIR] [--seconds 40]

Steps (each a subprocess with its own time limit, its output in WORK/<step>.log):
1. environment: GPU, torch CUDA, CuPy, nvcc, numpy, and whether mediapipe, TensorRT and
   pycuda import;
2. the `gpu`-marked tests (CUDA flow against the numpy/OpenCV reference, CUDA scorers,
   INT8 calibration, TensorRT where installed), counted from their JUnit report;
3. `tools.bench_cuda_flow`: flow + encoding ms per pair, CPU chain vs CUDA kernels;
4. `tools.bench_engines`: model ms per frame (ME+MaE batch 1), torch CPU vs CUDA backends;
5. end to end: a synthetic CAS(ME)^2-layout video replayed with `--backend cpu --flow cpu`
   and with `--backend cuda --flow cuda`: throughput, MEGC F1 of each, and how many
   predicted intervals the two share exactly.
Without a CUDA GPU, steps 2-5 are reported as skipped. Worst case (every limit reached)
is under 8 minutes. Exit status 0 when every step that ran passed, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realtime.common.errors import OneLineParser

GPU_TEST_FILES = ("tests/test_cuda_flow.py", "tests/test_scorers.py", "tests/test_int8.py",
                  "tests/test_tensorrt.py")
# Seconds per step; together under the 8 minutes the check promises.
LIMITS = {"tests": 170, "flow": 45, "engines": 60, "synth": 45, "e2e": 75}


@dataclass
class Row:
    """One line of the table: what was checked, its CPU and GPU values, the verdict."""

    check: str
    cpu: str = ""
    gpu: str = ""
    result: str = ""
    ok: bool = True


def run_step(name: str, cmd: list[str], work: Path, limit: int) -> tuple[int, str]:
    """Run one step; its stdout+stderr go to WORK/<name>.log. Returns (rc, stdout);
    rc 124 when the limit was reached."""
    log = work / f"{name}.log"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        # TimeoutExpired carries bytes even with text=True
        partial = "".join(x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
                          for x in (exc.stdout, exc.stderr))
        log.write_text(f"$ {' '.join(cmd)}\n(timed out after {limit} s)\n{partial}")
        return 124, ""
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, proc.stdout


def environment() -> tuple[list[Row], bool, bool]:
    """Rows describing the machine; (rows, torch sees a CUDA GPU, CuPy sees one).

    On a machine with a GPU, CuPy or mediapipe failing is a finding (row not ok): the CUDA
    flow needs CuPy, and every replay and most tests need mediapipe (FaceMesh).
    """
    rows = []
    try:
        import torch

        cuda = torch.cuda.is_available()
        name = torch.cuda.get_device_name(0) if cuda else "none"
        rows.append(Row("GPU (torch)", gpu=name, result=f"torch {torch.__version__}, CUDA {torch.version.cuda}"))
    except Exception as exc:  # noqa: BLE001 - any failure is a finding
        cuda = False
        rows.append(Row("GPU (torch)", result=f"torch unusable: {exc}", ok=False))
    gpu_here = cuda or shutil.which("nvidia-smi") is not None
    try:
        import cupy

        n = int(cupy.cuda.runtime.getDeviceCount())
        rows.append(Row("CuPy", gpu=f"{n} device(s)", result=f"cupy {cupy.__version__}", ok=n > 0 or not gpu_here))
    except Exception as exc:  # noqa: BLE001
        n = 0
        rows.append(Row("CuPy", result=f"not usable: {type(exc).__name__}: {exc}"[:120], ok=not gpu_here))
    nvcc = shutil.which("nvcc")
    version = (subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
               if nvcc else "not found")
    rows.append(Row("nvcc", result=version))
    import numpy

    rows.append(Row("numpy", result=numpy.__version__))
    for module, needed in (("mediapipe", True), ("tensorrt", False), ("pycuda.driver", False), ("av", False)):
        try:
            __import__(module)
            rows.append(Row(f"import {module}", result="ok"))
        except Exception as exc:  # noqa: BLE001
            rows.append(Row(f"import {module}", result=f"absent: {type(exc).__name__}: {exc}"[:120],
                            ok=not (needed and gpu_here)))
    return rows, cuda, n > 0


def junit_counts(path: Path) -> dict[str, int]:
    """tests/failures/errors/skipped of a pytest JUnit XML report."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def gpu_tests(work: Path) -> Row:
    report = work / "gpu_tests.xml"
    rc, _ = run_step("tests", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                               f"--junitxml={report}", *GPU_TEST_FILES], work, LIMITS["tests"])
    if not report.is_file():
        return Row("gpu-marked tests", result=f"no report (rc {rc}); see tests.log", ok=False)
    c = junit_counts(report)
    passed = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
    ok = c["failures"] == 0 and c["errors"] == 0 and rc in (0, 5)
    return Row("gpu-marked tests", gpu=f"{passed} passed", ok=ok,
               result=f"{c['failures']} failed, {c['errors']} errors, {c['skipped']} skipped")


def flow_speed(work: Path) -> list[Row]:
    rc, out = run_step("flow", [sys.executable, "-m", "tools.bench_cuda_flow", "--json", "--sizes", "112", "224",
                                "--repeats", "10"], work, LIMITS["flow"])
    if rc != 0:
        return [Row("flow + encoding ms/pair", result=f"failed (rc {rc}); see flow.log", ok=False)]
    rows = []
    for size, r in json.loads(out.strip().splitlines()[-1])["results"].items():
        for label, cpu_key, gpu_key, unit in (("live ms/frame (2 pairs)", "cv2_live_ms", "gpu_live_ms", "ms"),
                                              ("replay pairs/s", "cv2_replay_pairs_s", "gpu_replay_pairs_s", "/s")):
            cpu, gpu = r.get(cpu_key), r.get(gpu_key)
            ratio = ""
            if cpu and gpu:
                ratio = f"{cpu / gpu:.1f}x faster" if unit == "ms" else f"{gpu / cpu:.1f}x faster"
            rows.append(Row(f"flow + encoding, {label}, {size} px", cpu="" if cpu is None else f"{cpu:.2f}",
                            gpu="" if gpu is None else f"{gpu:.2f}", result=ratio or "GPU not measured",
                            ok=gpu is not None))
    return rows


def scorer_speed(work: Path) -> Row:
    rc, out = run_step("engines", [sys.executable, "-m", "tools.bench_engines", "--json", "--iters", "20",
                                   "--batch-iters", "3"], work, LIMITS["engines"])
    if rc != 0:
        return Row("model ms/frame (ME+MaE, batch 1)", result=f"failed (rc {rc}); see engines.log", ok=False)
    both = {r["backend"]: r["median_ms"] for r in json.loads(out.strip().splitlines()[-1])["results"]
            if r["what"] == "ME+MaE"}
    cpu = both.get("torch-cpu")
    gpu_name, gpu = min(((k, v) for k, v in both.items() if "cuda" in k or "tensorrt" in k),
                        key=lambda kv: kv[1], default=("", None))
    return Row("model ms/frame (ME+MaE, batch 1)", cpu="" if cpu is None else f"{cpu:.2f}",
               gpu="" if gpu is None else f"{gpu:.2f} ({gpu_name})",
               result=(f"{cpu / gpu:.1f}x; " if cpu and gpu else "") + ", ".join(f"{k} {v:.2f}" for k, v in both.items()),
               ok=gpu is not None)


def end_to_end(work: Path, seconds: float) -> list[Row]:
    data = work / "e2e_data"
    rc, _ = run_step("synth", [sys.executable, "-m", "tools.synth", "--out", str(data), "--videos", "1", "--fps",
                               "30", "--duration", str(seconds), "--layout", "cas", "--seed", "5"], work,
                     LIMITS["synth"])
    workbooks = sorted(data.glob("*.xlsx"))
    if rc != 0 or not workbooks:
        return [Row("end to end", result=f"synthetic video not made (rc {rc}); see synth.log", ok=False)]
    results = {}
    for name, backend, flow in (("cpu", "cpu", "cpu"), ("gpu", "cuda", "cuda")):
        out = work / f"e2e_{name}"
        rc, _ = run_step(f"e2e_{name}", [sys.executable, "-m", "realtime.cli", "--replay", "CAS", "--data", str(data),
                                         "--annotations", str(workbooks[0]), "--backend", backend, "--flow", flow,
                                         "--out", str(out), "--pub", "none", "--quiet"], work, LIMITS["e2e"])
        metrics = out / "metrics.json"
        results[name] = (rc, json.loads(metrics.read_text()) if metrics.is_file() else None, out)
    cells, rows = {}, []
    for name, (rc, m, _) in results.items():
        cells[name] = (f"{m['performance']['fps']:.1f} fps, F1 {m['megc']['overall']['f1']:.3f}"
                       if rc == 0 and m and m.get("megc") else f"failed (rc {rc}); see e2e_{name}.log")
    ok = all(rc == 0 and m for rc, m, _ in results.values())
    ratio = ""
    if ok:
        fps = {k: v[1]["performance"]["fps"] for k, v in results.items()}
        ratio = f"{fps['gpu'] / fps['cpu']:.1f}x" if fps["cpu"] else ""
    rows.append(Row(f"end to end, {seconds:g} s 640x480 @30 fps", cpu=cells["cpu"], gpu=cells["gpu"], result=ratio, ok=ok))
    if ok:
        def intervals(folder: Path) -> set[tuple[str, ...]]:
            lines = (folder / "predictions.csv").read_text().splitlines()[1:]
            return {tuple(line.split(",")[:4]) for line in lines}

        a, b = intervals(results["cpu"][2]), intervals(results["gpu"][2])
        rows.append(Row("same intervals, CPU vs CUDA path", cpu=str(len(a)), gpu=str(len(b)),
                        result=f"{len(a & b)} identical (video, type, onset, offset)"))
    return rows


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for column, justify in (("check", "left"), ("CPU", "right"), ("GPU", "right"), ("result", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.check, r.cpu, r.gpu, r.result if r.ok else f"[red]{r.result}[/red]")
    return table


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lgnm-gpu-check"), help="logs and results go here")
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the end-to-end video")
    ap.add_argument("--force", action="store_true",
                    help="run every step without a GPU too (the GPU cells then fail; tests the plumbing)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows, torch_gpu, cupy_gpu = environment()
    if torch_gpu or cupy_gpu or args.force:
        # Every step runs when either sees the GPU: one broken half must not hide the other
        # (a CuPy failure still leaves the torch scorers to measure), and its rows say why.
        rows.append(gpu_tests(args.work))
        rows += flow_speed(args.work)
        rows.append(scorer_speed(args.work))
        rows += end_to_end(args.work, args.seconds)
    else:
        rows.append(Row("GPU steps", result="skipped: neither torch nor CuPy sees a CUDA GPU"))
    title = f"lgnm-live GPU check ({time.monotonic() - t0:.0f} s, {os.cpu_count()} CPU cores)"
    Console(width=200).print(render(rows, title))
    (args.work / "gpu_check.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
