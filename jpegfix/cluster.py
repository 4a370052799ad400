"""Restoring a batch on a Ray cluster: the local tool's jobs as one Ray Data pipeline.

    list the inputs (the local planner; a pyarrow listing for URIs)
    -> read each file's bytes (Ray tasks, from any file system pyarrow opens)
    -> restore (an actor pool: each actor loads its models once and calls
       :func:`jpegfix.engine.restore_file`, the very function the local tool calls)
    -> write (plain paths: restore_file's atomic writer; URIs: staged, then moved into place)
    -> one :class:`FileResult` per file, as JSON Lines in a results file.

Outputs that exist and are complete are skipped (read-stage check), so a rerun, or the retry
of a batch whose actor was killed, only does what is missing. Ray restarts a dead actor and
retries its batch (Ray Data's default for actor pools), and a file that fails is one failed
record, never a failed job.

Ray is an optional extra (``jpegfix[cluster]``); it is imported only when a cluster run starts.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

# The engine's batch API, imported in this one place (it moves to jpegfix.batch unchanged).
from jpegfix.batch import FileResult, Job, RestoreOptions, Sources, candidate_targets, plan_jobs, restore_file
from jpegfix.errors import JpegfixError
from jpegfix.output import EXTENSIONS, choose_format, is_complete_output
from jpegfix.paths import FORMAT_BY_SUFFIX, INPUT_SUFFIXES, LOSSLESS_FORMATS, name_outputs
from jpegfix.writer import write_exclusive

INSTALL_HINT = 'Ray is not installed; install the cluster extra: python3 -m pip install "jpegfix[cluster]"'
RESULTS_NAME = "jpegfix-results.jsonl"
"""The results file's name in the output folder unless ``--results`` names another."""


class ClusterError(JpegfixError):
    """Ray is missing, or the cluster cannot be reached or cannot run the actors asked for."""


@dataclass
class ClusterSettings:
    """How a batch is spread over a Ray cluster."""

    address: str = "auto"
    """``auto``: the running cluster (``RAY_ADDRESS``, or the head started on this machine by
    ``ray start --head``; what ``ray job submit`` sets up); ``local``: start a Ray instance on
    this machine for this run; else an address (``ray://head:10001``, ``head:6379``)."""
    actors: int = 0
    """Restoring actors; 0: one per ``gpus_per_actor`` GPUs, or per ``cpus_per_actor`` CPUs on a cluster without GPUs."""
    batch_size: int = 4
    """Files handed to an actor at a time (and read per task)."""
    gpus_per_actor: float | None = None
    """GPUs each actor holds; None: 1 on a cluster with GPUs, 0 (CPU actors) otherwise."""
    cpus_per_actor: float = 1.0
    """CPUs each actor holds; Ray sets the actor's thread count (OMP_NUM_THREADS) to it."""


def is_uri(location: str) -> bool:
    """Whether ``location`` names a file system by scheme (``s3://``, ``gs://``, ``file://``)
    rather than a plain path (local disk, NFS)."""
    return "://" in location


