"""The fault campaign's oracle on synthetic data: lost, doubled, wrong, per delivery mode."""

from __future__ import annotations

import random

import numpy as np

from aimass.contract.codec import Codec
from aimass.contract.messages import DeadLetter, InferenceResult, Reason, Status, Tensor, Timings
from aimass.faults.malformed import KINDS, BadRecords
from aimass.faults.oracle import Expectation, digest, judge, longest_gap, recovery_times
from aimass.faults.report import render


def ok(rid: str, label: int = 3, completed: int = 1, batch: int = 1) -> InferenceResult:
    return InferenceResult(
        request_id=rid, model="digits", status=Status.OK, completed_at_ms=completed, version="2",
        outputs=(Tensor.from_numpy("label", np.array([label], dtype=np.int64)),
                 Tensor.from_numpy("probabilities", np.full((1, 2), 0.5, dtype=np.float32))),
        timings=Timings(batch_size=batch),
    )


def want(label: int = 3) -> Expectation:
    return Expectation(Status.OK, {"label": np.array([label], dtype=np.int64),
                                   "probabilities": np.full((1, 2), 0.5, dtype=np.float32)})


def dead(original: bytes, reason: Reason) -> DeadLetter:
    return DeadLetter(original, "aimass.requests", 0, 7, reason, "why", 1)


EXPECTED = {"a": want(), "b": want(), "c": Expectation(Status.INVALID_INPUT)}
ERROR_C = InferenceResult("c", "digits", Status.INVALID_INPUT, 1, error="INVALID_INPUT: shape")


def test_one_correct_answer_each_is_ok_in_both_modes() -> None:
    for mode in ("exactly-once", "at-least-once"):
        verdict = judge(mode, EXPECTED, [ok("a"), ok("b"), ERROR_C])
        assert verdict.ok and verdict.lost == 0 and verdict.answered == 3
        assert verdict.problems() == []


def test_a_request_without_a_result_is_lost_in_both_modes() -> None:
    for mode in ("exactly-once", "at-least-once"):
        verdict = judge(mode, EXPECTED, [ok("a"), ERROR_C])
        assert not verdict.ok and verdict.missing == ("b",) and verdict.lost == 1
        assert "1 of 3 requests got no result" in verdict.problems()[0]


def test_identical_duplicate_fails_exactly_once_but_passes_at_least_once() -> None:
    # Timings and completion time differ in a replay: the answer is what must repeat.
    results = [ok("a"), ok("b"), ok("a", completed=9, batch=7), ERROR_C]
    exactly = judge("exactly-once", EXPECTED, results)
    assert not exactly.ok and exactly.duplicates == {"a": 2}
    assert exactly.identical_duplicates == 1 and exactly.conflicting_duplicates == 0
    assert "more than one result in exactly-once mode" in " ".join(exactly.problems())
    assert judge("at-least-once", EXPECTED, results).ok


def test_conflicting_duplicate_fails_both_modes() -> None:
    results = [ok("a"), ok("b"), ok("a", label=4), ERROR_C]
    for mode in ("exactly-once", "at-least-once"):
        verdict = judge(mode, EXPECTED, results)
        assert not verdict.ok and verdict.conflicting_duplicates == 1 and verdict.identical_duplicates == 0


def test_wrong_status_and_wrong_outputs_are_mismatches() -> None:
    wrong_label = ok("a", label=9)
    wrong_status = InferenceResult("b", "digits", Status.INTERNAL_ERROR, 1, error="boom")
    verdict = judge("at-least-once", EXPECTED, [wrong_label, wrong_status, ok("c")])
    assert not verdict.ok
    assert set(verdict.mismatched) == {"a", "b", "c"}
    assert "label" in verdict.mismatched["a"] and "INTERNAL_ERROR" in verdict.mismatched["b"]
    assert "expected INVALID_INPUT" in verdict.mismatched["c"]


def test_float_outputs_compare_with_a_tolerance() -> None:
    close = ok("a")
    probabilities = np.full((1, 2), 0.5 + 1e-7, dtype=np.float32)
    close = InferenceResult("a", "digits", Status.OK, 1, "2",
                            (close.outputs[0], Tensor.from_numpy("probabilities", probabilities)))
    assert judge("exactly-once", {"a": want()}, [close]).ok
    far = InferenceResult("a", "digits", Status.OK, 1, "2",
                          (close.outputs[0], Tensor.from_numpy("probabilities", probabilities + 0.01)))
    assert "differs from direct ONNX Runtime" in judge("exactly-once", {"a": want()}, [far]).mismatched["a"]


def test_missing_output_is_a_mismatch_not_a_crash() -> None:
    bare = InferenceResult("a", "digits", Status.OK, 1, "2", ())
    assert "has no output 'label'" in judge("exactly-once", {"a": want()}, [bare]).mismatched["a"]


def test_results_of_other_traffic_are_ignored() -> None:
    verdict = judge("exactly-once", EXPECTED, [ok("a"), ok("b"), ERROR_C, ok("zz"), ok("zz"), ok(None)])  # type: ignore[arg-type]
    assert verdict.ok and verdict.expected == 3


