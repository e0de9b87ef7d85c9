package ai.aimass.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Source record {@code (value, topic, partition, offset)} to {@code (lane key, flush records, flush
 * delay ms, framed record)}: peeks the id for the lane and the model for its batch limits. Every
 * record goes on, routable or not: Python decodes it in full and answers it (a bad one with a dead
 * letter, and an error result when its id can be read). Stateless; never throws on a record.
 */
public final class Route extends ProcessFunction<Row, Tuple4<Integer, Integer, Integer, byte[]>> {
    private static final long serialVersionUID = 1L;
    private static final byte[] EMPTY = new byte[0];

    private final RequestPeek peek;
    private final Lanes lanes;
    private final BatchLimits limits;

    public Route(RequestPeek peek, Lanes lanes, BatchLimits limits) {
        this.peek = peek;
        this.lanes = lanes;
        this.limits = limits;
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Tuple4<Integer, Integer, Integer, byte[]>> out) {
        byte[] value = row.getField(0) instanceof byte[] b ? b : EMPTY;
        String topic = row.getField(1) instanceof String s ? s : "";
        int partition = row.getField(2) instanceof Integer p ? p : 0;
        long offset = row.getField(3) instanceof Long o ? o : 0L;
        out.collect(route(value, topic, partition, offset, System.currentTimeMillis()));
    }

    /** The routed form of one record (public for tests). */
    public Tuple4<Integer, Integer, Integer, byte[]> route(
            byte[] value, String topic, int partition, long offset, long receivedMs) {
        RequestPeek.Span id = peek.id(value);
        int lane;
        String model = null;
        if (id == null) {
            lane = lanes.laneOfPosition(partition, offset);
        } else {
            lane = lanes.laneOf(value, id.start(), id.length());
            model = peek.model(value, id);
        }
        byte[] framed = Frames.record(partition, offset, receivedMs, topic.getBytes(StandardCharsets.UTF_8), value);
        return Tuple4.of(lanes.key(lane), limits.records(model), limits.delayMs(model), framed);
    }
}
