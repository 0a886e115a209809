"""VADER (vaderSentiment, stock lexicon and rules) without two of its avoidable costs.

- It first rewrites emoji as their descriptions, one Python step per character of the text. Its
  emoji table has no ASCII keys, so for an ASCII text that pass only strips the ends: skipped.
- Its negation and idiom checks lower-case the whole text again for every word they look at
  (quadratic in the text's length), though they read at most three words around that word:
  they are given just that window.

Scores are identical to the stock analyzer's; tests compare them on the VADER ground truth and
the SMS collection, emoji included.
"""

from __future__ import annotations

from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText


class Vader(SentimentIntensityAnalyzer):
    def polarity_scores(self, text: str) -> dict[str, float]:
        if not text.isascii():
            return super().polarity_scores(text)
        return self._score(text.strip())

    def _score(self, text: str) -> dict[str, float]:
        sentitext = SentiText(text)
        words = sentitext.words_and_emoticons
        sentiments: list[float] = []
        for i, word in enumerate(words):
            lowered = word.lower()
            # boosters and "kind of" modify their neighbours and carry no valence of their own
            if lowered in BOOSTER_DICT or (lowered == "kind" and i + 1 < len(words) and words[i + 1].lower() == "of"):
                sentiments.append(0)
                continue
            sentiments = self.sentiment_valence(0, sentitext, word, i, sentiments)
        sentiments = self._but_check(words, sentiments)
        return self.score_valence(sentiments, text)

    @staticmethod
    def _negation_check(valence: float, words: list[str], start_i: int, i: int) -> float:
        # reads words i-3..i-1 only, and only those before i exist when it is called
        low = max(0, i - 3)
        return SentimentIntensityAnalyzer._negation_check(valence, words[low:i + 1], start_i, i - low)

    @staticmethod
    def _special_idioms_check(valence: float, words: list[str], i: int) -> float:
        # reads words i-3..i+2 (called only for i >= 3), and asks whether i+1 and i+2 exist
        return SentimentIntensityAnalyzer._special_idioms_check(valence, words[i - 3:i + 3], 3)
