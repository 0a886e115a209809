"""The text commands end to end through `trackius.cli.main`: each prints one JSON object as the
last line of its output, computed by the job's own core."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from trackius.cli import main
from trackius.textcmd import macro_f1, pearson


def last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_analyze_text_prints_the_findings(capsys: pytest.CaptureFixture[str]) -> None:
    """`analyze text` prints the TextFindings JSON with sentiment, entities, language and spam score."""
    assert main(["analyze", "text", "I love $DOGE! Claim a FREE prize at bit.ly/x now."]) == 0
    findings = last_json(capsys)
    assert findings["sentiment"]["compound"] > 0.5 and len(findings["sentences"]) == 2
    assert {e["type"] for e in findings["entities"]} >= {"cashtag", "url", "domain"}
    assert findings["lang"] == "en" and 0 <= findings["classifiers"]["spam"] <= 1


def test_analyze_text_with_rules_reports_their_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {rule_id: r, version: 1, condition: 'crypt* NEAR/2 scam'}\n")
    assert main(["analyze", "text", "Crypto is a scam", "--rules", str(rules)]) == 0
    assert [h["term"] for h in last_json(capsys)["hits"]] == ["crypt*", "scam"]


def test_match_reads_stdin_and_prints_one_line_per_text(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Bitcoin will crash\nall calm\n"))
    assert main(["match", "--query", "bitcoin NEAR/2 crash*"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"match": True, "terms": ["bitcoin", "crash*"]}, {"match": False, "terms": []}]


def test_match_refuses_a_bad_query_with_its_position(capsys) -> None:
    assert main(["match", "--query", "a AND (b"]) == 2
    assert "'(' is never closed at position 6" in capsys.readouterr().err


def test_eval_sentiment(tmp_path: Path, capsys) -> None:
    data = tmp_path / "truth.txt"
    data.write_text("1\t3.2\tI love this, it is wonderful!\n2\t-3.0\tThis is awful, I hate it.\n"
                    "3\t0.0\tThe meeting is at noon.\n", encoding="utf-8")
    assert main(["eval", "sentiment", "--data", str(data)]) == 0
    result = last_json(capsys)
    assert result["n"] == 3 and result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert result["pearson_r"] > 0.9


def test_eval_spam(tmp_path: Path, capsys) -> None:
    data = tmp_path / "labelled.txt"
    data.write_text("spam\tWINNER!! You have won a £1000 cash prize. Call 09061701461 to claim now\n"
                    "ham\tAre we still on for lunch tomorrow?\n", encoding="utf-8")
    assert main(["eval", "spam", "--data", str(data)]) == 0
    result = last_json(capsys)
    assert (result["n"], result["accuracy"], result["false_positive_rate"]) == (2, 1.0, 0.0)


def test_eval_with_a_missing_file_is_one_line_error(capsys) -> None:
    assert main(["eval", "spam", "--data", "/nonexistent/file"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_metric_helpers() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 1], [1, 2]) == 0.0  # no variance: no correlation
    assert macro_f1(["positive", "negative"], ["positive", "neutral"]) == pytest.approx(1 / 3)