def require_ray():
    """The ``ray`` module, or ClusterError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]; plain ray lacks pyarrow)
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


# -- listing ---------------------------------------------------------------------------


def plan_cluster_jobs(inputs: list[str], out: str, *, recursive: bool = False, suffix: str = "",
                      output_format: str = "auto", bits: int | None = None) -> tuple[list[Job], list[FileResult]]:
    """The jobs of a cluster run and a failed result per input that gives none.

    Plain paths in and out go through the local planner itself (same files, names,
    collisions, formats and refusals). With URIs the same naming rule applies (stems shared
    in one folder keep their source extension), listing through pyarrow and judging each
    file's format by its extension (reading every object's first bytes would cost a round
    trip per file): ``jobs`` then hold ``str`` locations instead of ``Path``s (a ``Path``
    would fold ``//``).
    """
    if not is_uri(out) and not any(is_uri(i) for i in inputs):
        return plan_jobs(inputs, Path(out), recursive=recursive, suffix=suffix, output_format=output_format, bits=bits)
    listed: list[tuple[str, str]] = []
    problems: list[FileResult] = []
    for item in inputs:
        found, trouble = _list_uri(item, recursive) if is_uri(item) else _list_local(item, recursive)
        problems += [FileResult(where, None, "failed", why) for where, why in trouble]
        listed += found
    entries = [(subfolder, PurePosixPath(source).name, _extension(source, output_format, bits))
               for source, subfolder in listed]
    jobs: list[Job] = []
    for (source, subfolder), (name, clash) in zip(listed, name_outputs(entries, suffix)):
        target = _join(out, subfolder, name)
        if clash is None:
            jobs.append(Job(source, target))
        else:
            problems.append(FileResult(source, target, "failed", f"output name collides with that of {listed[clash][0]}"))
    return jobs, problems


def _extension(source: str, output_format: str, bits: int | None) -> str:
    """The output extension of a listed object, its format judged from its name (WebP counted lossy)."""
    kind = FORMAT_BY_SUFFIX.get(PurePosixPath(source).suffix.lower(), "")
    return EXTENSIONS[choose_format(output_format, kind, kind in LOSSLESS_FORMATS, bits)]


def _list_local(item: str, recursive: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Local image files of ``item`` with their subfolders, as the local planner mirrors them."""
    from jpegfix.paths import find_inputs, output_paths

    found, _skipped, problems = find_inputs([item], recursive=recursive)
    planned, taken = output_paths(found, "", lambda f: "")
    folder = lambda relative: "" if relative.parent == Path(".") else relative.parent.as_posix()
    return [(str(f.source), folder(relative)) for f, relative in planned], problems + taken


def _list_uri(uri: str, recursive: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Image files at ``uri`` (a file, or a folder: one level or all) with their subfolders."""
    from pyarrow import fs as pafs

    try:
        filesystem, root = pafs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.File:
            return [(uri, "")], []
        if info.type != pafs.FileType.Directory:
            return [], [(uri, "no such file or folder")]
        listing = filesystem.get_file_info(pafs.FileSelector(root, recursive=recursive))
    except (OSError, ValueError) as error:  # unknown scheme, no credentials, unreachable store
        return [], [(uri, f"cannot list: {_one_line(error)}")]
    found = []
    for entry in sorted(listing, key=lambda e: e.path):
        if entry.type == pafs.FileType.File and PurePosixPath(entry.path).suffix.lower() in INPUT_SUFFIXES:
            relative = posixpath.relpath(entry.path, root.rstrip("/") or "/")
            found.append((f"{uri.rstrip('/')}/{relative}", posixpath.dirname(relative)))
    return found, [] if found else [(uri, "folder holds no images")]


def _join(folder: str, subfolder: str, name: str) -> str:
    if is_uri(folder):
        return "/".join(p for p in (folder.rstrip("/"), subfolder, name) if p)
    return str(Path(folder) / subfolder / name)


def output_locations(target: str, samples: int) -> list[str]:
    """Every output file of a job (``candidate_targets``, for paths and URIs alike)."""
    folder, _, name = target.rpartition("/")
    return [f"{folder}/{p.name}" if folder else p.name for p in candidate_targets(Path(name), samples)]


def _root_cause(error: BaseException) -> str:
    """The last line of a Ray error, which carries the remote traceback: the exception that
    started it (``RuntimeError: no GPU driver``), without terminal colours."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:300]


def _one_line(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split())[:300]


# -- the pipeline ----------------------------------------------------------------------


def restore_on_cluster(
    jobs: list[Job],
    options: RestoreOptions,
    settings: ClusterSettings,
    on_result: Callable[[FileResult], None] = lambda r: None,
    *,
    restorer: type | None = None,
) -> list[FileResult]:
    """Restore ``jobs`` on the cluster; reports each result to ``on_result`` as it arrives
    and returns them all in job order. ``restorer`` replaces the actor class (tests pass one
    that dies on its first call).

    Complete outputs are skipped unless ``options.overwrite``: cluster runs resume. Should
    Ray give up on the run, every file without a result gets a failed one saying so.

    Raises:
        ClusterError: Ray is missing, the cluster is unreachable or has no room for an actor.
    """
    ray = connect(settings.address)
    if not jobs:
        return []
    options = RestoreOptions(**{**asdict(options), "skip_existing": not options.overwrite})
    gpus = settings.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
    actors = settings.actors or _actors_that_fit(ray.cluster_resources(), gpus, settings.cpus_per_actor)
    sources = {str(Path(job.source).resolve()) for job in jobs if not is_uri(str(job.source))}
    rows = [{"index": i, "source": str(job.source), "target": str(job.target),
             "inputs_at_targets": json.dumps(_inputs_at_targets(job, options.samples, sources))}
            for i, job in enumerate(jobs)]
    # Smaller batches when there are few files, so that every actor gets some.
    batch_size = max(1, min(settings.batch_size, math.ceil(len(rows) / actors)))
    dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
    # Reading is I/O: zero CPUs, so it never waits behind actors that hold every CPU.
    dataset = dataset.map_batches(read_sources, fn_kwargs={"options": options}, batch_size=batch_size,
                                  batch_format="numpy", num_cpus=0)
    dataset = dataset.map_batches(restorer or FileRestorer, fn_constructor_kwargs={"options": options},
                                  batch_size=batch_size, batch_format="numpy",
                                  compute=ray.data.ActorPoolStrategy(size=actors),
                                  num_gpus=gpus, num_cpus=settings.cpus_per_actor)
    results: dict[int, FileResult] = {}
    try:
        for row in dataset.iter_rows():
            result = FileResult(**json.loads(row["result"]))
            on_result(result)
            results[row["index"]] = result
    except Exception as error:  # actors that cannot start, a lost head node: Ray gives up on the run
        stopped = f"not restored: the Ray pipeline stopped ({type(error).__name__}: {_root_cause(error)}); rerun to resume"
        for index in sorted(set(range(len(jobs))) - set(results)):
            results[index] = FileResult(str(jobs[index].source), str(jobs[index].target), "failed", stopped)
            on_result(results[index])
    return [results[index] for index in range(len(jobs))]


def connect(address: str):
    """Join the Ray cluster at ``address`` (see :attr:`ClusterSettings.address`); a session
    already started in this process (a test's, a notebook's) is used as it is."""
    ray = require_ray()
    if not ray.is_initialized():
        import logging

        quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            hint = " (start one with `ray start --head`, or use --cluster local)" if address == "auto" else ""
            raise ClusterError(f"cannot reach a Ray cluster at {address}: {_one_line(error)}{hint}") from None
        _drop_retry_notices()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar from the results
    _quiet_console("ray.data")
    return ray


def _drop_retry_notices() -> None:
    """Ray's driver prints each task failure it is about to retry, traceback and all, on
    stdout, where ``--json`` goes ("(raylet) Task ... failed ... will be retried"). With
    worker output already off (``log_to_driver=False``) that printer serves nothing else,
    so it is silenced: the outcome of every file is in its record, and the session's log
    files keep the notices. Ray's private hook; if it moves, the notices simply print."""
    try:
        from ray._private import worker
    except ImportError:
        return
    if hasattr(worker, "print_to_stdstream"):
        worker.print_to_stdstream = lambda data, ignore_prefix: None


def _quiet_console(name: str) -> None:
    """Nothing from ``name`` on stderr: Ray Data logs every execution step there, and the
    tracebacks of failed tasks, which become result records instead. Its session log file
    (under /tmp/ray/session_latest/logs/ray-data) keeps everything."""
    import logging

    for handler in logging.getLogger(name).handlers:
        if type(handler).__name__ != "SessionFileHandler" and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL)


def _actors_that_fit(resources: dict[str, float], gpus: float, cpus: float) -> int:
    count = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 0) // cpus)
    if count < 1:
        kind = f"{gpus:g} GPU" if gpus else f"{cpus:g} CPU"
        raise ClusterError(f"the cluster has no room for one actor of {kind} ({_describe(resources)})")
    return count


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def _inputs_at_targets(job: Job, samples: int, sources: set[str]) -> list[str]:
    """The job's output paths that are also inputs of the batch: restore_file refuses to write
    them, as in a local run (the actor sees one file, so it is told)."""
    if is_uri(str(job.target)):
        return []
    return [t for t in (str(Path(p).resolve()) for p in output_locations(str(job.target), samples)) if t in sources]


