package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

class OutputsTest {
    @Test
    void eachKindGoesToItsOutput() throws Exception {
        var h = ProcessFunctionTestHarnesses.forProcessFunction(new Outputs());
        h.processElement(Frames.outputsFrame(List.of(
                new Frames.Output(Frames.RESULT, "a", new byte[] {1}),
                new Frames.Output(Frames.ERROR_RESULT, "b", new byte[] {2}),
                new Frames.Output(Frames.DEAD_LETTER, "", new byte[] {3}),
                new Frames.Output(Frames.SHADOW, "a", new byte[] {4}))), 0);
        List<String> results = new ArrayList<>();
        for (Object o : h.getOutput()) {
            var t = ((StreamRecord<org.apache.flink.api.java.tuple.Tuple3<String, byte[], Boolean>>) o).getValue();
            results.add(t.f0 + ":" + t.f1[0] + ":" + t.f2);
        }
        assertEquals(List.of("a:1:true", "b:2:false"), results);
        List<Row> dead = new ArrayList<>();
        h.getSideOutput(Outputs.DEAD_LETTERS).forEach(r -> dead.add(r.getValue()));
        assertEquals(1, dead.size());
        assertArrayEquals(new byte[] {3}, (byte[]) dead.get(0).getField(0));
        List<Row> shadows = new ArrayList<>();
        h.getSideOutput(Outputs.SHADOWS).forEach(r -> shadows.add(r.getValue()));
        assertEquals(1, shadows.size());
        assertEquals("a", shadows.get(0).getField(0));
        assertArrayEquals(new byte[] {4}, (byte[]) shadows.get(0).getField(1));
    }
}
