package ai.aimass.flink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.BroadcastState;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedMultiInput;
import org.apache.flink.streaming.api.operators.TwoInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code route} step: source records (input 1) to {@code (lane key, flush records, flush delay
 * ms, framed record)}, routed by the route updates of the control topic (input 2, broadcast to every
 * subtask). See docs/CONTROL.md.
 *
 * <p>Input 1 is {@code Row(value, topic, partition, offset, timestamp)}: the timestamp (the Kafka
 * record's) is an {@code Instant}, a {@code LocalDateTime} (UTC), epoch milliseconds or absent (then
 * the record's stream timestamp, else the processing time). The lane is {@code crc32(id) % lanes}
 * (the record's position when no id can be read); the version, rule, alias, bucket and shadow come
 * from {@link RoutingTable} at the record's timestamp; the batch limits are the serving version's, or
 * the job's defaults. Every record goes on, routable or not: Python decodes it in full and answers it.
 * Never throws on a source record.
 *
 * <p>Input 2 is UTF-8 JSON: route updates, each applied to the table and forwarded at once to every
 * lane as a CONTROL record (flush count 1), so each lane's Python step knows a version before any
 * request routed to it; and ready markers. Until the marker carrying this job's token has passed
 * (or input 2 has ended, or the restored state says so), source records are held in arrival order,
 * then routed.
 *
 * <p>State: the table's updates and the ready flag in broadcast state (every subtask has it all,
 * whatever the parallelism after a restore); the held records in operator list state. After a
 * restore every kept update is forwarded again to every lane before anything else, because the
 * Python steps keep no state.
 */
public final class Route extends AbstractStreamOperator<Tuple4<Integer, Integer, Integer, byte[]>>
        implements TwoInputStreamOperator<Row, byte[], Tuple4<Integer, Integer, Integer, byte[]>>, BoundedMultiInput {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(Route.class);
    private static final byte[] EMPTY = new byte[0];

    /** Broadcast state: {@code u/<model>/<seq>} to an update's JSON, {@code ready} when ready. */
    static final MapStateDescriptor<String, String> ROUTES =
            new MapStateDescriptor<>("routes", Types.STRING, Types.STRING);
    /** Operator list state: the records held until ready. */
    static final ListStateDescriptor<byte[]> HELD =
            new ListStateDescriptor<>("held", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final String READY_KEY = "ready";
    private static final String UPDATE_PREFIX = "u/";

    private final RequestPeek peek;
    private final Lanes lanes;
    private final int defaultRecords;
    private final int defaultDelayMs;
    private final String readyToken;
    private final boolean waitAfterRestore;
    /** Markers the job's control step writes when it opens: {@link #waitAfterRestore}. */
    public static final String RESTORE_PREFIX = "restore/";
    private transient boolean awaitingRestore;

    private transient RoutingTable table;
    private transient boolean ready;
    private transient List<Held> held;
    private transient boolean restored;
    private transient BroadcastState<String, String> routesState;
    private transient ListState<byte[]> heldState;
    private transient Counter lateUpdates;

    /** A source record waiting for the ready marker. */
    private record Held(byte[] value, String topic, int partition, long offset, long timestampMs, long receivedMs) {
        byte[] encode() {
            byte[] t = topic.getBytes(StandardCharsets.UTF_8);
            return ByteBuffer.allocate(4 + 8 + 8 + 8 + 4 + t.length + 4 + value.length)
                    .putInt(partition).putLong(offset).putLong(timestampMs).putLong(receivedMs)
                    .putInt(t.length).put(t).putInt(value.length).put(value).array();
        }

        static Held decode(byte[] entry) {
            ByteBuffer buf = ByteBuffer.wrap(entry);
            int partition = buf.getInt();
            long offset = buf.getLong();
            long timestampMs = buf.getLong();
            long receivedMs = buf.getLong();
            byte[] t = new byte[buf.getInt()];
            buf.get(t);
            byte[] value = new byte[buf.getInt()];
            buf.get(value);
            return new Held(value, new String(t, StandardCharsets.UTF_8), partition, offset, timestampMs, receivedMs);
        }
    }

    /**
     * @param defaultRecords flush count of a record whose version sets none (or that has no version)
     * @param defaultDelayMs flush delay of such a record
     * @param readyToken the token of this job's start marker; empty: ready from the start
     */
    public Route(RequestPeek peek, Lanes lanes, int defaultRecords, int defaultDelayMs, String readyToken) {
        this(peek, lanes, defaultRecords, defaultDelayMs, readyToken, false);
    }

    /**
     * @param waitAfterRestore after a restore, hold requests again until a marker whose token starts
     *     with {@link #RESTORE_PREFIX} passes: the job's control step writes one to the control topic
     *     when it opens, so every command after the checkpoint is applied before a request replayed
     *     after it is routed (else a replayed request could be routed before a command the first
     *     attempt had applied to it)
     */
    public Route(RequestPeek peek, Lanes lanes, int defaultRecords, int defaultDelayMs, String readyToken,
                 boolean waitAfterRestore) {
        if (defaultRecords < 1 || defaultDelayMs < 0) {
            throw new IllegalArgumentException("batch limits must be positive");
        }
        this.peek = peek;
        this.lanes = lanes;
        this.defaultRecords = defaultRecords;
        this.defaultDelayMs = defaultDelayMs;
        this.readyToken = readyToken == null ? "" : readyToken;
        this.waitAfterRestore = waitAfterRestore;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        routesState = context.getOperatorStateStore().getBroadcastState(ROUTES);
        heldState = context.getOperatorStateStore().getListState(HELD);
        table = new RoutingTable();
        ready = readyToken.isEmpty();
        held = new ArrayList<>();
        restored = context.isRestored();
        if (restored) {
            for (Map.Entry<String, String> e : routesState.entries()) {
                if (e.getKey().equals(READY_KEY)) {
                    ready = !waitAfterRestore;
                    awaitingRestore = waitAfterRestore;
                } else if (e.getKey().startsWith(UPDATE_PREFIX)) {
                    table.apply(e.getValue());
                }
            }
            for (byte[] entry : heldState.get()) {
                held.add(Held.decode(entry));
            }
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        lateUpdates = getMetricGroup().counter("routeLateUpdates");
        // The task restores its output channels' in-flight data before it opens its operators, so
        // what is emitted here follows it: each lane's Python step learns every kept version before
        // any request this operator routes from now on.
        if (restored) {
            long now = getProcessingTimeService().getCurrentProcessingTime();
            for (List<RoutingTable.Update> kept : table.updates().values()) {
                for (RoutingTable.Update update : kept) {
                    forward(update.json().getBytes(StandardCharsets.UTF_8), now);
                }
            }
        }
        if (ready) {
            release();
        }
    }

    @Override
    public void processElement1(StreamRecord<Row> element) throws Exception {
        long now = getProcessingTimeService().getCurrentProcessingTime();
        Held record = fields(element, now);
        if (ready) {
            route(record);
        } else {
            held.add(record);
        }
    }

    /** The fields of a source row, whatever it holds (never throws). */
    private static Held fields(StreamRecord<Row> element, long now) {
        Row row = element.getValue();
        byte[] value = EMPTY;
        String topic = "";
        int partition = 0;
        long offset = 0;
        Object timestamp = null;
        try {
            int arity = row == null ? 0 : row.getArity();
            value = arity > 0 && row.getField(0) instanceof byte[] b ? b : EMPTY;
            topic = arity > 1 && row.getField(1) instanceof String s ? s : "";
            partition = arity > 2 && row.getField(2) instanceof Integer p ? p : 0;
            offset = arity > 3 && row.getField(3) instanceof Long o ? o : 0L;
            timestamp = arity > 4 ? row.getField(4) : null;
        } catch (RuntimeException e) {
            // A row of another shape: what was read stands, the rest is empty.
        }
        long fallback = element.hasTimestamp() ? element.getTimestamp() : now;
        return new Held(value, topic, partition, offset, timestampMs(timestamp, fallback), now);
    }

    /** Epoch milliseconds of a row's timestamp field; {@code fallback} when it has none. */
    static long timestampMs(Object field, long fallback) {
        try {
            if (field instanceof Instant i) {
                return i.toEpochMilli();
            }
            if (field instanceof LocalDateTime t) {
                return t.toInstant(ZoneOffset.UTC).toEpochMilli();
            }
            if (field instanceof Long l) {
                return l;
            }
            if (field instanceof java.util.Date d) {
                return d.getTime();
            }
        } catch (ArithmeticException e) {
            // Out of the epoch-millisecond range.
        }
        return fallback;
    }

    private void route(Held r) {
        output.collect(new StreamRecord<>(route(r.value(), r.topic(), r.partition(), r.offset(), r.timestampMs(),
                r.receivedMs())));
    }

    /** The routed form of one source record by the current table (package-private for tests). */
    Tuple4<Integer, Integer, Integer, byte[]> route(
            byte[] value, String topic, int partition, long offset, long timestampMs, long receivedMs) {
        RequestPeek.Peeked peeked = peek.peek(value);
        int lane;
        RoutingTable.Resolution resolution = RoutingTable.Resolution.NONE;
        if (peeked.id() == null) {
            lane = lanes.laneOfPosition(partition, offset);
        } else {
            RequestPeek.Span id = peeked.id();
            lane = lanes.laneOf(value, id.start(), id.length());
            if (peeked.routable()) {
                resolution = table.resolve(peeked.model(), peeked.version(), value, id.start(), id.length(),
                        timestampMs);
            }
        }
        int records = resolution.maxBatchSize() != null ? resolution.maxBatchSize() : defaultRecords;
        int delay = resolution.maxDelayMs() != null ? resolution.maxDelayMs() : defaultDelayMs;
        byte[] framed = Frames.record(partition, offset, receivedMs, topic.getBytes(StandardCharsets.UTF_8), value,
                resolution.rule(), resolution.bucket(), resolution.version(), resolution.alias(),
                resolution.shadow(), resolution.detail());
        return Tuple4.of(lanes.key(lane), records, delay, framed);
    }

    @Override
    public void processElement2(StreamRecord<byte[]> element) throws Exception {
        byte[] json = element.getValue();
        RoutingTable.Message message = RoutingTable.parse(json);
        if (message instanceof RoutingTable.Ready marker) {
            // Waiting after a restore, only a restore marker will do (the start marker was passed
            // before the checkpoint; one seen again is a replay of the same submit's).
            boolean passes = awaitingRestore ? marker.token().startsWith(RESTORE_PREFIX)
                    : marker.token().equals(readyToken);
            if (!ready && passes) {
                LOG.info("route: marker {} passed; routing {} held records", marker.token(), held.size());
                ready = true;
                awaitingRestore = false;
                release();
            }
            return;
        }
        RoutingTable.Update update = (RoutingTable.Update) message;
        if (table.apply(update)) {
            lateUpdates.inc();
            LOG.warn("route: update {} of model '{}' effective at {} applied late: requests of the model stamped up "
                            + "to {} were already routed here without it",
                    update.seq(), update.model(), update.effectiveMs(), table.newestResolved(update.model()));
        }
        forward(json, getProcessingTimeService().getCurrentProcessingTime());
    }

    /** A route update to every lane, flushed at once. */
    private void forward(byte[] update, long now) {
        byte[] framed = Frames.control(update, now);
        for (int lane = 0; lane < lanes.count(); lane++) {
            output.collect(new StreamRecord<>(Tuple4.of(lanes.key(lane), 1, 0, framed)));
        }
    }

    /** Routes the held records, in arrival order. */
    private void release() {
        if (held.isEmpty()) {
            return;
        }
        List<Held> out = held;
        held = new ArrayList<>();
        for (Held r : out) {
            route(r);
        }
    }

    @Override
    public void endInput(int inputId) {
        if (inputId == 2 && !ready) {
            // No marker will come: route by what the control input held.
            LOG.info("route: control input ended before the start marker {}; routing {} held records", readyToken,
                    held.size());
            ready = true;
            release();
        }
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        Map<String, String> entries = new HashMap<>();
        for (List<RoutingTable.Update> kept : table.updates().values()) {
            for (RoutingTable.Update update : kept) {
                entries.put(UPDATE_PREFIX + update.model() + "/" + update.seq(), update.json());
            }
        }
        if (ready || awaitingRestore) {  // was ready before this restore: a restore marker readies it
            entries.put(READY_KEY, "true");
        }
        routesState.clear();
        routesState.putAll(entries);
        List<byte[]> pending = new ArrayList<>(held.size());
        for (Held r : held) {
            pending.add(r.encode());
        }
        heldState.update(pending);
    }

    /** Route updates applied late here so far (the {@code routeLateUpdates} metric). */
    long lateUpdates() {
        return lateUpdates.getCount();
    }

    /** Whether held records are routed now. */
    boolean ready() {
        return ready;
    }
}
