"""Unit tests of the typed settings read from TRACKIUS_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackius.settings import REPO_ROOT, Settings, SettingsError, Topics


def test_defaults() -> None:
    """Without variables the documented local-stack defaults apply."""
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.kafka_bootstrap, settings.cassandra_contact, settings.batch_size) == (
        "127.0.0.1:19092", ("127.0.0.1", 19042), 64)
    assert settings.state_dir == REPO_ROOT / ".state"
    assert settings.checkpoint_dir == REPO_ROOT / ".state" / "checkpoints"
    assert settings.topics == Topics() and settings.topics.content_events == "content.events.v1"


def test_from_env_parses_ints() -> None:
    """Integer settings are parsed from their TRACKIUS_<FIELD> variable."""
    settings = Settings.from_env({"TRACKIUS_BATCH_SIZE": "128", "TRACKIUS_KAFKA_PARTITIONS": " 4 "})
    assert (settings.batch_size, settings.kafka_partitions) == (128, 4)


def test_from_env_keeps_strings_verbatim() -> None:
    """String settings are taken as they are."""
    env = {"TRACKIUS_KAFKA_BOOTSTRAP": "broker:9092", "TRACKIUS_JOB_NAME": "j 1"}
    settings = Settings.from_env(env)
    assert (settings.kafka_bootstrap, settings.job_name) == ("broker:9092", "j 1")


def test_from_env_resolves_paths(tmp_path: Path) -> None:
    """Path settings become absolute, resolved paths (derived paths follow them)."""
    settings = Settings.from_env({"TRACKIUS_STATE_DIR": str(tmp_path / "a" / ".." / "state")})
    assert settings.state_dir == tmp_path.resolve() / "state"
    assert settings.checkpoint_dir == tmp_path.resolve() / "state" / "checkpoints"


def test_from_env_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leading ~ in a path setting is the user's home directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.from_env({"TRACKIUS_DATA_DIR": "~/data"})
    assert settings.data_dir == tmp_path.resolve() / "data"


@pytest.mark.parametrize("raw", ["ten", "1.5", ""])
def test_bad_int_names_the_variable(raw: str) -> None:
    """An unparsable integer is a SettingsError naming the variable and the value."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"TRACKIUS_FANOUT_PORT": raw})
    assert str(info.value) == f"TRACKIUS_FANOUT_PORT={raw!r} is not a valid int"


def test_topic_overrides() -> None:
    """TRACKIUS_TOPIC_<NAME> overrides one topic and leaves the others at their defaults."""
    settings = Settings.from_env({"TRACKIUS_TOPIC_ALERTS": "test.alerts.v1"})
    assert settings.topics == Topics(alerts="test.alerts.v1")


def test_unrelated_variables_are_ignored() -> None:
    """Variables that are not settings (or are spelt in lower case) change nothing."""
    env = {"TRACKIUS_NOPE": "1", "trackius_batch_size": "x", "PATH": "/bin"}
    assert Settings.from_env(env) == Settings()


def test_to_env_from_env_round_trip_defaults() -> None:
    """from_env(to_env()) rebuilds the default settings."""
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_to_env_from_env_round_trip_changed(tmp_path: Path) -> None:
    """A child process given to_env() sees every changed field and topic."""
    settings = Settings().replace(
        state_dir=tmp_path.resolve(), batch_size=7, kafka_bootstrap="k:1",
        topics=Topics(rules="t.rules.v9", deadletter="t.dl.v1"),
    )
    env = settings.to_env()
    assert env["TRACKIUS_BATCH_SIZE"] == "7" and env["TRACKIUS_TOPIC_RULES"] == "t.rules.v9"
    assert Settings.from_env(env) == settings


def test_to_env_only_writes_trackius_strings() -> None:
    """Every variable is TRACKIUS_-prefixed with a string value (usable as an environment)."""
    env = Settings().to_env()
    assert all(k.startswith("TRACKIUS_") and isinstance(v, str) for k, v in env.items())
    assert "TRACKIUS_TOPICS" not in env


def test_nltk_data_and_models_follow_the_data_dir(tmp_path) -> None:
    """Moving the data directory (as the Docker image does) moves the NLTK data and shared models
    with it, unless they are set themselves."""
    moved = Settings.from_env({"TRACKIUS_DATA_DIR": str(tmp_path)})
    assert (moved.nltk_data_dir, moved.model_dir) == (tmp_path / "nltk_data", tmp_path / "models")
    own = Settings.from_env({"TRACKIUS_DATA_DIR": str(tmp_path), "TRACKIUS_NLTK_DATA_DIR": "/x/nltk"})
    assert own.nltk_data_dir == Path("/x/nltk")


def test_file_roots_default_to_the_data_and_temporary_directories(tmp_path: Path) -> None:
    import tempfile

    assert Settings().file_roots == (Settings().data_dir, Path(tempfile.gettempdir()))
    chosen = Settings.from_env({"TRACKIUS_MEDIA_FILE_ROOTS": f"{tmp_path}:/srv/media"}).file_roots
    assert chosen == (tmp_path, Path("/srv/media"))


def test_match_thresholds_are_the_index_defaults_and_parse_as_numbers() -> None:
    from udfs.known_images import EMBEDDING_MIN, HASH_MAX

    assert (Settings().image_match_max_hash_bits, Settings().image_match_min_cosine) == (HASH_MAX, EMBEDDING_MIN)
    assert Settings.from_env({"TRACKIUS_IMAGE_MATCH_MIN_COSINE": "0.84"}).image_match_min_cosine == 0.84


def test_fusion_deadlines_per_platform() -> None:
    settings = Settings.from_env({"TRACKIUS_FUSION_DEADLINE_MS": "1000",
                                  "TRACKIUS_FUSION_DEADLINES": "youtube=5000, twitch=3000"})
    assert (settings.fusion_deadline_for("youtube"), settings.fusion_deadline_for("x")) == (5000, 1000)
    assert settings.longest_fusion_deadline_ms == 5000
    with pytest.raises(SettingsError, match="'youtube=soon' is not platform=milliseconds"):
        Settings(fusion_deadlines="youtube=soon").fusion_deadline_for("x")
