package ai.aimass.flink;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ScheduledFuture;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Micro-batching and scheduling per lane: routed records wait in memory, in order of priority,
 * until their lane holds as many as the newest record's model allows, or their bytes reach the
 * limit, or a record's delay is up, or a record's deadline comes within the measured time a batch
 * takes; then a batch frame goes to Python, made of the lane's first records in that order.
 * docs/SCHEDULING.md has the rules and the settings.
 *
 * <ul>
 *   <li><b>Order</b>: by {@code arrival - min(max(priority, 0), maxPriority) * agingMs}: each
 *       priority level is worth {@code agingMs} of waiting, so a request never waits behind a
 *       lower-priority one that came later, and a low-priority one is overtaken only by requests
 *       that arrive within {@code maxPriority * agingMs} after it (no starvation). Route updates
 *       (CONTROL records) go first.</li>
 *   <li><b>Window</b>: at most {@code inflightBatches} batches at a time go to Python ({@link
 *       Inflight}); meanwhile records keep arriving and wait here, so batches grow with load and
 *       the next one is chosen from everything waiting, not first-in first-out.</li>
 *   <li><b>Deadlines</b>: a request still waiting at its {@code deadline_ms} is answered
 *       DEADLINE_EXCEEDED then (a result and a dead letter, written here by {@link Answers}); one
 *       read after its deadline (a backlog after an outage) at once.</li>
 *   <li><b>Admission</b>: a request waits only while what waits on the subtask would take at
 *       most {@code maxQueueMs} at the measured batch time, at most {@code maxWaitingPerModel}
 *       requests of its model and {@code maxWaitingBytes} in all wait on the subtask; beyond, the
 *       request of the lowest priority (the newest of those) is answered OVERLOADED at once: the
 *       newcomer, unless it outranks a waiting one. OVERLOADED claims no id: the request can be
 *       sent again under its id.</li>
 * </ul>
 *
 * <p>Scheduling applies to requests the route placed (rules DEFAULT, PINNED, ALIAS, SPLIT) whose
 * tail {@link RequestPeek#schedule} can read; any other record is batched in arrival order and
 * judged by Python. Pending records live on the heap and go into operator state only at a
 * checkpoint (with their arrival times), not per record: a failure loses none; after a restore
 * those whose deadline passed meanwhile are answered at once, and on a rescale they are spread
 * over the new subtasks and served there, whatever their lane. At the end of a bounded input
 * everything pending is flushed.
 */
public final class MicroBatch extends AbstractStreamOperator<byte[]>
        implements OneInputStreamOperator<Tuple4<Integer, Integer, Integer, byte[]>, byte[]>, BoundedOneInput {
    private static final long serialVersionUID = 2L;
    private static final Logger LOG = LoggerFactory.getLogger(MicroBatch.class);

    /** Error results this operator answers itself: {@code (request id, value, false)}, like {@link Outputs}'. */
    public static final OutputTag<Tuple3<String, byte[], Boolean>> ANSWERS = new OutputTag<>("answers", Graph.RESULTS);
    /** Marks a state entry written with its arrival time (older entries lack it). */
    private static final int ENTRY_V2 = -1;

    /**
     * The scheduling settings ({@code job.*} in {@code aimass/settings.py}).
     *
     * @param inflightBatches batches handed to Python at a time; 0: no window
     * @param creditTimeoutMs a batch not reported answered after this long no longer counts
     * @param inflightMs the window also holds this much measured work, in batches of the measured
     *     time (up to {@link #MAX_WINDOW}): small batches need more of them to keep Python busy
     * @param shed beyond the admission limits, answer OVERLOADED (true) or stop reading input until
     *     there is room (false: back-pressure, the requests wait in Kafka; {@code maxQueueMs} then
     *     does not apply, only the count and byte limits)
     * @param maxQueueMs admission: the longest estimated wait (requests waiting, in measured
     *     batches) a request is queued behind; 0: no such limit
     */
    public record Policy(long maxBytes, int inflightBatches, long creditTimeoutMs, long agingMs, int maxPriority,
                         int maxWaitingPerModel, long maxWaitingBytes, long maxQueueMs, long inflightMs,
                         boolean shed) implements Serializable {
        /** The most batches in flight, however small they are. */
        public static final int MAX_WINDOW = 64;

        public Policy {
            if (maxBytes < 1 || inflightBatches < 0 || creditTimeoutMs < 1 || agingMs < 0 || maxPriority < 0
                    || maxWaitingPerModel < 1 || maxWaitingBytes < 1 || maxQueueMs < 0 || inflightMs < 0) {
                throw new IllegalArgumentException("scheduling limits out of range: " + this);
            }
        }

        /** Batching alone: no window, no admission limits. */
        public static Policy batching(long maxBytes) {
            return new Policy(maxBytes, 0, 2000, 0, 0, Integer.MAX_VALUE, Long.MAX_VALUE, 0, 0, true);
        }
    }

    private final Policy policy;
    private final RequestPeek peek;
    private final Answers answers;

    private transient Map<Integer, Lane> lanes;
    private transient Set<Lane> ready;
    private transient Map<String, TreeSet<Entry>> models;
    private transient PriorityQueue<Entry> dues;
    private transient PriorityQueue<Entry> expiries;
    private transient ArrayDeque<Long> inflight;
    private transient long waitingBytes;
    private transient int waitingCount;
    private transient double batchRecords;
    private transient long seq;
    private transient double serviceMs;
    private transient long lastAnswered;
    private transient long timerAt;
    private transient ScheduledFuture<?> timer;
    private transient ListState<byte[]> checkpointed;
    private transient List<byte[]> restored;
    private transient Inflight.Channel channel;
    private transient org.apache.flink.api.common.operators.MailboxExecutor mailbox;
    private transient boolean attachedForTest;
    private transient String job;
    private transient int subtask;
    private transient Counter expired;
    private transient Counter overloaded;
    /** Requests per batch handed to Python, and how long each waited in its lane (ms). */
    private transient Histogram batchSize;
    private transient Histogram queuedMs;

    /** One waiting record. */
    private static final class Entry {
        final Lane lane;
        final int records;
        final int delay;
        final byte[] frame;
        final long arrival;
        final long key;
        /** The priority level, 0..maxPriority. */
        final int level;
        final long seq;
        final long deadline;
        final long due;
        /** Scheduled requests only (admission, deadlines, answers); null otherwise. */
        final String model;
        final String id;
        final Frames.Head head;
        final long createdAt;
        boolean done;

        Entry(Lane lane, int records, int delay, byte[] frame, long arrival, long key, int level, long seq,
              long deadline, long due, String model, String id, Frames.Head head, long createdAt) {
            this.lane = lane;
            this.records = records;
            this.delay = delay;
            this.frame = frame;
            this.arrival = arrival;
            this.key = key;
            this.level = level;
            this.seq = seq;
            this.deadline = deadline;
            this.due = due;
            this.model = model;
            this.id = id;
            this.head = head;
            this.createdAt = createdAt;
        }
    }

    private static final Comparator<Entry> ORDER = Comparator.comparingLong((Entry e) -> e.key)
            .thenComparingLong(e -> e.seq);
    /**
     * The order in which waiting requests of a model are shed: the lowest priority level first,
     * and the last in {@link #ORDER} among those. By level, not by {@link #ORDER} alone: under a
     * long overload the newest waiting request may be older than the aging advantage of a
     * higher level, and a high-priority request must still never be shed while a lower one waits.
     */
    private static final Comparator<Entry> SHED = Comparator.comparingInt((Entry e) -> e.level)
            .thenComparing(ORDER.reversed());

    /** One lane's waiting records, in order. */
    private static final class Lane {
        final int key;
        final TreeSet<Entry> queue = new TreeSet<>(ORDER);
        long bytes;
        int limit = 1;
        /** A record's delay or deadline came due: send batches until the lane is empty. */
        boolean overdue;

        Lane(int key) {
            this.key = key;
        }
    }

    /** Batching alone, as before scheduling: arrival order, no window, no answers of its own. */
    public MicroBatch(long maxBytes) {
        this(Policy.batching(maxBytes), null, null);
    }

    /** @param peek reads a request's deadline and priority; answers writes what this operator answers */
    public MicroBatch(Policy policy, RequestPeek peek, Answers answers) {
        this.policy = policy;
        this.peek = peek;
        this.answers = answers;
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
        ready = new LinkedHashSet<>();
        models = new HashMap<>();
        dues = new PriorityQueue<>(Comparator.comparingLong((Entry e) -> e.due));
        expiries = new PriorityQueue<>(Comparator.comparingLong((Entry e) -> e.deadline));
        inflight = new ArrayDeque<>();
        timerAt = Long.MAX_VALUE;
        expired = getMetricGroup().counter("schedulerExpired");
        overloaded = getMetricGroup().counter("schedulerOverloaded");
        getMetricGroup().gauge("schedulerWaiting", () -> (long) waiting());
        batchSize = getMetricGroup().histogram("batchSize", new DescriptiveStatisticsHistogram(1000));
        queuedMs = getMetricGroup().histogram("queuedMs", new DescriptiveStatisticsHistogram(1000));
        if (policy.inflightBatches() > 0) {
            try {
                job = getRuntimeContext().getJobInfo().getJobId().toString();
                subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
                mailbox = getContainingTask().getMailboxExecutorFactory()
                        .createExecutor(getOperatorConfig().getChainIndex());
                channel = Inflight.open(job, subtask, mailbox, this::answered);
            } catch (RuntimeException e) {
                LOG.warn("micro-batch: no batch window (batches go to Python as they fill): {}", e.toString());
            }
        }
        long now = now();
        for (byte[] stored : restored) {  // back in their lanes, in their order; each delay set afresh
            ByteBuffer buf = ByteBuffer.wrap(stored);
            int first = buf.getInt();
            boolean v2 = first == ENTRY_V2;
            int key = v2 ? buf.getInt() : first;
            int records = buf.getInt();
            int delay = buf.getInt();
            long arrival = v2 ? buf.getLong() : now;
            byte[] frame = new byte[buf.remaining()];
            buf.get(frame);
            Entry e = entry(key, records, delay, frame, arrival, now);
            if (e.model != null && e.deadline <= now) {
                expire(e, now, "its deadline passed while the job was down or restarting");
            } else {
                enqueue(e, now);
            }
        }
        restored = null;
        pump(now);
        reschedule();
    }

    @Override
    public void close() throws Exception {
        if (channel != null) {
            Inflight.close(job, subtask, channel);
        }
        super.close();
    }

    @Override
    public void processElement(StreamRecord<Tuple4<Integer, Integer, Integer, byte[]>> element)
            throws InterruptedException {
        Tuple4<Integer, Integer, Integer, byte[]> record = element.getValue();
        long now = now();
        Entry e = entry(record.f0, record.f1, record.f2, record.f3, now, now);
        if (e.model != null) {
            if (e.deadline <= now) {
                expire(e, now, "its deadline had passed when the job read it");
                return;
            }
            if (policy.shed()) {
                if (!admit(e, now)) {
                    return;
                }
            } else {
                now = waitForRoom(e, now);
                if (e.deadline <= now) {
                    expire(e, now, "its deadline passed while the job's queue was full");
                    return;
                }
            }
        }
        enqueue(e, now);
        pump(now);
        reschedule();
    }

    /** A waiting record of a routed one; scheduled when it is a placed request that can be read. */
    private Entry entry(int laneKey, int records, int delay, byte[] frame, long arrival, long now) {
        Lane lane = lanes.computeIfAbsent(laneKey, Lane::new);
        long s = seq++;
        Frames.Head head = peek == null ? null : Frames.head(frame);
        if (head != null && head.rule() == Rule.CONTROL) {
            return new Entry(lane, records, delay, frame, arrival, Long.MIN_VALUE, 0, s, Long.MAX_VALUE, now, null,
                    null, null, 0);
        }
        long due = now + delay;
        if (head != null && placed(head.rule())) {
            byte[] value = Arrays.copyOfRange(frame, head.valueStart(), head.valueStart() + head.valueLength());
            RequestPeek.Scheduling sched = peek.schedule(value);
            RequestPeek.Peeked peeked = peek.peek(value);
            String id = peeked.id() == null ? null : RequestPeek.idString(value, peeked.id());
            if (sched.readable() && id != null && peeked.model() != null) {
                int level = Math.min(Math.max(sched.priority(), 0), policy.maxPriority());
                long deadline = sched.deadlineMs();
                if (deadline != Long.MAX_VALUE) {  // sent in time to run, behind the batches now in flight
                    due = Math.min(due, deadline - (long) Math.ceil((inflight.size() + 1) * serviceMs) - 1);
                }
                return new Entry(lane, records, delay, frame, arrival, arrival - level * policy.agingMs(), level, s,
                        deadline, due, peeked.model(), id, head, sched.createdAtMs());
            }
        }
        return new Entry(lane, records, delay, frame, arrival, arrival, 0, s, Long.MAX_VALUE, due, null, null, head, 0);
    }

    private static boolean placed(Rule rule) {
        return rule == Rule.DEFAULT || rule == Rule.PINNED || rule == Rule.ALIAS || rule == Rule.SPLIT;
    }

    /**
     * Back-pressure: while the queue is at its count or byte limit, serve this task's mails
     * (answered batches, timers) instead of reading input, as Flink's async I/O operator does, so
     * the rest waits in Kafka. Only while batches are in flight (their answers free room); returns
     * the time after waiting.
     */
    private long waitForRoom(Entry e, long now) throws InterruptedException {
        while (mailbox != null && attached() && !inflight.isEmpty() && full(e)) {
            mailbox.yield();
            now = now();
        }
        return now;
    }

    private boolean full(Entry e) {
        TreeSet<Entry> same = models.get(e.model);
        return waitingBytes + e.frame.length > policy.maxWaitingBytes()
                || (same != null && same.size() >= policy.maxWaitingPerModel());
    }

    /** Whether {@code e} may wait; if not, it (or the one it displaces) is answered OVERLOADED. */
    private boolean admit(Entry e, long now) {
        if (waitingBytes + e.frame.length > policy.maxWaitingBytes()) {
            overload(e, now, "the job's queue on this subtask holds " + waitingBytes + " bytes of requests "
                    + "(job.max_waiting_bytes " + policy.maxWaitingBytes() + ")");
            return false;
        }
        TreeSet<Entry> same = models.get(e.model);
        String why;
        double waitMs = estimatedWaitMs();
        if (same != null && same.size() >= policy.maxWaitingPerModel()) {
            why = same.size() + " requests of model '" + e.model + "' wait on this subtask (job.max_waiting_per_model "
                    + policy.maxWaitingPerModel() + ")";
        } else if (policy.maxQueueMs() > 0 && waitMs > policy.maxQueueMs()) {
            why = waitingCount + " requests wait on this subtask, about " + Math.round(waitMs)
                    + " ms of batches at the measured rate (job.max_queue_ms " + policy.maxQueueMs() + ")";
        } else {
            return true;
        }
        if (same == null) {
            overload(e, now, why);
            return false;
        }
        Entry victim = same.first();
        if (SHED.compare(e, victim) > 0) {  // the newcomer outranks the first to shed: that one makes room
            remove(victim);
            overload(victim, now, why + " and requests of higher priority came");
            return true;
        }
        overload(e, now, why);
        return false;
    }

    private void enqueue(Entry e, long now) {
        Lane lane = e.lane;
        lane.queue.add(e);
        lane.bytes += e.frame.length;
        lane.limit = e.records;
        if (e.model != null) {
            models.computeIfAbsent(e.model, m -> new TreeSet<>(SHED)).add(e);
            waitingBytes += e.frame.length;
            waitingCount++;
            if (e.deadline != Long.MAX_VALUE) {
                expiries.add(e);
            }
        }
        if (e.due <= now || e.key == Long.MIN_VALUE) {
            lane.overdue = true;
        } else {
            dues.add(e);
        }
        if (isReady(lane)) {
            ready.add(lane);
        }
    }

    private boolean isReady(Lane lane) {
        return !lane.queue.isEmpty() && (lane.overdue || lane.queue.size() >= lane.limit
                || lane.bytes >= policy.maxBytes() || lane.queue.first().key == Long.MIN_VALUE);
    }

    /** Takes {@code e} out of its lane and the model's queue (it is answered or sent). */
    private void remove(Entry e) {
        e.done = true;
        Lane lane = e.lane;
        lane.queue.remove(e);
        lane.bytes -= e.frame.length;
        if (lane.queue.isEmpty()) {
            lane.overdue = false;
            ready.remove(lane);
        }
        if (e.model != null) {
            TreeSet<Entry> same = models.get(e.model);
            if (same != null) {
                same.remove(e);
                if (same.isEmpty()) {
                    models.remove(e.model);
                }
            }
            waitingBytes -= e.frame.length;
            waitingCount--;
        }
    }

    /** Sends batches while lanes are ready and the window has room: the ready lane whose first record comes first. */
    private void pump(long now) {
        while (!ready.isEmpty() && hasCredit(now)) {
            Lane best = null;
            for (Lane lane : ready) {
                if (best == null || ORDER.compare(lane.queue.first(), best.queue.first()) < 0) {
                    best = lane;
                }
            }
            send(best, now);
            if (!isReady(best)) {
                ready.remove(best);
            }
        }
    }

    private boolean hasCredit(long now) {
        if (policy.inflightBatches() == 0 || !attached()) {
            return true;
        }
        while (!inflight.isEmpty() && inflight.peekFirst() + policy.creditTimeoutMs() <= now) {
            inflight.pollFirst();  // never reported answered (a restart, a lost report): no longer counted
        }
        return inflight.size() < window();
    }

    /** Batches allowed in flight: {@code inflightBatches}, or as many as {@code inflightMs} of work. */
    int window() {
        int byTime = serviceMs > 0 ? (int) Math.min(Policy.MAX_WINDOW, Math.ceil(policy.inflightMs() / serviceMs)) : 0;
        return Math.max(policy.inflightBatches(), byTime);
    }

    /** The measured time to serve everything waiting here: waiting requests in batches of the mean size. */
    private double estimatedWaitMs() {
        if (serviceMs <= 0 || batchRecords <= 0) {
            return 0;
        }
        return waitingCount / batchRecords * serviceMs;
    }

    private boolean attached() {
        return attachedForTest || (channel != null && channel.attached());
    }

    /** One batch of the lane's first records: up to its record limit, until their bytes reach the limit. */
    private void send(Lane lane, long now) {
        List<byte[]> frames = new ArrayList<>(Math.min(lane.limit, lane.queue.size()));
        long bytes = 0;
        while (!lane.queue.isEmpty() && frames.size() < lane.limit && bytes < policy.maxBytes()) {
            Entry e = lane.queue.first();
            remove(e);
            frames.add(e.frame);
            bytes += e.frame.length;
            if (queuedMs != null) {
                queuedMs.update(Math.max(0, now - e.arrival));
            }
        }
        if (batchSize != null) {
            batchSize.update(frames.size());
        }
        if (attached() && policy.inflightBatches() > 0) {
            inflight.addLast(now);
        }
        batchRecords = batchRecords == 0 ? frames.size() : 0.9 * batchRecords + 0.1 * frames.size();
        output.collect(new StreamRecord<>(Frames.batch(frames)));
    }

    /** {@code n} batches answered by Python (through {@link Inflight}, in this task's thread). */
    void answered(int n) {
        long now = now();
        for (int i = 0; i < n; i++) {
            Long since = inflight.pollFirst();
            if (since != null) {
                double took = now - Math.max(since, lastAnswered);
                serviceMs = serviceMs == 0 ? took : 0.8 * serviceMs + 0.2 * took;
            }
            lastAnswered = now;
        }
        pump(now);
        reschedule();
    }

    private void onTimer(long time) {
        timer = null;
        timerAt = Long.MAX_VALUE;
        long now = Math.max(time, now());
        while (!dues.isEmpty() && (dues.peek().done || dues.peek().due <= now)) {
            Entry e = dues.poll();
            if (!e.done) {
                e.lane.overdue = true;
                ready.add(e.lane);
            }
        }
        pump(now);  // first what is due, then what could not be sent in time expires
        while (!expiries.isEmpty() && (expiries.peek().done || expiries.peek().deadline <= now)) {
            Entry e = expiries.poll();
            if (!e.done) {
                remove(e);
                expire(e, now, "its deadline passed while it waited in the job's queue");
            }
        }
        reschedule();
    }

    /** The timer at the next due record, deadline, or (window full) credit timeout. */
    private void reschedule() {
        while (!dues.isEmpty() && dues.peek().done) {
            dues.poll();
        }
        while (!expiries.isEmpty() && expiries.peek().done) {
            expiries.poll();
        }
        long next = Long.MAX_VALUE;
        if (!dues.isEmpty()) {
            next = dues.peek().due;
        }
        if (!expiries.isEmpty()) {
            next = Math.min(next, expiries.peek().deadline);
        }
        if (!ready.isEmpty() && !inflight.isEmpty()) {
            next = Math.min(next, inflight.peekFirst() + policy.creditTimeoutMs());
        }
        if (next == Long.MAX_VALUE || next >= timerAt) {
            return;
        }
        if (timer != null) {
            timer.cancel(false);
        }
        timerAt = next;
        timer = getProcessingTimeService().registerTimer(next, this::onTimer);
    }

    private void expire(Entry e, long now, String why) {
        expired.inc();
        String message = "deadline " + e.deadline + " passed " + (now - e.deadline) + " ms before the request ran: "
                + why;
        answer(e, Answers.DEADLINE_EXCEEDED_STATUS, "DEADLINE_EXCEEDED: " + message, now);
        Frames.Head h = e.head;
        byte[] original = Arrays.copyOfRange(e.frame, h.valueStart(), h.valueStart() + h.valueLength());
        output.collect(Outputs.DEAD_LETTERS, new StreamRecord<>(Row.of((Object) answers.deadLetter(original,
                h.topic(), h.partition(), h.offset(), Answers.DEADLINE_EXCEEDED_REASON, message, e.id, now))));
    }

    private void overload(Entry e, long now, String why) {
        overloaded.inc();
        answer(e, Answers.OVERLOADED_STATUS, "OVERLOADED: " + why + "; send it again later, or with a higher priority",
                now);
    }

    private void answer(Entry e, int status, String error, long now) {
        double queued = Math.max(now - e.head.receivedMs(), 0);
        double endToEnd = e.createdAt > 0 ? now - e.createdAt : 0.0;
        byte[] value = answers.result(e.id, e.model, status, error, queued, endToEnd, now);
        output.collect(ANSWERS, new StreamRecord<>(Tuple3.of(e.id, value, false)));
    }

    private long now() {
        return getProcessingTimeService().getCurrentProcessingTime();
    }

    private int waiting() {
        return waitingCount;
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        List<byte[]> entries = new ArrayList<>();
        for (Lane lane : lanes.values()) {
            for (Entry e : lane.queue) {
                entries.add(ByteBuffer.allocate(24 + e.frame.length).putInt(ENTRY_V2).putInt(lane.key)
                        .putInt(e.records).putInt(e.delay).putLong(e.arrival).put(e.frame).array());
            }
        }
        checkpointed.update(entries);
    }

    @Override
    public void endInput() {
        for (Lane lane : lanes.values()) {
            while (!lane.queue.isEmpty()) {
                send(lane, now());
            }
        }
        ready.clear();
    }

    /** Tests: count batches as if an {@link Outputs} reported them. */
    void attachForTest() {
        attachedForTest = true;
    }

    /** Tests: the measured time a batch takes, in ms. */
    double serviceMs() {
        return serviceMs;
    }

    /** Tests: requests waiting (scheduled ones). */
    int waitingRequests() {
        return waiting();
    }
}
