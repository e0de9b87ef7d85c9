package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

class MicroBatchTest {
    private static KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]>
            harness(long maxBytes) throws Exception {
        var h = new KeyedOneInputStreamOperatorTestHarness<>(new MicroBatch(maxBytes), new Graph.LaneKey(), Types.INT);
        h.open();
        return h;
    }

    /** A new harness restored from a snapshot of {@code h} (which is closed). */
    private static KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]>
            restore(KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]> h)
            throws Exception {
        OperatorSubtaskState snapshot = h.snapshot(1, 1);
        h.close();
        var restored = new KeyedOneInputStreamOperatorTestHarness<>(new MicroBatch(1 << 20), new Graph.LaneKey(),
                Types.INT);
        restored.setup();
        restored.initializeState(snapshot);
        restored.open();
        return restored;
    }

    private static Tuple4<Integer, Integer, Integer, byte[]> record(int lane, int records, int delay, int size) {
        return Tuple4.of(lane, records, delay, new byte[size]);
    }

    /** Record counts of the batch frames emitted so far. */
    private static List<Integer> counts(
            KeyedOneInputStreamOperatorTestHarness<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]> h) {
        List<Integer> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord<?> r) {
                ByteBuffer buf = ByteBuffer.wrap((byte[]) r.getValue());
                assertEquals(Frames.VERSION, buf.get());
                out.add(buf.getInt());
            }
        }
        return out;
    }

    @Test
    void aLaneFlushesAtItsModelsRecordCount() throws Exception {
        var h = harness(1 << 20);
        h.setProcessingTime(0);
        for (int i = 0; i < 7; i++) {
            h.processElement(record(5, 3, 1000, 10), 0);
        }
        assertEquals(List.of(3, 3), counts(h));
        h.setProcessingTime(999);
        assertEquals(List.of(3, 3), counts(h));
        h.setProcessingTime(1000);  // the seventh waited its delay
        assertEquals(List.of(3, 3, 1), counts(h));
    }

    @Test
    void theShortestDelayOfAPendingRecordWins() throws Exception {
        var h = harness(1 << 20);
        h.setProcessingTime(0);
        h.processElement(record(5, 100, 50, 10), 0);
        h.setProcessingTime(10);
        h.processElement(record(5, 100, 5, 10), 0);  // due at 15, before the first's 50
        h.setProcessingTime(15);
        assertEquals(List.of(2), counts(h));
        h.setProcessingTime(60);  // the first's timer finds nothing pending
        assertEquals(List.of(2), counts(h));
    }

    @Test
    void lanesBatchApartAndBytesBoundABatch() throws Exception {
        var h = harness(100);
        h.setProcessingTime(0);
        h.processElement(record(1, 10, 20, 10), 0);
        h.processElement(record(2, 10, 20, 60), 0);
        h.processElement(record(2, 10, 20, 60), 0);  // lane 2 reaches 120 bytes
        assertEquals(List.of(2), counts(h));
        h.setProcessingTime(20);
        assertEquals(List.of(2, 1), counts(h));
    }

    @Test
    void pendingRecordsAndTheirTimerSurviveARestore() throws Exception {
        var h = harness(1 << 20);
        h.setProcessingTime(0);
        h.processElement(record(3, 10, 100, 10), 0);
        h.processElement(record(3, 10, 100, 10), 0);
        var restored = restore(h);
        restored.setProcessingTime(0);
        assertTrue(counts(restored).isEmpty());
        restored.setProcessingTime(100);
        assertEquals(List.of(2), counts(restored));
    }

    @Test
    void recordsRestoredInALaneCountTowardsItsNextFlush() throws Exception {
        var h = harness(1 << 20);
        h.setProcessingTime(0);
        for (int i = 0; i < 3; i++) {
            h.processElement(record(3, 5, 100, 10), 0);
        }
        var restored = restore(h);
        restored.setProcessingTime(10);
        restored.processElement(record(3, 5, 100, 10), 0);
        assertTrue(counts(restored).isEmpty());
        restored.processElement(record(3, 5, 100, 10), 0);  // 3 restored + 2: the model's 5
        assertEquals(List.of(5), counts(restored));
        restored.setProcessingTime(200);  // the restored timer and the new one find nothing
        assertEquals(List.of(5), counts(restored));
    }

    @Test
    void theEndOfABoundedInputFlushesEveryLane() throws Exception {
        var h = harness(1 << 20);
        h.setProcessingTime(0);
        h.processElement(record(1, 10, 1000, 10), 0);
        h.processElement(record(2, 10, 1000, 10), 0);
        h.processElement(record(2, 10, 1000, 10), 0);
        h.endInput();
        assertEquals(List.of(1, 2), counts(h).stream().sorted().toList());
    }
}
