"""The wfp platform's facts (the doctor's checks, allow visibility, the template matrix, the probe,
delivery) are typed records (results/records.py): each writes the very JSON object, keys in order,
that the dict it replaced wrote; a stored run's facts read back as records; and the summary's
schema, generated from the records, refuses a fact of the wrong shape."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from harness.platforms.wfp.doctor import Diagnosis
from harness.platforms.wfp.template_matrix import Candidate, _judge, summary
from harness.results import read
from harness.results.records import (AllowCase, AllowCases, AllowVisibility, ConditionRow, DeliveryFacts, DoctorCheck,
                                     DoctorDiagnosis, PositiveControl, ProbeCase, TemplateMatrix)

GOLDEN = Path(__file__).parent / "data/format1/reports/golden-wfp-wfp-04653e8442/20261207T184444Z/summary.json"


def ordered(value) -> str:
    return json.dumps(value)  # key order counts


def test_the_doctors_record_is_the_dict_it_replaced():
    checks = [DoctorCheck("elevated", True, "yes"), DoctorCheck("canary event", None, "needs a filter")]
    d = Diagnosis(checks)
    was = {"ok": False, "checks": [{"name": c.name, "ok": c.ok, "evidence": c.evidence} for c in checks]}
    assert ordered(d.record().to_json()) == ordered(was)
    assert DoctorDiagnosis.from_json(was) == d.record()


def test_allow_probe_and_delivery_records_are_the_dicts_they_replaced():
    as_found = AllowCase(0x1, 10, {}, {}, 3)
    with_allow = AllowCase(0x11, 10, {"CLASSIFY_ALLOW": 10}, {"the harness's permit filter": 10}, 0)
    allow = AllowVisibility(0x1, 0x1, 4, AllowCases(as_found, with_allow), "a fact")
    case = lambda c: {"keywords": c.keywords, "sent": c.sent, "events": c.events, "allow_filters": c.allow_filters,  # noqa: E731
                      "events_of_other_filters": c.events_of_other_filters}
    assert ordered(allow.to_json()) == ordered({"keywords_found": 1, "keywords_after": 1, "subscribe_version": 4,
                                                "cases": {"as found": case(as_found),
                                                          "with CLASSIFY_ALLOW": case(with_allow)},
                                                "fact": "a fact"})
    failed = ProbeCase("ALE_AUTH_CONNECT_V4", "raw", 50, error="OSError: no raw sockets")
    assert ordered(failed.to_json()) == ordered({"layer": "ALE_AUTH_CONNECT_V4", "sender": "raw", "sent": 50, "events": 0,
                                                 "error": "OSError: no raw sockets"})
    ran = ProbeCase("INBOUND_TRANSPORT_V4", "udp", 50, 40, None, 40, 0, {}, 50, [13], {"in": 40}, 1, 0)
    assert ordered(ran.to_json()) == ordered({"layer": "INBOUND_TRANSPORT_V4", "sender": "udp", "sent": 50, "events": 40,
                                              "events_on_repeat": 40, "send_errors": 0, "send_error_kinds": {},
                                              "receivers": 50, "layer_ids": [13], "directions": {"in": 40},
                                              "callback_threads": 1, "foreign_events": 0})
    seen = {"trials": 3, "callback_threads_max": 2, "concurrent_callbacks_max": 1, "foreign_events": 0,
            "events_per_tuple_max": 1, "failed_unsubscribes": 0, "leaked_subscriptions": 0}
    assert ordered(DeliveryFacts(**seen).to_json()) == ordered(seen)  # no event clock seen yet: no key
    seen["event_clock_step_ns"] = 100
    assert ordered(DeliveryFacts(**seen).to_json()) == ordered(seen)


def test_template_matrix_rows_are_the_dicts_they_replaced_and_say_the_same_sentence():
    own = [object()] * 4
    udp = Candidate("FWPM_CONDITION_IP_PROTOCOL", "ipProtocol", None, lambda s: False, positive=(None, lambda s: True))
    judged = ConditionRow(udp.field, udp.member, documented=True, accepted=True)
    judged.arrived, judged.expected, judged.offered = 0, 0, 4
    _judge(judged, True, False, udp, own, Counter(own))
    judged.duplicate_refused, judged.duplicate_error = True, "FWP_E_DUPLICATE_CONDITION"
    assert ordered(judged.to_json()) == ordered(
        {"field": "FWPM_CONDITION_IP_PROTOCOL", "member": "ipProtocol", "documented": True, "accepted": True,
         "arrived": 0, "expected": 0, "offered": 4, "filters": True, "positive_control": {"arrived": 4, "expected": 4},
         "duplicate_refused": True, "duplicate_error": "FWP_E_DUPLICATE_CONDITION"})
    silent = ConditionRow(udp.field, udp.member, documented=True, accepted=True, arrived=0, expected=0, offered=4)
    _judge(silent, True, False, udp, own, Counter())  # its positive control got nothing: not honoured
    assert silent.filters is False and silent.positive_control == PositiveControl(0, 4)
    assert silent.note.endswith("this template suppresses everything")
    refused = ConditionRow("FWPM_CONDITION_DIRECTION", "msFwpDirection", documented=False, accepted=False,
                           error="FWP_E_CONDITION_NOT_FOUND")
    assert ordered(refused.to_json()) == ordered(
        {"field": "FWPM_CONDITION_DIRECTION", "member": "msFwpDirection", "documented": False, "accepted": False,
         "error": "FWP_E_CONDITION_NOT_FOUND", "filters": None, "duplicate_refused": None})
    # a member without a condition field: the same keys (its note now before duplicate_refused)
    bare = ConditionRow("(layerId)", "layerId", note="no condition field")
    assert bare.to_json() == {"field": "(layerId)", "member": "layerId", "accepted": None, "filters": None,
                              "duplicate_refused": None, "note": "no condition field"}
    matrix = TemplateMatrix(4, [judged, silent, refused, bare], summary([judged, silent, refused, bare]))
    assert matrix.summary == ("template conditions honoured: IP_PROTOCOL; refused: DIRECTION "
                              "(FWP_E_CONDITION_NOT_FOUND); accepted but not filtering: IP_PROTOCOL")


def test_a_stored_wfp_runs_facts_read_back_as_records_and_write_the_same_json():
    stored = json.loads(GOLDEN.read_text())["experiments"]
    x = read.read_summary(GOLDEN).experiments
    assert isinstance(x.doctor, DoctorDiagnosis) and all(isinstance(c, DoctorCheck) for c in x.doctor.checks)
    assert isinstance(x.allow_visibility.cases.with_classify_allow, AllowCase)
    assert all(isinstance(r, ConditionRow) for r in x.template_matrix.rows)
    assert all(isinstance(p, ProbeCase) for p in x.probe) and isinstance(x.delivery, DeliveryFacts)
    again = x.to_json()
    for name in ("doctor", "allow_visibility", "probe", "delivery"):
        assert ordered(again[name]) == ordered(stored[name]), name
    assert again["template_matrix"] == stored["template_matrix"]  # rows of this age had filters before arrived


@pytest.mark.parametrize("where, bad, refused", [
    (("doctor", "checks", 0, "ok"), "yes", "is not valid under any of the given schemas"),
    (("allow_visibility", "keywords_found"), "many", "is not of type 'integer'"),
    (("template_matrix", "rows", 0, "positive_control"), [1], "is not valid under any of the given schemas"),
    (("probe", 0, "events"), "forty", "is not of type 'integer'"),
    (("delivery", "trials"), None, "is not of type 'integer'"),
])
def test_the_summarys_schema_refuses_a_fact_of_the_wrong_shape(tmp_path, where, bad, refused):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN.parent, run)
    summary_ = json.loads((run / "summary.json").read_text())
    at = summary_["experiments"]
    for key in where[:-1]:
        at = at[key]
    at[where[-1]] = bad
    (run / "summary.json").write_text(json.dumps(summary_))
    with pytest.raises(read.StoredFileError, match=f"experiments.{where[0]}.*{refused}"):
        read.read_summary(run / "summary.json")