def test_dead_letters_are_matched_by_the_bytes_of_the_record() -> None:
    garbage, other = b"\x00not avro", b"\x01neither"
    expected_dead = {digest(garbage): Reason.UNDECODABLE, digest(other): Reason.WRONG_SCHEMA}
    unrelated = dead(b"someone else's", Reason.UNDECODABLE)
    good = judge("exactly-once", {}, [], expected_dead,
                 [dead(garbage, Reason.UNDECODABLE), dead(other, Reason.WRONG_SCHEMA), unrelated])
    assert good.ok and good.dead_letters_expected == 2
    lost = judge("exactly-once", {}, [], expected_dead, [dead(garbage, Reason.UNDECODABLE)])
    assert not lost.ok and lost.lost == 1 and lost.dead_letters_missing == (digest(other),)
    doubled = [dead(garbage, Reason.UNDECODABLE)] * 2 + [dead(other, Reason.WRONG_SCHEMA)]
    assert not judge("exactly-once", {}, [], expected_dead, doubled).ok
    assert judge("at-least-once", {}, [], expected_dead, doubled).ok
    wrong = judge("at-least-once", {}, [], expected_dead,
                  [dead(garbage, Reason.OVERSIZED), dead(other, Reason.WRONG_SCHEMA)])
    assert not wrong.ok and "expected UNDECODABLE" in wrong.dead_letters_wrong_reason[digest(garbage)]


def test_summary_counts_extra_results() -> None:
    summary = judge("exactly-once", EXPECTED, [ok("a")] * 3 + [ok("b"), ERROR_C]).summary()
    assert summary["duplicated_requests"] == 1 and summary["extra_results"] == 2 and not summary["ok"]


def test_recovery_is_the_longest_gap_after_each_fault() -> None:
    arrivals = [0.0, 1.0, 2.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0]
    # Fault at 2.5: nothing until 9.0 (6.5 s). Fault at 12: nothing until 20 (8 s).
    assert recovery_times(arrivals, [2.5, 12.0], end=30.0) == [6.5, 8.0]
    # The idle tail after the last result of a window is not an outage.
    assert recovery_times([1.0, 2.0], [0.0], end=100.0) == [1.0]
    # A fault that is never recovered from scores the whole window.
    assert recovery_times([1.0], [5.0], end=35.0) == [30.0]
    assert recovery_times(arrivals, [], end=30.0) == []


def test_longest_gap_of_the_baseline() -> None:
    assert longest_gap([0.0, 1.0, 1.5, 4.0, 100.0], 0.0, 10.0) == 2.5
    assert longest_gap([5.0], 0.0, 10.0) == 0.0


def test_every_other_oversized_record_is_as_large_as_the_broker_takes() -> None:
    maker = BadRecords(Codec(), random.Random(0), max_payload_bytes=4096, id_prefix="t-", near_limit_bytes=9000)
    sizes = [len(maker.make("oversized").value) for _ in range(4)]
    assert all(size > 4096 for size in sizes)
    assert sizes[0] < 4096 + 512 and 9000 - 256 < sizes[1] <= 9000


def test_bad_records_are_repeatable_from_the_seed() -> None:
    def values(seed: int) -> list[bytes]:
        maker = BadRecords(Codec(), random.Random(seed), 4096, "t-")
        return [maker.make().value for _ in range(len(KINDS))]

    first = values(5)
    # Deadlines and created_at are wall-clock: compare the kinds that carry neither.
    assert first[0] == values(5)[0] and first[0] != values(6)[0]


def test_report_renders_every_section() -> None:
    faults = [{"kind": "taskmanager-kill", "at_s": 3.0, "during_checkpoint": True, "down_s": 1.0,
               "recovery_s": 9.5, "restarts": 1}]
    report = {
        "mode": "exactly-once", "duration_s": 60.0, "command": "python -m aimass.faults --smoke",
        "plan": {"checkpoint_kill_share": 0.5, "rate": 50.0, "bad_fraction": 0.01, "max_taskmanager_down_s": 2.0,
                 "broker_down_s": 3.0, "seed": 1},
        "job": {"parallelism": 2, "taskmanagers": 1, "slots": 2, "checkpoint_interval_ms": 1000,
                "restart_delay_ms": 2000, "max_payload_bytes": 262144},
        "sent": {"valid_requests": 100, "bad_records": 12, "bad_by_kind": {"garbage": 12}, "producer_errors": 0},
        "bad_input_phase": {"records": 10, "restarts": 0, "failures": 0},
        "faults": faults, "recovery_s": {"median": 9.5, "max": 9.5}, "kill_recovery_s": {"median": 9.5, "max": 9.5},
        "baseline_gap_s": 1.1,
        "restarts": {"from_bad_input": 0, "before_first_fault": 0, "mixed_phase_total": 1, "attributed_to_faults": 1},
        "oracle": judge("exactly-once", EXPECTED, [ok("a"), ok("b"), ERROR_C]).summary(),
    }
    alo = {**report, "mode": "at-least-once", "faults": [{**faults[0], "back_to_back": True}]}
    page = render([report, alo])
    for words in ("# Reliability", "## Summary", "## Campaign: exactly-once, thread mode",
                  "## Campaign: at-least-once, thread mode", "| **lost**", "during a checkpoint", "9.5 s",
                  "## Security", "SECURITY.md", "nothing lost, nothing doubled", "1 back-to-back kill"):
        assert words in page


