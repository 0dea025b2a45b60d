"""One machine configuration is one report folder: only configuration goes into the config id;
what a platform measures when it opens (the generator's rate, other subscribers) goes beside it."""
import ctypes

import pytest

from harness.campaign import Campaign, load_expectations
from harness.platforms.model import ModelPlatform
from platforms import fake_wfp_library, needs_nflog, open_wfp


def config_id_of(platform, tmp_path) -> tuple[str, dict]:
    run = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "box")
    return run.store.config_id, run.store.fingerprint


def test_model_runs_share_one_folder(tmp_path):
    a, _ = config_id_of(ModelPlatform(), tmp_path)
    b, fp = config_id_of(ModelPlatform(), tmp_path)
    assert a == b
    assert fp.measured["max_send_rate_per_s"] == 1_000_000


@pytest.mark.root
@pytest.mark.realtime
@needs_nflog
def test_nflog_runs_share_one_folder_although_the_generator_rate_differs(tmp_path):
    from harness.platforms.nflog.platform import NflogPlatform
    ids, rates = set(), []
    for _ in range(2):
        with NflogPlatform() as p:
            cid, fp = config_id_of(p, tmp_path)
        ids.add(cid)
        rates.append(fp.measured["max_send_rate_per_s"])
        assert "max_send_rate_per_s" not in repr(fp.stable)
    assert len(ids) == 1, (ids, rates)


@pytest.mark.root
@pytest.mark.realtime
def test_wfp_runs_share_one_folder_although_other_subscribers_come_and_go(tmp_path):
    path = fake_wfp_library()
    dll = ctypes.CDLL(path)
    ids = set()
    try:
        for foreign in (0, 3):
            dll.FakeSetForeignSubscriptions(foreign)
            with open_wfp(path) as p:
                cid, fp = config_id_of(p, tmp_path)
            ids.add(cid)
            assert fp.measured["existing_subscriptions"] == foreign
    finally:
        dll.FakeSetForeignSubscriptions(0)
    assert len(ids) == 1, ids
