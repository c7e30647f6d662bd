"""The llm judge: reply parsing, and judging through any TeacherBackend (an in-process fake here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from cotdistill.errors import StageFailed
from cotdistill.quality.judges import LLMJudge, VerdictCache, judge_messages, parse_judge_reply
from cotdistill.records import Question, ReasoningPath
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend


@pytest.mark.parametrize(
    ("reply", "verdict", "reason"),
    [
        ("VALID", "valid", ""),
        ("VALID.", "valid", ""),
        ("valid", "valid", ""),
        ("**Valid**", "valid", ""),
        ('"VALID"', "valid", ""),
        ("INVALID - step 2 adds 3 and 4 to get 8.", "invalid", "step 2 adds 3 and 4 to get 8."),
        ("INVALID: the answer is not supported", "invalid", "the answer is not supported"),
        ("invalid – it assumes 5 apples", "invalid", "it assumes 5 apples"),
        ("Invalid", "invalid", "judged invalid (no reason given)"),
        ("Let me check each step.\nStep 1 is fine. Step 2 is fine.\n\nVALID", "valid", ""),
        ("Sure! After careful review, my verdict: INVALID - 12 * 3 is 36, not 38.", "invalid", "12 * 3 is 36, not 38."),
        ("Here is my assessment.\nVerdict: invalid - the rate is misread", "invalid", "the rate is misread"),
        ("The solution is VALID.", "valid", ""),
        ("Final verdict: **INVALID** — wrong unit conversion", "invalid", "wrong unit conversion"),
    ],
)
def test_reply_parsing(reply: str, verdict: str, reason: str) -> None:
    v = parse_judge_reply(reply)
    assert (v.verdict, v.reason) == (verdict, reason)


@pytest.mark.parametrize(
    "reply", ["", "   \n ", None, "asdf qwerty", "I am not sure whether it is VALID or INVALID", "validation", "42"]
)
def test_unreadable_replies_are_unparseable(reply: str | None) -> None:
    v = parse_judge_reply(reply)
    assert v.verdict == "unparseable"
    assert v.reason


class FakeBackend(TeacherBackend):
    """Answers each request with ``reply(request)``; counts requests; completes in reverse order (async-like)."""

    def __init__(self, reply: Callable[[GenRequest], str | None], error: str | None = None, kind: str | None = None):
        self.reply, self.error, self.kind, self.calls = reply, error, kind, 0
        self.seen: list[GenRequest] = []

    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        for r in reversed(list(requests)):
            self.calls += 1
            self.seen.append(r)
            if self.error:
                on_result(r, Completion(text=None, error=self.error, kind=self.kind))
            else:
                on_result(r, Completion(text=self.reply(r)))


def _item(i: int, text: str) -> tuple[Question, ReasoningPath]:
    q = Question(id=f"q{i}", task="math", question=f"What is {i} + {i}?", gold=str(2 * i))
    return q, ReasoningPath(id=f"q{i}|t|cot|0", question_id=q.id, teacher="t", style="cot", text=text)


def _replier(req: GenRequest) -> str:
    text = req.messages[-1]["content"]
    if "WRONG" in text:
        return "Let me think.\nINVALID - the sum is wrong."
    if "MUMBLE" in text:
        return "hmm"
    return "valid"


def test_llm_judge_through_a_backend_in_order_and_cached(tmp_path) -> None:
    items = [_item(1, "1 + 1 = 2. The answer is 2."), _item(2, "2 + 2 = 5 WRONG"), _item(3, "MUMBLE")]
    backend = FakeBackend(_replier)
    cache = VerdictCache(tmp_path / "judge.jsonl")
    judge = LLMJudge(backend, "fake|model", cache)
    verdicts = judge.judge(items)
    assert [v.verdict for v in verdicts] == ["valid", "invalid", "unparseable"]
    assert verdicts[1].reason == "the sum is wrong."
    assert backend.calls == 3
    # the strict protocol is in the prompt, with the question and the path
    user = backend.seen[0].messages[-1]["content"]
    assert "INVALID - <one-sentence reason>" in user and "What is" in user
    cache.close()
    # a new judge over the same cache file asks nothing again
    backend2 = FakeBackend(lambda r: pytest.fail("must not be asked"))
    judge2 = LLMJudge(backend2, "fake|model", VerdictCache(tmp_path / "judge.jsonl"))
    assert [v.verdict for v in judge2.judge(items)] == ["valid", "invalid", "unparseable"]
    assert backend2.calls == 0
    # another judge model does not reuse those verdicts
    backend3 = FakeBackend(_replier)
    LLMJudge(backend3, "other|model", VerdictCache(tmp_path / "judge.jsonl")).judge(items)
    assert backend3.calls == 3


def test_an_unusable_answer_is_unparseable_and_not_cached(tmp_path) -> None:
    """The server answered, with something that is no verdict (a malformed body, a 400): unparseable, retried later."""
    items = [_item(1, "1 + 1 = 2")]
    cache = VerdictCache(tmp_path / "judge.jsonl")
    v = LLMJudge(FakeBackend(_replier, error="unreadable reply after 6 retries", kind="malformed"), "m", cache)
    assert v.judge(items)[0].verdict == "unparseable" and "unreadable" in v.judge(items)[0].reason
    backend = FakeBackend(_replier)
    assert LLMJudge(backend, "m", cache).judge(items)[0].verdict == "valid"
    assert backend.calls == 1


@pytest.mark.parametrize("kind", ["connection", "timeout", "auth", "not_found", "server", None])
def test_no_server_stops_the_judge_instead_of_rejecting_every_path(tmp_path, kind) -> None:
    """Issue 24: a judge that cannot be reached gives no verdict; it raises (exit 3) and caches nothing."""
    items = [_item(1, "1 + 1 = 2"), _item(2, "2 + 2 = 4")]
    cache = VerdictCache(tmp_path / "judge.jsonl")
    down = FakeBackend(_replier, error="connection refused by http://127.0.0.1:9/v1", kind=kind)
    with pytest.raises(StageFailed, match="LLM judge cannot be reached: connection refused") as e:
        LLMJudge(down, "m", cache).judge(items)
    assert e.value.exit_code == 3 and "2 of 2" in str(e.value)
    backend = FakeBackend(_replier)
    assert [v.verdict for v in LLMJudge(backend, "m", cache).judge(items)] == ["valid", "valid"]
    assert backend.calls == 2  # nothing was cached for the failed requests


def test_judge_messages_render_choices() -> None:
    q = Question(id="c", task="choice", question="Pick one.", choices=["red", "blue"], gold="B")
    p = ReasoningPath(id="c|t|cot|0", question_id="c", teacher="t", style="cot", text="Blue. The answer is (B).")
    content = judge_messages(q, p)[-1]["content"]
    assert "blue" in content and "The answer is (B)." in content
