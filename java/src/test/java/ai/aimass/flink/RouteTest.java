package ai.aimass.flink;

import static ai.aimass.flink.RoutingTableTest.route;
import static ai.aimass.flink.RoutingTableTest.update;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.TwoInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

class RouteTest {
    private static final Lanes LANES = new Lanes(4, 128);
    private static final String TOKEN = "job-1";
    private static final String READY = "{\"kind\":\"ready\",\"token\":\"" + TOKEN + "\"}";
    /** m: version 1 (flush at 16 records or 7 ms) and 2 (job defaults), 1 the default, alias canary = 2. */
    private static final String M = update(1, "m", null,
            route(List.of("1:16:7", "2"), "1", "{\"canary\":\"2\"}", "[]", "null"));
    /** m from 5000 on: 2 the default. */
    private static final String M_LATER = update(2, "m", 5000L,
            route(List.of("1:16:7", "2"), "2", "{\"canary\":\"2\"}", "[]", "null"));

    private static final class Harness {
        final Route route;
        final TwoInputStreamOperatorTestHarness<Row, byte[], Tuple4<Integer, Integer, Integer, byte[]>> h;
        int seen;

        Harness(String token, OperatorSubtaskState restore, int parallelism, int subtask) throws Exception {
            this(token, restore, parallelism, subtask, false);
        }

        Harness(String token, OperatorSubtaskState restore, int parallelism, int subtask, boolean waitAfterRestore)
                throws Exception {
            route = new Route(Requests.peek(), LANES, 8, 50, token, waitAfterRestore);
            h = new TwoInputStreamOperatorTestHarness<>(route, 128, parallelism, subtask);
            h.setup();
            if (restore != null) {
                h.initializeState(restore);
            }
            h.open();
        }

        Harness(String token) throws Exception {
            this(token, null, 1, 0);
        }

        void request(String id, String model, String version, long offset, Object timestamp) throws Exception {
            h.processElement1(new StreamRecord<>(Row.of(Requests.request(id, model, version), "requests", 0, offset,
                    timestamp)));
        }

        void control(String json) throws Exception {
            h.processElement2(new StreamRecord<>(json.getBytes(StandardCharsets.UTF_8)));
        }

        /** What was emitted since the last call. */
        List<Tuple4<Integer, Integer, Integer, byte[]>> emitted() {
            List<Tuple4<Integer, Integer, Integer, byte[]>> out = new ArrayList<>();
            int i = 0;
            for (Object o : h.getOutput()) {
                if (o instanceof StreamRecord<?> r && i++ >= seen) {
                    @SuppressWarnings("unchecked")
                    Tuple4<Integer, Integer, Integer, byte[]> t = (Tuple4<Integer, Integer, Integer, byte[]>) r.getValue();
                    out.add(t);
                }
            }
            seen += out.size();
            return out;
        }

        OperatorSubtaskState snapshot() throws Exception {
            OperatorSubtaskState state = h.snapshot(1, 1);
            h.close();
            return state;
        }
    }

    private static Frames.Record record(Tuple4<Integer, Integer, Integer, byte[]> routed) {
        return Frames.records(Frames.batch(List.of(routed.f3))).get(0);
    }

