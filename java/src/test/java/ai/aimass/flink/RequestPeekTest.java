package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.java.tuple.Tuple4;
import org.junit.jupiter.api.Test;

class RequestPeekTest {
    private static RequestPeek peek() throws Exception {
        byte[] good = Vectors.hex(row("good")[1]);
        return new RequestPeek(Arrays.copyOf(good, 10));
    }

    private static String[] row(String name) throws Exception {
        return Vectors.rows("peek.tsv").stream().filter(r -> r[0].equals(name)).findFirst().orElseThrow();
    }

    @Test
    void idsAndModelsAreReadAsPythonReadsThem() throws Exception {
        RequestPeek peek = peek();
        List<String[]> rows = Vectors.rows("peek.tsv");
        assertEquals(9, rows.size());
        for (String[] row : rows) {
            byte[] value = Vectors.hex(row[1]);
            RequestPeek.Span id = peek.id(value);
            if (row[2].equals("-")) {
                assertNull(id, row[0]);
                continue;
            }
            assertNotNull(id, row[0]);
            assertEquals(row[2], new String(value, id.start(), id.length(), StandardCharsets.UTF_8), row[0]);
            String model = peek.model(value, id);
            if (row[3].equals("-")) {
                assertTrue(model == null || !model.matches("[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"), row[0]);
            } else {
                assertEquals(row[3], model, row[0]);
            }
        }
    }

    @Test
    void routeFramesEveryRecordAndAppliesItsModelsLimits() throws Exception {
        Lanes lanes = new Lanes(4, 128);
        BatchLimits limits = new BatchLimits(Map.of("digits", 32), Map.of("digits", 20), 8, 50, 1 << 20);
        Route route = new Route(peek(), lanes, limits);
        byte[] good = Vectors.hex(row("good")[1]);
        Tuple4<Integer, Integer, Integer, byte[]> routed = route.route(good, "t", 2, 9, 77);
        byte[] id = "req-7".getBytes(StandardCharsets.UTF_8);
        assertEquals(lanes.key(lanes.laneOf(id, 0, id.length)), routed.f0);
        assertEquals(32, routed.f1);
        assertEquals(20, routed.f2);
        assertArrayEquals(Frames.record(2, 9, 77, new byte[] {'t'}, good), routed.f3);
        // No id: spread by position, the job's default limits; still framed for Python to answer.
        Tuple4<Integer, Integer, Integer, byte[]> garbage = route.route(new byte[] {1, 2, 3}, "t", 2, 10, 77);
        assertEquals(lanes.key(lanes.laneOfPosition(2, 10)), garbage.f0);
        assertEquals(8, garbage.f1);
        assertEquals(50, garbage.f2);
    }

    private static void assertArrayEquals(byte[] want, byte[] got) {
        org.junit.jupiter.api.Assertions.assertArrayEquals(want, got);
    }
}
