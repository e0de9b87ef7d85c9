package ai.aimass.flink;

import java.util.zip.CRC32;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;

/**
 * Lanes: the keys requests are micro-batched under, spread evenly over Flink's key groups.
 *
 * <p>A request's lane is {@code crc32(request id bytes) % lanes}: every record of one id meets the
 * same lane, whatever its model, so the records of one id are served in arrival order. Lane
 * {@code k}'s key is the smallest non-negative {@code Integer} whose key group is the first group of
 * slice {@code k} ({@code k * maxParallelism / lanes}), so every parallelism dividing {@code lanes}
 * gets the same number of lanes per subtask, before and after a rescale. {@code aimass/contract/keys.py}
 * computes the same table (vectors in {@code tests/vectors/lanes.json}).
 */
public final class Lanes implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final int[] keys;

    public Lanes(int lanes, int maxParallelism) {
        if (lanes < 1 || lanes > maxParallelism) {
            throw new IllegalArgumentException(
                    "lanes=" + lanes + " must be between 1 and max_parallelism=" + maxParallelism);
        }
        keys = new int[lanes];
        for (int lane = 0; lane < lanes; lane++) {
            int first = (int) ((long) lane * maxParallelism / lanes);
            int key = 0;
            while (KeyGroupRangeAssignment.assignToKeyGroup(key, maxParallelism) != first) {
                key++;
            }
            keys[lane] = key;
        }
    }

    public int count() {
        return keys.length;
    }

    /** The key of lane {@code lane}. */
    public int key(int lane) {
        return keys[lane];
    }

    /** Lane of the request id in {@code data[offset, offset + length)} (its UTF-8 bytes). */
    public int laneOf(byte[] data, int offset, int length) {
        CRC32 crc = new CRC32();
        crc.update(data, offset, length);
        return (int) (crc.getValue() % keys.length);
    }

    /** Lane of a record with no readable id: spread by its position (its answer is a dead letter). */
    public int laneOfPosition(int partition, long offset) {
        return Math.floorMod(31 * Long.hashCode(offset) + partition, keys.length);
    }
}
