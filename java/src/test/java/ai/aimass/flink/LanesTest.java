package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.junit.jupiter.api.Test;

class LanesTest {
    @Test
    void lanesAndKeysMatchThePythonVectors() throws Exception {
        int checked = 0;
        for (String[] row : Vectors.rows("lanes.tsv")) {
            Lanes lanes = new Lanes(Integer.parseInt(row[1]), Integer.parseInt(row[2]));
            byte[] id = row[0].getBytes(StandardCharsets.UTF_8);
            int lane = lanes.laneOf(id, 0, id.length);
            assertEquals(Integer.parseInt(row[3]), lane, "lane of " + row[0]);
            assertEquals(Integer.parseInt(row[4]), lanes.key(lane), "key of lane " + lane);
            checked++;
        }
        assertEquals(30, checked);
    }

    @Test
    void everyDivisorOfTheLaneCountGetsAnEvenShare() {
        Lanes lanes = new Lanes(8, 128);
        for (int parallelism : new int[] {1, 2, 4, 8}) {
            Map<Integer, Integer> perSubtask = new HashMap<>();
            for (int lane = 0; lane < 8; lane++) {
                int subtask = KeyGroupRangeAssignment.assignKeyToParallelOperator(lanes.key(lane), 128, parallelism);
                perSubtask.merge(subtask, 1, Integer::sum);
            }
            assertEquals(parallelism, perSubtask.size());
            perSubtask.values().forEach(n -> assertEquals(8 / parallelism, n));
        }
    }

    @Test
    void recordsWithoutAnIdAreSpreadByPosition() {
        Lanes lanes = new Lanes(4, 128);
        int[] seen = new int[4];
        for (long offset = 0; offset < 400; offset++) {
            seen[lanes.laneOfPosition(1, offset)]++;
        }
        for (int n : seen) {
            assertEquals(100, n, 30);
        }
    }

    @Test
    void laneCountsOutsideTheKeyGroupRangeAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Lanes(0, 128));
        assertThrows(IllegalArgumentException.class, () -> new Lanes(256, 128));
    }
}
