//! glibc malloc settings that keep a run's peak memory near what it really holds.

/// glibc gives every thread that allocates its own heap (up to 8 per core); partitions
/// are decoded on some threads and freed on others, and each heap keeps its high-water
/// mark. Two heaps cut the peak RSS of a run by a third at the same speed
/// (docs/PERFORMANCE.md, "Memory"). Called before any thread starts.
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
/// in the heap. Small partitions keep glibc's default, which is faster for them
/// (docs/PERFORMANCE.md, "Memory"). glibc reads the setting without a lock; an allocation
/// racing this call merely uses the previous threshold.
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
/// instead of being mapped and unmapped (and zeroed by the kernel) each time, which is
/// faster at the same peak RSS. With large partitions it only raises the peak, and a run
/// gains nothing from it (docs/PERFORMANCE.md, "Memory").
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
