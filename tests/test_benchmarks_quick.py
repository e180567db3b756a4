"""``python -m benchmarks --quick``: the harness runs end to end and reports every figure.

A smoke test of the harness only: its numbers are not checked against any threshold.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.plan import Layout
from benchmarks.report import BEGIN, END, write_document

ROOT = Path(__file__).resolve().parents[1]
ALL = {"diced·open": "diced", "diced·locked": "diced", "zarr": "zarr",
       "TensorStore": "tensorstore", "Icechunk": "icechunk"}
VERSIONED = {"diced·open", "diced·locked", "Icechunk"}
#: Workload groups of the quick plan (by prefix) and the systems each must list.
GROUPS = {
    "bulk write · image 128³": set(ALL),
    "bulk write · labels 128³": set(ALL),
    "bulk read · image 128³": set(ALL),
    "bulk read · labels 128³": set(ALL),
    "memory · read all of image": set(ALL),
    "memory · read all of labels": set(ALL),
    "random reads · 20 × 64³ chunk-aligned": set(ALL),
    "random reads · 20 × 100³ unaligned": set(ALL),
    "random writes · 20 × 10³": set(ALL),
    "branch + one-chunk edit": VERSIONED,
    "history depth 1": VERSIONED,
    "history depth 5": VERSIONED,
    "import · TIFF stack of image 128³": {"diced·open", "zarr"},
    "pyramid · image 256³": {"diced·open"},
    "gc · 400 chunks": {"diced·locked"},
    "copy · image 128³": {"diced·locked"},
    "diff · sparse unbounded array, 1,000 stored chunks": {"diced·locked", "Icechunk"},
    "diff · sparse unbounded array, 4,000 stored chunks": {"diced·locked", "Icechunk"},
    "merge · two branches of image 128³": {"diced·locked"},
}


def _installed(label: str) -> bool:
    return importlib.util.find_spec(ALL[label]) is not None


def _table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the full table (the one headed ``| workload | measure | system |``)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("| workload | measure | system |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")),
                             strict=True)))
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("bench")
    out = base / "b.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out),
         "--workdir", str(base / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, out


def test_quick_run_writes_the_document_with_its_command(quick_run: tuple[str, Path]) -> None:
    stdout, out = quick_run
    text = out.read_text()
    assert BEGIN in text and END in text
    assert "`python -m benchmarks --quick --out " in text
    for fact in ("| CPU |", "| packages |", "| diced commit |", "load average"):
        assert fact in text
    assert _table_rows(stdout) == _table_rows(text)


def test_discarded_stores_are_deleted_when_the_run_ends(quick_run: tuple[str, Path]) -> None:
    work = quick_run[1].parent / "work"
    assert (work / "prepared").is_dir()  # the stores later workloads read are kept
    assert not (work / "discarded").exists()
    assert not any(p.is_file() for p in (work / "scratch").rglob("*"))  # moved, then deleted


def test_discard_moves_a_tree_aside(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    store = tmp_path / "scratch" / "s"
    (store / "a").mkdir(parents=True)
    (store / "a" / "f").write_bytes(b"x")
    layout.discard(store)
    layout.discard(tmp_path / "never-made")  # nothing there: nothing to do
    assert not store.exists()
    [moved] = layout.discarded.iterdir()
    assert (moved / "a" / "f").read_bytes() == b"x"


def test_every_workload_has_a_row_per_system(quick_run: tuple[str, Path]) -> None:
    rows = _table_rows(quick_run[1].read_text())
    for prefix, systems in GROUPS.items():
        found = {row["system"] for row in rows if row["workload"].startswith(prefix)}
        assert found == systems, prefix
    assert all(any(row["workload"].startswith(p) for p in GROUPS) for row in rows)


def test_figures_are_positive_numbers_or_a_skip_note(quick_run: tuple[str, Path]) -> None:
    for row in _table_rows(quick_run[1].read_text()):
        if _installed(row["system"]):
            assert float(row["median"]) > 0, row
            assert int(row["n"]) >= 1 and not row["note"], row
            for ratio in (row["÷ TensorStore"], row["÷ zarr"]):
                assert ratio == "—" or float(ratio.rstrip("×")) > 0, row
        else:
            assert row["median"] == "—" and row["note"].startswith("not installed"), row


def test_stored_sizes_agree_so_the_codecs_match(quick_run: tuple[str, Path]) -> None:
    """Same data, same chunks, same codec: every system stores about the same bytes."""
    rows = [r for r in _table_rows(quick_run[1].read_text())
            if r["measure"] == "size on disk" and r["median"] != "—"]
    for array in ("image", "labels"):
        sizes = [float(r["median"]) for r in rows if f"· {array} " in r["workload"]]
        assert len(sizes) >= 2 and max(sizes) < 1.1 * min(sizes), sizes


def test_a_rerun_replaces_only_the_generated_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Title\n\nHand-written intro.\n\n{BEGIN}\nold table\n{END}\n\nOutro.\n")
    write_document(doc, "new table")
    assert doc.read_text() == (f"# Title\n\nHand-written intro.\n\n{BEGIN}\n\nnew table\n"
                               f"{END}\n\nOutro.\n")
    fresh = tmp_path / "new.md"
    write_document(fresh, "first")
    assert fresh.read_text().startswith("# diced benchmarks") and "first" in fresh.read_text()


# -- python -m benchmarks --cloud --quick ---------------------------------------------------

CLOUD_SYSTEMS = {"diced·locked": "diced", "zarr (obstore)": "obstore"}


@pytest.fixture(scope="module")
def cloud_quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Two systems on the S3 emulator behind its +20 ms proxy: the cloud harness end to end."""
    pytest.importorskip("moto.server")
    base = tmp_path_factory.mktemp("cloud-bench")
    out = base / "b.md"
    out.write_text(f"# Benchmarks\n\n{BEGIN}\nlocal table\n{END}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--cloud", "--quick", "--clouds", "s3",
         "--systems", "diced-locked,zarr-obstore", "--out", str(out),
         "--workdir", str(base / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, out


def _cloud_rows(text: str) -> dict[str, dict[str, str]]:
    """The medians table of the cloud section: measure → system label → cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| workload · measure |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        rows[cells["workload · measure"]] = cells
    return rows


def test_cloud_quick_run_keeps_the_local_section(cloud_quick_run: tuple[str, Path]) -> None:
    from benchmarks.cloud.report import CLOUD_BEGIN, CLOUD_END

    text = cloud_quick_run[1].read_text()
    assert f"{BEGIN}\nlocal table\n{END}" in text
    assert CLOUD_BEGIN in text and CLOUD_END in text
    assert "`python -m benchmarks --cloud --quick --clouds s3 " in text
    assert "| cloud | workload | target |" in text


def test_cloud_figures_are_measured_for_every_system(cloud_quick_run: tuple[str, Path]) -> None:
    rows = _cloud_rows(cloud_quick_run[1].read_text())
    groups = ("bulk write · image 128³", "bulk write · labels 128³", "bulk read · image 128³",
              "bulk read · labels 128³", "random reads · 10 × 64³ chunks", "read 27 chunks")
    for group in groups:
        found = [cells for measure, cells in rows.items() if group in measure]
        assert found, group
        for cells in found:
            for label, package in CLOUD_SYSTEMS.items():
                if importlib.util.find_spec(package) is not None:
                    assert float(cells[label]) > 0, (group, label)


def test_cloud_request_counts_come_from_the_proxy(cloud_quick_run: tuple[str, Path]) -> None:
    """27 chunks: zarr reads 27 objects; diced·locked 27 blobs and its one index page."""
    rows = _cloud_rows(cloud_quick_run[1].read_text())
    count = next(cells for measure, cells in rows.items() if "read 27 chunks" in measure)
    assert float(count["diced·locked"]) == 28
    if importlib.util.find_spec("obstore") is not None:
        assert float(count["zarr (obstore)"]) == 27
