package ai.aimass.flink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The two byte frames that cross the Java/Python boundary (one crossing per batch each way).
 *
 * <p>All integers big-endian. Specified in java/README.md; {@code aimass/frames.py} is the Python
 * side, and both are checked against the vectors in {@code tests/vectors/frames.json}.
 *
 * <pre>
 * batch   := VERSION:u8 count:i32 record{count}                 (Java to Python)
 * record  := partition:i32 offset:i64 received_ms:i64 topic:bytes value:bytes
 * outputs := VERSION:u8 count:i32 output{count}                 (Python to Java)
 * output  := kind:u8 key:bytes value:bytes                      (kind: RESULT, ERROR_RESULT, DEAD_LETTER)
 * bytes   := length:i32 byte{length}
 * </pre>
 */
public final class Frames {
    /** Frame format version; a frame of another version is refused. */
    public static final byte VERSION = 1;
    /** A result that claims its request id (the request was accepted). */
    public static final byte RESULT = 0;
    /** An error result of a refused record: shown unless its id was already claimed. */
    public static final byte ERROR_RESULT = 1;
    /** A dead letter: always written. */
    public static final byte DEAD_LETTER = 2;

    private Frames() {}

    /** One record of a batch frame. */
    public static byte[] record(int partition, long offset, long receivedMs, byte[] topic, byte[] value) {
        ByteBuffer buf = ByteBuffer.allocate(4 + 8 + 8 + 4 + topic.length + 4 + value.length);
        buf.putInt(partition).putLong(offset).putLong(receivedMs);
        buf.putInt(topic.length).put(topic).putInt(value.length).put(value);
        return buf.array();
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

    /** One entry of an outputs frame. */
    public record Output(byte kind, String key, byte[] value) {}

    /** Entries of an outputs frame, in order. */
    public static List<Output> outputs(byte[] frame) {
        ByteBuffer buf = ByteBuffer.wrap(frame);
        byte version = buf.get();
        if (version != VERSION) {
            throw new IllegalArgumentException("outputs frame of version " + version + ", expected " + VERSION);
        }
        int count = buf.getInt();
        List<Output> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            byte kind = buf.get();
            if (kind < RESULT || kind > DEAD_LETTER) {
                throw new IllegalArgumentException("output of unknown kind " + kind);
            }
            String key = new String(bytes(buf), StandardCharsets.UTF_8);
            out.add(new Output(kind, key, bytes(buf)));
        }
        if (buf.hasRemaining()) {
            throw new IllegalArgumentException(buf.remaining() + " bytes after the last output");
        }
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
