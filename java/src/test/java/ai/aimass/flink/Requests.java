package ai.aimass.flink;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** Request records for the tests: the header and body front of the Python vectors' "good" request. */
final class Requests {
    private Requests() {}

    /** The request schema's single-object header (C3 01 + fingerprint), from peek.tsv. */
    static byte[] header() throws Exception {
        String hex = Vectors.rows("peek.tsv").stream().filter(r -> r[0].equals("good")).findFirst().orElseThrow()[1];
        return Arrays.copyOf(Vectors.hex(hex), 10);
    }

    static RequestPeek peek() throws Exception {
        return new RequestPeek(header());
    }

    /** A request's front: header, id, model, the version union (null or a string), then a tail. */
    static byte[] request(String id, String model, String version) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header());
        string(out, id);
        string(out, model);
        if (version == null) {
            out.write(0);
        } else {
            out.write(2);
            string(out, version);
        }
        out.write(new byte[] {0, 0, 2});  // no inputs, no deadline, priority 1: Python judges the rest
        return out.toByteArray();
    }

    /**
     * A whole request with no inputs and the given tail: {@code deadline} null for none. What
     * {@link RequestPeek#schedule} reads (Python would refuse it for its missing inputs).
     */
    static byte[] scheduled(String id, String model, Long deadline, int priority, long created) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header());
        string(out, id);
        string(out, model);
        out.write(0);  // version: null
        out.write(0);  // inputs: none
        if (deadline == null) {
            out.write(0);
        } else {
            out.write(2);
            varint(out, deadline);
        }
        varint(out, priority);
        varint(out, created);
        return out.toByteArray();
    }

    /** The header, then {@code body} as is. */
    static byte[] raw(byte[]... parts) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header());
        for (byte[] p : parts) {
            out.write(p);
        }
        return out.toByteArray();
    }

    static void string(ByteArrayOutputStream out, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        varint(out, b.length);
        out.write(b, 0, b.length);
    }

    /** An Avro long (zigzag varint). */
    static void varint(ByteArrayOutputStream out, long value) {
        long raw = (value << 1) ^ (value >> 63);
        while ((raw & ~0x7FL) != 0) {
            out.write((int) ((raw & 0x7F) | 0x80));
            raw >>>= 7;
        }
        out.write((int) raw);
    }

    /** An Avro string's bytes (length + UTF-8). */
    static byte[] avro(String s) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        string(out, s);
        return out.toByteArray();
    }
}
