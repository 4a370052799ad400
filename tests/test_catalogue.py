"""The torch-free catalogue is the registry's copy: every field, every model, in order."""

from __future__ import annotations

import json

from jpegfix import catalogue
from jpegfix.models import MODELS


def test_catalogue_matches_the_registry():
    assert json.loads(catalogue.PATH.read_text()) == catalogue.entries_of(MODELS), \
        "catalogue.json is stale: run `python -m jpegfix.catalogue`"


def test_method_names_stand_for_both_cpu_models():
    assert catalogue.models_for("cqr") == ["cqr-color-s", "cqr-gray-s"]
    assert catalogue.models_for("qgcn-color-paper") == ["qgcn-color-paper"]
    assert set(catalogue.METHODS) == {s.method for s in MODELS}