# -- records whose answer is not known beforehand (aimass.faults.fuzz) ------------------------------

FUZZ = {"f1": Expectation(None), "f2": Expectation(None)}
FUZZ_DIGESTS = {"f1": digest(b"one"), "f2": digest(b"two")}


def test_a_fuzzed_record_may_get_any_status_with_its_dead_letter_when_not_ok() -> None:
    results = [ok("f1"), InferenceResult("f2", "digits", Status.INVALID_INPUT, 1, error="x")]
    verdict = judge("exactly-once", FUZZ, results, {}, [dead(b"two", Reason.UNDECODABLE)],
                    dead_if_error=FUZZ_DIGESTS)
    assert verdict.ok, verdict.problems()
    assert verdict.dead_letters_expected == 1


def test_a_fuzzed_error_result_without_its_dead_letter_is_a_loss() -> None:
    results = [ok("f1"), InferenceResult("f2", "digits", Status.UNKNOWN_MODEL, 1, error="x")]
    verdict = judge("at-least-once", FUZZ, results, {}, [], dead_if_error=FUZZ_DIGESTS)
    assert not verdict.ok and verdict.dead_letters_missing == (FUZZ_DIGESTS["f2"],)


def test_a_fuzzed_dead_letter_must_match_its_results_status() -> None:
    results = [ok("f1"), InferenceResult("f2", "digits", Status.UNKNOWN_MODEL, 1, error="x")]
    verdict = judge("exactly-once", FUZZ, results, {}, [dead(b"two", Reason.UNDECODABLE)],
                    dead_if_error=FUZZ_DIGESTS)
    assert not verdict.ok and FUZZ_DIGESTS["f2"] in verdict.dead_letters_wrong_reason


def test_a_fuzzed_ok_result_with_a_dead_letter_is_wrong() -> None:
    results = [ok("f1"), InferenceResult("f2", "digits", Status.INVALID_INPUT, 1, error="x")]
    letters = [dead(b"one", Reason.INVALID_INPUT), dead(b"two", Reason.INVALID_INPUT)]
    verdict = judge("exactly-once", FUZZ, results, {}, letters, dead_if_error=FUZZ_DIGESTS)
    assert not verdict.ok and "an ok result and a dead letter" in verdict.mismatched["f1"]


def test_a_fuzzed_record_without_a_result_is_lost_and_its_dead_letter_doubled_in_exactly_once() -> None:
    assert judge("exactly-once", FUZZ, [ok("f1")], {}, [], dead_if_error=FUZZ_DIGESTS).missing == ("f2",)
    results = [ok("f1"), InferenceResult("f2", "digits", Status.INVALID_INPUT, 1, error="x")]
    twice = [dead(b"two", Reason.INVALID_INPUT)] * 2
    assert not judge("exactly-once", FUZZ, results, {}, twice, dead_if_error=FUZZ_DIGESTS).ok
    assert judge("at-least-once", FUZZ, results, {}, twice, dead_if_error=FUZZ_DIGESTS).ok


def test_a_corpus_record_owes_a_dead_letter_of_any_reason() -> None:
    expected = {digest(b"mine"): None}
    assert judge("exactly-once", {}, [], expected, [dead(b"mine", Reason.WRONG_SCHEMA)]).ok
    assert judge("exactly-once", {}, [], expected, []).dead_letters_missing == (digest(b"mine"),)


def test_at_least_once_verdict_names_its_identical_duplicates() -> None:
    from aimass.faults.report import _verdict

    results = [ok("a"), ok("b"), ok("a", completed=9), ERROR_C]
    summary = judge("at-least-once", EXPECTED, results).summary()
    assert "1 requests answered more than once, every copy identical" in _verdict(summary)
    assert _verdict(judge("exactly-once", EXPECTED, results).summary()) == "**FAILED**"


def test_report_names_failures_blamed_on_python_code_and_every_root_exception() -> None:
    from aimass.faults.report import _code_failures

    restarts = {"failures_from_code": 1, "failures_seen": 3,
                "code_failures": [{"at_s": 4.2, "exception": "pemja.core.PythonException", "message": "a | b"}]}
    text = _code_failures(restarts)
    assert "1 of 3 recorded" in text and "+4.2 s `pemja.core.PythonException`: a \\| b" in text
    assert _code_failures({}) == ""  # reports from before the check


def test_a_negative_throughput_loss_is_reported_as_no_loss() -> None:
    from aimass.faults.report import _loss

    assert _loss(0.234) == "**23.4% throughput loss**"
    assert _loss(-0.078).startswith("**no loss measured** (the bursts with bad records were 7.8% faster")
    assert _loss(None) == "**loss not measured**"
