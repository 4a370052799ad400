import json
import shutil

import pytest
import torch

from jpegfix.errors import MissingWeightsError
from jpegfix.models import MODELS, ModelSpec
from jpegfix.models.qgcn import QGCN
from jpegfix.weights import load_model, locate, save_model

from conftest import TINY_QGCN


def tiny_spec(name="qgcn-color-t") -> ModelSpec:
    return ModelSpec(name=name, method="qgcn", arch=QGCN, arch_args=dict(TINY_QGCN), channels=3,
                     needs_tables=True, hub_repo="jpegfix/test-weights", hub_revision="0123abc")


def test_save_then_load_roundtrip(tmp_path, monkeypatch):
    spec = tiny_spec()
    net = spec.build()
    save_model(net, tmp_path, spec.name, {"name": spec.name})
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path))
    loaded, card = load_model(spec, download=False)
    assert card["arch_args"]["width"] == 8
    x, q = torch.rand(1, 3, 32, 32), torch.rand(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, q), loaded(x, q))


def test_weights_stored_in_float16_load_into_the_float32_network(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    spec = tiny_spec()
    net = spec.build()
    weights, card_path = save_model(net, tmp_path, spec.name, {}, dtype="float16")
    assert {v.dtype for v in load_file(str(weights)).values()} == {torch.float16}
    assert json.loads(card_path.read_text())["weights_dtype"] == "float16"
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path))
    loaded, _ = load_model(spec, download=False)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x, q = torch.rand(1, 3, 32, 32), torch.rand(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x, q), loaded(x, q), atol=1e-3)


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    spec = tiny_spec()
    save_model(spec.build(), tmp_path, spec.name, {})
    card_path = tmp_path / f"{spec.name}.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="sha256"):
        load_model(spec, download=False)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No weights anywhere: an empty $JPEGFIX_WEIGHTS and an empty Hugging Face cache."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hub"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, empty_cache):
    """A reachable Hub whose files are a local folder: ``hf_hub_download`` stood in for with its
    real call signature, recording each call."""
    import huggingface_hub

    server, calls = tmp_path / "server", []

    def download(repo, filename, *, revision):
        calls.append((repo, filename, revision))
        if not (server / filename).is_file():
            raise FileNotFoundError(f"{filename} not on the hub")
        return str(server / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr("jpegfix.weights.hub_unreachable", lambda: None)
    return server, calls


def test_missing_weights_offline_says_how_to_get_them(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE is set; run `jpegfix download qgcn-color-t`"):
        locate(tiny_spec())


def test_unreachable_hub_fails_at_once_without_retries(empty_cache, monkeypatch):
    """A dead network costs one refused connection, not hf_hub_download's ~25 s of retries."""
    import huggingface_hub
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("no download expected"))
    with pytest.raises(MissingWeightsError, match="127.0.0.1 cannot be reached"):
        locate(tiny_spec())


def test_hugging_face_cache_is_used_offline(tmp_path, monkeypatch):
    """A pre-filled hub cache (the layout hf_hub_download writes) is found without network."""
    spec = tiny_spec()
    save_model(spec.build(), tmp_path / "made", spec.name, {})
    cache = tmp_path / "hub"
    repo = cache / "models--jpegfix--test-weights"
    commit = "0123abc" + "0" * 33
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(tmp_path / "made" / f"{spec.name}.safetensors", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "0123abc").write_text(commit)
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert locate(spec).name == f"{spec.name}.safetensors"


@pytest.mark.parametrize("name", [s.name for s in MODELS if s.name.endswith("-s")])
def test_shipped_weights_match_their_cards(name):
    from jpegfix.weights import package_folder, sha256_of

    path = package_folder() / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"{name} weights not shipped")
    card = json.loads(path.with_suffix(".json").read_text())
    assert sha256_of(path) == card["sha256"] and card["method"] == MODELS.get(name).method and card["validation_curve"]


def test_download_uses_the_pinned_revision_and_fetches_the_card(fake_hub, monkeypatch):
    server, calls = fake_hub
    spec = tiny_spec()
    save_model(spec.build(), server, spec.name, {})
    monkeypatch.setenv("JPEGFIX_HUB_REPO", "someone/mirror")
    net, card = load_model(spec)
    assert calls == [("someone/mirror", f"{spec.name}.json", "0123abc"),
                     ("someone/mirror", f"{spec.name}.safetensors", "0123abc")]
    assert card["arch_args"]["width"] == 8


def test_downloaded_weights_that_do_not_match_their_card_are_refused(fake_hub):
    server, _ = fake_hub
    spec = tiny_spec()
    weights, _ = save_model(spec.build(), server, spec.name, {})
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(MissingWeightsError, match="sha256 does not match"):
        locate(spec)


def test_hub_weights_without_a_card_are_refused(fake_hub):
    server, _ = fake_hub
    spec = tiny_spec()
    save_model(spec.build(), server, spec.name, {})
    (server / f"{spec.name}.json").unlink()
    with pytest.raises(MissingWeightsError, match="download from jpegfix/test-weights@0123abc failed"):
        locate(spec)


def test_failed_download_is_one_clear_error(fake_hub, monkeypatch):
    import huggingface_hub

    def failing(repo, filename, *, revision):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(MissingWeightsError, match=r"download from jpegfix/test-weights@0123abc failed \(ConnectionError\)"):
        locate(tiny_spec())
