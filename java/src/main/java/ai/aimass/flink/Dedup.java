package ai.aimass.flink;

import java.time.Duration;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * One result per request id, keyed by the id: the first result that claims the id (its request was
 * accepted) is written and remembered for the TTL; any later result for the id (a resubmission, the
 * same id under another model, a refused record reusing it) is dropped; an error result of a refused
 * record is written while the id is unclaimed, and claims nothing. Dead letters do not pass here.
 *
 * <p>State is one small value per id, so with RocksDB and incremental checkpoints a checkpoint costs
 * the ids claimed since the last one; expired ids leave with compaction (RocksDB) or incremental
 * cleanup (heap). See {@link DedupRule} for the rule alone.
 */
public final class Dedup extends KeyedProcessFunction<String, Tuple3<String, byte[], Boolean>, Row> {
    private static final long serialVersionUID = 1L;

    /** Row type of the results sink's records: Kafka key and value. */
    public static final TypeInformation<Row> RESULT_ROW =
            Types.ROW_NAMED(new String[] {"k", "v"}, Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));

    private final long ttlSeconds;
    private transient ValueState<Boolean> claimed;
    /** Results dropped because their id was already answered (resubmissions, mostly). */
    private transient Counter dropped;

    public Dedup(long ttlSeconds) {
        this.ttlSeconds = ttlSeconds;
    }

    @Override
    public void open(OpenContext context) {
        ValueStateDescriptor<Boolean> descriptor = new ValueStateDescriptor<>("claimed", Types.BOOLEAN);
        descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofSeconds(ttlSeconds))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                // Expired ids leave RocksDB at compaction (the filter checks the time every 1000
                // entries) and the heap backend 10 entries per access: memory follows live ids.
                .cleanupInRocksdbCompactFilter(1000)
                .cleanupIncrementally(10, false)
                .build());
        claimed = getRuntimeContext().getState(descriptor);
        dropped = getRuntimeContext().getMetricGroup().counter("dedupDropped");
    }

    @Override
    public void processElement(Tuple3<String, byte[], Boolean> result, Context ctx, Collector<Row> out)
            throws Exception {
        DedupRule.Verdict verdict = DedupRule.decide(claimed.value() != null, result.f2);
        if (verdict.claim()) {
            claimed.update(Boolean.TRUE);
        }
        if (verdict.emit()) {
            out.collect(Row.of(result.f0, result.f1));
        } else if (dropped != null) {
            dropped.inc();
        }
    }
}
