package ai.aimass.flink;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Python's outputs frame of one batch to its records: results (and error results) on the main
 * output as {@code (request id, value, claims id)} for {@link Dedup}; dead letters on
 * {@link #DEAD_LETTERS} as {@code Row(v)} for the dead-letter sink; shadow results on
 * {@link #SHADOWS} as {@code Row(k, v)} (keyed by request id) for the shadow-results sink. Each
 * frame is reported to the {@link MicroBatch} subtask of the same index ({@link Inflight}).
 */
public final class Outputs extends ProcessFunction<byte[], Tuple3<String, byte[], Boolean>> {
    private static final long serialVersionUID = 1L;

    /** Row type of the dead-letter sink's records. */
    public static final TypeInformation<Row> DEAD_LETTER_ROW =
            Types.ROW_NAMED(new String[] {"v"}, Types.PRIMITIVE_ARRAY(Types.BYTE));
    public static final OutputTag<Row> DEAD_LETTERS = new OutputTag<>("dead-letters", DEAD_LETTER_ROW);
    /** Shadow results: {@code Row(k, v)}, the type of {@link Dedup#RESULT_ROW}. */
    public static final OutputTag<Row> SHADOWS = new OutputTag<>("shadows", Dedup.RESULT_ROW);

    private transient String job;
    private transient int subtask;

    @Override
    public void open(OpenContext context) throws Exception {
        super.open(context);
        job = getRuntimeContext().getJobInfo().getJobId().toString();
        subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
    }

    @Override
    public void processElement(byte[] frame, Context ctx, Collector<Tuple3<String, byte[], Boolean>> out) {
        Inflight.complete(job, subtask);  // one outputs frame per batch frame: the MicroBatch may send another
        for (Frames.Output o : Frames.outputs(frame)) {
            if (o.kind() == Frames.DEAD_LETTER) {
                ctx.output(DEAD_LETTERS, Row.of((Object) o.value()));
            } else if (o.kind() == Frames.SHADOW) {
                ctx.output(SHADOWS, Row.of(o.key(), o.value()));
            } else {
                out.collect(Tuple3.of(o.key(), o.value(), o.kind() == Frames.RESULT));
            }
        }
    }
}
