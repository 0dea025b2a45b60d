"""Does a user-mode subscriber get allow events? (The seed says drop events only.)

A permit filter on the harness's own traffic, and the same datagrams twice: with
FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS as found, then with FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW
added. The keyword is global and persistent, so it goes through the platform's EngineOptions (the
state file a killed run leaves for the next start) and is put back before this returns, whatever
happens. CLASSIFY_ALLOW exists in FWPM_NET_EVENT2 and later: a subscription at version 0 cannot
carry one, and says so.
"""
from __future__ import annotations

import ipaddress
from collections import Counter

from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.recorder import TYPE_NAMES, Recorder, send_datagrams
from harness.results.records import AllowCase, AllowCases, AllowVisibility
from harness.spec import FilterSpec

KEYWORDS = K["FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS"]
CLASSIFY_ALLOW = K["FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW"]
PORT = 61000  # outside the drop filter's default range: the permit is the only filter that matches


def _rule(filter_id: int | None, own_filter: int) -> str:
    return "the harness's permit filter" if filter_id == own_filter else f"filter {filter_id} (not the harness's permit)"


def _case(platform, filter_id: int, count: int, port: int) -> AllowCase:
    """The datagrams' events, counted by the harness's filter id or by their tuples: which filter id
    an allow carries when several sublayers permit a packet is undocumented (the terminating
    decision may be another sublayer's), so one carrying another id is still the trial's own.
    `allow_filters` says which rule the allows named."""
    keywords = platform.options.session.get_option(KEYWORDS)
    loopback = int(ipaddress.IPv4Address("127.0.0.1"))
    tuples = {(loopback, port + i) for i in range(count)}

    def own(s) -> bool:
        return s.filter_id == filter_id or (s.remote_v4, s.remote_port) in tuples

    with Recorder(platform.lib, platform.filters.session) as rec:
        send_datagrams([("127.0.0.1", "127.0.0.1", port + i) for i in range(count)])
        rec.wait_for(lambda seen: sum(own(s) for s in seen) >= count, 2.0)
        rec.settle()
        mine = [s for s in rec.seen if own(s)]
    allows = Counter(_rule(s.filter_id, filter_id) for s in mine if s.type == K["FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW"])
    return AllowCase(keywords, count, dict(Counter(TYPE_NAMES.get(s.type, str(s.type)) for s in mine)), dict(allows),
                     len(rec.seen) - len(mine))


def _rules_said(case: AllowCase) -> str:
    rules = case.allow_filters
    if not rules:
        return ""
    if list(rules) == ["the harness's permit filter"]:
        return " (they carried the harness's permit filter id)"
    others = ", ".join(r.removesuffix(" (not the harness's permit)") for r in rules if r != "the harness's permit filter")
    return f" (counted by the trial's tuples: they carried {others}, not the harness's permit)"


def allow_visibility(platform, count: int = 20) -> AllowVisibility:
    """Which event types arrive for a permit filter's traffic, keywords as found and with
    CLASSIFY_ALLOW; the per-machine fact in one sentence."""
    spec = FilterSpec(remote_port_low=PORT, remote_port_high=PORT + 2 * count - 1)
    filter_id = platform.filters.install(spec, platform.image, action="permit")
    found = platform.options.session.get_option(KEYWORDS)  # now: another tool may have changed them since open
    try:
        as_found = _case(platform, filter_id, count, PORT)
        platform.options.ensure(KEYWORDS, found | CLASSIFY_ALLOW)
        try:
            with_keyword = _case(platform, filter_id, count, PORT + count)  # fresh tuples
        finally:
            platform.options.put_back(KEYWORDS)
    finally:
        platform.filters.remove()
    allows = [case.events.get("CLASSIFY_ALLOW", 0) for case in (as_found, with_keyword)]
    version = platform.lib.subscribe_version
    if version < 1:
        fact = (f"not detectable: FwpmNetEventSubscribe{version} delivers FWPM_NET_EVENT{version + 1}, which has no "
                "classifyAllow")
    elif found & CLASSIFY_ALLOW:
        fact = (f"the keyword was already set here ({found:#x}): {allows[0]} of {count} permitted datagrams gave "
                "an allow event")
    else:
        fact = (f"allow events: {allows[0]} of {count} with the keywords as found ({found:#x}), {allows[1]} of "
                f"{count} with CLASSIFY_ALLOW added"
                + ("; a user-mode subscriber gets allow events only with the keyword" if allows[0] == 0 < allows[1]
                   else ""))
    if version >= 1:
        fact += _rules_said(as_found if found & CLASSIFY_ALLOW else with_keyword)
    # another tool changed the keywords while the experiment had them set: theirs now, not put back
    left_alone = platform.options.left_alone.get("net_event_match_any_keywords")
    if left_alone:
        fact += f"; the keywords were changed meanwhile by another tool ({left_alone['found_now']:#x}) and left as it set them"
    return AllowVisibility(found, platform.options.session.get_option(KEYWORDS), version,
                           AllowCases(as_found, with_keyword), fact)
