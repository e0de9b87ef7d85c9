package ai.aimass.flink;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Micro-batching per lane in checkpointed keyed state: records wait in {@code pending} (their framed
 * bytes) until the lane holds as many as the newest record's model allows, or their bytes reach the
 * limit, or the earliest record's delay is up; then one batch frame goes to Python. A failure or a
 * rescale loses no pending record: they are in state, and a batch once emitted is downstream of the
 * checkpoint barrier that follows it.
 *
 * <p>{@code meta} is {@code [records, bytes, due ms]} of the pending batch (absent when empty).
 */
public final class MicroBatch extends KeyedProcessFunction<Integer, Tuple4<Integer, Integer, Integer, byte[]>, byte[]> {
    private static final long serialVersionUID = 1L;

    private final long maxBytes;
    private transient ListState<byte[]> pending;
    private transient ValueState<long[]> meta;

    public MicroBatch(long maxBytes) {
        this.maxBytes = maxBytes;
    }

    @Override
    public void open(OpenContext context) {
        pending = getRuntimeContext().getListState(
                new ListStateDescriptor<>("pending", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO));
        meta = getRuntimeContext().getState(
                new ValueStateDescriptor<>("meta", PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO));
    }

    @Override
    public void processElement(Tuple4<Integer, Integer, Integer, byte[]> record, Context ctx, Collector<byte[]> out)
            throws Exception {
        long now = ctx.timerService().currentProcessingTime();
        long[] m = meta.value();
        if (m == null) {
            m = new long[] {0, 0, Long.MAX_VALUE};
        }
        pending.add(record.f3);
        m[0] += 1;
        m[1] += record.f3.length;
        if (m[0] >= record.f1 || m[1] >= maxBytes) {
            if (m[2] != Long.MAX_VALUE) {
                ctx.timerService().deleteProcessingTimeTimer(m[2]);
            }
            flush(out);
            return;
        }
        long due = now + record.f2;
        if (due < m[2]) {  // the first record, or one whose model waits less than the others'
            ctx.timerService().registerProcessingTimeTimer(due);
            m[2] = due;
        }
        meta.update(m);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<byte[]> out) throws Exception {
        long[] m = meta.value();
        if (m != null && timestamp >= m[2]) {  // earlier timers of batches already flushed: nothing
            flush(out);
        }
    }

    private void flush(Collector<byte[]> out) throws Exception {
        List<byte[]> records = new ArrayList<>();
        Iterable<byte[]> stored = pending.get();
        if (stored != null) {
            stored.forEach(records::add);
        }
        pending.clear();
        meta.clear();
        if (!records.isEmpty()) {
            out.collect(Frames.batch(records));
        }
    }
}
