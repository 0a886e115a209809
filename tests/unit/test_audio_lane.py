"""The audio branch of the media pipeline without a JVM: real files, real VAD, a reference clip
heard inside a video's sound; progressive findings; transcripts handed to the text analysis; every
bad input (no sound, empty, corrupt, too long) becomes the part's findings."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from schemas.content import MediaPart
from schemas.media import MediaFindings
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.audio import ANALYSIS_RATE, read_audio
from udfs.audio_lane import AudioOptions
from udfs.landmarks import fingerprint
from udfs.listening import AudioAnalyzer
from udfs.media import Fetcher
from udfs.media_pipeline import MediaPipeline, MediaText, PartRequest
from udfs.models import read_manifest
from udfs.speech import KeywordHit, Transcript
from udfs.vad import VoiceActivity
from udfs.visual import VisualAnalyzer

JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
VIBE = SHARED_DATA / "audio" / "librosa" / "Kevin_MacLeod_-_Vibe_Ace.ogg"
SILENT_VIDEO = SHARED_DATA / "video" / "bottle-detection.mp4"


class ScriptedSpeech:
    """A speech engine that 'hears' fixed words in any span, so the text flow can be checked
    without depending on a recogniser's accuracy."""

    name = "scripted"

    def transcribe(self, samples: np.ndarray, sr: int = 16000, offset_s: float = 0.0) -> Transcript:
        return Transcript("ask not what your country", (), (), self.name)

    def spot(self, samples: np.ndarray, phrases: Any, sr: int = 16000, offset_s: float = 0.0) -> tuple:
        return tuple(KeywordHit(p, offset_s, offset_s + 1.0, 0.9) for p in phrases if p == "your country")


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity(SHARED_DATA / "models", read_manifest(REPO_ROOT / "models" / "audio" / "manifest.json")["vad"])


@pytest.fixture(scope="module")
def vibe() -> np.ndarray:
    return read_audio(VIBE)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, vibe: np.ndarray) -> Path:
    """A video whose sound is 12 s of the reference from 20 s in; a minute of noise; junk."""
    root = tmp_path_factory.mktemp("media")
    soundfile.write(root / "excerpt.wav", vibe[20 * ANALYSIS_RATE:32 * ANALYSIS_RATE], ANALYSIS_RATE)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(root / "excerpt.wav"), "-f", "lavfi", "-i",
                    "testsrc=duration=12:size=64x48:rate=5", "-c:a", "aac", "-c:v", "mpeg4", "-shortest",
                    str(root / "with-sound.mp4")], check=True, timeout=60)
    noise = np.random.default_rng(1).normal(0, 0.05, 60 * ANALYSIS_RATE).astype(np.float32)
    soundfile.write(root / "minute.flac", noise, ANALYSIS_RATE)
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.ogg").write_bytes(b"OggS" + bytes(range(256)) * 8)
    return root


def run(parts: list[MediaPart], vad: VoiceActivity, roots: tuple[Path, ...], speech: Any = None,
        refs: dict[str, np.ndarray] | None = None, max_s: float = 3600.0,
        phrases: tuple[str, ...] = ()) -> list[Any]:
    listener = AudioAnalyzer(vad, speech_engine=speech)
    for name, samples in (refs or {}).items():
        listener.clips.add(name, name, fingerprint(samples, ANALYSIS_RATE))
    pipeline = MediaPipeline(Fetcher(timeout_s=5.0, file_roots=roots), VisualAnalyzer(), audio=listener,
                             audio_options=AudioOptions(max_s=max_s, progress_chunks=2))
    pipeline.wants_text(speech is not None, phrases)
    try:
        return list(pipeline.run([PartRequest("shard", "x:1", part, 7) for part in parts], timeout_s=120))
    finally:
        pipeline.close()


def final(results: list[Any], part_id: str) -> MediaFindings:
    (found,) = [r for r in results if isinstance(r, MediaFindings) and r.part_id == part_id and r.status != "partial"]
    return found


