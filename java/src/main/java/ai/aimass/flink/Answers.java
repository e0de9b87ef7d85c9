package ai.aimass.flink;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The two records the scheduler ({@link MicroBatch}) writes itself, without a trip through Python:
 * the error result of a request it answers (DEADLINE_EXCEEDED while it waited, OVERLOADED at
 * admission) and the dead letter of an expired one, in Avro single-object encoding byte for byte
 * as {@code aimass/contract/codec.py} writes them (checked against {@code tests/vectors/answers.tsv}).
 *
 * <p>Result body ({@code schemas/result.avsc}): request_id (union branch 1, string), model, version
 * (null), status (enum index), outputs (empty array), error (union branch 1, string), timings
 * (queued_ms double, batch_size int 0, inference_ms double 0, end_to_end_ms double),
 * completed_at_ms, route (null), graph (null). Dead letter ({@code schemas/dead_letter.avsc}): original, topic,
 * partition, offset, reason (enum index), message, request_id (union branch 1, string), at_ms.
 */
public final class Answers implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    /** Index of DEADLINE_EXCEEDED in both the result's Status and the dead letter's Reason enums. */
    public static final int DEADLINE_EXCEEDED_STATUS = 3;
    /** Index of OVERLOADED in the result's Status enum. */
    public static final int OVERLOADED_STATUS = 5;
    /** Index of DEADLINE_EXCEEDED in the dead letter's Reason enum. */
    public static final int DEADLINE_EXCEEDED_REASON = 5;
    /** {@code aimass.contract.messages.MAX_ERROR_CHARS}: longest error text (clipped with "..."). */
    public static final int MAX_ERROR_CHARS = 1024;

    private final byte[] resultHeader;
    private final byte[] deadLetterHeader;

    /** @param resultHeader C3 01 and the result schema's fingerprint; deadLetterHeader likewise */
    public Answers(byte[] resultHeader, byte[] deadLetterHeader) {
        this.resultHeader = resultHeader.clone();
        this.deadLetterHeader = deadLetterHeader.clone();
    }

    /** An error result: {@code error} is "REASON: message" as Python writes it. */
    public byte[] result(String requestId, String model, int status, String error, double queuedMs,
                         double endToEndMs, long completedAtMs) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(96 + requestId.length() + error.length());
        out.writeBytes(resultHeader);
        out.write(2);
        string(out, requestId);
        string(out, model);
        out.write(0);  // version: null
        varint(out, status);
        out.write(0);  // outputs: none
        out.write(2);
        string(out, clip(error));
        doubleLe(out, queuedMs);
        out.write(0);  // batch_size
        doubleLe(out, 0.0);
        doubleLe(out, endToEndMs);
        varint(out, completedAtMs);
        out.write(0);  // route: null
        out.write(0);  // graph: null
        return out.toByteArray();
    }

    /** A dead letter of {@code original}, read from {@code topic}/{@code partition} at {@code offset}. */
    public byte[] deadLetter(byte[] original, String topic, int partition, long offset, int reason, String message,
                             String requestId, long atMs) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(64 + original.length + message.length());
        out.writeBytes(deadLetterHeader);
        varint(out, original.length);
        out.writeBytes(original);
        string(out, topic);
        varint(out, partition);
        varint(out, offset);
        varint(out, reason);
        string(out, clip(message));
        out.write(2);
        string(out, requestId);
        varint(out, atMs);
        return out.toByteArray();
    }

    /** {@code aimass.contract.messages.clip}: at most {@link #MAX_ERROR_CHARS} code points, "..." when cut. */
    static String clip(String text) {
        if (text.codePointCount(0, text.length()) <= MAX_ERROR_CHARS) {
            return text;
        }
        return text.substring(0, text.offsetByCodePoints(0, MAX_ERROR_CHARS - 3)) + "...";
    }

    private static void string(ByteArrayOutputStream out, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        varint(out, b.length);
        out.writeBytes(b);
    }

    private static void varint(ByteArrayOutputStream out, long value) {
        long raw = (value << 1) ^ (value >> 63);
        while ((raw & ~0x7FL) != 0) {
            out.write((int) ((raw & 0x7F) | 0x80));
            raw >>>= 7;
        }
        out.write((int) raw);
    }

    private static void doubleLe(ByteArrayOutputStream out, double value) {
        long bits = Double.doubleToLongBits(value);
        for (int i = 0; i < 8; i++) {
            out.write((int) (bits >>> (8 * i)) & 0xFF);
        }
    }
}
