package ai.aimass.flink;

/**
 * Why a record of a batch frame goes where it goes: the {@code rule:u8} of a batch record
 * ({@link Frames}; {@code aimass/contract/frames.py} has the same codes). {@link #code()} is the ordinal.
 */
public enum Rule {
    /** No readable id, model or requested version: Python decodes and answers it. */
    NONE,
    /** No version requested: the route's default (its {@code stable} alias, else its newest serving version). */
    DEFAULT,
    /** The requested version is deployed. */
    PINNED,
    /** The requested version names an alias. */
    ALIAS,
    /** No version requested and a split is set: the version of the id's split bucket. */
    SPLIT,
    /** Nothing serves it: the record's detail says why (Python answers UNKNOWN_MODEL). */
    UNKNOWN,
    /** Not a request: a route update (the record's value), for every lane's Python step. */
    CONTROL;

    private static final Rule[] BY_CODE = values();

    /** The rule's byte in a batch record. */
    public byte code() {
        return (byte) ordinal();
    }

    /** The rule of a batch record's byte. */
    public static Rule of(int code) {
        if (code < 0 || code >= BY_CODE.length) {
            throw new IllegalArgumentException("route rule of unknown code " + code);
        }
        return BY_CODE[code];
    }
}
