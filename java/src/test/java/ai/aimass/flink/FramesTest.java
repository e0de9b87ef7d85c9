package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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
                records.add(Frames.record(Integer.parseInt(row[1]), Long.parseLong(row[2]), Long.parseLong(row[3]),
                        row[4].getBytes(StandardCharsets.UTF_8), Vectors.hex(row[5])));
            } else {
                frames.put(row[0], row[1]);
            }
        }
        assertEquals(3, records.size());
        assertArrayEquals(Vectors.hex(frames.get("batch")), Frames.batch(records));
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
        assertEquals(3, outputs.size());
        assertEquals(Frames.RESULT, outputs.get(0).kind());
        assertEquals("req-1", outputs.get(0).key());
        assertArrayEquals(new byte[] {1, 2}, outputs.get(0).value());
        assertEquals(Frames.ERROR_RESULT, outputs.get(1).kind());
        assertEquals("ü-ß", outputs.get(1).key());
        assertEquals(Frames.DEAD_LETTER, outputs.get(2).kind());
        assertEquals("", outputs.get(2).key());
        assertEquals(300, outputs.get(2).value().length);
        assertArrayEquals(frame, Frames.outputsFrame(outputs));
    }

    @Test
    void damagedOutputsFramesAreRefused() {
        byte[] good = Frames.outputsFrame(List.of(new Frames.Output(Frames.RESULT, "a", new byte[] {9})));
        byte[] otherVersion = good.clone();
        otherVersion[0] = 2;
        byte[] unknownKind = good.clone();
        unknownKind[5] = 7;
        byte[] trailing = java.util.Arrays.copyOf(good, good.length + 1);
        for (byte[] bad : new byte[][] {otherVersion, unknownKind, trailing,
                java.util.Arrays.copyOf(good, good.length - 1)}) {
            assertThrows(RuntimeException.class, () -> Frames.outputs(bad));
        }
    }
}
