package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FramesTest {
    @Test
    void batchFramesAreByteForByteThePythonVectors() throws Exception {
        List<byte[]> records = new ArrayList<>();
        Map<String, String> frames = new HashMap<>();
        for (String[] row : Vectors.rows("frames.tsv")) {
            if (row[0].startsWith("record")) {
                records.add(row.length < 12
                        ? Frames.record(Integer.parseInt(row[1]), Long.parseLong(row[2]), Long.parseLong(row[3]),
                                row[4].getBytes(StandardCharsets.UTF_8), Vectors.hex(row[5]))
                        : Frames.record(Integer.parseInt(row[1]), Long.parseLong(row[2]), Long.parseLong(row[3]),
                                row[4].getBytes(StandardCharsets.UTF_8), Vectors.hex(row[5]), rule(row[6]),
                                Integer.parseInt(row[7]), row[8], row[9], row[10], row[11]));
            } else {
                frames.put(row[0], row[1]);
            }
        }
        assertTrue(records.size() >= 3, "records in frames.tsv");
        assertArrayEquals(Vectors.hex(frames.get("batch")), Frames.batch(records));
        List<Frames.Record> back = Frames.records(Vectors.hex(frames.get("batch")));
        assertEquals(records.size(), back.size());
        for (int i = 0; i < back.size(); i++) {
            Frames.Record r = back.get(i);
            assertArrayEquals(records.get(i), Frames.record(r.partition(), r.offset(), r.receivedMs(),
                    r.topic().getBytes(StandardCharsets.UTF_8), r.value(), r.rule(), r.bucket(), r.version(),
                    r.alias(), r.shadow(), r.detail()));
        }
    }

    /** A rule column: its code or its name. */
    private static Rule rule(String text) {
        return text.matches("\\d+") ? Rule.of(Integer.parseInt(text)) : Rule.valueOf(text);
    }

    @Test
    void batchRecordsOfVersion2CarryTheRouteAndReadBack() {
        byte[] request = Frames.record(3, 1L << 40, 17, "t".getBytes(StandardCharsets.UTF_8), new byte[] {1, 2, 3},
                Rule.SPLIT, 9999, "2", "", "3", "");
        byte[] unknown = Frames.record(0, 5, 18, new byte[0], new byte[0], Rule.UNKNOWN, -1, "", "", "",
                "model 'ü' is not deployed; deployed models: none");
        byte[] control = Frames.control("{\"kind\":\"route\"}".getBytes(StandardCharsets.UTF_8), 19);
        byte[] none = Frames.record(1, 2, 20, new byte[] {'x'}, new byte[] {9});
        byte[] frame = Frames.batch(List.of(request, unknown, control, none));
        assertEquals(2, frame[0]);
        assertEquals(Frames.VERSION, frame[0]);
        List<Frames.Record> back = Frames.records(frame);
        assertEquals(4, back.size());
        Frames.Record r = back.get(0);
        assertEquals(List.of(3, 1L << 40, 17L, "t", Rule.SPLIT, 9999, "2", "", "3", ""),
                List.of(r.partition(), r.offset(), r.receivedMs(), r.topic(), r.rule(), r.bucket(), r.version(),
                        r.alias(), r.shadow(), r.detail()));
        assertArrayEquals(new byte[] {1, 2, 3}, r.value());
        assertEquals("model 'ü' is not deployed; deployed models: none", back.get(1).detail());
        Frames.Record c = back.get(2);
        assertEquals(List.of(0, -1L, 19L, "", Rule.CONTROL, -1, "", "", "", ""),
                List.of(c.partition(), c.offset(), c.receivedMs(), c.topic(), c.rule(), c.bucket(), c.version(),
                        c.alias(), c.shadow(), c.detail()));
        assertEquals("{\"kind\":\"route\"}", new String(c.value(), StandardCharsets.UTF_8));
        assertEquals(Rule.NONE, back.get(3).rule());
        assertEquals(-1, back.get(3).bucket());
        // Byte for byte: the fixed part, the lengths, the strings (as aimass/contract/frames.py writes them).
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(request);
        assertEquals(3, buf.getInt());
        buf.position(4 + 8 + 8 + 4 + 1 + 4 + 3);
        assertEquals(Rule.SPLIT.code(), buf.get());
        assertEquals(9999, buf.getInt());
        assertEquals(1, buf.getInt());
        assertEquals('2', buf.get());
        assertEquals(0, buf.getInt());
        assertEquals(1, buf.getInt());
        assertEquals('3', buf.get());
        assertEquals(0, buf.getInt());
        assertEquals(0, buf.remaining());
        for (Rule rule : Rule.values()) {
            assertEquals(rule, Rule.of(rule.code()));
        }
        assertThrows(IllegalArgumentException.class, () -> Rule.of(7));
        byte[] badRule = frame.clone();
        badRule[5 + 4 + 8 + 8 + 4 + 1 + 4 + 3] = 7;
        assertThrows(IllegalArgumentException.class, () -> Frames.records(badRule));
        assertThrows(RuntimeException.class, () -> Frames.records(java.util.Arrays.copyOf(frame, frame.length - 1)));
    }

    @Test
    void shadowResultsAreAnOutputKind() {
        byte[] frame = Frames.outputsFrame(List.of(new Frames.Output(Frames.SHADOW, "req-1", new byte[] {5}),
                new Frames.Output(Frames.RESULT, "req-1", new byte[] {6})));
        List<Frames.Output> back = Frames.outputs(frame);
        assertEquals(Frames.SHADOW, back.get(0).kind());
        assertEquals(3, Frames.SHADOW);
        assertEquals("req-1", back.get(0).key());
    }

    @Test
    void outputsFramesFromPythonAreReadInOrder() throws Exception {
        byte[] frame = null;
        for (String[] row : Vectors.rows("frames.tsv")) {
            if (row[0].equals("outputs")) {
                frame = Vectors.hex(row[1]);
            }
        }
        List<Frames.Output> outputs = Frames.outputs(frame);
        assertEquals(4, outputs.size());
        assertEquals(Frames.RESULT, outputs.get(0).kind());
        assertEquals("req-1", outputs.get(0).key());
        assertArrayEquals(new byte[] {1, 2}, outputs.get(0).value());
        assertEquals(Frames.ERROR_RESULT, outputs.get(1).kind());
        assertEquals("ü-ß", outputs.get(1).key());
        assertEquals(Frames.DEAD_LETTER, outputs.get(2).kind());
        assertEquals("", outputs.get(2).key());
        assertEquals(300, outputs.get(2).value().length);
        assertEquals(Frames.SHADOW, outputs.get(3).kind());
        assertEquals("req-1", outputs.get(3).key());
        assertArrayEquals(new byte[] {3}, outputs.get(3).value());
        assertArrayEquals(frame, Frames.outputsFrame(outputs));
    }

    @Test
    void damagedOutputsFramesAreRefused() {
        byte[] good = Frames.outputsFrame(List.of(new Frames.Output(Frames.RESULT, "a", new byte[] {9})));
        byte[] otherVersion = good.clone();
        otherVersion[0] = 1;
        byte[] unknownKind = good.clone();
        unknownKind[5] = 7;
        byte[] trailing = java.util.Arrays.copyOf(good, good.length + 1);
        for (byte[] bad : new byte[][] {otherVersion, unknownKind, trailing,
                java.util.Arrays.copyOf(good, good.length - 1)}) {
            assertThrows(RuntimeException.class, () -> Frames.outputs(bad));
        }
    }
}
