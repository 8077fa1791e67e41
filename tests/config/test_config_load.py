"""config/load.py: the seed files, defaults, case-insensitive keys, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavemq_edge.config import (
    ConfigError,
    ListenAddress,
    load_config,
    load_default_config,
    parse_config,
    parse_listen_address,
    validate_namespace_hash,
)

DATA = Path(__file__).parents[1] / "data"
SEED_README = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "wavemq-README.md"
XBOS_NS = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="


def site_with_xbos_lines() -> str:
    """The seed's site-router file with its final three lines replaced by the XBOS lines, as the seed says."""
    lines = (DATA / "seed-site.toml").read_text().rstrip("\n").splitlines()
    return "\n".join(lines[:-3]) + "\n" + (DATA / "seed-xbos-lines.toml").read_text()


def test_test_data_is_the_seed_verbatim() -> None:
    if not SEED_README.exists():
        pytest.skip("shared/seeds is not beside this checkout")
    seed = SEED_README.read_text()
    for name in ("seed-site.toml", "seed-xbos-lines.toml", "seed-dr.toml"):
        assert (DATA / name).read_text() in seed


def test_designated_router_seed_loads_unchanged() -> None:
    c = load_config(DATA / "seed-dr.toml")
    assert c.wave.database == Path("/var/lib/wavemq/wave")
    assert c.wave.default_to_unrevoked is True
    assert [s.name for s in c.wave.storage] == ["default"]
    assert c.wave.storage[0].url == "https://standalone.storage.bwave.io/v1"
    assert c.queue.trunking_queue_max_size_mb == 3000
    assert c.queue.flush_interval_s == 30
    assert c.peer.listen_addr == ListenAddress("0.0.0.0", 4515)
    assert c.routing.designated_namespace_files == (Path("/etc/wavemq/routerproof.pem"),)
    assert c.routing.routers == ()


def test_site_seed_with_xbos_lines_loads() -> None:
    c = parse_config(site_with_xbos_lines(), "site.toml")
    assert len(c.routing.routers) == 1
    assert c.routing.routers[0].namespace == XBOS_NS
    assert c.routing.routers[0].address == ListenAddress("wavemq.xbos.io", 4515)
    assert c.queue.subscription_queue_max_length == 10000
    assert c.local.listen_addr == ListenAddress("127.0.0.1", 4516)


def test_site_seed_with_placeholders_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "seed-site.toml")
    text = str(info.value)
    assert "RoutingConfig.Router[0].Namespace = 'the namespace you are interacting with'" in text
    assert "48 characters of URL-safe base64" in text and "wv inspect" in text
    assert "RoutingConfig.Router[0].Address" in text


def test_missing_keys_get_defaults_never_zero(tmp_path: Path) -> None:
    c = parse_config("", "empty.toml", base_dir=tmp_path, state_dir=tmp_path / "state")
    assert c.queue.flush_interval_s == 30
    assert c.queue.queue_expiry_s == 86400
    assert c.queue.subscription_queue_max_length == 10000
    assert c.queue.trunking_queue_max_size_mb == 1000
    assert c.local.listen_addr == ListenAddress("127.0.0.1", 4516)
    assert c.peer.listen_addr == ListenAddress("127.0.0.1", 4515)
    assert c.metrics.listen_addr == ListenAddress("127.0.0.1", 6060)
    assert c.queue.queue_data_store == tmp_path / "state" / "queue"
    assert c.routing.router_entity_file == tmp_path / "state" / "router.ent"
    assert c.limits.max_frame_bytes == 262144


def test_keys_and_sections_are_case_insensitive(tmp_path: Path) -> None:
    c = parse_config('[queueconfig]\nFLUSHINTERVAL = 5\n[localConfig]\nListenAddr = "127.0.0.1:9"\n',
                     base_dir=tmp_path)
    assert c.queue.flush_interval_s == 5
    assert c.local.listen_addr.port == 9


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    f = tmp_path / "etc" / "wavemq.toml"
    f.parent.mkdir()
    f.write_text('[QueueConfig]\nqueueDataStore = "data/q"\n')
    c = load_config(f, state_dir=tmp_path / "st")
    assert c.queue.queue_data_store == f.parent.resolve() / "data" / "q"
    assert c.wave.database == tmp_path / "st" / "wave"


def test_effective_config_round_trips(tmp_path: Path) -> None:
    c = load_config(DATA / "seed-dr.toml")
    again = parse_config(c.to_toml(), c.source, base_dir=tmp_path)
    assert again == c


