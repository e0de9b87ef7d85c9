package ai.aimass.flink;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads the request id, model and requested version from the front of a request record, without
 * decoding it.
 *
 * <p>For routing only: which lane a record joins, which version serves it and whose batch limits
 * apply. Python decodes and validates every record in full ({@code aimass/contract/codec.py}); this mirrors
 * only {@code Codec.peek_route}'s framing: the request schema's single-object header, then the
 * first two Avro strings (id of 1 to {@link #MAX_ID_BYTES} bytes, model of 1 to 64 matching
 * {@code NAME_PATTERN}), then the {@code version} union {@code ["null", "string"]} (a zigzag varint
 * branch, 0 null or 1 string, and for a string 1 to {@link #MAX_VERSION_BYTES} bytes of valid
 * UTF-8). Never throws.
 */
public final class RequestPeek implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    /** {@code aimass.contract.codec.MAX_REQUEST_ID_BYTES}. */
    public static final int MAX_ID_BYTES = 1024;
    /** Longest model name ({@code aimass.contract.codec.NAME_PATTERN}). */
    public static final int MAX_MODEL_BYTES = 64;
    /** Longest requested version a route can name (a version or alias name). */
    public static final int MAX_VERSION_BYTES = 64;

    private final byte[] header;

    /** @param header the 10 bytes every request starts with: C3 01 and its schema's fingerprint */
    public RequestPeek(byte[] header) {
        this.header = header.clone();
    }

    /** Where a string lies in a record. */
    public record Span(int start, int length) {
        /** The position just after the string. */
        public int end() {
            return start + length;
        }
    }

    /**
     * What the peek read of a record.
     *
     * @param id the request id's bytes; null when the record has no readable id
     * @param model the model name; null when the id or the model is unreadable (or not a name)
     * @param versionReadable the {@code version} field was read (null or a string)
     * @param version the requested version; null when the field is null or unreadable
     */
    public record Peeked(Span id, String model, boolean versionReadable, String version) {
        /** Id, model and requested version all read: the record can be routed by a route. */
        public boolean routable() {
            return id != null && model != null && versionReadable;
        }
    }

    /** The id, model and requested version of a record, as far as they can be read. */
    public Peeked peek(byte[] data) {
        Span id = id(data);
        if (id == null) {
            return new Peeked(null, null, false, null);
        }
        Span model = string(data, id.end(), MAX_MODEL_BYTES);
        if (model == null || !isName(data, model)) {
            return new Peeked(id, null, false, null);
        }
        String name = new String(data, model.start(), model.length(), StandardCharsets.US_ASCII);
        int[] at = {model.end()};
        long branch = zigzag(data, at);
        if (branch == 0) {
            return new Peeked(id, name, true, null);
        }
        if (branch != 1) {
            return new Peeked(id, name, false, null);
        }
        String version = utf8(data, string(data, at[0], MAX_VERSION_BYTES));
        return new Peeked(id, name, version != null, version);
    }

    /**
     * What scheduling reads of a request: its {@code deadline_ms} ({@link Long#MAX_VALUE} when null),
     * {@code priority} and {@code created_at_ms}, past the id, model, version and every input tensor.
     *
     * @param readable all three were read; when false the others are the defaults (no deadline,
     *     priority 0, created 0) and Python judges the record
     */
    public record Scheduling(boolean readable, long deadlineMs, int priority, long createdAtMs) {
        /** No deadline, priority 0: a record whose tail cannot be read. */
        public static final Scheduling NONE = new Scheduling(false, Long.MAX_VALUE, 0, 0L);
    }

    /**
     * The deadline, priority and creation time of a request record, walking (not decoding) its
     * inputs: each tensor's name, dtype, shape blocks and data are skipped by their lengths.
     * {@link Scheduling#NONE} for anything unreadable. Never throws.
     */
    public Scheduling schedule(byte[] data) {
        try {
            Span id = id(data);
            if (id == null) {
                return Scheduling.NONE;
            }
            int[] at = {id.end()};
            if (!skipString(data, at)) {  // model
                return Scheduling.NONE;
            }
            long branch = zigzag(data, at);
            if (branch == 1) {
                if (!skipString(data, at)) {
                    return Scheduling.NONE;
                }
            } else if (branch != 0) {
                return Scheduling.NONE;
            }
            while (true) {  // inputs: blocks of tensors
                long count = zigzag(data, at);
                if (count == Long.MIN_VALUE) {
                    return Scheduling.NONE;
                }
                if (count == 0) {
                    break;
                }
                if (count < 0) {
                    count = -count;
                    if (zigzag(data, at) == Long.MIN_VALUE) {  // the block's byte size
                        return Scheduling.NONE;
                    }
                }
                for (long i = 0; i < count; i++) {
                    if (!skipString(data, at) || !skipString(data, at) || !skipLongs(data, at)
                            || !skipString(data, at)) {  // name, dtype, shape, data
                        return Scheduling.NONE;
                    }
                }
            }
            long deadlineBranch = zigzag(data, at);
            long deadline = Long.MAX_VALUE;
            if (deadlineBranch == 1) {
                deadline = zigzag(data, at);
                if (deadline == Long.MIN_VALUE) {
                    return Scheduling.NONE;
                }
            } else if (deadlineBranch != 0) {
                return Scheduling.NONE;
            }
            long priority = zigzag(data, at);
            if (priority < Integer.MIN_VALUE || priority > Integer.MAX_VALUE) {
                return Scheduling.NONE;
            }
            long created = zigzag(data, at);
            if (created == Long.MIN_VALUE) {
                return Scheduling.NONE;
            }
            return new Scheduling(true, deadline, (int) priority, created);
        } catch (RuntimeException e) {
            return Scheduling.NONE;
        }
    }

    /** Moves past an Avro string or bytes value (any length that fits); false when it does not. */
    private static boolean skipString(byte[] data, int[] at) {
        long length = zigzag(data, at);
        if (length < 0 || length > data.length - at[0]) {
            return false;
        }
        at[0] += (int) length;
        return true;
    }

    /** Moves past an Avro array of longs; false when it runs past the data. */
    private static boolean skipLongs(byte[] data, int[] at) {
        while (true) {
            long count = zigzag(data, at);
            if (count == Long.MIN_VALUE) {
                return false;
            }
            if (count == 0) {
                return true;
            }
            if (count < 0) {
                count = -count;
                if (zigzag(data, at) == Long.MIN_VALUE) {
                    return false;
                }
            }
            if (count > data.length - at[0]) {
                return false;
            }
            for (long i = 0; i < count; i++) {
                if (zigzag(data, at) == Long.MIN_VALUE) {
                    return false;
                }
            }
        }
    }

    /**
     * Whether the bytes at {@code span} are a model name as {@code aimass.contract.codec.NAME_PATTERN} has it
     * ({@code [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}}): a record naming anything else is not routed (Python
     * refuses it), so a route's name is never made of an arbitrary string.
     */
    static boolean isName(byte[] data, Span span) {
        for (int i = 0; i < span.length(); i++) {
            int c = data[span.start() + i];
            boolean ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                    || (i > 0 && (c == '.' || c == '-'));
            if (!ok) {
                return false;
            }
        }
        return true;
    }

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
        int[] at = {pos};
        long length = zigzag(data, at);
        if (length == Long.MIN_VALUE || length < 1 || length > max || at[0] + length > data.length) {
            return null;
        }
        return new Span(at[0], (int) length);
    }

    /**
     * The Avro (zigzag varint) long at {@code at[0]}, moving {@code at[0]} past it; Long.MIN_VALUE
     * when the varint runs past the data or over 10 bytes (no value here is anywhere near it).
     */
    static long zigzag(byte[] data, int[] at) {
        int pos = at[0];
        long raw = 0;
        int shift = 0;
        while (true) {
            if (pos >= data.length || shift > 63) {
                return Long.MIN_VALUE;
            }
            int b = data[pos++] & 0xFF;
            raw |= (long) (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                break;
            }
            shift += 7;
        }
        at[0] = pos;
        return (raw >>> 1) ^ -(raw & 1);
    }

    /** The request id at {@code span} when it is valid UTF-8 (as Python decodes it), else null. */
    static String idString(byte[] data, Span span) {
        return utf8(data, span);
    }

    /** The string at {@code span} when it is valid UTF-8 (as Python decodes it), else null. */
    private static String utf8(byte[] data, Span span) {
        if (span == null) {
            return null;
        }
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, span.start(), span.length()))
                    .toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
