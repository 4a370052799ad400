"""``jpegfix restore --cluster``: the Ray Data pipeline against the local tool, on one local
Ray instance (2 CPUs) shared by the tests of this module; skipped where Ray is not installed."""

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from jpegfix.cli.app import app
from jpegfix.batch import RestoreOptions

from conftest import save_jpeg

runner = CliRunner()


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the cluster extra (ray[data]) is not installed")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def photos(tmp_path, photo, grey_photo):
    """Three small JPEGs at quality 20 (colour 4:2:0, colour 4:4:4, grey) and a corrupt one."""
    folder = tmp_path / "in"
    folder.mkdir()
    save_jpeg(folder / "colour.jpg", photo[:48, :64], quality=20)
    save_jpeg(folder / "full.jpg", photo[16:64, 32:80], quality=20, subsampling=0)
    save_jpeg(folder / "grey.jpg", grey_photo[:40, :56], quality=20)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    return folder


def restore(*args):
    return runner.invoke(app, ["restore", *map(str, args)])


def pngs(folder):
    return {p.name: p.read_bytes() for p in folder.rglob("*.png")}


def test_cluster_writes_the_local_outputs_then_resumes(tmp_path, photos, ray_session):
    local = restore(photos, "-o", tmp_path / "local", "--json")
    assert local.exit_code == 1  # the corrupt file, as on the cluster
    first = restore(photos, "-o", tmp_path / "ray", "--cluster", "auto", "--concurrency", 2, "--batch-size", 1)
    assert first.exit_code == 1, first.output
    assert pngs(tmp_path / "ray") == pngs(tmp_path / "local")  # byte for byte
    assert len(pngs(tmp_path / "ray")) == 3
    results = [json.loads(line) for line in (tmp_path / "ray" / "jpegfix-results.jsonl").read_text().splitlines()]
    by_name = {os.path.basename(r["source"]): r for r in results}
    assert {n: r["status"] for n, r in by_name.items()} == {"colour.jpg": "ok", "full.jpg": "ok", "grey.jpg": "ok",
                                                             "corrupt.jpg": "failed"}
    local_records = {os.path.basename(r["source"]): r for r in json.loads(local.stdout)}
    for name, record in by_name.items():  # the same model, reason and error line as locally
        assert [record[k] for k in ("model", "reason", "error")] == [local_records[name][k] for k in ("model", "reason", "error")]
        assert record["seconds"] > 0
    assert "corrupt" in by_name["corrupt.jpg"]["error"] and "\n" not in by_name["corrupt.jpg"]["error"]

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.png")}
    again = restore(photos, "-o", tmp_path / "ray", "--cluster", "auto", "--json")
    assert again.exit_code == 1  # the corrupt file still fails
    statuses = sorted(r["status"] for r in json.loads(again.stdout))
    assert statuses == ["failed", "skipped", "skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.png")} == before


class DyingRestorer:
    """Stands for the real actor class, but its process exits on the very first call of the
    run (a marker file remembers it across the restart), as a node lost mid-batch would."""

    marker = ""  # set on a subclass made per test (pickled with its class to the actors)

    def __init__(self, options):
        from jpegfix.cluster import FileRestorer

        self.inner = FileRestorer(options)

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return self.inner(batch)
        os._exit(1)


def test_a_killed_actor_loses_nothing(tmp_path, photos, ray_session):
    from jpegfix.cluster import ClusterSettings, plan_cluster_jobs, restore_on_cluster

    (photos / "corrupt.jpg").unlink()
    marker = tmp_path / "died"
    jobs, problems = plan_cluster_jobs([str(photos)], str(tmp_path / "ray"))
    assert not problems
    restorer = type("Dying", (DyingRestorer,), {"marker": str(marker)})
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import this file
    results = restore_on_cluster(jobs, RestoreOptions(), ClusterSettings(actors=1, batch_size=3), restorer=restorer)
    assert marker.exists()  # the first call did kill its actor
    assert [r.status for r in results] == ["ok", "ok", "ok"]  # written once each: a second write would be a skip
    assert sorted(os.listdir(tmp_path / "ray")) == ["colour.png", "full.png", "grey.png"]  # no temporaries
    assert restore(photos, "-o", tmp_path / "local").exit_code == 0
    assert pngs(tmp_path / "ray") == pngs(tmp_path / "local")


def test_uris_in_and_out_through_pyarrow(tmp_path, photos, ray_session):
    (photos / "corrupt.jpg").unlink()
    (photos / "sub").mkdir()
    (photos / "grey.jpg").rename(photos / "sub" / "grey.jpg")
    source, target = f"file://{photos}", f"file://{tmp_path}/ray"
    result = restore(source, "-o", target, "-r", "--cluster", "auto", "--suffix", "_fixed")
    assert result.exit_code == 0, result.output
    assert restore(photos, "-o", tmp_path / "local", "-r", "--suffix", "_fixed").exit_code == 0
    assert sorted(str(p.relative_to(tmp_path / "ray")) for p in (tmp_path / "ray").rglob("*.png")) == \
        ["colour_fixed.png", "full_fixed.png", "sub/grey_fixed.png"]
    assert pngs(tmp_path / "ray") == pngs(tmp_path / "local")
    from jpegfix.cluster import read_results

    records = read_results(f"{target}/jpegfix-results.jsonl")
    assert sorted(r.target for r in records) == [f"{target}/colour_fixed.png", f"{target}/full_fixed.png",
                                                 f"{target}/sub/grey_fixed.png"]


def test_uri_listing_names_outputs_as_the_local_planner(tmp_path, photos, photo):
    pytest.importorskip("pyarrow")
    from jpegfix.cluster import plan_cluster_jobs
    from jpegfix.batch import plan_jobs

    (photos / "sub").mkdir()
    save_jpeg(photos / "sub" / "colour.jpg", photo[:16, :16])
    local_jobs, local_problems = plan_jobs([str(photos)], tmp_path / "out", recursive=True, suffix="_x")
    jobs, problems = plan_cluster_jobs([f"file://{photos}"], "s3://bucket/out", recursive=True, suffix="_x")
    assert [str(j.target) for j in jobs] == [f"s3://bucket/out/{j.target.relative_to(tmp_path / 'out')}" for j in local_jobs]
    assert not problems and not local_problems
    missing, trouble = plan_cluster_jobs([f"file://{tmp_path}/nothing"], "s3://bucket/out")
    assert not missing and trouble[0].error == "no such file or folder"


def test_without_ray_the_cluster_option_says_how_to_install_it(tmp_path, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    result = restore(photos, "-o", tmp_path / "out", "--cluster", "auto")
    assert result.exit_code == 2
    assert 'pip install "jpegfix[cluster]"' in result.output
    assert not (tmp_path / "out").exists()


class BrokenRestorer:
    """An actor that cannot start (a node without the GPU driver, say)."""

    def __init__(self, options):
        raise RuntimeError("no GPU driver on this node")


def test_when_ray_gives_up_every_file_left_is_one_failed_record(tmp_path, photos, ray_session):
    from jpegfix.cluster import ClusterSettings, plan_cluster_jobs, restore_on_cluster

    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    jobs, _ = plan_cluster_jobs([str(photos / "colour.jpg"), str(photos / "grey.jpg")], str(tmp_path / "ray"))
    results = restore_on_cluster(jobs, RestoreOptions(), ClusterSettings(actors=1), restorer=BrokenRestorer)
    assert [r.status for r in results] == ["failed", "failed"]
    assert results[0].error == ("not restored: the Ray pipeline stopped (ActorDiedError: RuntimeError: no GPU driver "
                                "on this node); rerun to resume")
