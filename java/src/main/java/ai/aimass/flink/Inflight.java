package ai.aimass.flink;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.operators.MailboxExecutor;

/**
 * Batches in flight between a {@link MicroBatch} subtask and the Python step after it, counted in
 * the TaskManager's JVM: {@link Outputs} subtask {@code i} reports each outputs frame it splits (one
 * per batch frame, the Python step being a map) to the channel of {@link MicroBatch} subtask
 * {@code i} of the same job, which then sends its next batch.
 *
 * <p>This is how the scheduler keeps its queue in its own hands: it hands Python at most
 * {@code job.inflight_batches} batches at a time, keeps reading its input meanwhile, and picks
 * the next batch by priority and deadline from everything waiting (a queue in the network
 * buffers would be first-in first-out, and invisible). Subtask {@code i} of the three operators
 * share a slot (forward edges, one slot-sharing group); where they do not, no {@link Outputs}
 * attaches, the window stays open and batching falls back to back-pressure alone. Nothing here is
 * state: a restart starts every count afresh.
 */
public final class Inflight {
    private static final ConcurrentHashMap<String, Channel> CHANNELS = new ConcurrentHashMap<>();

    private Inflight() {}

    /** One MicroBatch subtask's completions, delivered through its task's mailbox. */
    public static final class Channel {
        private final MailboxExecutor mailbox;
        private final java.util.function.IntConsumer onCompleted;
        private final AtomicInteger completed = new AtomicInteger();
        private final AtomicBoolean mailed = new AtomicBoolean();
        private volatile boolean attached;

        Channel(MailboxExecutor mailbox, java.util.function.IntConsumer onCompleted) {
            this.mailbox = mailbox;
            this.onCompleted = onCompleted;
        }

        /** Whether an {@link Outputs} subtask reports to this channel. */
        public boolean attached() {
            return attached;
        }

        /** One batch answered (called from the Python step's task thread). */
        void complete() {
            attached = true;
            completed.incrementAndGet();
            if (mailed.compareAndSet(false, true)) {
                mailbox.execute(() -> {
                    mailed.set(false);
                    onCompleted.accept(completed.getAndSet(0));
                }, "aimass: batch answered");
            }
        }
    }

    static String key(String job, int subtask) {
        return job + "/" + subtask;
    }

    /** Opens the channel of MicroBatch subtask {@code subtask} of {@code job} (replacing an older one). */
    static Channel open(String job, int subtask, MailboxExecutor mailbox, java.util.function.IntConsumer onCompleted) {
        Channel channel = new Channel(mailbox, onCompleted);
        CHANNELS.put(key(job, subtask), channel);
        return channel;
    }

    /** Closes {@code channel} if it is still the open one. */
    static void close(String job, int subtask, Channel channel) {
        CHANNELS.remove(key(job, subtask), channel);
    }

    /** Reports one answered batch to MicroBatch subtask {@code subtask} of {@code job}, if it runs here. */
    static void complete(String job, int subtask) {
        Channel channel = CHANNELS.get(key(job, subtask));
        if (channel != null) {
            channel.complete();
        }
    }
}
