//! Numbers out of `SHOW ENGINE INNODB STATUS`, under Diamond's names.
//!
//! Each rule is a line template: literal text, `{n}` a number taken
//! (digits, optionally a fraction), `{_}` a number skipped. A template
//! matches at the start of a line (Python's `re.match`); each rule takes
//! the first line it matches, its numbers going to its names in order.

/// `(names, template)`, in Diamond's terms.
pub const RULES: &[(&str, &str)] = &[
    ("Innodb_bp_total_alloc,Innodb_bp_add_alloc", "Total memory allocated {n}; in additional pool allocated {n}"),
    ("Innodb_bp_reads_per_sec,Innodb_bp_created_per_sec,Innodb_bp_written_per_sec", "{n} reads/s, {n} creates/s, {n} writes/s"),
    ("Innodb_io_ibuf_reads,Innodb_io_ibuf_logs,Innodb_io_ibuf_syncs", " ibuf aio reads: {n}, log i/o's: {n}, sync i/o's: {n}"),
    ("Innodb_log_pending_log_writes,Innodb_log_pending_checkpoint_writes", "{n} pending log writes, {n} pending chkp writes"),
    ("Innodb_hash_searches_per_sec,Innodb_non_hash_searches_per_sec", "{n} hash searches/s, {n} non-hash searches/s"),
    ("Innodb_row_queries_inside,Innodb_row_queries_queue", "{n} queries inside InnoDB, {n} queries in queue"),
    ("Innodb_trx_total_lock_structs", "{n} lock struct(s), heap size {_}, {_} row lock(s), undo log entries {_}"),
    ("Innodb_log_io_total,Innodb_log_io_per_sec", "{n} log i/o's done, {n} log i/o's/second"),
    ("Innodb_io_os_file_reads,Innodb_io_os_file_writes,Innodb_io_os_file_fsyncs", "{n} OS file reads, {n} OS file writes, {n} OS fsyncs"),
    ("Innodb_rows_inserted_per_sec,Innodb_rows_updated_per_sec,Innodb_rows_deleted_per_sec,Innodb_rows_read_per_sec", "{n} inserts/s, {n} updates/s, {n} deletes/s, {n} reads/s"),
    // Diamond's names for this line are in this order (writes/s under
    // io_syncs_per_sec, fsyncs/s under writes_per_sec): kept for its graphs.
    ("Innodb_reads_per_sec,Innodb_bytes_per_read,Innodb_io_syncs_per_sec,Innodb_writes_per_sec", "{n} reads/s, {n} avg bytes/read, {n} writes/s, {n} fsyncs/s"),
    ("Innodb_bp_pages_young_per_sec,Innodb_bp_pages_not_young_per_sec", "{n} youngs/s, {n} non-youngs/s"),
    ("Innodb_bp_hit_rate,Innodb_bp_young_hit_rate,Innodb_bp_not_young_hit_rate", "Buffer pool hit rate {n} / {_}, young-making rate {n} / {_} not {n} / {_}"),
    ("Innodb_bp_size", "Buffer pool size   {n}"),
    ("Innodb_bp_db_pages", "Database pages     {n}"),
    ("Innodb_bp_dictionary_alloc", "Dictionary memory allocated {n}"),
    ("Innodb_bp_free_buffers", "Free buffers       {n}"),
    ("Innodb_hash_table_size,Innodb_hash_node_heap", "Hash table size {n}, node heap has {n} buffer(s)"),
    ("Innodb_trx_history_list_length", "History list length {n}"),
    ("Innodb_bp_io_sum_pages,Innodb_bp_io_cur_pages,Innodb_bp_io_unzip_sum_pages,Innodb_bp_io_unzip_cur_pages", "I/O sum[{n}]:cur[{n}], unzip sum[{n}]:cur[{n}]"),
    ("Innodb_ibuf_size,Innodb_ibuf_free_list_len,Innodb_ibuf_seg_size,Innodb_ibuf_merges", "Ibuf: size {n}, free list len {n}, seg size {n}, {n} merges"),
    ("Innodb_bp_lru_len,Innodb_bp_unzip_lru_len", "LRU len: {n}, unzip_LRU len: {n}"),
    ("Innodb_bp_modified_pages", "Modified db pages  {n}"),
    ("Innodb_sem_mutex_spin_waits,Innodb_sem_mutex_rounds,Innodb_sem_mutex_os_waits", "Mutex spin waits {n}, rounds {n}, OS waits {n}"),
    ("Innodb_rows_inserted,Innodb_rows_updated,Innodb_rows_deleted,Innodb_rows_read", "Number of rows inserted {n}, updated {n}, deleted {n}, read {n}"),
    ("Innodb_bp_old_db_pages", "Old database pages {n}"),
    ("Innodb_sem_os_reservation_count,Innodb_sem_os_signal_count", "OS WAIT ARRAY INFO: reservation count {n}, signal count {n}"),
    ("Innodb_bp_pages_young,Innodb_bp_pages_not_young", "Pages made young {n}, not young {n}"),
    ("Innodb_bp_pages_read,Innodb_bp_pages_created,Innodb_bp_pages_written", "Pages read {n}, created {n}, written {n}"),
    ("Innodb_bp_pages_read_ahead_per_sec,Innodb_bp_pages_evicted_no_access_per_sec,Innodb_status_bp_pages_random_read_ahead", "Pages read ahead {n}/s, evicted without access {n}/s, Random read ahead {n}/s"),
    ("Innodb_io_pending_flush_log,Innodb_io_pending_flush_bp", "Pending flushes (fsync) log: {n}; buffer pool: {n}"),
    ("Innodb_io_pending_reads,Innodb_io_pending_writes", "Pending normal aio reads: {n} [{_}, {_}, {_}, {_}] , aio writes: {n} [{_}, {_}, {_}, {_}]"),
    ("Innodb_bp_pending_writes_lru,Innodb_bp_pending_writes_flush_list,Innodb_bp_pending_writes_single_page", "Pending writes: LRU {n}, flush list {n}, single page {n}"),
    ("Innodb_per_sec_avg", "Per second averages calculated from the last {n} seconds"),
    ("Innodb_sem_rw_excl_spins,Innodb_sem_rw_excl_rounds,Innodb_sem_rw_excl_os_waits", "RW-excl spins {n}, rounds {n}, OS waits {n}"),
    ("Innodb_sem_shared_spins,Innodb_sem_shared_rounds,Innodb_sem_shared_os_waits", "RW-shared spins {n}, rounds {n}, OS waits {n}"),
    ("Innodb_sem_spins_per_wait_mutex,Innodb_sem_spins_per_wait_rw_shared,Innodb_sem_spins_per_wait_rw_excl", "Spin rounds per wait: {n} mutex, {n} RW-shared, {n} RW-excl"),
    ("Innodb_main_thd_log_flush_writes", "srv_master_thread log flush and writes: {n}"),
    ("Innodb_main_thd_loops_one_sec,Innodb_main_thd_loops_sleeps,Innodb_main_thd_loops_ten_sec,Innodb_main_thd_loops_background,Innodb_main_thd_loops_flush", "srv_master_thread loops: {n} 1_second, {n} sleeps, {n} 10_second, {n} background, {n} flush"),
    ("Innodb_ibuf_inserts,Innodb_ibuf_merged_recs,Innodb_ibuf_merges", "{n} inserts, {n} merged recs, {n} merges"),
];

