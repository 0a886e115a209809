"""Audio analysis through the running job: audio parts and the sound of a video served by a
local HTTP server, speech firing a text rule, bad audio stored with its reason, and a tracked clip
added and removed at run time (Cassandra + refs.v1) without a restart."""

from __future__ import annotations

import io
import json
import subprocess
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from schemas.rule import Rule
from tests.integration.system import System, event, unique
from tests.integration.test_visual_analysis import _media_rows
from tests.media_server import serve
from trackius.settings import SHARED_DATA
from udfs.audio import ANALYSIS_RATE, read_audio
from udfs.audio_distort import add_noise

pytestmark = pytest.mark.integration

JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
VIBE = SHARED_DATA / "audio" / "librosa" / "Kevin_MacLeod_-_Vibe_Ace.ogg"


def _noisy_mp3_excerpt() -> bytes:
    """12 s of the reference from 20 s in, white noise at 10 dB SNR, as a 64 kbit/s-ish MP3."""
    excerpt = read_audio(VIBE)[20 * ANALYSIS_RATE:32 * ANALYSIS_RATE]
    noisy = add_noise(excerpt, ANALYSIS_RATE, 10.0, "white", np.random.default_rng(3))
    out = io.BytesIO()
    soundfile.write(out, np.clip(noisy, -1, 1), ANALYSIS_RATE, format="MP3")
    return out.getvalue()


def _video_with_speech(tmp: Path) -> bytes:
    out = tmp / "speech.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(JFK), "-f", "lavfi", "-i",
                    "testsrc=duration=11:size=96x64:rate=2", "-c:a", "aac", "-c:v", "mpeg4", "-shortest",
                    str(out)], check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve({
        "/jfk.flac": ("audio/flac", JFK.read_bytes()),
        "/speech.mp4": ("video/mp4", _video_with_speech(tmp_path_factory.mktemp("audio"))),
        "/empty.wav": ("audio/wav", b""),
        "/broken.ogg": ("audio/ogg", b"OggS" + bytes(range(256)) * 16),
        "/excerpt.mp3": ("audio/mpeg", _noisy_mp3_excerpt()),
    }) as url:
        yield url


def _parts(server: str, **paths: tuple[str, str]) -> list[dict]:
    return [{"part_id": part_id, "kind": kind, "uri": f"{server}{path}"} for part_id, (kind, path) in paths.items()]


def test_speech_fires_a_text_rule_and_every_audio_part_is_stored(system: System, cassandra, audio_server: str) -> None:
    """Speech in an audio part fires a rule on what was said; a video's sound is analysed as the
    part <video>.audio; empty and broken audio are stored with their reasons."""
    rule, key = unique("said"), unique("x:audio")
    system.apply(Rule(rule, 1, condition="fellow AND country"))
    parts = _parts(audio_server, talk=("audio", "/jfk.flac"), clip=("video", "/speech.mp4"),
                   empty=("audio", "/empty.wav"), broken=("audio", "/broken.ogg"))
    system.produce(event(key, "a famous speech", parts=parts))
    (alert,) = system.feed([rule], count=1, timeout_s=90)
    assert alert["alert"]["content_key"] == key

    found = _media_rows(cassandra, key, {"talk", "clip", "clip.audio", "empty", "broken"})
    talk = found["talk"]
    assert talk["status"] == "ok" and talk["audio"]["speech_share"] > 0.5
    assert talk["audio"]["analysed_s"] == pytest.approx(11.0, abs=0.05) and "country" in talk["audio"]["transcript"]
    sound = found["clip.audio"]
    assert sound["kind"] == "audio" and sound["audio"]["codec"] == "aac" and sound["audio"]["speech_share"] > 0.5
    assert found["clip"]["kind"] == "video" and found["clip"]["status"] == "ok"
    assert found["empty"]["status"] == "error" and found["broken"]["status"] == "error"
    assert {found[p]["failure"]["stage"] for p in ("empty", "broken")} <= {"fetch", "decode"}


def test_audio_reference_added_and_removed_at_run_time(system: System, cassandra, audio_server: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`trackius refs add --kind audio` makes the running job hear the clip in a noisy MP3
    excerpt (with where in the clip it is); after `refs remove` it no longer does."""
    from trackius.cli import main

    for name, value in system.settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert main(["refs", "add", "--kind", "audio", str(VIBE)]) == 0
    ref_id = json.loads(capsys.readouterr().out)["ref_id"]
    clip = _clips_until(system, cassandra, audio_server, lambda clips: ref_id in clips)[ref_id]
    assert clip["name"] == VIBE.name and clip["offset_s"] - clip["at_s"] == pytest.approx(20.0, abs=0.5)

    assert main(["refs", "remove", "--kind", "audio", ref_id]) == 0
    _clips_until(system, cassandra, audio_server, lambda clips: ref_id not in clips)


def _clips_until(system: System, cassandra, server: str, done: typing.Callable[[dict], bool]) -> dict:
    """Post the excerpt until the job's findings satisfy `done` (a notice takes a moment to apply)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        key = unique("x:excerpt")
        system.produce(event(key, "what song is this", parts=_parts(server, tune=("audio", "/excerpt.mp3"))))
        found = _media_rows(cassandra, key, {"tune"})["tune"]
        clips = {clip["ref_id"]: clip for clip in (found.get("audio") or {}).get("clips", [])}
        if done(clips):
            return clips
        time.sleep(1)
    raise AssertionError("the job's findings never reflected the reference change")
