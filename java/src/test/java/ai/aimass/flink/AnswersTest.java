package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link Answers} writes the bytes Python's codec writes (tests/vectors/answers.tsv). */
class AnswersTest {
    static Answers answers() throws Exception {
        List<String[]> rows = Vectors.rows("answers.tsv");
        byte[] result = Arrays.copyOf(Vectors.hex(rows.stream().filter(r -> r[0].equals("result"))
                .findFirst().orElseThrow()[12]), 10);
        byte[] letter = Arrays.copyOf(Vectors.hex(rows.stream().filter(r -> r[0].equals("dead_letter"))
                .findFirst().orElseThrow()[12]), 10);
        return new Answers(result, letter);
    }

    @Test
    void resultsAndDeadLettersMatchPython() throws Exception {
        Answers answers = answers();
        List<String[]> rows = Vectors.rows("answers.tsv");
        assertFalse(rows.isEmpty());
        for (String[] r : rows) {
            byte[] expected = Vectors.hex(r[12]);
            if (r[0].equals("result")) {
                int status = r[3].equals("OVERLOADED") ? Answers.OVERLOADED_STATUS : Answers.DEADLINE_EXCEEDED_STATUS;
                assertArrayEquals(expected, answers.result(r[1], r[2], status, r[4], Double.parseDouble(r[5]),
                        Double.parseDouble(r[6]), Long.parseLong(r[7])), r[1]);
            } else {
                assertEquals("dead_letter", r[0]);
                assertArrayEquals(expected, answers.deadLetter(Vectors.hex(r[8]), r[9], Integer.parseInt(r[10]),
                        Long.parseLong(r[11]), Answers.DEADLINE_EXCEEDED_REASON, r[4], r[1], Long.parseLong(r[7])),
                        r[1]);
            }
        }
    }
}
