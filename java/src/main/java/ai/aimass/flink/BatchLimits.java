package ai.aimass.flink;

import java.io.Serializable;
import java.util.HashMap;
import java.util.Map;

/**
 * When a lane's batch is flushed: per model (from its {@code model.json}, read when the job is
 * built) or the job's defaults, plus a byte bound so a frame stays a sane size.
 */
public final class BatchLimits implements Serializable {
    private static final long serialVersionUID = 1L;

    private final Map<String, Integer> records;
    private final Map<String, Integer> delays;
    private final int defaultRecords;
    private final int defaultDelayMs;
    private final long maxBytes;

    public BatchLimits(Map<String, Integer> records, Map<String, Integer> delays, int defaultRecords,
                       int defaultDelayMs, long maxBytes) {
        if (defaultRecords < 1 || defaultDelayMs < 0 || maxBytes < 1) {
            throw new IllegalArgumentException("batch limits must be positive");
        }
        this.records = new HashMap<>(records);
        this.delays = new HashMap<>(delays);
        this.defaultRecords = defaultRecords;
        this.defaultDelayMs = defaultDelayMs;
        this.maxBytes = maxBytes;
    }

    /** Records in a lane's batch at which it is flushed when the last one is for {@code model}. */
    public int records(String model) {
        return model == null ? defaultRecords : records.getOrDefault(model, defaultRecords);
    }

    /** Longest wait of a record for {@code model} in a lane's batch. */
    public int delayMs(String model) {
        return model == null ? defaultDelayMs : delays.getOrDefault(model, defaultDelayMs);
    }

    /** Bytes of records at which a batch is flushed whatever its count. */
    public long maxBytes() {
        return maxBytes;
    }
}