def test_every_part_gets_findings_and_the_clip_is_heard(media: Path, vad: VoiceActivity, vibe: np.ndarray) -> None:
    """Speech, a video whose sound is a reference, a silent video, empty and corrupt files."""
    parts = [MediaPart("speech", "audio", JFK.as_uri()), MediaPart("video.audio", "audio", (media / "with-sound.mp4").as_uri()),
             MediaPart("silent.audio", "audio", SILENT_VIDEO.as_uri()),
             MediaPart("empty", "audio", (media / "empty.wav").as_uri()),
             MediaPart("corrupt", "audio", (media / "corrupt.ogg").as_uri())]
    results = run(parts, vad, (media, SHARED_DATA), refs={"vibe": vibe})
    speech = final(results, "speech")
    assert speech.status == "ok" and speech.audio.speech_share > 0.5 and speech.audio.clips == ()
    assert speech.audio.analysed_s == pytest.approx(11.0, abs=0.01) and speech.timings_ms["analyse"] > 0
    video = final(results, "video.audio")
    (clip,) = video.audio.clips
    assert clip.ref_id == "vibe" and clip.method == "landmarks"
    # the part's audio at at_s is the reference's at offset_s: the excerpt started 20 s in
    assert clip.offset_s - clip.at_s == pytest.approx(20.0, abs=0.5)
    silent = final(results, "silent.audio")
    assert silent.status == "ok" and silent.flags == ("no_audio_track",) and silent.audio is None
    assert final(results, "empty").status == "error"
    corrupt = final(results, "corrupt")
    assert corrupt.status == "error" and corrupt.failure.code in ("corrupt", "unsupported", "not_media")


def test_long_audio_reports_progress_and_is_cut_at_the_limit(media: Path, vad: VoiceActivity) -> None:
    """A minute of audio with a 35 s limit: partial findings that grow, then ok + audio_cut_short."""
    results = run([MediaPart("long", "audio", (media / "minute.flac").as_uri())], vad, (media,), max_s=35.0)
    partial = [r.audio.analysed_s for r in results if isinstance(r, MediaFindings) and r.status == "partial"]
    assert partial[0] == pytest.approx(10.0) and partial == sorted(partial)
    last = final(results, "long")
    assert last.status == "ok" and "audio_cut_short" in last.flags
    assert last.audio.analysed_s == pytest.approx(35.0) and last.audio.duration_s == pytest.approx(60.0, abs=0.1)
    assert last.audio.speech_share < 0.05  # noise is not speech


def test_speech_becomes_text_before_the_final_findings(vad: VoiceActivity) -> None:
    """When a rule reads text: the transcript goes to the text analysis as <part>.text, spotted
    phrases are keywords, and the final findings carry the transcript."""
    results = run([MediaPart("talk", "audio", JFK.as_uri())], vad, (SHARED_DATA,), speech=ScriptedSpeech(),
                  phrases=("your country", "stock market"))
    texts = [r for r in results if isinstance(r, MediaText)]
    assert texts and texts[0].text_part == "talk.text" and not texts[0].final
    assert "your country" in texts[0].text
    last = final(results, "talk")
    assert results.index(texts[-1]) < results.index(last)
    assert "your country" in last.audio.transcript
    assert {k.phrase for k in last.audio.keywords} == {"your country"}


def test_only_long_known_phrases_are_spotted(vad: VoiceActivity) -> None:
    """Spotting listens for phrases of 7+ phones in the dictionary: short words fire on any
    speech, unknown words cannot be heard."""
    from udfs.speech import create_engine

    listener = AudioAnalyzer(vad, speech_engine=create_engine("pocketsphinx"))
    assert listener._spottable(["eth", "down", "your country", "hey mycroft", "withdrawals paused"]) == [
        "your country", "withdrawals paused"]


def test_auto_phases_drop_to_one_past_the_limit() -> None:
    """TRACKIUS_AUDIO_MATCH_PHASES=0: three query framings while the index is small, one beyond
    AUTO_ALL_PHASES_UP_TO references (the 10 s budget); 1 and 3 are fixed."""
    from udfs.listening import AUTO_ALL_PHASES_UP_TO, clip_index

    marks = fingerprint(np.random.default_rng(0).normal(0, 0.1, 3 * ANALYSIS_RATE), ANALYSIS_RATE)
    auto, fixed = clip_index(0), clip_index(3)
    for i in range(AUTO_ALL_PHASES_UP_TO):
        auto.add(f"c{i}", "c", marks)
        fixed.add(f"c{i}", "c", marks)
    assert len(auto.phases_now()) == 3
    auto.add("one-more", "c", marks)
    fixed.add("one-more", "c", marks)
    assert len(auto.phases_now()) == 1 and len(fixed.phases_now()) == 3 and len(clip_index(1).phases_now()) == 1