def read_sources(batch, options: RestoreOptions):
    """Ray task: add each file's bytes (``data``), or why they could not be read
    (``read_error``), or that its outputs are already complete (``skip``, nothing read).
    No column holds None: Ray Data turns an all-None column into NaNs."""
    data, errors, skips = [], [], []
    for source, target, guarded in zip(batch["source"], batch["target"], batch["inputs_at_targets"]):
        skip = not options.overwrite and not json.loads(guarded) and outputs_complete(target, options.samples)
        content, error = b"", ""
        if not skip:
            try:
                content = _read(source)
            except Exception as failure:  # OSError, pyarrow's errors, a store's own: one failed file
                error = f"cannot read: {_one_line(failure)}"
        data.append(content)
        errors.append(error)
        skips.append(skip)
    return {**batch, "data": np.array(data, dtype=object), "read_error": np.array(errors, dtype=object),
            "skip": np.array(skips)}


def _read(location: str) -> bytes:
    if not is_uri(location):
        return Path(location).read_bytes()
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def outputs_complete(target: str, samples: int) -> bool:
    """Whether every output of a job exists as a complete image (what a rerun skips)."""
    if not is_uri(target):
        return all(is_complete_output(Path(p)) for p in output_locations(target, samples))
    from pyarrow import fs as pafs

    for location in output_locations(target, samples):
        try:
            filesystem, path = pafs.FileSystem.from_uri(location)
            with filesystem.open_input_stream(path) as stream, tempfile.NamedTemporaryFile(suffix=PurePosixPath(location).suffix) as copy:
                copy.write(stream.read())
                copy.flush()
                if not is_complete_output(Path(copy.name)):
                    return False
        except (OSError, ValueError):
            return False
    return True


