package ai.aimass.flink;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.zip.CRC32;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * What serves a request: each model's last {@link #KEEP} route updates (from the control topic, by
 * way of the Python control step) and the rules of docs/CONTROL.md ("Which version serves a
 * request"). {@code aimass/control/} holds the same rules; both are checked against
 * {@code tests/vectors/routes.tsv} and {@code buckets.tsv}.
 *
 * <p>A request is resolved by the update in effect at its timestamp: the latest by {@code seq} whose
 * {@code effective_ms} is null or at most the timestamp, else the model's oldest kept update. So the
 * decision depends on the two logs only, not on when an update reached this subtask. An update that
 * takes effect at or before the newest request of its model already resolved here is late
 * ({@link #apply} says so; the caller counts it).
 *
 * <p>Route updates are produced by Python and trusted: a malformed one is a bug there and is refused
 * with an IllegalArgumentException. Not thread-safe (one per operator instance).
 */
public final class RoutingTable {
    /** Updates kept per model. */
    public static final int KEEP = 64;
    /** Split and shadow buckets: {@code crc32(prefix + id) mod BUCKETS}. */
    public static final int BUCKETS = 10_000;
    /** Models named in an unknown model's detail before {@code , ...}. */
    static final int LISTED_MODELS = 20;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final byte[] SPLIT_PREFIX = "split:".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] SHADOW_PREFIX = "shadow:".getBytes(StandardCharsets.US_ASCII);

    /**
     * How one request is routed.
     *
     * @param bucket the split bucket, -1 unless the rule is SPLIT
     * @param version the version that serves it ("" when none does)
     * @param alias the alias requested ("" unless the rule is ALIAS)
     * @param shadow the version that also runs it as a shadow ("" when none)
     * @param detail why nothing serves it ("" unless the rule is UNKNOWN)
     * @param maxBatchSize the serving version's flush count; null: the job's default
     * @param maxDelayMs the serving version's flush delay; null: the job's default
     */
    public record Resolution(Rule rule, int bucket, String version, String alias, String shadow, String detail,
                             Integer maxBatchSize, Integer maxDelayMs) {
        /** A record whose id, model or requested version cannot be read. */
        public static final Resolution NONE = new Resolution(Rule.NONE, -1, "", "", "", "", null, null);

        static Resolution unknown(String detail) {
            return new Resolution(Rule.UNKNOWN, -1, "", "", "", detail, null, null);
        }
    }

    /** A message of the control input: a route update or a ready marker. */
    public sealed interface Message permits Update, Ready {}

    /** The job's start marker: the control input has passed everything published before the job. */
    public record Ready(String token) implements Message {}

    /**
     * One route update of a model.
     *
     * @param effectiveMs null: effective for every request
     * @param route null: the model is not routed
     * @param json the update as received (kept, checkpointed and forwarded as is)
     */
    public record Update(long seq, String model, Long effectiveMs, RouteSpec route, String json) implements Message {}

    /** A model's route: deployed versions (in their order), default, aliases, split, shadow. */
    public static final class RouteSpec {
        final LinkedHashMap<String, Limits> versions;
        final String defaultVersion;
        final TreeMap<String, String> aliases;
        final String[] splitVersions;
        final int[] splitEnds;
        final String shadowVersion;
        final int shadowBuckets;
        final String listing;

        RouteSpec(LinkedHashMap<String, Limits> versions, String defaultVersion, TreeMap<String, String> aliases,
              String[] splitVersions, int[] splitEnds, String shadowVersion, int shadowBuckets) {
            this.versions = versions;
            this.defaultVersion = defaultVersion;
            this.aliases = aliases;
            this.splitVersions = splitVersions;
            this.splitEnds = splitEnds;
            this.shadowVersion = shadowVersion;
            this.shadowBuckets = shadowBuckets;
            this.listing = "; versions: " + list(versions.keySet()) + "; aliases: " + list(aliases.keySet());
        }

        private static String list(Iterable<String> names) {
            String joined = String.join(", ", names);
            return joined.isEmpty() ? "none" : joined;
        }
    }

    /** A version's batch limits from its metadata; null: the job's default. */
    record Limits(Integer maxBatchSize, Integer maxDelayMs) {}

    /** Each model's kept updates, oldest seq first. */
    private final Map<String, List<Update>> models = new HashMap<>();
    /** Per routed model, the newest request timestamp resolved (for late updates). */
    private final Map<String, Long> newestResolved = new HashMap<>();
    /** The detail's list of deployed models; null: to be computed. */
    private String deployed;

    // -- messages ------------------------------------------------------------------------------

    /** A control-input message from its UTF-8 JSON. */
    public static Message parse(byte[] json) {
        return parse(new String(json, StandardCharsets.UTF_8));
    }

    /** A control-input message from its JSON. */
    public static Message parse(String json) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("route update is not JSON: " + e.getOriginalMessage(), e);
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException("route update is not a JSON object: " + abbreviated(json));
        }
        String kind = text(node, "kind", false);
        if (kind.equals("ready")) {
            return new Ready(text(node, "token", false));
        }
        if (!kind.equals("route")) {
            throw new IllegalArgumentException("control message of unknown kind '" + kind + "'");
        }
        long seq = integer(node, "seq");
        String model = text(node, "model", false);
        JsonNode effective = node.get("effective_ms");
        Long effectiveMs = effective == null || effective.isNull() ? null : integer(node, "effective_ms");
        JsonNode route = node.get("route");
        return new Update(seq, model, effectiveMs, route == null || route.isNull() ? null : route(route), json);
    }

    private static RouteSpec route(JsonNode route) {
        if (!route.isObject()) {
            throw new IllegalArgumentException("route is not an object");
        }
        JsonNode versionsNode = object(route, "versions");
        LinkedHashMap<String, Limits> versions = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = versionsNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isObject()) {
                throw new IllegalArgumentException("version '" + e.getKey() + "' is not an object");
            }
            Long records = optionalInteger(e.getValue(), "max_batch_size");
            Long delay = optionalInteger(e.getValue(), "max_delay_ms");
            if ((records != null && (records < 1 || records > Integer.MAX_VALUE))
                    || (delay != null && (delay < 0 || delay > Integer.MAX_VALUE))) {
                throw new IllegalArgumentException("version '" + e.getKey() + "' has batch limits out of range");
            }
            versions.put(e.getKey(), new Limits(records == null ? null : records.intValue(),
                    delay == null ? null : delay.intValue()));
        }
        String defaultVersion = text(route, "default", true);
        TreeMap<String, String> aliases = new TreeMap<>();
        JsonNode aliasesNode = route.get("aliases");
        if (aliasesNode != null && !aliasesNode.isNull()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = object(route, "aliases").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isTextual()) {
                    throw new IllegalArgumentException("alias '" + e.getKey() + "' does not name a version");
                }
                aliases.put(e.getKey(), e.getValue().asText());
            }
        }
        JsonNode splitNode = route.get("split");
        List<String> splitVersions = new ArrayList<>();
        List<Integer> splitEnds = new ArrayList<>();
        if (splitNode != null && !splitNode.isNull()) {
            if (!splitNode.isArray()) {
                throw new IllegalArgumentException("split is not an array");
            }
            long end = 0;
            for (JsonNode entry : splitNode) {
                if (!entry.isArray() || entry.size() != 2 || !entry.get(0).isTextual()
                        || !entry.get(1).canConvertToLong() || !entry.get(1).isIntegralNumber()
                        || entry.get(1).asLong() < 0) {
                    throw new IllegalArgumentException("split entry is not [version, buckets]: " + entry);
                }
                end = Math.min(end + entry.get(1).asLong(), Integer.MAX_VALUE);
                splitVersions.add(entry.get(0).asText());
                splitEnds.add((int) end);
            }
        }
        String shadowVersion = null;
        int shadowBuckets = 0;
        JsonNode shadow = route.get("shadow");
        if (shadow != null && !shadow.isNull()) {
            if (!shadow.isObject()) {
                throw new IllegalArgumentException("shadow is not an object");
            }
            shadowVersion = text(shadow, "version", false);
            long buckets = integer(shadow, "buckets");
            if (buckets < 0 || buckets > BUCKETS) {
                throw new IllegalArgumentException("shadow buckets " + buckets + " not in [0, " + BUCKETS + "]");
            }
            shadowBuckets = (int) buckets;
        }
        return new RouteSpec(versions, defaultVersion, aliases, splitVersions.toArray(new String[0]),
                splitEnds.stream().mapToInt(Integer::intValue).toArray(), shadowVersion, shadowBuckets);
    }

    private static JsonNode object(JsonNode node, String field) {
        JsonNode value = node.get(field);
        if (value == null || !value.isObject()) {
            throw new IllegalArgumentException("'" + field + "' is not an object");
        }
        return value;
    }

    private static String text(JsonNode node, String field, boolean nullable) {
        JsonNode value = node.get(field);
        if (nullable && (value == null || value.isNull())) {
            return null;
        }
        if (value == null || !value.isTextual()) {
            throw new IllegalArgumentException("'" + field + "' is not a string");
        }
        return value.asText();
    }

    private static long integer(JsonNode node, String field) {
        Long value = optionalInteger(node, field);
        if (value == null) {
            throw new IllegalArgumentException("'" + field + "' is not an integer");
        }
        return value;
    }

    private static Long optionalInteger(JsonNode node, String field) {
        JsonNode value = node.get(field);
        if (value == null || value.isNull()) {
            return null;
        }
        if (!value.isIntegralNumber() || !value.canConvertToLong()) {
            throw new IllegalArgumentException("'" + field + "' is not an integer");
        }
        return value.asLong();
    }

    private static String abbreviated(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }

    // -- the table -------------------------------------------------------------------------------

    /**
     * Keeps {@code update} among its model's updates (replacing one of the same seq; the oldest
     * leaves past {@link #KEEP}).
     *
     * @return whether it is late: it takes effect at or before the newest request of its model
     *     already resolved here, so that request was routed without it
     */
    public boolean apply(Update update) {
        List<Update> kept = models.computeIfAbsent(update.model(), m -> new ArrayList<>());
        int i = kept.size();
        while (i > 0 && kept.get(i - 1).seq() > update.seq()) {
            i--;
        }
        if (i > 0 && kept.get(i - 1).seq() == update.seq()) {
            kept.set(i - 1, update);
        } else {
            kept.add(i, update);
        }
        while (kept.size() > KEEP) {
            kept.remove(0);
        }
        deployed = null;
        Long newest = newestResolved.get(update.model());
        return update.effectiveMs() != null && newest != null && update.effectiveMs() <= newest;
    }

    /** Applies the update or refuses the message (a ready marker is not an update). */
    public boolean apply(String json) {
        if (!(parse(json) instanceof Update update)) {
            throw new IllegalArgumentException("not a route update: " + abbreviated(json));
        }
        return apply(update);
    }

    /** Models with kept updates. */
    public int size() {
        return models.size();
    }

    /** Each model's kept updates, oldest seq first (models in name order). */
    public Map<String, List<Update>> updates() {
        Map<String, List<Update>> out = new TreeMap<>();
        models.forEach((model, kept) -> out.put(model, Collections.unmodifiableList(kept)));
        return out;
    }

    /** The newest request timestamp of {@code model} resolved here; null when none was. */
    public Long newestResolved(String model) {
        return newestResolved.get(model);
    }

    /**
     * How the request {@code id[offset, offset + length)} for {@code model} (asking for
     * {@code requested}, null for none) stamped {@code timestampMs} is served.
     */
    public Resolution resolve(String model, String requested, byte[] id, int offset, int length, long timestampMs) {
        List<Update> kept = models.get(model);
        if (kept == null) {
            return Resolution.unknown("model " + repr(model) + " is not deployed; deployed models: " + deployed());
        }
        newestResolved.merge(model, timestampMs, Math::max);
        Update update = inEffect(kept, timestampMs);
        RouteSpec route = update.route();
        if (route == null) {
            return Resolution.unknown("model " + repr(model) + " has no deployed version");
        }
        Rule rule;
        String version;
        String alias = "";
        int bucket = -1;
        if (requested != null) {
            if (route.versions.containsKey(requested)) {
                rule = Rule.PINNED;
                version = requested;
            } else if (route.aliases.containsKey(requested)) {
                rule = Rule.ALIAS;
                version = route.aliases.get(requested);
                alias = requested;
            } else {
                return Resolution.unknown(
                        "model " + repr(model) + " has no version or alias " + repr(requested) + route.listing);
            }
        } else {
            version = null;
            rule = null;
            if (route.splitVersions.length > 0) {
                int b = splitBucket(id, offset, length);
                for (int i = 0; i < route.splitVersions.length; i++) {
                    if (b < route.splitEnds[i]) {
                        rule = Rule.SPLIT;
                        version = route.splitVersions[i];
                        bucket = b;
                        break;
                    }
                }
            }
            if (rule == null && route.splitVersions.length > 0) {
                // The buckets of a split always add up to 10000; a split that does not cover this
                // bucket serves nothing rather than falling back (as aimass/control/routing.py).
                return Resolution.unknown("model " + repr(model) + " has no serving version");
            }
            if (rule == null) {
                if (route.defaultVersion == null) {
                    return Resolution.unknown("model " + repr(model) + " has no serving version");
                }
                rule = Rule.DEFAULT;
                version = route.defaultVersion;
            }
        }
        String shadow = "";
        if (route.shadowVersion != null && !route.shadowVersion.equals(version)
                && shadowBucket(id, offset, length) < route.shadowBuckets) {
            shadow = route.shadowVersion;
        }
        Limits limits = route.versions.get(version);
        return new Resolution(rule, bucket, version, alias, shadow, "",
                limits == null ? null : limits.maxBatchSize(), limits == null ? null : limits.maxDelayMs());
    }

    /** The update in effect at {@code timestampMs}: the latest by seq effective by then, else the oldest. */
    private static Update inEffect(List<Update> kept, long timestampMs) {
        for (int i = kept.size() - 1; i >= 0; i--) {
            Long effective = kept.get(i).effectiveMs();
            if (effective == null || effective <= timestampMs) {
                return kept.get(i);
            }
        }
        return kept.get(0);
    }

    /** Models whose latest update routes them, in name order, for an unknown model's detail. */
    private String deployed() {
        if (deployed == null) {
            TreeSet<String> names = new TreeSet<>();
            models.forEach((model, kept) -> {
                if (kept.get(kept.size() - 1).route() != null) {
                    names.add(model);
                }
            });
            StringBuilder out = new StringBuilder();
            int listed = 0;
            for (String name : names) {
                if (listed == LISTED_MODELS) {
                    out.append(", ...");
                    break;
                }
                out.append(listed == 0 ? "" : ", ").append(name);
                listed++;
            }
            deployed = listed == 0 ? "none" : out.toString();
        }
        return deployed;
    }

    /**
     * A string as Python's {@code repr} writes it (the details are Python's f-strings with
     * {@code !r}): single quotes unless it holds a single quote and no double one; backslash, the
     * quote, tab, newline and return escaped; other characters that are not printable as
     * {@code \\xhh}, {@code \\uhhhh} or {@code \\Uhhhhhhhh}. Plain names are just quoted.
     */
    static String repr(String s) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        StringBuilder out = new StringBuilder(s.length() + 2).append(quote);
        s.codePoints().forEach(c -> {
            if (c == quote || c == '\\') {
                out.append('\\').appendCodePoint(c);
            } else if (c == '\t') {
                out.append("\\t");
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c < ' ' || c == 0x7F) {
                out.append(String.format("\\x%02x", c));
            } else if (c < 0x7F || printable(c)) {
                out.appendCodePoint(c);
            } else if (c <= 0xFF) {
                out.append(String.format("\\x%02x", c));
            } else if (c <= 0xFFFF) {
                out.append(String.format("\\u%04x", c));
            } else {
                out.append(String.format("\\U%08x", c));
            }
        });
        return out.append(quote).toString();
    }

    /** Python's {@code str.isprintable} of one non-ASCII character. */
    private static boolean printable(int c) {
        switch (Character.getType(c)) {
            case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE,
                    Character.UNASSIGNED, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
                    Character.SPACE_SEPARATOR -> {
                return false;
            }
            default -> {
                return true;
            }
        }
    }

    // -- buckets ---------------------------------------------------------------------------------

    /** The split bucket of an id: {@code crc32("split:" + id) mod 10000}. */
    public static int splitBucket(byte[] id, int offset, int length) {
        return bucket(SPLIT_PREFIX, id, offset, length);
    }

    /** The shadow bucket of an id: {@code crc32("shadow:" + id) mod 10000}. */
    public static int shadowBucket(byte[] id, int offset, int length) {
        return bucket(SHADOW_PREFIX, id, offset, length);
    }

    private static int bucket(byte[] prefix, byte[] id, int offset, int length) {
        CRC32 crc = new CRC32();
        crc.update(prefix);
        crc.update(id, offset, length);
        return (int) (crc.getValue() % BUCKETS);
    }
}
