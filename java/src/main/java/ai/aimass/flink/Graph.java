package ai.aimass.flink;

import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;

/**
 * The Java steps of the inference job, as the Python job definition calls them
 * ({@code flink_jobs/inference_job.py} names each, gives it its uid and parallelism). Only plain
 * values cross from Python: bytes, ints and maps of them.
 */
public final class Graph {
    /** {@link Route}'s output type. */
    public static final TypeInformation<Tuple4<Integer, Integer, Integer, byte[]>> ROUTED =
            Types.TUPLE(Types.INT, Types.INT, Types.INT, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
    /** {@link Outputs}' main output type. */
    public static final TypeInformation<Tuple3<String, byte[], Boolean>> RESULTS =
            Types.TUPLE(Types.STRING, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO, Types.BOOLEAN);

    private Graph() {}

    /**
     * Source rows {@code (value, topic, partition, offset, timestamp)} to routed records, by the route
     * updates of {@code updates} (UTF-8 JSON from the Python control step; broadcast to every subtask).
     * Requests are held until {@code updates} passes {@code {"kind": "ready", "token": readyToken}}
     * (an empty token: from the start). {@code maxBatchBytes} is only checked here: {@link #microBatch}
     * applies it.
     */
    public static SingleOutputStreamOperator<Tuple4<Integer, Integer, Integer, byte[]>> route(
            DataStream<Row> source, DataStream<byte[]> updates, byte[] requestHeader, int lanes, int maxParallelism,
            int defaultRecords, int defaultDelayMs, long maxBatchBytes, String readyToken, boolean waitAfterRestore) {
        if (maxBatchBytes < 1) {
            throw new IllegalArgumentException("batch limits must be positive");
        }
        Route route = new Route(new RequestPeek(requestHeader), new Lanes(lanes, maxParallelism), defaultRecords,
                defaultDelayMs, readyToken, waitAfterRestore);
        return source.connect(updates.broadcast()).transform("route", ROUTED, route);
    }

    /** Routed records keyed by lane to batch frames, batching alone (arrival order, no window). */
    public static SingleOutputStreamOperator<byte[]> microBatch(
            DataStream<Tuple4<Integer, Integer, Integer, byte[]>> routed, long maxBatchBytes) {
        return routed.keyBy(new LaneKey(), Types.INT).transform(
                "micro-batch", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO, new MicroBatch(maxBatchBytes));
    }

    /**
     * Routed records keyed by lane to batch frames, scheduled by priority and deadline with a
     * window of {@code inflightBatches} ({@link MicroBatch}); the requests it answers itself are
     * on {@link #answers} and {@link #deadLetters(SingleOutputStreamOperator, SingleOutputStreamOperator)}.
     * The headers are the single-object headers of the request, result and dead-letter schemas.
     */
    public static SingleOutputStreamOperator<byte[]> microBatch(
            DataStream<Tuple4<Integer, Integer, Integer, byte[]>> routed, long maxBatchBytes, byte[] requestHeader,
            byte[] resultHeader, byte[] deadLetterHeader, int inflightBatches, long creditTimeoutMs, long agingMs,
            int maxPriority, int maxWaitingPerModel, long maxWaitingBytes, long maxQueueMs, long inflightMs,
            boolean shed) {
        MicroBatch.Policy policy = new MicroBatch.Policy(maxBatchBytes, inflightBatches, creditTimeoutMs, agingMs,
                maxPriority, maxWaitingPerModel, maxWaitingBytes, maxQueueMs, inflightMs, shed);
        // Output buffers flushed every millisecond: with a window of a few batches, a batch waiting
        // up to the default 100 ms in an output buffer idles Python (measured: busy 30-40% of the
        // time, serving a tenth of what it can); flushed after every record (0), each answer the
        // scheduler writes under overload took a network buffer of its own to dedup.
        return routed.keyBy(new LaneKey(), Types.INT).transform("micro-batch",
                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO, new MicroBatch(policy,
                        new RequestPeek(requestHeader), new Answers(resultHeader, deadLetterHeader)))
                .setBufferTimeout(1);
    }

    /** The error results the micro-batch answers itself (DEADLINE_EXCEEDED, OVERLOADED). */
    public static DataStream<Tuple3<String, byte[], Boolean>> answers(SingleOutputStreamOperator<byte[]> microBatch) {
        return microBatch.getSideOutput(MicroBatch.ANSWERS);
    }

    /** Outputs frames to results (main), dead letters ({@link #deadLetters}) and shadow results ({@link #shadows}). */
    public static SingleOutputStreamOperator<Tuple3<String, byte[], Boolean>> outputs(DataStream<byte[]> frames) {
        return frames.process(new Outputs(), RESULTS);
    }

    /** The dead letters of {@link #outputs}. */
    public static DataStream<Row> deadLetters(SingleOutputStreamOperator<Tuple3<String, byte[], Boolean>> outputs) {
        return outputs.getSideOutput(Outputs.DEAD_LETTERS);
    }

    /** The dead letters of {@link #outputs} and of the micro-batch (expired requests), as one stream. */
    public static DataStream<Row> deadLetters(SingleOutputStreamOperator<Tuple3<String, byte[], Boolean>> outputs,
                                              SingleOutputStreamOperator<byte[]> microBatch) {
        return outputs.getSideOutput(Outputs.DEAD_LETTERS).union(microBatch.getSideOutput(Outputs.DEAD_LETTERS));
    }

    /** {@link #dedup(DataStream, long)} of the outputs' results and the micro-batch's answers together. */
    public static SingleOutputStreamOperator<Row> dedup(
            DataStream<Tuple3<String, byte[], Boolean>> results, SingleOutputStreamOperator<byte[]> microBatch,
            long ttlSeconds) {
        return dedup(results.union(answers(microBatch)), ttlSeconds);
    }

    /** The shadow results of {@link #outputs}, as {@code Row(k, v)} for the shadow-results sink. */
    public static DataStream<Row> shadows(SingleOutputStreamOperator<Tuple3<String, byte[], Boolean>> outputs) {
        return outputs.getSideOutput(Outputs.SHADOWS);
    }

    /** Results keyed by request id to one result per id, as {@code Row(k, v)} for the results sink. */
    public static SingleOutputStreamOperator<Row> dedup(
            DataStream<Tuple3<String, byte[], Boolean>> results, long ttlSeconds) {
        return results.keyBy(new RequestIdKey(), Types.STRING).process(new Dedup(ttlSeconds), Dedup.RESULT_ROW);
    }

    static final class LaneKey implements KeySelector<Tuple4<Integer, Integer, Integer, byte[]>, Integer> {
        private static final long serialVersionUID = 1L;

        @Override
        public Integer getKey(Tuple4<Integer, Integer, Integer, byte[]> value) {
            return value.f0;
        }
    }

    static final class RequestIdKey implements KeySelector<Tuple3<String, byte[], Boolean>, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(Tuple3<String, byte[], Boolean> value) {
            return value.f0;
        }
    }
}
