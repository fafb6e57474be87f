//! The C library allocator's settings for a worker: kept warm for bursts of requests,
//! given back when idle. The worker tunes it at start and trims it after serving, so
//! whichever application it runs gets the same treatment.

/// Keeps freed memory in the process for the next request instead of handing it back
/// to the kernel after each one, as glibc does by default for blocks from 128 KiB (its
/// dynamic mmap threshold) and for the top of the heap. A render allocates a few MiB
/// and frees them; faulting those pages in again on every request cost about a third of
/// a 512² render in the benchmark. Call once at worker start: it changes the process's
/// allocator settings (blocks up to 32 MiB come from the heap, which is trimmed only
/// above 256 MiB free). Does nothing on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's malloc parameters; it is safe to call at any
    // time and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        // One arena: a worker renders on a few threads at most, and only the main
        // arena's free memory at its top goes back fully when `release_free_memory`
        // trims.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the memory freed since the last call back to the system. The thresholds
/// above keep freed plane buffers for the next request, which is what makes bursts
/// fast; an idle worker calls this so that it does not keep them (glibc's
/// `malloc_trim`).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
