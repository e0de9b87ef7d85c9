package ai.aimass.flink;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ScheduledFuture;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

/**
 * Micro-batching per lane: routed records wait in memory until their lane holds as many as the
 * newest record's model allows, or their bytes reach the limit, or the earliest record's delay is
 * up; then one batch frame goes to Python.
 *
 * <p>Pending records live on the heap and go into operator state only at a checkpoint (the few
 * records waiting at that moment), not into the keyed state backend per record: written per record
 * to RocksDB, every request's bytes were flushed to disk at each checkpoint and compacted away
 * again, which took a third of a core at 7k requests/s (the soak in bench/RESULTS.md). A failure
 * loses no record: the ones pending at the last checkpoint are restored and flushed again, and a
 * batch once emitted is downstream of the barrier that follows it. On a rescale the restored
 * records are spread over the new subtasks (operator list state) and flushed there, whatever their
 * lane. At the end of a bounded input everything pending is flushed.
 */
public final class MicroBatch extends AbstractStreamOperator<byte[]>
        implements OneInputStreamOperator<Tuple4<Integer, Integer, Integer, byte[]>, byte[]>, BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final long maxBytes;
    private transient Map<Integer, Lane> lanes;
    private transient ListState<byte[]> checkpointed;
    private transient List<byte[]> restored;

    /** One lane's pending batch. */
    private static final class Lane {
        final List<Tuple4<Integer, Integer, Integer, byte[]>> records = new ArrayList<>();
        long bytes;
        long due = Long.MAX_VALUE;
        ScheduledFuture<?> timer;
    }

    public MicroBatch(long maxBytes) {
        this.maxBytes = maxBytes;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        checkpointed = context.getOperatorStateStore().getListState(
                new ListStateDescriptor<>("pending", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO));
        restored = new ArrayList<>();
        if (context.isRestored()) {
            for (byte[] entry : checkpointed.get()) {
                restored.add(entry);
            }
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        lanes = new HashMap<>();
        long now = getProcessingTimeService().getCurrentProcessingTime();
        for (byte[] entry : restored) {  // back in their lanes; each lane's timer set afresh
            ByteBuffer buf = ByteBuffer.wrap(entry);
            int key = buf.getInt();
            int records = buf.getInt();
            int delay = buf.getInt();
            byte[] frame = new byte[buf.remaining()];
            buf.get(frame);
            Lane lane = lanes.computeIfAbsent(key, k -> new Lane());
            lane.records.add(Tuple4.of(key, records, delay, frame));
            lane.bytes += frame.length;
            schedule(key, lane, now + delay);
        }
        restored = null;
    }

    @Override
    public void processElement(StreamRecord<Tuple4<Integer, Integer, Integer, byte[]>> element) throws Exception {
        Tuple4<Integer, Integer, Integer, byte[]> record = element.getValue();
        Lane lane = lanes.computeIfAbsent(record.f0, k -> new Lane());
        lane.records.add(record);
        lane.bytes += record.f3.length;
        if (lane.records.size() >= record.f1 || lane.bytes >= maxBytes) {
            flush(lane);
            return;
        }
        schedule(record.f0, lane, getProcessingTimeService().getCurrentProcessingTime() + record.f2);
    }

    /** Set the lane's timer to {@code due} unless it is due earlier already. */
    private void schedule(int key, Lane lane, long due) {
        if (due >= lane.due) {
            return;
        }
        if (lane.timer != null) {
            lane.timer.cancel(false);
        }
        lane.due = due;
        lane.timer = getProcessingTimeService().registerTimer(due, time -> onTimer(key, time));
    }

    private void onTimer(int key, long time) {
        Lane lane = lanes.get(key);
        if (lane != null && time >= lane.due) {
            flush(lane);
        }
    }

    private void flush(Lane lane) {
        if (lane.timer != null) {
            lane.timer.cancel(false);
            lane.timer = null;
        }
        lane.due = Long.MAX_VALUE;
        if (lane.records.isEmpty()) {
            return;
        }
        List<byte[]> frames = new ArrayList<>(lane.records.size());
        for (Tuple4<Integer, Integer, Integer, byte[]> r : lane.records) {
            frames.add(r.f3);
        }
        lane.records.clear();
        lane.bytes = 0;
        output.collect(new StreamRecord<>(Frames.batch(frames)));
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        List<byte[]> entries = new ArrayList<>();
        for (Lane lane : lanes.values()) {
            for (Tuple4<Integer, Integer, Integer, byte[]> r : lane.records) {
                entries.add(ByteBuffer.allocate(12 + r.f3.length).putInt(r.f0).putInt(r.f1).putInt(r.f2).put(r.f3)
                        .array());
            }
        }
        checkpointed.update(entries);
    }

    @Override
    public void endInput() {
        for (Lane lane : lanes.values()) {
            flush(lane);
        }
    }
}
