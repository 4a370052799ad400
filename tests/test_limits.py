import math

import pytest

from jpegfix.errors import InputError
from jpegfix.limits import DEFAULT_MAX_MEMORY_GB, check_memory, estimated_peak, parse_limit


def test_default_budget_keeps_a_60_mp_photo_and_refuses_144_mp():
    budget = DEFAULT_MAX_MEMORY_GB * 1e9
    check_memory(9000, 6666, 3, budget)
    with pytest.raises(InputError, match="raise it with --max-memory"):
        check_memory(12000, 12000, 3, budget)


def test_grey_needs_less_than_colour():
    assert estimated_peak(4000, 3000, 1) < estimated_peak(4000, 3000, 3)


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -1.0])
def test_limits_must_be_positive_and_finite(value):
    with pytest.raises(ValueError, match="positive finite"):
        parse_limit(value, "--max-memory")