/// Matches `template` at the start of `line`: the numbers it takes.
pub fn match_line(template: &str, line: &str) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut t = template;
    while !t.is_empty() {
        let (take, skip) = (t.starts_with("{n}"), t.starts_with("{_}"));
        if take || skip {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let mut end = digits;
            let b = rest.as_bytes();
            if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
                end += 1 + rest[end + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
            }
            if take {
                out.push(rest[..end].parse().ok()?);
            }
            rest = &rest[end..];
            t = &t[3..];
        } else {
            let c = t.chars().next()?;
            rest = rest.strip_prefix(c)?;
            t = &t[c.len_utf8()..];
        }
    }
    Some(out)
}

/// Every rule's numbers from the status text, by name.
pub fn parse(status: &str) -> Vec<(String, f64)> {
    let mut done = vec![false; RULES.len()];
    let mut out = Vec::new();
    for line in status.lines() {
        for (i, (names, template)) in RULES.iter().enumerate() {
            if done[i] {
                continue;
            }
            if let Some(values) = match_line(template, line) {
                done[i] = true;
                for (name, v) in names.split(',').zip(values) {
                    out.push((name.to_string(), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_a_status() {
        let status = "=====\nBuffer pool size   8112\nFree buffers       7540\n\
            Buffer pool hit rate 998 / 1000, young-making rate 2 / 1000 not 0 / 1000\n\
            0.00 inserts/s, 1.50 updates/s, 0.00 deletes/s, 12.25 reads/s\n\
            Number of rows inserted 10, updated 2, deleted 0, read 77\n\
            Number of rows inserted 99, updated 99, deleted 99, read 99\n\
            Pending normal aio reads: 0 [0, 0, 0, 0] , aio writes: 3 [0, 0, 0, 0] ,\n";
        let m = parse(status);
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("Innodb_bp_size"), Some(8112.0));
        assert_eq!(get("Innodb_bp_free_buffers"), Some(7540.0));
        assert_eq!(get("Innodb_bp_hit_rate"), Some(998.0));
        assert_eq!(get("Innodb_bp_not_young_hit_rate"), Some(0.0));
        assert_eq!(get("Innodb_rows_read_per_sec"), Some(12.25));
        assert_eq!(get("Innodb_rows_read"), Some(77.0)); // the first line only
        assert_eq!(get("Innodb_io_pending_writes"), Some(3.0));
        assert_eq!(
            match_line("Old database pages {n}", "Old database pages x"),
            None
        );
        assert_eq!(
            match_line("{n} pending", "12 pending log"),
            Some(vec![12.0])
        );
    }
}