class FileRestorer:
    """The restoring actor: ``restore_file`` on each file of a batch.

    Models load on first use into ``self.restorers`` and stay for every later batch of this
    actor (once per actor, as in one local run). Bytes are staged under their own file name
    in a private folder, so ``restore_file`` reads them as the local tool reads a file.
    """

    def __init__(self, options: RestoreOptions):
        self.options = options
        self.restorers: dict[str, Any] = {}
        self.reader = None
        if options.readout:
            from jpegfix.quality import QualityReader

            self.reader = QualityReader()
        self._staging = tempfile.TemporaryDirectory(prefix="jpegfix-cluster-")  # removed with the actor
        self.staging = Path(self._staging.name)

    def __call__(self, batch):
        rows = zip(batch["source"], batch["target"], batch["data"], batch["read_error"], batch["skip"],
                   batch["inputs_at_targets"])
        results = [self.restore_safely(*row) for row in rows]
        return {"index": batch["index"], "result": np.array([json.dumps(asdict(r)) for r in results], dtype=object)}

    def restore_safely(self, source: str, target: str, *rest) -> FileResult:
        """:meth:`restore`, with any exception turned into the file's failed record: an
        exception out of an actor would abort the whole dataset."""
        try:
            return self.restore(source, target, *rest)
        except Exception as error:
            detail = f"{type(error).__name__}: {_one_line(error)}"
            return FileResult(str(source), str(target), "failed", f"unexpected error, please report: {detail}")

    def restore(self, source: str, target: str, data: bytes, read_error: str, skip: bool, guarded: str) -> FileResult:
        source, target = str(source), str(target)
        if read_error:
            return FileResult(source, target, "failed", read_error)
        if skip:
            return FileResult(source, target, "skipped", reason="output exists")
        staged = self.staging / "in" / PurePosixPath(source).name
        staged.parent.mkdir(exist_ok=True)
        staged.write_bytes(data)
        remote = is_uri(target)
        local_target = self.staging / "out" / PurePosixPath(target).name if remote else Path(target)
        try:
            result = restore_file(Job(staged, local_target), self.options, self.restorers,
                                  Sources([Path(p) for p in json.loads(guarded)]), self.reader)
        finally:
            staged.unlink()
        result.source = source
        if remote:
            publish_outputs(result, local_target, target, self.options)
        return result


