//! glibc malloc settings that keep a run's peak memory near what it really holds.

/// glibc gives every thread that allocates its own heap (up to 8 per core); partitions
/// are decoded on some threads and freed on others, and each heap keeps its high-water
/// mark. Two heaps cut the peak RSS of a run by a third at the same speed (README
/// "Performance"). Called before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Partitions whose files hold more than this many bytes are "large".
const LARGE_PARTITION_BYTES: u64 = 16 * 1024 * 1024;

/// With large partitions, buffers of 1 MiB and more are mapped and unmapped directly, so
/// the memory of a finished partition goes back to the system at once instead of staying
/// in the heap (at SF10 by month: peak RSS 551 -> 464 MB, wall time 29.2 -> 29.5-32.2 s).
/// Small partitions keep glibc's default, which is faster for them (7-17 % at SF1). glibc reads the setting without a
/// lock; an allocation racing this call merely uses the previous threshold.
pub fn size_for(largest_partition_bytes: u64) {
    if largest_partition_bytes <= LARGE_PARTITION_BYTES {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// For commands that only read (`snapshot`, `verify`, `diff`) tables of small partitions:
/// files read whole and their decoded rows stay in the heap when freed, for the next file,
/// instead of being mapped and unmapped (and zeroed by the kernel) each time: `snapshot`
/// by day 1.13 -> 0.95 s (median of 5, alternated) at the same peak RSS. With large
/// partitions it only raises the peak (SF10 by month: 186-193 -> 195-251 MB at the same
/// speed), and a run gains nothing from it.
pub fn for_reading(largest_partition_bytes: u64) {
    if largest_partition_bytes > LARGE_PARTITION_BYTES {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    }
}
