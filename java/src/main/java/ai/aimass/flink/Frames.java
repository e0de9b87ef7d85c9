package ai.aimass.flink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The two byte frames that cross the Java/Python boundary (one crossing per batch each way).
 *
 * <p>All integers big-endian. Specified in java/README.md; {@code aimass/contract/frames.py} is the Python
 * side, and both are checked against the vectors in {@code tests/vectors/frames.tsv}.
 *
 * <pre>
 * batch   := VERSION:u8 count:i32 record{count}                 (Java to Python)
 * record  := partition:i32 offset:i64 received_ms:i64 topic:bytes value:bytes
 *            rule:u8 bucket:i32 version:bytes alias:bytes shadow:bytes detail:bytes
 * outputs := VERSION:u8 count:i32 output{count}                 (Python to Java)
 * output  := kind:u8 key:bytes value:bytes                      (kind: RESULT, ERROR_RESULT, DEAD_LETTER, SHADOW)
 * bytes   := length:i32 byte{length}
 * </pre>
 *
 * A record's {@code rule} is a {@link Rule} code; {@code version}, {@code alias}, {@code shadow}
 * and {@code detail} are UTF-8 (empty when they do not apply), {@code bucket} is the split bucket
 * (-1 unless the rule is SPLIT). A CONTROL record carries a route update as its value.
 */
public final class Frames {
    /** Frame format version of both frames; a frame of another version is refused. */
    public static final byte VERSION = 2;
    /** A result that claims its request id (the request was accepted). */
    public static final byte RESULT = 0;
    /** An error result of a refused record: shown unless its id was already claimed. */
    public static final byte ERROR_RESULT = 1;
    /** A dead letter: always written. */
    public static final byte DEAD_LETTER = 2;
    /** A shadow result, keyed by its request id: to the shadow-results topic. */
    public static final byte SHADOW = 3;

    private static final byte[] EMPTY = new byte[0];

    private Frames() {}

    /** One record of a batch frame. */
    public static byte[] record(int partition, long offset, long receivedMs, byte[] topic, byte[] value, Rule rule,
                                int bucket, String version, String alias, String shadow, String detail) {
        byte[] v = utf8(version);
        byte[] a = utf8(alias);
        byte[] s = utf8(shadow);
        byte[] d = utf8(detail);
        ByteBuffer buf = ByteBuffer.allocate(4 + 8 + 8 + 4 + topic.length + 4 + value.length + 1 + 4
                + 4 + v.length + 4 + a.length + 4 + s.length + 4 + d.length);
        buf.putInt(partition).putLong(offset).putLong(receivedMs);
        buf.putInt(topic.length).put(topic).putInt(value.length).put(value);
        buf.put(rule.code()).putInt(bucket);
        buf.putInt(v.length).put(v).putInt(a.length).put(a).putInt(s.length).put(s).putInt(d.length).put(d);
        return buf.array();
    }

    /** A record that goes unrouted (rule NONE): Python decodes and answers it. */
    public static byte[] record(int partition, long offset, long receivedMs, byte[] topic, byte[] value) {
        return record(partition, offset, receivedMs, topic, value, Rule.NONE, -1, "", "", "", "");
    }

    /** The CONTROL record of a route update (its UTF-8 JSON). */
    public static byte[] control(byte[] update, long receivedMs) {
        return record(0, -1, receivedMs, EMPTY, update, Rule.CONTROL, -1, "", "", "", "");
    }

    /** A batch frame of records made by {@link #record}. */
    public static byte[] batch(Iterable<byte[]> records) {
        int size = 5;
        int count = 0;
        for (byte[] r : records) {
            size += r.length;
            count++;
        }
        ByteBuffer buf = ByteBuffer.allocate(size);
        buf.put(VERSION).putInt(count);
        for (byte[] r : records) {
            buf.put(r);
        }
        return buf.array();
    }

    /** One record of a batch frame, read back. */
    public record Record(int partition, long offset, long receivedMs, String topic, byte[] value, Rule rule,
                         int bucket, String version, String alias, String shadow, String detail) {}

    /** The front of one record made by {@link #record}: what the scheduler needs, the value uncopied. */
    public record Head(int partition, long offset, long receivedMs, String topic, int valueStart, int valueLength,
                       Rule rule) {}

