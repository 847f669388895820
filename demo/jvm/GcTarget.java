/**
 * A JVM target for the gc.full tests: allocates steadily (about 16 MB/s of short-lived garbage
 * over a small live set), so a collection always has work. Run it with -Xlog:gc:file=gc.log to
 * see every collection; it prints "ready" once it is allocating.
 */
public final class GcTarget {
    private static final int LIVE_SLOTS = 64;
    private static final int CHUNK = 16 * 1024;

    public static void main(String[] args) throws InterruptedException {
        byte[][] live = new byte[LIVE_SLOTS][];
        System.out.println("ready");
        System.out.flush();
        for (int i = 0; ; i++) {
            byte[] chunk = new byte[CHUNK];
            chunk[i % CHUNK] = (byte) i;
            live[i % LIVE_SLOTS] = chunk;
            Thread.sleep(1);
        }
    }
}
