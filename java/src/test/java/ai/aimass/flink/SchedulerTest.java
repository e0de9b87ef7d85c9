package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@link MicroBatch} as the scheduler: window, priority order, aging, deadlines, admission, restore. */
class SchedulerTest {
    private static final int LANE = 7;

    private static MicroBatch.Policy policy(int inflight, long agingMs, int maxWaiting) {
        return new MicroBatch.Policy(1 << 20, inflight, 2000, agingMs, 10, maxWaiting, 1 << 20, 0, 0, true);
    }

    private static KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]>
            harness(MicroBatch.Policy policy, OperatorSubtaskState restoreFrom) throws Exception {
        return harness(policy, restoreFrom, 0);
    }

    private static KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]>
            harness(MicroBatch.Policy policy, OperatorSubtaskState restoreFrom, long startMs) throws Exception {
        MicroBatch op = new MicroBatch(policy, Requests.peek(), AnswersTest.answers());
        var h = new KeyedOneInputStreamOperatorTestHarness<>(op, new Graph.LaneKey(), Types.INT);
        h.setup();
        if (restoreFrom != null) {
            h.initializeState(restoreFrom);
        }
        op.attachForTest();
        h.setProcessingTime(startMs);
        h.open();
        return h;
    }

    private static MicroBatch op(KeyedOneInputStreamOperatorTestHarness<?, ?, ?> h) {
        return (MicroBatch) h.getOperator();
    }

    /** A routed request (rule DEFAULT) of model m; flush count {@code records}, delay {@code delay}. */
    private static Tuple4<Integer, Integer, Integer, byte[]> request(String id, int priority, Long deadline,
                                                                     int records, int delay) throws Exception {
        byte[] value = Requests.scheduled(id, "m", deadline, priority, 1);
        byte[] framed = Frames.record(0, 42, 0, "aimass.requests".getBytes(StandardCharsets.UTF_8), value,
                Rule.DEFAULT, -1, "1", "", "", "");
        return Tuple4.of(LANE, records, delay, framed);
    }

    /** Request ids of each batch emitted so far, in order. */
    private static List<List<String>> batches(KeyedOneInputStreamOperatorTestHarness<?, ?, byte[]> h)
            throws Exception {
        RequestPeek peek = Requests.peek();
        List<List<String>> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord<?> r) {
                List<String> ids = new ArrayList<>();
                for (Frames.Record rec : Frames.records((byte[]) r.getValue())) {
                RequestPeek.Span id = peek.peek(rec.value()).id();
                    ids.add(rec.rule() == Rule.CONTROL ? "<update>" : RequestPeek.idString(rec.value(), id));
                }
                out.add(ids);
            }
        }
        return out;
    }

    /** (request id, error text) of each answer the scheduler wrote itself. */
    private static List<String> answers(KeyedOneInputStreamOperatorTestHarness<?, ?, byte[]> h) {
        List<String> out = new ArrayList<>();
        var side = h.getSideOutput(MicroBatch.ANSWERS);
        if (side != null) {
            for (StreamRecord<Tuple3<String, byte[], Boolean>> r : side) {
                assertFalse(r.getValue().f2, "an answer of the scheduler claims no id");
                String text = new String(r.getValue().f1, StandardCharsets.ISO_8859_1);
                String status = text.contains("DEADLINE_EXCEEDED: ") ? "DEADLINE_EXCEEDED"
                        : text.contains("OVERLOADED: ") ? "OVERLOADED" : "?";
                out.add(r.getValue().f0 + " " + status);
            }
        }
        return out;
    }

    private static int deadLetters(KeyedOneInputStreamOperatorTestHarness<?, ?, byte[]> h) {
        var side = h.getSideOutput(Outputs.DEAD_LETTERS);
        return side == null ? 0 : side.size();
    }

    @Test
    void theWindowHoldsBatchesBackAndTheNextIsChosenByPriority() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("a", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("b", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("c", 3, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("d", 9, null, 1, 20)));
        assertEquals(List.of(List.of("a")), batches(h), "one batch in flight: the rest wait");
        op(h).answered(1);
        op(h).answered(1);
        op(h).answered(1);
        assertEquals(List.of(List.of("a"), List.of("d"), List.of("c"), List.of("b")), batches(h));
        h.close();
    }

    @Test
    void batchesGrowWhileTheWindowIsFull() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        for (String id : List.of("a", "b", "c", "d", "e")) {
            h.processElement(new StreamRecord<>(request(id, 0, null, 4, 20)));
        }
        assertEquals(List.of(List.of("a", "b", "c", "d")), batches(h));
        h.setProcessingTime(25);  // e's delay is up, but the window is full
        assertEquals(1, batches(h).size());
        op(h).answered(1);
        assertEquals(List.of("e"), batches(h).get(1));
        h.close();
    }

    @Test
    void aLevelIsWorthAgingMsOfWaitingSoNothingStarves() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("first", 0, null, 1, 20)));  // in flight
        h.processElement(new StreamRecord<>(request("old-low", 0, null, 1, 20)));  // key 0
        h.setProcessingTime(600);
        h.processElement(new StreamRecord<>(request("late-high", 5, null, 1, 20)));  // key 600 - 500 = 100
        h.processElement(new StreamRecord<>(request("late-top", 10, null, 1, 20)));  // key 600 - 1000 < 0
        op(h).answered(1);
        op(h).answered(1);
        op(h).answered(1);
        assertEquals(List.of(List.of("first"), List.of("late-top"), List.of("old-low"), List.of("late-high")),
                batches(h));
        h.close();
    }

    @Test
    void aBatchIsSentBeforeItsEarliestDeadlineNotAtItsDelay() throws Exception {
        var h = harness(policy(2, 100, 100), null);
        h.setProcessingTime(1000);
        h.processElement(new StreamRecord<>(request("slow", 0, null, 32, 500)));
        h.processElement(new StreamRecord<>(request("urgent", 0, 1100L, 32, 500)));
        h.setProcessingTime(1098);
        assertTrue(batches(h).isEmpty());
        h.setProcessingTime(1099);  // deadline - measured batch time (none yet) - 1 ms
        assertEquals(List.of(List.of("slow", "urgent")), batches(h));
        assertTrue(answers(h).isEmpty());
        h.close();
    }

    @Test
    void aRequestStillWaitingAtItsDeadlineIsAnsweredThenWithADeadLetter() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("busy", 0, null, 1, 20)));  // holds the window
        h.processElement(new StreamRecord<>(request("late", 0, 50L, 1, 20)));
        h.processElement(new StreamRecord<>(request("fine", 0, 5000L, 1, 20)));
        h.setProcessingTime(49);
        assertTrue(answers(h).isEmpty());
        h.setProcessingTime(50);
        assertEquals(List.of("late DEADLINE_EXCEEDED"), answers(h));
        assertEquals(1, deadLetters(h));
        op(h).answered(1);
        assertEquals(List.of(List.of("busy"), List.of("fine")), batches(h), "the expired one is not run");
        h.close();
    }

    @Test
    void aRequestReadAfterItsDeadlineIsAnsweredAtOnce() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(10_000);
        h.processElement(new StreamRecord<>(request("stale", 0, 9_000L, 1, 20)));
        assertEquals(List.of("stale DEADLINE_EXCEEDED"), answers(h));
        assertEquals(1, deadLetters(h));
        assertTrue(batches(h).isEmpty());
        h.close();
    }

    @Test
    void admissionRefusesTheLastInOrderAndAHigherPriorityMakesRoom() throws Exception {
        var h = harness(policy(1, 100, 2), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("busy", 0, null, 1, 20)));  // sent: no longer waiting
        h.processElement(new StreamRecord<>(request("w1", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w2", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w3", 0, null, 1, 20)));  // third waiting: refused
        h.processElement(new StreamRecord<>(request("vip", 5, null, 1, 20)));  // displaces w2
        assertEquals(List.of("w3 OVERLOADED", "w2 OVERLOADED"), answers(h));
        assertEquals(0, deadLetters(h), "OVERLOADED writes no dead letter");
        assertEquals(2, op(h).waitingRequests());
        op(h).answered(1);
        op(h).answered(1);
        assertEquals(List.of(List.of("busy"), List.of("vip"), List.of("w1")), batches(h));
        h.close();
    }

    @Test
    void admissionRefusesWhatWouldWaitLongerThanTheQueueLimitAtTheMeasuredRate() throws Exception {
        var h = harness(new MicroBatch.Policy(1 << 20, 1, 2000, 100, 10, 100, 1 << 20, 50, 0, true), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("a", 0, null, 1, 20)));
        h.setProcessingTime(10);
        op(h).answered(1);  // batches of 1 take 10 ms
        for (String id : List.of("b", "c", "d", "e", "f", "g", "h", "i")) {
            h.processElement(new StreamRecord<>(request(id, 0, null, 1, 20)));  // b is sent; c.. wait
        }
        assertEquals(List.of("i OVERLOADED"), answers(h), "six waiting are 60 ms of batches: more than 50");
        h.processElement(new StreamRecord<>(request("vip", 9, null, 1, 20)));
        assertEquals(List.of("i OVERLOADED", "h OVERLOADED"), answers(h), "the last one makes room for it");
        h.close();
    }

    @Test
    void underASustainedOverloadHighPriorityIsNeverShedAndWaitsLittle() throws Exception {
        var h = harness(new MicroBatch.Policy(1 << 20, 2, 2000, 100, 10, 100_000, 1 << 30, 100, 0, true), null);
        List<String> highs = new ArrayList<>();
        int answeredBatches = 0;
        for (long t = 0; t < 3000; t++) {  // 1 ms steps: 3 low a ms, a high every 20 ms; 2 batches a ms served
            h.setProcessingTime(t);
            for (int i = 0; i < 3; i++) {
                h.processElement(new StreamRecord<>(request("low-" + t + "-" + i, 0, null, 1, 20)));
            }
            if (t % 20 == 0) {
                highs.add("high-" + t);
                h.processElement(new StreamRecord<>(request("high-" + t, 10, null, 1, 20)));
            }
            op(h).answered(2);
            answeredBatches += 2;
        }
        List<String> shed = answers(h).stream().filter(a -> a.startsWith("high")).toList();
        assertEquals(List.of(), shed, "high priority shed while low priority waited");
        assertTrue(answers(h).size() > 2000, "the overload was shed: " + answers(h).size());
        List<List<String>> sent = batches(h);
        for (String high : highs.subList(0, highs.size() - 1)) {  // each served within a few ms of arriving
            long arrived = Long.parseLong(high.substring(5));
            int at = -1;
            for (int i = 0; i < sent.size(); i++) {
                if (sent.get(i).contains(high)) {
                    at = i;
                }
            }
            assertTrue(at >= 0, high + " never sent");
            assertTrue(at <= 2 * (arrived + 3) + 2, high + " sent as batch " + at + ", arrived at " + arrived);
        }
        assertTrue(answeredBatches > 0);
        h.close();
    }

    @Test
    void aHigherPriorityIsAdmittedEvenBehindABacklogOlderThanItsAgingAdvantage() throws Exception {
        var h = harness(new MicroBatch.Policy(1 << 20, 1, 60_000, 100, 10, 2, 1 << 20, 0, 0, true), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("busy", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w1", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w2", 0, null, 1, 20)));
        h.setProcessingTime(5000);  // 5 s later: far more than 10 levels x 100 ms; the window is still full
        h.processElement(new StreamRecord<>(request("vip", 1, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w3", 0, null, 1, 20)));
        assertEquals(List.of("w2 OVERLOADED", "w3 OVERLOADED"), answers(h),
                "the newest of the lowest level is shed, never the higher one");
        op(h).answered(1);
        op(h).answered(1);
        assertEquals(List.of(List.of("busy"), List.of("w1"), List.of("vip")), batches(h),
                "served in order: w1 came more than a level's aging before it");
        h.close();
    }

    @Test
    void theWindowHoldsInflightMsOfWorkInSmallBatches() throws Exception {
        var h = harness(new MicroBatch.Policy(1 << 20, 2, 2000, 100, 10, 100, 1 << 20, 0, 30, true), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("a", 0, null, 1, 20)));
        assertEquals(2, op(h).window(), "no batch time measured yet: inflight_batches");
        h.setProcessingTime(5);
        op(h).answered(1);
        assertEquals(6, op(h).window(), "30 ms of 5 ms batches");
        h.close();
    }

    @Test
    void theBatchTimeIsMeasuredFromAnswers() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("a", 0, null, 1, 20)));
        h.setProcessingTime(30);
        op(h).answered(1);
        assertEquals(30.0, op(h).serviceMs(), 1e-9);
        h.close();
    }

    @Test
    void waitingRequestsSurviveARestoreAndThoseWhoseDeadlinePassedAreAnsweredAtOnce() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("busy", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("low", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("expires", 0, 500L, 1, 20)));
        h.processElement(new StreamRecord<>(request("high", 9, null, 1, 20)));
        OperatorSubtaskState snapshot = h.snapshot(1, 1);
        h.close();
        var r = harness(policy(1, 100, 100), snapshot, 1000);  // opens after the deadline
        assertEquals(List.of("expires DEADLINE_EXCEEDED"), answers(r), "answered as it opens");
        r.processElement(new StreamRecord<>(request("after", 0, null, 1, 20)));
        assertEquals(List.of("expires DEADLINE_EXCEEDED"), answers(r));
        op(r).answered(1);
        op(r).answered(1);
        assertEquals(List.of(List.of("high"), List.of("low"), List.of("after")), batches(r),
                "restored in their order, the high one first");
        r.close();
    }

    @Test
    void routeUpdatesGoFirstAndUnplacedRecordsAreNotScheduled() throws Exception {
        var h = harness(policy(1, 100, 1), null);
        h.setProcessingTime(0);
        h.processElement(new StreamRecord<>(request("busy", 0, null, 1, 20)));
        h.processElement(new StreamRecord<>(request("w", 9, null, 1, 20)));
        byte[] unknown = Frames.record(0, 1, 0, new byte[0], Requests.scheduled("u", "m", 1L, 0, 1), Rule.UNKNOWN,
                -1, "", "", "", "no such model");
        h.processElement(new StreamRecord<>(Tuple4.of(LANE, 1, 20, unknown)));  // past its deadline: Python answers
        h.processElement(new StreamRecord<>(Tuple4.of(LANE, 1, 0, Frames.control("{}".getBytes(), 0))));
        assertTrue(answers(h).isEmpty(), "neither admission nor deadlines apply to unplaced records");
        op(h).answered(1);
        op(h).answered(1);
        op(h).answered(1);
        assertEquals(List.of(List.of("busy"), List.of("<update>"), List.of("w"), List.of("u")), batches(h),
                "the route update first, then by order");
        h.close();
    }

    @Test
    void deadLettersCarryTheOriginalRecord() throws Exception {
        var h = harness(policy(1, 100, 100), null);
        h.setProcessingTime(100);
        Tuple4<Integer, Integer, Integer, byte[]> stale = request("gone", 0, 1L, 1, 20);
        h.processElement(new StreamRecord<>(stale));
        Row letter = h.getSideOutput(Outputs.DEAD_LETTERS).peek().getValue();
        byte[] value = (byte[]) letter.getField(0);
        byte[] original = Requests.scheduled("gone", "m", 1L, 0, 1);
        String text = new String(value, StandardCharsets.ISO_8859_1);
        assertTrue(text.contains(new String(original, StandardCharsets.ISO_8859_1)), "the original is in it");
        assertTrue(text.contains("aimass.requests"));
        h.close();
    }
}
