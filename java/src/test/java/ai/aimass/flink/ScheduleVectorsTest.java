package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link RequestPeek#schedule} reads what Python wrote (tests/vectors/schedule.tsv). */
class ScheduleVectorsTest {
    @Test
    void readsDeadlinePriorityAndCreationTime() throws Exception {
        RequestPeek peek = Requests.peek();
        List<String[]> rows = Vectors.rows("schedule.tsv");
        assertFalse(rows.isEmpty());
        for (String[] r : rows) {
            RequestPeek.Scheduling s = peek.schedule(Vectors.hex(r[1]));
            boolean readable = Boolean.parseBoolean(r[2]);
            assertEquals(readable, s.readable(), r[0]);
            if (readable) {
                assertEquals(r[3].isEmpty() ? Long.MAX_VALUE : Long.parseLong(r[3]), s.deadlineMs(), r[0]);
                assertEquals(Integer.parseInt(r[4]), s.priority(), r[0]);
                assertEquals(Long.parseLong(r[5]), s.createdAtMs(), r[0]);
            } else {
                assertEquals(RequestPeek.Scheduling.NONE, s, r[0]);
            }
        }
    }
}
