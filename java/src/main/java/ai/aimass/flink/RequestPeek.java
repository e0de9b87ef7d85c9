package ai.aimass.flink;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads the request id and model from the front of a request record, without decoding it.
 *
 * <p>For routing only: which lane a record joins, and whose batch limits apply. Python decodes and
 * validates every record in full ({@code aimass/codec.py}); this mirrors only
 * {@code Codec.peek_route}'s framing: the request schema's single-object header, then the first two
 * Avro strings (id of 1 to {@link #MAX_ID_BYTES} bytes, model of 1 to 64). Never throws.
 */
public final class RequestPeek implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    /** {@code aimass.codec.MAX_REQUEST_ID_BYTES}. */
    public static final int MAX_ID_BYTES = 1024;
    /** Longest model name ({@code aimass.codec.NAME_PATTERN}). */
    public static final int MAX_MODEL_BYTES = 64;

    private final byte[] header;

    /** @param header the 10 bytes every request starts with: C3 01 and its schema's fingerprint */
    public RequestPeek(byte[] header) {
        this.header = header.clone();
    }

    /** Where a string lies in a record. */
    public record Span(int start, int length) {}

    /** The request id's bytes, or null when the record has no readable id. */
    public Span id(byte[] data) {
        if (data == null || data.length < header.length
                || !Arrays.equals(data, 0, header.length, header, 0, header.length)) {
            return null;
        }
        return string(data, header.length, MAX_ID_BYTES);
    }

    /** The model name after the id {@code id}, or null when unreadable. */
    public String model(byte[] data, Span id) {
        Span model = string(data, id.start() + id.length(), MAX_MODEL_BYTES);
        return model == null ? null : new String(data, model.start(), model.length(), StandardCharsets.UTF_8);
    }

    /** A non-empty Avro string of at most {@code max} bytes at {@code pos}, or null. */
    static Span string(byte[] data, int pos, int max) {
        long raw = 0;
        int shift = 0;
        while (true) {
            if (pos >= data.length || shift > 63) {
                return null;
            }
            int b = data[pos++] & 0xFF;
            raw |= (long) (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                break;
            }
            shift += 7;
        }
        long length = (raw >>> 1) ^ -(raw & 1);
        if (length < 1 || length > max || pos + length > data.length) {
            return null;
        }
        return new Span(pos, (int) length);
    }
}
