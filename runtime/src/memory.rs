//! Giving back what start-up alone needed.
//!
//! Loading touches code and data that the running agent never uses again:
//! the config reader, the component linker and loader, Cranelift when a
//! component was compiled, every page of the compiled components (mapped
//! from the cache). Those pages are clean and file-backed, so the kernel
//! would drop them under memory pressure anyway; until then `top` shows
//! them as the agent's RSS. [`release_startup_pages`] drops them at once
//! (`MADV_PAGEOUT` on the binary's and the components' read-only
//! mappings) and returns freed heap to the system (`malloc_trim`); what
//! the collections touch again comes back on its first use. Best effort:
//! on a kernel without `MADV_PAGEOUT` (before 5.4) it does nothing.

/// Drops the resident pages of the binary's and the compiled components'
/// read-only file mappings, and trims the heap. Returns the bytes of the
/// mappings it advised (for the log).
pub fn release_startup_pages() -> usize {
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut advised = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or_default();
        let ours = exe
            .as_deref()
            .is_some_and(|e| std::path::Path::new(path) == e)
            || path.ends_with(".cwasm");
        // Read-only, private file mappings: code and constants. Writable
        // ones (relocated data, the components' data) are left alone.
        if !ours || perms.as_bytes().get(1) != Some(&b'-') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of this process, read from
        // /proc/self/maps; MADV_PAGEOUT only drops clean pages from the
        // page tables (they fault back in on use) and never changes their
        // contents.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) }
            == 0
        {
            advised += end - start;
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe { libc::malloc_trim(0) };
    advised
}

/// Memory mappings one plugin instance takes (its linear memory and guard,
/// its fiber stack and guard, its data image, its tables): 7 measured with
/// wasmtime 48, one more for margin.
pub const MAPPINGS_PER_PLUGIN: usize = 8;

/// Whether `plugins` more instances fit the kernel's limit on memory
/// mappings (`vm.max_map_count`, 65,530 by default) beside what this
/// process maps already. Past it, mmap fails and the agent could not even
/// start a thread: better a clear error before loading. `Err` says what to
/// change.
pub fn check_mapping_room(plugins: usize) -> Result<(), String> {
    let Some(max) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return Ok(());
    };
    let used = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
    let needed = plugins * MAPPINGS_PER_PLUGIN;
    if used + needed <= max {
        return Ok(());
    }
    Err(format!(
        "{plugins} plugins need about {needed} memory mappings, and this process has {used} of the \
         kernel's vm.max_map_count = {max}: raise it (sysctl -w vm.max_map_count={}) or enable fewer collectors",
        ((used + needed) * 2).next_power_of_two()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kb() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn too_many_plugins_for_the_mapping_limit_is_an_error() {
        assert!(check_mapping_room(10).is_ok());
        let e = check_mapping_room(100_000_000).unwrap_err();
        assert!(e.contains("vm.max_map_count"), "{e}");
    }

    #[test]
    fn the_binary_pages_are_given_back() {
        let before = rss_file_kb();
        let advised = release_startup_pages();
        assert!(advised > 0, "the test binary's own mappings were advised");
        // The test binary's code touched so far (the harness, std) is
        // dropped; the kernel must honour MADV_PAGEOUT (Linux 5.4+).
        let after = rss_file_kb();
        assert!(after < before, "file-backed RSS {before} kB -> {after} kB");
    }
}
