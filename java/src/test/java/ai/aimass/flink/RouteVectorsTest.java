package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** {@link RoutingTable} against the resolutions and buckets Python computes (tests/vectors/). */
class RouteVectorsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static String dash(String s) {
        return s == null || s.isEmpty() ? "-" : s;
    }

    @Test
    void bucketsMatchThePythonVectors() throws Exception {
        List<String[]> rows = Vectors.rows("buckets.tsv");
        assertTrue(rows.size() >= 5, "buckets.tsv has " + rows.size() + " rows");
        for (String[] row : rows) {
            byte[] id = row[0].getBytes(StandardCharsets.UTF_8);
            assertEquals(Integer.parseInt(row[1]), RoutingTable.splitBucket(id, 0, id.length), "split bucket of " + row[0]);
            assertEquals(Integer.parseInt(row[2]), RoutingTable.shadowBucket(id, 0, id.length), "shadow bucket of " + row[0]);
        }
    }

    /**
     * Columns: case, updates (a JSON array applied in order), model, requested or -, request id,
     * timestamp, rule, version or -, alias or -, bucket, shadow or -, detail or -.
     */
    @Test
    void resolutionsMatchThePythonVectors() throws Exception {
        List<String[]> rows = Vectors.rows("routes.tsv");
        assertTrue(rows.size() >= 10, "routes.tsv has " + rows.size() + " rows");
        List<String> disagreements = new ArrayList<>();
        for (String[] row : rows) {
            assertEquals(12, row.length, "columns of " + String.join(" | ", row));
            RoutingTable table = new RoutingTable();
            JsonNode updates = JSON.readTree(row[1]);
            for (JsonNode update : updates) {
                table.apply(update.toString());
            }
            byte[] id = row[4].getBytes(StandardCharsets.UTF_8);
            RoutingTable.Resolution r = table.resolve(row[2], row[3].equals("-") ? null : row[3], id, 0, id.length,
                    Long.parseLong(row[5]));
            String want = String.join(" | ", row[6], row[7], row[8], row[9], row[10], row[11]);
            String got = String.join(" | ", r.rule().name(), dash(r.version()), dash(r.alias()),
                    Integer.toString(r.bucket()), dash(r.shadow()), dash(r.detail()));
            if (!want.equals(got)) {
                disagreements.add(row[0] + " model=" + row[2] + " requested=" + row[3] + " id=" + row[4] + " ts="
                        + row[5] + ": python " + want + "; java " + got);
            }
        }
        assertTrue(disagreements.isEmpty(), disagreements.size() + " of " + rows.size() + " disagree:\n"
                + String.join("\n", disagreements));
    }
}
