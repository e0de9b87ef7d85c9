package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class DedupRuleTest {
    @Test
    void verdictsMatchThePythonVectors() throws Exception {
        int checked = 0;
        for (String[] row : Vectors.rows("dedup.tsv")) {
            DedupRule.Verdict verdict = DedupRule.decide(Boolean.parseBoolean(row[0]), Boolean.parseBoolean(row[1]));
            assertEquals(Boolean.parseBoolean(row[2]), verdict.emit(), String.join(" ", row));
            assertEquals(Boolean.parseBoolean(row[3]), verdict.claim(), String.join(" ", row));
            checked++;
        }
        assertEquals(4, checked);
    }
}
