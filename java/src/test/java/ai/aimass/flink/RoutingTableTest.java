package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class RoutingTableTest {
    /** A route update's JSON; {@code route} is JSON text or null. */
    static String update(long seq, String model, Long effectiveMs, String route) {
        return "{\"kind\":\"route\",\"seq\":" + seq + ",\"model\":\"" + model + "\",\"effective_ms\":"
                + (effectiveMs == null ? "null" : effectiveMs) + ",\"route\":" + (route == null ? "null" : route) + "}";
    }

    /** A route's JSON: versions (each "v" or "v:records:delay"), default, aliases, split, shadow as JSON. */
    static String route(List<String> versions, String defaultVersion, String aliases, String split, String shadow) {
        String vs = versions.stream().map(v -> {
            String[] p = v.split(":");
            String records = p.length > 1 ? p[1] : "null";
            String delay = p.length > 2 ? p[2] : "null";
            return "\"" + p[0] + "\":{\"max_batch_size\":" + records + ",\"max_delay_ms\":" + delay
                    + ",\"serving\":true,\"uri\":\"file:///m/" + p[0] + "\",\"sha256\":\"00\",\"size_bytes\":1,"
                    + "\"metadata\":{\"inputs\":[]}}";
        }).collect(Collectors.joining(","));
        return "{\"versions\":{" + vs + "},\"default\":" + (defaultVersion == null ? "null" : "\"" + defaultVersion + "\"")
                + ",\"aliases\":" + aliases + ",\"split\":" + split + ",\"shadow\":" + shadow + "}";
    }

    static String simple(String... versions) {
        return route(List.of(versions), versions[versions.length - 1], "{}", "[]", "null");
    }

    private static RoutingTable.Resolution resolve(RoutingTable table, String model, String requested, String id,
                                                   long ts) {
        byte[] b = id.getBytes(StandardCharsets.UTF_8);
        return table.resolve(model, requested, b, 0, b.length, ts);
    }

    private static int split(String id) {
        byte[] b = id.getBytes(StandardCharsets.UTF_8);
        return RoutingTable.splitBucket(b, 0, b.length);
    }

    private static int shadow(String id) {
        byte[] b = id.getBytes(StandardCharsets.UTF_8);
        return RoutingTable.shadowBucket(b, 0, b.length);
    }

    @Test
    void eachRuleServesByTheDocumentedOrder() {
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", null, route(List.of("1:16:5", "2", "stable"), "1",
                "{\"stable\":\"2\",\"canary\":\"2\"}", "[]", "null")));
        var pinned = resolve(table, "m", "1", "a", 0);
        assertEquals(new RoutingTable.Resolution(Rule.PINNED, -1, "1", "", "", "", 16, 5), pinned);
        // A version named like an alias is the version (rule 1 before rule 2).
        assertEquals(Rule.PINNED, resolve(table, "m", "stable", "a", 0).rule());
        assertEquals("stable", resolve(table, "m", "stable", "a", 0).version());
        var alias = resolve(table, "m", "canary", "a", 0);
        assertEquals(new RoutingTable.Resolution(Rule.ALIAS, -1, "2", "canary", "", "", null, null), alias);
        var dflt = resolve(table, "m", null, "a", 0);
        assertEquals(new RoutingTable.Resolution(Rule.DEFAULT, -1, "1", "", "", "", 16, 5), dflt);
        var unknown = resolve(table, "m", "9", "a", 0);
        assertEquals(Rule.UNKNOWN, unknown.rule());
        assertEquals("model 'm' has no version or alias '9'; versions: 1, 2, stable; aliases: canary, stable",
                unknown.detail());
        assertEquals("", unknown.version());
        assertEquals(-1, unknown.bucket());
        assertNull(unknown.maxBatchSize());
    }

    @Test
    void aSplitOwnsConsecutiveBucketRangesInItsOrder() {
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", null, route(List.of("1", "2", "3"), "3", "{}",
                "[[\"2\",3000],[\"1\",2000],[\"3\",5000]]", "null")));
        for (int i = 0; i < 200; i++) {
            String id = "req-" + i;
            int b = split(id);
            var r = resolve(table, "m", null, id, 0);
            assertEquals(Rule.SPLIT, r.rule());
            assertEquals(b, r.bucket());
            assertEquals(b < 3000 ? "2" : b < 5000 ? "1" : "3", r.version(), id);
        }
        // A requested version is not split.
        assertEquals(Rule.PINNED, resolve(table, "m", "1", "req-0", 0).rule());
        assertEquals(-1, resolve(table, "m", "1", "req-0", 0).bucket());
    }

    @Test
    void aShadowRunsItsFractionUnlessItIsTheChosenVersion() {
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", null, route(List.of("1", "2", "3"), "1", "{\"c\":\"3\"}", "[]",
                "{\"version\":\"3\",\"buckets\":4000}")));
        int shadowed = 0;
        for (int i = 0; i < 500; i++) {
            String id = "id-" + i;
            var r = resolve(table, "m", null, id, 0);
            assertEquals(shadow(id) < 4000 ? "3" : "", r.shadow(), id);
            shadowed += r.shadow().isEmpty() ? 0 : 1;
            assertEquals("", resolve(table, "m", "3", id, 0).shadow());  // 3 serves it already
            assertEquals("", resolve(table, "m", "c", id, 0).shadow());  // so does the alias's 3
            assertEquals("", resolve(table, "m", "x", id, 0).shadow());  // nothing serves it
        }
        assertEquals(200, shadowed, 40);
    }

    @Test
    void theRouteInEffectAtTheTimestampDecidesAndTheOldestOneBeforeAll() {
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", 500L, simple("1")));
        table.apply(update(2, "m", 1000L, simple("1", "2")));
        table.apply(update(3, "m", 3000L, simple("1", "2", "3")));
        table.apply(update(4, "m", 2000L, simple("1", "2", "4")));  // a later seq may take effect earlier
        assertEquals("1", resolve(table, "m", null, "a", 0).version());     // before all: the oldest
        assertEquals("1", resolve(table, "m", null, "a", 999).version());
        assertEquals("2", resolve(table, "m", null, "a", 1000).version());
        assertEquals("4", resolve(table, "m", null, "a", 2000).version());
        assertEquals("4", resolve(table, "m", null, "a", 5000).version());  // seq 4 beats seq 3
        table.apply(update(5, "m", null, simple("5")));
        assertEquals("5", resolve(table, "m", null, "a", 0).version());     // null: from the start
    }

    @Test
    void aModelKeepsItsLast64Updates() {
        RoutingTable table = new RoutingTable();
        for (int seq = 1; seq <= 70; seq++) {
            table.apply(update(seq, "m", seq * 100L, simple("v" + seq)));
        }
        List<RoutingTable.Update> kept = table.updates().get("m");
        assertEquals(RoutingTable.KEEP, kept.size());
        assertEquals(7, kept.get(0).seq());
        assertEquals(70, kept.get(63).seq());
        assertEquals("v7", resolve(table, "m", null, "a", 0).version());     // the oldest kept
        assertEquals("v7", resolve(table, "m", null, "a", 650).version());
        assertEquals("v8", resolve(table, "m", null, "a", 800).version());
        // The same seq again replaces it; an older one than all kept is dropped at once.
        table.apply(update(70, "m", 7000L, simple("again")));
        table.apply(update(3, "m", null, simple("old")));
        assertEquals(RoutingTable.KEEP, table.updates().get("m").size());
        assertEquals("again", resolve(table, "m", null, "a", 10_000).version());
        assertEquals("v7", resolve(table, "m", null, "a", 0).version());
    }

    @Test
    void anUpdateEffectiveAtOrBeforeARoutedRequestIsLate() {
        RoutingTable table = new RoutingTable();
        assertFalse(table.apply(update(1, "m", 100L, simple("1"))));  // nothing routed yet
        resolve(table, "m", null, "a", 5000);
        resolve(table, "m", null, "a", 4000);
        resolve(table, "n", null, "a", 9000);  // another model's requests do not count
        assertEquals(5000L, table.newestResolved("m"));
        assertTrue(table.apply(update(2, "m", 5000L, simple("1", "2"))));
        assertTrue(table.apply(update(3, "m", 4999L, simple("1", "2"))));
        assertFalse(table.apply(update(4, "m", 5001L, simple("1", "2"))));
        assertFalse(table.apply(update(5, "m", null, simple("1", "2"))));  // from the start: never late
        assertFalse(table.apply(update(6, "n", 1L, simple("1"))));         // n was unknown: nothing routed by it
    }

    @Test
    void unknownModelsAndVersionsSayWhatExists() {
        RoutingTable table = new RoutingTable();
        assertEquals("model 'x' is not deployed; deployed models: none", resolve(table, "x", null, "a", 0).detail());
        table.apply(update(1, "b", null, simple("1")));
        table.apply(update(2, "a", null, simple("1")));
        table.apply(update(3, "gone", null, simple("1")));
        table.apply(update(4, "gone", 99_999L, null));  // its latest update unroutes it
        var unknown = resolve(table, "x", "1", "a", 0);
        assertEquals(new RoutingTable.Resolution(Rule.UNKNOWN, -1, "", "", "", "model 'x' is not deployed; deployed models: a, b",
                null, null), unknown);
        assertEquals("1", resolve(table, "gone", null, "a", 0).version());  // before the retirement takes effect
        assertEquals("model 'gone' has no deployed version", resolve(table, "gone", null, "a", 99_999).detail());
        table.apply(update(5, "s", null, route(List.of("1"), null, "{}", "[]", "null")));
        assertEquals("model 's' has no serving version", resolve(table, "s", null, "a", 0).detail());
        assertEquals("model 's' has no version or alias 'z'; versions: 1; aliases: none",
                resolve(table, "s", "z", "a", 0).detail());
        table.apply(update(6, "e", null, route(List.of(), null, "{}", "[]", "null")));
        assertEquals("model 'e' has no version or alias 'z'; versions: none; aliases: none",
                resolve(table, "e", "z", "a", 0).detail());

        RoutingTable many = new RoutingTable();
        for (int i = 0; i < 25; i++) {
            many.apply(update(i + 1, String.format("m%02d", i), null, simple("1")));
        }
        String first20 = IntStream.range(0, 20).mapToObj(i -> String.format("m%02d", i)).collect(Collectors.joining(", "));
        assertEquals("model 'x' is not deployed; deployed models: " + first20 + ", ...",
                resolve(many, "x", null, "a", 0).detail());
    }

    @Test
    void detailsQuoteAsPythonsReprDoes() {
        assertEquals("'m'", RoutingTable.repr("m"));
        assertEquals("\"it's\"", RoutingTable.repr("it's"));
        assertEquals("'both \\' and \"'", RoutingTable.repr("both ' and \""));
        assertEquals("'a\\\\b\\t\\n\\r\\x00\\x7f'", RoutingTable.repr("a\\b\t\n\r\u0000\u007f"));
        assertEquals("'ü-ß-日本 \\xa0\\xad\\u200b\\u2028😀'", RoutingTable.repr("ü-ß-日本 \u00a0\u00ad\u200b\u2028😀"));
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", null, simple("1")));
        assertEquals("model 'm' has no version or alias \"v'1\"; versions: 1; aliases: none",
                resolve(table, "m", "v'1", "a", 0).detail());
    }

    @Test
    void aSplitThatMissesTheBucketServesNothing() {
        RoutingTable table = new RoutingTable();
        table.apply(update(1, "m", null, route(List.of("1"), "1", "{}", "[[\"1\",0]]", "null")));
        assertEquals("model 'm' has no serving version", resolve(table, "m", null, "a", 0).detail());
    }

    @Test
    void readyMarkersAreNotUpdatesAndMalformedUpdatesAreRefused() {
        RoutingTable.Message ready = RoutingTable.parse("{\"kind\":\"ready\",\"token\":\"t-1\"}");
        assertEquals(new RoutingTable.Ready("t-1"), ready);
        RoutingTable.Message update = RoutingTable.parse(update(3, "m", 7L, simple("1")).getBytes(StandardCharsets.UTF_8));
        RoutingTable.Update u = assertInstanceOf(RoutingTable.Update.class, update);
        assertEquals(3, u.seq());
        assertEquals(7L, u.effectiveMs());
        assertEquals(update(3, "m", 7L, simple("1")), u.json());
        RoutingTable table = new RoutingTable();
        List<String> bad = new ArrayList<>(List.of("", "[]", "{", "{\"kind\":\"other\"}", "{\"kind\":\"ready\"}",
                "{\"kind\":\"route\",\"seq\":\"1\",\"model\":\"m\",\"route\":null}",
                "{\"kind\":\"route\",\"seq\":1,\"model\":\"m\",\"effective_ms\":1.5,\"route\":null}",
                update(1, "m", null, "{\"versions\":[]}"),
                update(1, "m", null, "{\"versions\":{},\"split\":[[\"1\"]]}"),
                update(1, "m", null, "{\"versions\":{},\"shadow\":{\"version\":\"1\",\"buckets\":10001}}"),
                update(1, "m", null, "{\"versions\":{\"1\":{\"max_batch_size\":0}}}"),
                "{\"kind\":\"ready\",\"token\":\"t\"}"));
        for (String json : bad) {
            assertThrows(IllegalArgumentException.class, () -> table.apply(json), json);
        }
        assertEquals(0, table.size());
    }
}
