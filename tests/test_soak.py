"""A short soak (benchmarks/soak.py has the long one): trials on one open platform leave memory,
descriptors, sockets and threads where they were, and closing leaves nothing behind."""
import sys
from pathlib import Path

import pytest

from harness.platforms.model import ModelPlatform
from platforms import make, needs_nflog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from soak import soak  # noqa: E402


def check(result):
    growth, left = result["growth"], result["left"]
    assert growth["rss_kib"] < 0.10, result
    for key in ("fds", "sockets", "threads", "children"):
        assert result["end"][key] <= result["start"][key], result
    assert left == {"namespaces": [], "nft_tables": [], "children": []}, left


def test_model_soak(tmp_path):
    check(soak(ModelPlatform, 80, tmp_path))


@pytest.mark.root
@pytest.mark.realtime
@needs_nflog
def test_nflog_soak(tmp_path):
    check(soak(lambda: make("nflog"), 40, tmp_path))
