package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
    void theRequestedVersionIsReadAfterTheModel() throws Exception {
        RequestPeek peek = peek();
        RequestPeek.Peeked good = peek.peek(Vectors.hex(row("good")[1]));
        assertEquals(new RequestPeek.Peeked(good.id(), "digits", true, null), good);
        assertTrue(good.routable());
        assertEquals("req-7", new String(Vectors.hex(row("good")[1]), good.id().start(), good.id().length(),
                StandardCharsets.UTF_8));

        RequestPeek.Peeked pinned = peek.peek(Requests.request("r", "digits", "2"));
        assertEquals("2", pinned.version());
        assertTrue(pinned.routable());
        String longest = "v".repeat(RequestPeek.MAX_VERSION_BYTES);
        assertEquals(longest, peek.peek(Requests.request("r", "m", longest)).version());
        assertEquals("ü", peek.peek(Requests.request("r", "m", "ü")).version());
        // A non-minimal varint for branch 0 is still branch 0 (as an Avro decoder reads it).
        assertTrue(peek.peek(Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {(byte) 0x80, 0}))
                .routable());

        Map<String, byte[]> unreadable = new LinkedHashMap<>();
        unreadable.put("too long", Requests.request("r", "m", longest + "v"));
        unreadable.put("empty", Requests.request("r", "m", ""));
        unreadable.put("branch 2", Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {4, 2, 'x'}));
        unreadable.put("branch -1", Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {1, 2, 'x'}));
        unreadable.put("ends after the model", Requests.raw(Requests.avro("r"), Requests.avro("m")));
        unreadable.put("ends in the branch", Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {(byte) 0x82}));
        unreadable.put("ends in the version", Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {2, 6, 'a'}));
        unreadable.put("not UTF-8", Requests.raw(Requests.avro("r"), Requests.avro("m"), new byte[] {2, 2, (byte) 0xff}));
        for (Map.Entry<String, byte[]> e : unreadable.entrySet()) {
            RequestPeek.Peeked p = peek.peek(e.getValue());
            assertNotNull(p.id(), e.getKey());
            assertEquals("m", p.model(), e.getKey());
            assertFalse(p.versionReadable(), e.getKey());
            assertNull(p.version(), e.getKey());
            assertFalse(p.routable(), e.getKey());
        }
        // The peek reads id and model exactly as Codec.peek_route does.
        for (String[] row : Vectors.rows("peek.tsv")) {
            RequestPeek.Peeked p = peek.peek(Vectors.hex(row[1]));
            if (row[2].equals("-")) {
                assertNull(p.id(), row[0]);
                assertFalse(p.routable(), row[0]);
            }
            assertEquals(row[3].equals("-") ? null : row[3], p.model(), row[0]);
        }
        for (String name : List.of(".m", "-m", "m/1", "m 1", "ü")) {
            RequestPeek.Peeked p = peek.peek(Requests.request("r", name, null));
            assertNull(p.model(), name);
            assertFalse(p.routable(), name);
        }
        assertEquals("a.b-c_9", peek.peek(Requests.request("r", "a.b-c_9", null)).model());
        assertFalse(peek.peek(Vectors.hex(row("truncated-after-id")[1])).routable());
        assertNull(peek.peek(Vectors.hex(row("truncated-after-id")[1])).model());
        assertFalse(peek.peek(null).routable());
    }
}
