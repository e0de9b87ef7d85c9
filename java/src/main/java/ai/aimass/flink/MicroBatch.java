package ai.aimass.flink;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Micro-batching per lane in checkpointed keyed state: records wait in {@code pending} (their framed
 * bytes) until the lane holds as many as the newest record's model allows, or their bytes reach the
 * limit, or the earliest record's delay is up; then one batch frame goes to Python. A failure or a
 * rescale loses no pending record: they are in state with their timer, and a batch once emitted is
 * downstream of the checkpoint barrier that follows it.
 *
 * <p>One state call per record ({@code pending.add}). A lane's count, bytes and due time are kept
 * on the heap ({@link #open}): they follow from {@code pending}, so after a restore or a rescale
 * they are counted again from it, once, when the lane's first record or timer comes.
 */
public final class MicroBatch extends KeyedProcessFunction<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]> {
    private static final long serialVersionUID = 1L;
    private static final int COUNT = 0;
    private static final int BYTES = 1;
    private static final int DUE = 2;

    private final long maxBytes;
    private transient ListState<byte[]> pending;
    /** Lane key to {count, bytes, due ms} of its pending batch (due: Long.MAX_VALUE when none). */
    private transient Map<Integer, long[]> open;

    public MicroBatch(long maxBytes) {
        this.maxBytes = maxBytes;
    }

    @Override
    public void open(OpenContext context) {
        pending = getRuntimeContext().getListState(
                new ListStateDescriptor<>("pending", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO));
        open = new HashMap<>();
    }

    @Override
    public void processElement(Tuple4<Integer, Integer, Integer, byte[]> record, Context ctx, Collector<byte[]> out)
            throws Exception {
        long[] m = lane(ctx.getCurrentKey());
        pending.add(record.f3);
        m[COUNT] += 1;
        m[BYTES] += record.f3.length;
        if (m[COUNT] >= record.f1 || m[BYTES] >= maxBytes) {
            if (m[DUE] != Long.MAX_VALUE) {
                ctx.timerService().deleteProcessingTimeTimer(m[DUE]);
            }
            flush(m, out);
            return;
        }
        long due = ctx.timerService().currentProcessingTime() + record.f2;
        if (due < m[DUE]) {  // the batch's first record, or one whose model waits less than the others'
            ctx.timerService().registerProcessingTimeTimer(due);
            m[DUE] = due;
        }
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<byte[]> out) throws Exception {
        long[] m = open.get(ctx.getCurrentKey());
        if (m == null) {  // a timer restored from a checkpoint, before any record of its lane
            flush(lane(ctx.getCurrentKey()), out);
        } else if (timestamp >= m[DUE]) {  // earlier timers of batches already flushed: nothing
            flush(m, out);
        }
    }

    /** The lane's heap figures, counted from {@code pending} the first time (after a restore). */
    private long[] lane(Integer key) throws Exception {
        long[] m = open.get(key);
        if (m == null) {
            m = new long[] {0, 0, Long.MAX_VALUE};
            Iterable<byte[]> stored = pending.get();
            if (stored != null) {
                for (byte[] r : stored) {
                    m[COUNT] += 1;
                    m[BYTES] += r.length;
                }
            }
            open.put(key, m);
        }
        return m;
    }

    private void flush(long[] m, Collector<byte[]> out) throws Exception {
        List<byte[]> records = new ArrayList<>();
        Iterable<byte[]> stored = pending.get();
        if (stored != null) {
            stored.forEach(records::add);
        }
        pending.clear();
        m[COUNT] = 0;
        m[BYTES] = 0;
        m[DUE] = Long.MAX_VALUE;
        if (!records.isEmpty()) {
            out.collect(Frames.batch(records));
        }
    }
}
