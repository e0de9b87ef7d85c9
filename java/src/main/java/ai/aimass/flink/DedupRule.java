package ai.aimass.flink;

/** The de-duplication rule alone (vectors shared with Python in tests/vectors/dedup.json). */
public final class DedupRule {
    private DedupRule() {}

    /** What to do with one result: write it, and remember its id. */
    public record Verdict(boolean emit, boolean claim) {}

    /**
     * @param claimed the id already has its one result
     * @param claims this result is an accepted request's (not an error result of a refused record)
     */
    public static Verdict decide(boolean claimed, boolean claims) {
        if (claimed) {
            return new Verdict(false, false);
        }
        return new Verdict(true, claims);
    }
}