    /** The front of a record made by {@link #record}, or null when it is not one. Never throws. */
    public static Head head(byte[] record) {
        try {
            ByteBuffer buf = ByteBuffer.wrap(record);
            int partition = buf.getInt();
            long offset = buf.getLong();
            long receivedMs = buf.getLong();
            String topic = new String(bytes(buf), StandardCharsets.UTF_8);
            int length = buf.getInt();
            if (length < 0 || length > buf.remaining()) {
                return null;
            }
            int start = buf.position();
            buf.position(start + length);
            return new Head(partition, offset, receivedMs, topic, start, length, Rule.of(buf.get()));
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The records of a batch frame (Python reads these; here for tests and symmetry). */
    public static List<Record> records(byte[] frame) {
        ByteBuffer buf = ByteBuffer.wrap(frame);
        int count = head(buf, "batch");
        List<Record> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int partition = buf.getInt();
            long offset = buf.getLong();
            long receivedMs = buf.getLong();
            String topic = new String(bytes(buf), StandardCharsets.UTF_8);
            byte[] value = bytes(buf);
            Rule rule = Rule.of(buf.get());
            int bucket = buf.getInt();
            out.add(new Record(partition, offset, receivedMs, topic, value, rule, bucket, string(buf), string(buf),
                    string(buf), string(buf)));
        }
        end(buf, "record");
        return out;
    }

    /** One entry of an outputs frame. */
    public record Output(byte kind, String key, byte[] value) {}

    /** Entries of an outputs frame, in order. */
    public static List<Output> outputs(byte[] frame) {
        ByteBuffer buf = ByteBuffer.wrap(frame);
        int count = head(buf, "outputs");
        List<Output> out = new ArrayList<>(Math.min(count, frame.length));
        for (int i = 0; i < count; i++) {
            byte kind = buf.get();
            if (kind < RESULT || kind > SHADOW) {
                throw new IllegalArgumentException("output of unknown kind " + kind);
            }
            String key = new String(bytes(buf), StandardCharsets.UTF_8);
            out.add(new Output(kind, key, bytes(buf)));
        }
        end(buf, "output");
        return out;
    }

    /** An outputs frame (Python writes these; here for tests and symmetry). */
    public static byte[] outputsFrame(List<Output> outputs) {
        int size = 5;
        List<byte[]> keys = new ArrayList<>(outputs.size());
        for (Output o : outputs) {
            byte[] key = o.key().getBytes(StandardCharsets.UTF_8);
            keys.add(key);
            size += 1 + 4 + key.length + 4 + o.value().length;
        }
        ByteBuffer buf = ByteBuffer.allocate(size);
        buf.put(VERSION).putInt(outputs.size());
        for (int i = 0; i < outputs.size(); i++) {
            Output o = outputs.get(i);
            buf.put(o.kind()).putInt(keys.get(i).length).put(keys.get(i)).putInt(o.value().length).put(o.value());
        }
        return buf.array();
    }

    private static int head(ByteBuffer buf, String what) {
        byte version = buf.get();
        if (version != VERSION) {
            throw new IllegalArgumentException(what + " frame of version " + version + ", expected " + VERSION);
        }
        int count = buf.getInt();
        if (count < 0) {
            throw new IllegalArgumentException(what + " frame of " + count + " entries");
        }
        return count;
    }

    private static void end(ByteBuffer buf, String what) {
        if (buf.hasRemaining()) {
            throw new IllegalArgumentException(buf.remaining() + " bytes after the last " + what);
        }
    }

    private static byte[] utf8(String s) {
        return s == null || s.isEmpty() ? EMPTY : s.getBytes(StandardCharsets.UTF_8);
    }

    private static String string(ByteBuffer buf) {
        return new String(bytes(buf), StandardCharsets.UTF_8);
    }

    private static byte[] bytes(ByteBuffer buf) {
        int length = buf.getInt();
        if (length < 0 || length > buf.remaining()) {
            throw new IllegalArgumentException("length " + length + " past the frame's end");
        }
        byte[] b = new byte[length];
        buf.get(b);
        return b;
    }
}