def publish_outputs(result: FileResult, staged: Path, target: str, options: RestoreOptions) -> None:
    """Move a job's staged outputs to ``target``'s file system and name them there in
    ``result``: each is written under a temporary name beside the target and then moved
    into place (a reader never sees half a file). Without ``overwrite`` a target that
    appeared meanwhile is kept; the check and the move are two steps on object stores."""
    from pyarrow import fs as pafs

    pairs = list(zip(candidate_targets(staged, options.samples), output_locations(target, options.samples)))
    try:
        for local, remote in pairs:
            if not local.exists():
                continue
            filesystem, path = pafs.FileSystem.from_uri(remote)
            if not options.overwrite and filesystem.get_file_info(path).type != pafs.FileType.NotFound and outputs_complete(remote, 1):
                result.status, result.reason = "skipped", "output written meanwhile by another run"
                continue
            filesystem.create_dir(posixpath.dirname(path), recursive=True)
            temporary = posixpath.join(posixpath.dirname(path), f".jpegfix-{secrets.token_hex(6)}.part")
            with local.open("rb") as file, filesystem.open_output_stream(temporary) as stream:
                shutil.copyfileobj(file, stream)
            filesystem.move(temporary, path)
    except (OSError, ValueError) as error:
        result.status, result.error = "failed", f"write failed: {_one_line(error)}"
    finally:
        for local, _ in pairs:
            local.unlink(missing_ok=True)
    names = dict((str(local), remote) for local, remote in pairs)
    result.target = names.get(result.target, result.target)
    for candidate in result.details.get("candidates", []):
        candidate["path"] = names.get(candidate["path"], candidate["path"])


# -- the results file ------------------------------------------------------------------


def results_location(out: str, results: str | None) -> str:
    """Where the results file goes: ``results``, else ``jpegfix-results.jsonl`` in ``out``."""
    return results or _join(out, "", RESULTS_NAME)


def write_results(results: list[FileResult], location: str) -> None:
    """One JSON line per file, written whole (replacing an earlier run's list)."""
    text = "".join(json.dumps(asdict(r)) + "\n" for r in results).encode()
    if is_uri(location):
        from pyarrow import fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(location)
        filesystem.create_dir(posixpath.dirname(path), recursive=True)
        with filesystem.open_output_stream(path) as stream:
            stream.write(text)
        return
    target = Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_exclusive(target, lambda temporary: temporary.write_bytes(text), overwrite=True)


def read_results(location: str) -> list[FileResult]:
    """The records of a results file."""
    if is_uri(location):
        from pyarrow import fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(location)
        with filesystem.open_input_stream(path) as stream:
            text = stream.read().decode()
    else:
        text = Path(location).read_text()
    return [FileResult(**json.loads(line)) for line in text.splitlines() if line]


__all__ = ["ClusterError", "ClusterSettings", "FileRestorer", "plan_cluster_jobs", "restore_on_cluster",
           "results_location", "write_results", "read_results", "INSTALL_HINT"]
