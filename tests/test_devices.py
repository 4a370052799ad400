import pytest
import torch

from jpegfix.devices import pick_device
from jpegfix.errors import DeviceError


@pytest.mark.parametrize("name", ["bogus", "cuda:99", "tpu"])
def test_unavailable_devices_are_refused_in_one_line(name):
    if name == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has 100 GPUs")
    with pytest.raises(DeviceError) as error:
        pick_device(name)
    assert "\n" not in str(error.value)


def test_cpu_and_auto_always_work():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        pick_device("cuda")
