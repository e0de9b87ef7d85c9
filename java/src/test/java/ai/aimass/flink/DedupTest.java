package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

class DedupTest {
    private static KeyedOneInputStreamOperatorTestHarness<String, Tuple3<String, byte[], Boolean>, Row> harness(
            long ttl) throws Exception {
        return ProcessFunctionTestHarnesses.forKeyedProcessFunction(new Dedup(ttl), new Graph.RequestIdKey(),
                Types.STRING);
    }

    private static Tuple3<String, byte[], Boolean> result(String id, int tag, boolean claims) {
        return Tuple3.of(id, new byte[] {(byte) tag}, claims);
    }

    private static List<String> written(KeyedOneInputStreamOperatorTestHarness<String, ?, Row> h) {
        List<String> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord<?> r) {
                Row row = (Row) r.getValue();
                out.add(row.getField(0) + ":" + ((byte[]) row.getField(1))[0]);
            }
        }
        return out;
    }

    @Test
    void anIdKeepsItsFirstAcceptedResult() throws Exception {
        var h = harness(3600);
        h.processElement(result("a", 1, false), 0);  // a refused record's error result: shown, claims nothing
        h.processElement(result("a", 2, true), 0);   // the accepted request's result replaces it
        h.processElement(result("a", 3, true), 0);   // a resubmission (or the id under another model)
        h.processElement(result("a", 4, false), 0);  // a bad record reusing the id
        h.processElement(result("b", 5, true), 0);
        assertEquals(List.of("a:1", "a:2", "b:5"), written(h));
    }

    @Test
    void anIdIsForgottenAfterItsTtl() throws Exception {
        var h = harness(60);
        h.setStateTtlProcessingTime(0);
        h.processElement(result("a", 1, true), 0);
        h.setStateTtlProcessingTime(59_000);
        h.processElement(result("a", 2, true), 0);   // within the TTL: a duplicate
        h.setStateTtlProcessingTime(61_000);
        h.processElement(result("a", 3, true), 0);   // past it: a new request under a reused id
        assertEquals(List.of("a:1", "a:3"), written(h));
    }

    @Test
    void claimedIdsSurviveARestore() throws Exception {
        var h = harness(3600);
        h.processElement(result("a", 1, true), 0);
        OperatorSubtaskState snapshot = h.snapshot(1, 1);
        h.close();
        var restored = new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(new Dedup(3600)), new Graph.RequestIdKey(), Types.STRING);
        restored.setup();
        restored.initializeState(snapshot);
        restored.open();
        restored.processElement(result("a", 2, true), 0);
        restored.processElement(result("c", 3, true), 0);
        assertEquals(List.of("c:3"), written(restored));
    }
}
