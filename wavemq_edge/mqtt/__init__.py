"""MQTT 3.1.1 and 5.0 front door, sans-I/O: the packet codec and the device session.

``errors`` (reason codes), ``primitives`` (the data representations), ``properties`` (5.0 properties),
``packets`` (packet values, decode and encode), ``codec`` (the stream decoder). No event loop or socket
here: ``net/mqtt_server.py`` is the glue.
"""

from .codec import DEFAULT_MAX_PACKET_BYTES, NEED_DATA, NeedData, PacketDecoder
from .errors import ConnackCode311, MqttCodecError, Reason
from .packets import (
    MQTT_5,
    MQTT_311,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
    encode_packet,
)
from .properties import NO_PROPERTIES, Prop, Properties

__all__ = [
    "DEFAULT_MAX_PACKET_BYTES", "MQTT_5", "MQTT_311", "NEED_DATA", "NO_PROPERTIES", "Auth", "Connack",
    "ConnackCode311", "Connect", "Disconnect", "MqttCodecError", "NeedData", "Packet", "PacketDecoder", "PacketType",
    "PingReq", "PingResp", "Prop", "Properties", "PubAck", "Publish", "Reason", "SubOptions", "Suback", "Subscribe",
    "Unsuback", "Unsubscribe", "Will", "encode_packet",
]
