package ai.aimass.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;

/** The tab-separated vectors shared with the Python tests (tests/vectors/, written by Python). */
final class Vectors {
    private Vectors() {}

    static List<String[]> rows(String name) throws IOException {
        Path dir = Path.of(System.getProperty("aimass.vectors", "../tests/vectors"));
        return Files.readAllLines(dir.resolve(name), StandardCharsets.UTF_8).stream()
                .filter(line -> !line.startsWith("#") && !line.isBlank())
                .map(line -> line.split("\t", -1))
                .toList();
    }

    static byte[] hex(String text) {
        return HexFormat.of().parseHex(text);
    }
}
