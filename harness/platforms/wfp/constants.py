"""The GUIDs and constants the backend uses (Windows SDK 10.0.22000 um/fwpmu.h, fwptypes.h,
fwpmtypes.h, fwpsu.h, rpcdce.h). tests/test_wfp_abi.py checks each against ../shared/wfp-abi."""
from __future__ import annotations

GUIDS = {
    "FWPM_LAYER_ALE_AUTH_CONNECT_V4": "c38d57d1-05a7-4c33-904f-7fbceee60e82",
    "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4": "e1cd9fe7-f4b5-4273-96c0-592e487b8650",
    "FWPM_LAYER_OUTBOUND_TRANSPORT_V4": "09e61aea-d214-46e2-9b21-b26b0b2f28c8",
    "FWPM_LAYER_INBOUND_TRANSPORT_V4": "5926dfc8-e3cf-4426-a283-dc393f5d0f9d",
    "FWPM_CONDITION_IP_PROTOCOL": "3971ef2b-623e-4f9a-8cb1-6e79b806b9a7",
    "FWPM_CONDITION_IP_REMOTE_ADDRESS": "b235ae9a-1d64-49b8-a44c-5ff3d9095045",
    "FWPM_CONDITION_IP_LOCAL_ADDRESS": "d9ee00de-c1ef-4617-bfe3-ffd8f5a08957",
    "FWPM_CONDITION_IP_REMOTE_PORT": "c35a604d-d22b-4e1a-91b4-68f674ee674b",
    "FWPM_CONDITION_IP_LOCAL_PORT": "0c1ba1af-5765-453f-af22-a8f791ac775b",
    "FWPM_CONDITION_ALE_APP_ID": "d78e1e87-8644-4ea5-9437-d809ecefc971",
    "FWPM_CONDITION_NET_EVENT_TYPE": "206e9996-490e-40cf-b831-b38641eb6fcb",
    # further fields a net event carries (template_matrix.py asks which a subscription honours)
    "FWPM_CONDITION_ALE_USER_ID": "af043a0a-b34d-4f86-979c-c90371af6e66",
    "FWPM_CONDITION_IP_LOCAL_ADDRESS_V4": "03a629cb-6e52-49f8-9c41-5709633c09cf",
    "FWPM_CONDITION_IP_REMOTE_ADDRESS_V4": "1febb610-3bcc-45e1-bc36-2e067e2cb186",
    "FWPM_CONDITION_ALE_PACKAGE_ID": "71bc78fa-f17c-4997-a602-6abb261f351c",
    "FWPM_CONDITION_ALE_EFFECTIVE_NAME": "b1277b9a-b781-40fc-9671-e5f1b989f34e",
    "FWPM_CONDITION_DIRECTION": "8784c146-ca97-44d6-9fd1-19fb1840cbf7",
    "FWPM_CONDITION_REAUTHORIZE_REASON": "11205e8c-11ae-457a-8a44-477026dd764a",
    "FWPM_CONDITION_ORIGINAL_PROFILE_ID": "46ea1551-2255-492b-8019-aabeee349f40",
    "FWPM_CONDITION_CURRENT_PROFILE_ID": "ab3033c9-c0e3-4759-937d-5758c65d4ae3",
    "FWPM_CONDITION_FLAGS": "632ce23b-5167-435c-86d7-e903684aa80c",
}

CONSTANTS = {
    "FWPM_ENGINE_COLLECT_NET_EVENTS": 0,
    "FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS": 1,
    "FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW": 0x10,
    "FWPM_NET_EVENT_TYPE_CLASSIFY_DROP": 3,
    "FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW": 6,
    "FWPM_NET_EVENT_TYPE_CAPABILITY_DROP": 7,
    "FWPM_NET_EVENT_TYPE_CAPABILITY_ALLOW": 8,
    "FWPM_NET_EVENT_FLAG_IP_PROTOCOL_SET": 0x1,
    "FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET": 0x2,
    "FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET": 0x4,
    "FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET": 0x8,
    "FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET": 0x10,
    "FWPM_NET_EVENT_FLAG_IP_VERSION_SET": 0x100,
    "FWP_EMPTY": 0,
    "FWP_UINT8": 1,
    "FWP_UINT16": 2,
    "FWP_UINT32": 3,
    "FWP_BYTE_BLOB_TYPE": 12,
    "FWP_V4_ADDR_MASK": 256,
    "FWP_RANGE_TYPE": 258,
    "FWP_MATCH_EQUAL": 0,
    "FWP_MATCH_RANGE": 5,
    "FWP_MATCH_FLAGS_ALL_SET": 6,
    "FWP_IP_VERSION_V4": 0,
    "FWP_ACTION_BLOCK": 0x1001,
    "FWP_ACTION_PERMIT": 0x1002,
    "FWP_SID": 13,
    "FWP_DIRECTION_OUTBOUND": 0,
    "FWP_DIRECTION_INBOUND": 1,
    "FWPM_SESSION_FLAG_DYNAMIC": 1,
    "RPC_C_AUTHN_WINNT": 10,
    "RPC_C_AUTHN_DEFAULT": 0xFFFFFFFF,
    "FWPS_LAYER_INBOUND_TRANSPORT_V4": 12,
    "FWPS_LAYER_OUTBOUND_TRANSPORT_V4": 16,
    "FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4": 44,
    "FWPS_LAYER_ALE_AUTH_CONNECT_V4": 48,
}

# classifyDrop->msFwpDirection: the documentation gives the MS_FWP values (classify_drop2 docs),
# real Windows also reports FWP_DIRECTION_OUTBOUND/INBOUND (0/1) (simplewall handles both)
DIRECTIONS = {0x3900: "in", 0x3901: "out", 0x3902: "forward",
              CONSTANTS["FWP_DIRECTION_OUTBOUND"]: "out", CONSTANTS["FWP_DIRECTION_INBOUND"]: "in"}

# which side of the packet the harness's sequence number (its destination port) is on, per layer
INBOUND_LAYERS = {"ALE_AUTH_RECV_ACCEPT_V4", "INBOUND_TRANSPORT_V4"}
# ALE authorizations a loopback datagram passes, permitted, before the layer of the harness's
# block: ALE_AUTH_CONNECT on its way out, and ALE_FLOW_ESTABLISHED for the flow it opens, come
# before the outbound transport layer and before every inbound layer. With
# FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW set each can be an allow event of the same packet.
PERMITTED_BEFORE = {"ALE_AUTH_CONNECT_V4": 0, "OUTBOUND_TRANSPORT_V4": 2, "INBOUND_TRANSPORT_V4": 2,
                    "ALE_AUTH_RECV_ACCEPT_V4": 2}


def events_per_packet(layer: str, allow_keyword: bool) -> int:
    """How many events one packet of a trial blocked at `layer` can make: its drop, and with the
    allow keyword an allow for each ALE authorization it passed first."""
    return 1 + (PERMITTED_BEFORE[layer] if allow_keyword else 0)