    private static String requestId(Frames.Record r) {
        RequestPeek.Span id;
        try {
            id = Requests.peek().id(r.value());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        return new String(r.value(), id.start(), id.length(), StandardCharsets.UTF_8);
    }

    private static int laneKey(String id) {
        byte[] b = id.getBytes(StandardCharsets.UTF_8);
        return LANES.key(LANES.laneOf(b, 0, b.length));
    }

    /** The emitted records are {@code update} to every lane, flushed at once. */
    private static void assertControl(List<Tuple4<Integer, Integer, Integer, byte[]>> emitted, String... updates) {
        assertEquals(updates.length * LANES.count(), emitted.size());
        for (int u = 0; u < updates.length; u++) {
            for (int lane = 0; lane < LANES.count(); lane++) {
                Tuple4<Integer, Integer, Integer, byte[]> t = emitted.get(u * LANES.count() + lane);
                assertEquals(LANES.key(lane), t.f0);
                assertEquals(1, t.f1);
                assertEquals(0, t.f2);
                Frames.Record r = record(t);
                assertEquals(Rule.CONTROL, r.rule());
                assertEquals(-1, r.offset());
                assertEquals("", r.topic());
                assertEquals(updates[u], new String(r.value(), StandardCharsets.UTF_8));
            }
        }
    }

    @Test
    void requestsWaitForTheStartMarkerAndKeepTheirOrder() throws Exception {
        Harness h = new Harness(TOKEN);
        h.h.setProcessingTime(100);
        h.request("a", "m", null, 1, Instant.ofEpochMilli(1000));
        h.request("b", "m", "canary", 2, Instant.ofEpochMilli(6000));
        assertTrue(h.emitted().isEmpty());
        h.control(M);
        h.control(M_LATER);
        assertControl(h.emitted(), M, M_LATER);  // forwarded at once, requests still held
        h.control("{\"kind\":\"ready\",\"token\":\"another-job\"}");
        assertTrue(h.emitted().isEmpty());
        h.h.setProcessingTime(200);
        h.control(READY);
        List<Tuple4<Integer, Integer, Integer, byte[]>> routed = h.emitted();
        assertEquals(2, routed.size());
        Frames.Record a = record(routed.get(0));
        assertEquals("a", requestId(a));
        assertEquals(List.of(Rule.DEFAULT, "1", "", -1), List.of(a.rule(), a.version(), a.alias(), a.bucket()));
        assertEquals(100, a.receivedMs());  // when it arrived, not when it was released
        assertEquals(laneKey("a"), routed.get(0).f0);
        assertEquals(16, routed.get(0).f1);  // version 1's limits
        assertEquals(7, routed.get(0).f2);
        Frames.Record b = record(routed.get(1));
        assertEquals(List.of(Rule.ALIAS, "2", "canary"), List.of(b.rule(), b.version(), b.alias()));
        assertEquals(8, routed.get(1).f1);  // version 2 sets none: the job's defaults
        assertEquals(50, routed.get(1).f2);
        // Ready now: routed as they come.
        h.request("c", "m", "1", 3, Instant.ofEpochMilli(6000));
        assertEquals(Rule.PINNED, record(h.emitted().get(0)).rule());
        assertTrue(h.route.ready());
    }

    @Test
    void eachRecordIsRoutedByTheRouteInEffectAtItsTimestamp() throws Exception {
        Harness h = new Harness("");  // no token: ready from the start
        h.control(M);
        h.control(M_LATER);
        h.emitted();
        h.h.setProcessingTime(7000);
        h.request("i", "m", null, 1, Instant.ofEpochMilli(4999));
        h.request("l", "m", null, 2, LocalDateTime.ofEpochSecond(5, 0, ZoneOffset.UTC));  // 5000, as UTC
        h.request("e", "m", null, 3, 4000L);
        h.request("n", "m", null, 4, null);  // no timestamp: the processing time
        h.h.processElement1(new StreamRecord<>(Row.of(Requests.request("s", "m", null), "requests", 0, 5L), 100));
        List<String> versions = h.emitted().stream().map(t -> record(t).version()).collect(Collectors.toList());
        assertEquals(List.of("1", "2", "1", "2", "1"), versions);  // the last: its stream timestamp
    }

    @Test
    void unreadableAndUnknownRecordsGoOnWithTheirRule() throws Exception {
        Harness h = new Harness("");
        h.control(M);
        h.emitted();
        h.h.processElement1(new StreamRecord<>(Row.of(new byte[] {1, 2, 3}, "requests", 2, 10L, Instant.EPOCH)));
        h.request("u", "nope", null, 11, Instant.EPOCH);
        h.request("v", "m", "9", 12, Instant.EPOCH);
        h.h.processElement1(new StreamRecord<>(Row.of(
                Requests.raw(Requests.avro("w"), Requests.avro("m"), new byte[] {4}), "requests", 0, 13L)));
        h.h.processElement1(new StreamRecord<>(Row.of(null, null, null, null, "not a time")));  // never throws
        h.h.processElement1(new StreamRecord<>(Row.of()));
        List<Tuple4<Integer, Integer, Integer, byte[]>> out = h.emitted();
        assertEquals(6, out.size());
        Frames.Record garbage = record(out.get(0));
        assertEquals(Rule.NONE, garbage.rule());
        assertEquals(LANES.key(LANES.laneOfPosition(2, 10)), out.get(0).f0);  // no id: by position
        assertEquals(8, out.get(0).f1);
        assertEquals(50, out.get(0).f2);
        assertArrayEquals(new byte[] {1, 2, 3}, garbage.value());
        assertEquals(List.of(2, 10L, "requests"), List.of(garbage.partition(), garbage.offset(), garbage.topic()));
        Frames.Record unknownModel = record(out.get(1));
        assertEquals(Rule.UNKNOWN, unknownModel.rule());
        assertEquals("model 'nope' is not deployed; deployed models: m", unknownModel.detail());
        assertEquals(laneKey("u"), out.get(1).f0);
        assertEquals(8, out.get(1).f1);
        Frames.Record unknownVersion = record(out.get(2));
        assertEquals("model 'm' has no version or alias '9'; versions: 1, 2; aliases: canary", unknownVersion.detail());
        Frames.Record badVersion = record(out.get(3));
        assertEquals(Rule.NONE, badVersion.rule());
        assertEquals(laneKey("w"), out.get(3).f0);  // an id: its lane
        assertEquals(Rule.NONE, record(out.get(4)).rule());
        assertEquals(Rule.NONE, record(out.get(5)).rule());
    }

    @Test
    void splitsAndShadowsTravelInTheRecord() throws Exception {
        Harness h = new Harness("");
        String split = update(1, "m", null, route(List.of("1", "2", "3"), "1", "{}", "[[\"1\",5000],[\"2\",5000]]",
                "{\"version\":\"3\",\"buckets\":10000}"));
        h.control(split);
        h.emitted();
        h.request("req-42", "m", null, 1, Instant.EPOCH);
        Frames.Record r = record(h.emitted().get(0));
        byte[] id = "req-42".getBytes(StandardCharsets.UTF_8);
        int bucket = RoutingTable.splitBucket(id, 0, id.length);
        assertEquals(List.of(Rule.SPLIT, bucket < 5000 ? "1" : "2", bucket, "3", ""),
                List.of(r.rule(), r.version(), r.bucket(), r.shadow(), r.detail()));
    }

    @Test
    void aRestoreKeepsTheRoutesAndTheStartAndTellsEveryLaneFirst() throws Exception {
        Harness h = new Harness(TOKEN);
        h.control(M);
        h.control(update(1, "n", null, route(List.of("7"), "7", "{}", "[]", "null")));
        h.control(M_LATER);
        h.control(READY);
        h.request("a", "m", null, 1, Instant.ofEpochMilli(6000));
        h.emitted();
        OperatorSubtaskState state = h.snapshot();

        Harness r = new Harness(TOKEN, state, 1, 0);
        // Before anything else: every kept update, oldest seq first per model, to every lane.
        List<Tuple4<Integer, Integer, Integer, byte[]>> first = r.emitted();
        String n = update(1, "n", null, route(List.of("7"), "7", "{}", "[]", "null"));
        assertControl(first, M, M_LATER, n);
        // Still ready (no marker again), still routing by the same table.
        r.request("b", "m", null, 2, Instant.ofEpochMilli(6000));
        r.request("c", "n", null, 3, Instant.ofEpochMilli(0));
        List<String> versions = r.emitted().stream().map(t -> record(t).version()).collect(Collectors.toList());
        assertEquals(List.of("2", "7"), versions);
    }

    @Test
    void afterARestoreRequestsWaitForARestoreMarkerSoLaterCommandsComeFirst() throws Exception {
        Harness h = new Harness(TOKEN, null, 1, 0, true);
        h.control(M);
        h.control(READY);
        OperatorSubtaskState state = h.snapshot();

        Harness r = new Harness(TOKEN, state, 1, 0, true);
        r.emitted();  // the kept updates, to every lane
        r.request("b", "m", null, 2, Instant.ofEpochMilli(6000));
        assertEquals(List.of(), r.emitted());  // held: a command after the checkpoint may be on its way
        r.control(READY);  // the submit's marker again (replayed): not this attempt's restore marker
        assertEquals(List.of(), r.emitted());
        OperatorSubtaskState waiting = r.snapshot();
        r.control(M_LATER);  // replayed after the checkpoint, before the restore marker
        r.control("{\"kind\":\"ready\",\"token\":\"restore/x/1\"}");
        List<String> versions = r.emitted().stream().filter(t -> record(t).rule() != Rule.CONTROL)
                .map(t -> record(t).version()).collect(Collectors.toList());
        assertEquals(List.of("2"), versions);  // routed by the update that came before the marker
        assertTrue(r.route.ready());

        Harness again = new Harness(TOKEN, waiting, 1, 0, true);  // a checkpoint taken while waiting
        again.emitted();
        again.request("c", "m", null, 3, Instant.ofEpochMilli(6000));
        assertEquals(List.of(), again.emitted());
        again.control("{\"kind\":\"ready\",\"token\":\"restore/x/2\"}");
        assertEquals(List.of("b", "c"), again.emitted().stream().map(t -> requestId(record(t)))
                .collect(Collectors.toList()));  // the one held at that checkpoint, then the new one
    }

    @Test
    void heldRecordsSurviveARestoreAndARescale() throws Exception {
        Harness h = new Harness(TOKEN);
        h.control(M);
        for (int i = 0; i < 6; i++) {
            h.request("id-" + i, "m", null, i, Instant.ofEpochMilli(1000));
        }
        h.emitted();
        OperatorSubtaskState state = h.snapshot();

        int routed = 0;
        for (int subtask = 0; subtask < 2; subtask++) {
            OperatorSubtaskState part = AbstractStreamOperatorTestHarness.repartitionOperatorState(state, 128, 1, 2,
                    subtask);
            Harness r = new Harness(TOKEN, part, 2, subtask);
            assertControl(r.emitted(), M);  // every subtask has the whole table
            assertFalse(r.route.ready());
            r.request("late", "m", null, 99, Instant.ofEpochMilli(1000));
            assertTrue(r.emitted().isEmpty());
            r.control(READY);
            List<Tuple4<Integer, Integer, Integer, byte[]>> out = r.emitted();
            assertTrue(out.size() >= 2, "subtask " + subtask + " got none of the held records");
            assertEquals("late", requestId(record(out.get(out.size() - 1))));  // after the restored ones
            for (Tuple4<Integer, Integer, Integer, byte[]> t : out) {
                assertEquals(Rule.DEFAULT, record(t).rule());
            }
            routed += out.size() - 1;
        }
        assertEquals(6, routed);
    }

    @Test
    void theEndOfTheControlInputStartsRouting() throws Exception {
        Harness h = new Harness(TOKEN);
        h.control(M);
        h.emitted();
        h.request("a", "m", null, 1, Instant.EPOCH);
        h.h.endInput1();  // the requests end first: still held
        assertTrue(h.emitted().isEmpty());
        h.h.endInput2();
        List<Tuple4<Integer, Integer, Integer, byte[]>> out = h.emitted();
        assertEquals(1, out.size());
        assertEquals(Rule.DEFAULT, record(out.get(0)).rule());
    }

    @Test
    void lateUpdatesAreCounted() throws Exception {
        Harness h = new Harness("");
        h.control(M);
        h.request("a", "m", null, 1, Instant.ofEpochMilli(6000));
        assertEquals(0, h.route.lateUpdates());
        h.control(M_LATER);  // effective at 5000, after a request stamped 6000 was routed
        assertEquals(1, h.route.lateUpdates());
        h.control(update(3, "m", 6001L, route(List.of("1"), "1", "{}", "[]", "null")));
        assertEquals(1, h.route.lateUpdates());
    }
}
