import numpy as np
import pytest
import torch

from jpegfix.bench.peers import (ARCNN, DnCNN, arcnn_quality, available_peers, load_arcnn, load_peer,
                                 peer_files)
from jpegfix.bench.cases import ijg_column, jpeg_round_trip
from jpegfix.errors import InputError, MissingWeightsError
from jpegfix.metrics import psnr, rgb_to_y
from jpegfix.qmaps import ijg_components, ijg_table

from bench_helpers import SHARED_PEERS

needs_peers = pytest.mark.skipif(not SHARED_PEERS.is_dir(), reason="needs ../shared/peers")


def test_arcnn_keeps_the_size_with_replicate_padding():
    net = ARCNN().eval()
    assert [c.kernel_size[0] for c in net.convs] == [9, 7, 1, 5]
    with torch.no_grad():
        assert net(torch.rand(1, 1, 19, 30)).shape == (1, 1, 19, 30)
        for conv in net.convs:  # a pass-through network: replicate padding keeps a constant image constant
            conv.weight.zero_()
            conv.bias.fill_(0.0)
        net.convs[-1].bias.fill_(0.25)
        assert torch.allclose(net(torch.rand(1, 1, 12, 12)), torch.full((1, 1, 12, 12), 0.25))


def test_dncnn_is_residual():
    net = DnCNN(depth=5, width=8).eval()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 5
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        x = torch.rand(1, 1, 11, 13)
        assert torch.equal(net(x), x)


def test_arcnn_mat_kernels_are_read_column_major(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    shapes = {"conv1": (1, 81, 64), "conv2": (64, 49, 32), "conv22": (32, 1, 16), "conv3": (16, 25)}
    mat = {f"weights_{k}": rng.normal(size=s) for k, s in shapes.items()}
    mat.update({f"biases_{k}": rng.normal(size=(s[-1] if len(s) == 3 else 1, 1)).astype(np.float32)
                for k, s in shapes.items()})
    scipy_io.savemat(tmp_path / "q10.mat", mat)
    net = load_arcnn(tmp_path / "q10.mat")
    w1 = net.convs[0].weight.detach().numpy()
    # MATLAB reshape(w(1,:,o), 9, 9): element r + 9 c of the stored vector is kernel row r, column c
    assert w1[5, 0, 2, 7] == pytest.approx(mat["weights_conv1"][0, 2 + 9 * 7, 5])
    w3 = net.convs[3].weight.detach().numpy()
    assert w3.shape == (1, 16, 5, 5) and w3[0, 3, 4, 1] == pytest.approx(mat["weights_conv3"][3, 4 + 5 * 1])
    assert net.convs[2].bias.detach().numpy() == pytest.approx(mat["biases_conv22"].ravel())


def test_arcnn_picks_the_nearest_trained_quality():
    assert [arcnn_quality(ijg_table(q)) for q in (5, 10, 14, 25, 31, 90)] == [10, 10, 10, 20, 30, 40]


def test_missing_peer_weights(tmp_path):
    assert available_peers(tmp_path) == [] and available_peers(None) == []
    with pytest.raises(MissingWeightsError, match="arcnn weights not found"):
        load_peer("arcnn", tmp_path)
    with pytest.raises(MissingWeightsError, match="--peers-dir"):
        load_peer("dncnn3", None)
    assert [p.name for p in peer_files("arcnn", tmp_path)] == ["q10.mat", "q20.mat", "q30.mat", "q40.mat"]


@needs_peers
def test_released_peers_load_and_remove_artifacts(photo):
    assert available_peers(SHARED_PEERS) == ["arcnn", "dncnn3"]
    luma = rgb_to_y(photo[100:196, 180:300])[..., None]  # studio-range luma, as the peers were trained on
    decoded, _ = jpeg_round_trip(luma, ijg_column(10), "4:2:0")
    components = ijg_components(10, 1)
    baseline = psnr(luma, decoded)
    for name in ("arcnn", "dncnn3"):
        peer = load_peer(name, SHARED_PEERS)
        restored = peer.restore(decoded, components)
        assert restored.dtype == np.uint8 and restored.shape == luma.shape
        assert psnr(luma, restored) > baseline + 0.5, name
        assert peer.card["weights"] and peer.spec.channels == 1
    with pytest.raises(InputError, match="luma table"):
        load_peer("arcnn", SHARED_PEERS).restore(decoded, None)
    with pytest.raises(InputError, match="one luma channel"):
        load_peer("dncnn3", SHARED_PEERS).restore(np.zeros((8, 8, 3), np.uint8))
