"""Discovery on the LAN over mDNS/DNS-SD: servers announce `_lanchat._tcp.local.`, clients
browse for it. `records` and `plan` are pure; `mdns` (shared), `advertise` and `browse` are the
zeroconf side."""

from lanchat.discovery.advertise import Advertiser, advertise
from lanchat.discovery.browse import DISCOVER_TIMEOUT, Change, Watcher, discover
from lanchat.discovery.plan import (
    NO_SERVER_HINT,
    AdvertPlan,
    Reached,
    RoomRelays,
    choose_server,
    group_rooms,
    local_networks,
    matching_servers,
    order_addresses,
    plan_advertisement,
    reach_server,
    refresh_action,
    try_in_turn,
)
from lanchat.discovery.records import (
    SERVICE_TYPE,
    Advertisement,
    Server,
    instance_name,
    parse_service,
    txt_properties,
)

__all__ = [
    "DISCOVER_TIMEOUT",
    "NO_SERVER_HINT",
    "SERVICE_TYPE",
    "AdvertPlan",
    "Advertisement",
    "Advertiser",
    "Change",
    "Reached",
    "RoomRelays",
    "Server",
    "Watcher",
    "advertise",
    "choose_server",
    "discover",
    "group_rooms",
    "instance_name",
    "local_networks",
    "matching_servers",
    "order_addresses",
    "parse_service",
    "plan_advertisement",
    "reach_server",
    "refresh_action",
    "try_in_turn",
    "txt_properties",
]