def test_embedded_default_loads(tmp_path: Path) -> None:
    c = load_default_config(tmp_path)
    assert c.source == "<embedded default>"
    assert c.queue.queue_data_store == tmp_path / "queue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[QueueConfig]\nflushInterval = 0\n", "QueueConfig.flushInterval = 0: must be >= 1 second"),
        ("[QueueConfig]\nqueueExpiry = 0\n", "QueueConfig.queueExpiry = 0: must be >= 60 seconds"),
        ("[QueueConfig]\nsubscriptionQueueMaxSize = -5\n",
         "QueueConfig.subscriptionQueueMaxSize = -5: must be >= 1 MB"),
        ("[QueueConfig]\ntrunkingQueueMaxLength = \"lots\"\n",
         "QueueConfig.trunkingQueueMaxLength = 'lots': must be an integer, not string"),
        ("[QueueConfig]\nflushInterval = 1.5\n", "must be an integer, not number"),
        ("[QueueConfig]\nflushInterval = true\n", "must be an integer, not boolean"),
        ("[WaveConfig]\ndefaultToUnrevoked = \"yes\"\n", "must be true or false, not string"),
        ("[WaveConfig]\ndatabase = \"\"\n", "WaveConfig.database = '': must not be empty"),
        ("[WaveConfig]\ndatabase = 3\n", "must be a string (a path), not integer"),
        ("[QueueConfig]\nflushIntervall = 3\n",
         "unknown key QueueConfig.flushIntervall; did you mean 'flushInterval'?"),
        ("[QueueConfg]\n", "unknown section QueueConfg; did you mean 'QueueConfig'?"),
        ("QueueConfig = 3\n", "QueueConfig = 3: must be a table"),
        ("[LocalConfig]\nlistenAddr = \"127.0.0.1\"\n", "must be host:port"),
        ("[LocalConfig]\nlistenAddr = \"127.0.0.1:99999\"\n", "port 99999 is outside 0..65535"),
        ("[LocalConfig]\nlistenAddr = \"::1:4516\"\n", "[address]:port"),
        ("[LocalConfig]\nlistenAddr = \"[zz]:4516\"\n", "not an IPv6 address"),
        ("[LocalConfig]\nlistenAddr = \"bad host:1\"\n", "not a host name"),
        ("[PeerConfig]\nreconnectMin = 60\nreconnectMax = 1\n", "must be <= PeerConfig.reconnectMax"),
        ("[QueueConfig]\nflushInterval = 1\nFlushInterval = 2\n", "repeats QueueConfig.flushInterval"),
        ("[RoutingConfig]\nDesignatedNamespaceFiles = \"x.pem\"\n", "must be a list of non-empty path strings"),
        ("[[RoutingConfig.Router]]\nAddress = \"h:1\"\n", "RoutingConfig.Router[0].Namespace is missing"),
        (f"[[RoutingConfig.Router]]\nNamespace = \"{XBOS_NS}\"\nAddress = \"h:0\"\n", "port 0 cannot be dialled"),
        (f"[[RoutingConfig.Router]]\nNamespace = \"{XBOS_NS}\"\nAddress = \"h:1\"\nAdress = 1\n",
         "did you mean 'Address'?"),
        (f"[[RoutingConfig.Router]]\nNamespace = \"{XBOS_NS}\"\nAddress = \"h:1\"\n"
         f"[[RoutingConfig.Router]]\nNamespace = \"{XBOS_NS}\"\nAddress = \"h:2\"\n", "one uplink per namespace"),
        ("[WaveConfig.storage.default]\nprovider = \"http_v1\"\n", "WaveConfig.storage.default.url is missing"),
        ("[LimitsConfig]\nmaxFrameBytes = 10\n", "LimitsConfig.maxFrameBytes = 10: must be >= 1024 bytes"),
        ("[BudgetConfig]\nsampleInterval = nan\n", "must be a number, not NaN"),
    ],
)
def test_bad_values_name_key_value_and_rule(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert expected in str(info.value)


def test_broken_toml_reports_the_line() -> None:
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 3"):
        parse_config("[QueueConfig]\nflushInterval = 3\nqueueExpiry = = 4\n", "bad.toml")


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[QueueConfig]\nflushInterval = 0\nqueueExpiry = 1\n", "bad.toml")
    assert len(info.value.problems) == 2
    assert "2 problems" in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.toml")


@pytest.mark.parametrize("good", [XBOS_NS, "oOQCIE6Fd7GBTIIXewDdUxSnVpP8NNB41HqVZaii-_XJBxv7"])
def test_namespace_hash_shapes(good: str) -> None:
    validate_namespace_hash(good)


@pytest.mark.parametrize("bad", ["", "namespace.ent", XBOS_NS[:-1], XBOS_NS.replace("G", "/"), "=" * 48])
def test_bad_namespace_hashes(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace hash"):
        validate_namespace_hash(bad)


def test_listen_address_forms() -> None:
    assert parse_listen_address("[::1]:4516") == ListenAddress("::1", 4516)
    assert str(ListenAddress("::1", 4516)) == "[::1]:4516"
    assert parse_listen_address("localhost:0").port == 0


def test_connection_slot_keys_have_pi_defaults_and_are_checked(tmp_path: Path) -> None:
    lim = parse_config("", base_dir=tmp_path, state_dir=tmp_path).limits
    assert (lim.handshake_timeout_s, lim.frame_stall_timeout_s, lim.max_connections_per_address) == (5.0, 30.0, 512)
    assert (lim.max_handshakes, lim.handshake_drop_start, lim.handshake_drop_rate) == (64, 32, 30)
    assert lim.max_handshakes_per_address == 16 < lim.handshake_drop_start  # one host never starts the drop
    with pytest.raises(ConfigError) as info:
        parse_config("[LimitsConfig]\n  maxHandshakes = 8\n  handshakeDropStart = 9\n  handshakeDropRate = 101\n",
                     base_dir=tmp_path, state_dir=tmp_path)
    text = str(info.value)
    assert "LimitsConfig.handshakeDropStart = 9: must be <= LimitsConfig.maxHandshakes (8)" in text
    assert "LimitsConfig.handshakeDropRate = 101: must be <= 100" in text
