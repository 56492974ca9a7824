//! The process's heap: jemalloc, a purge after compaction, and the arenas queries use.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// jemalloc instead of glibc's malloc. After a query over many series frees its working set,
/// glibc leaves the freed chunks in bins shared with the HTTP threads, and the next request
/// on those threads spent 5–12 ms sorting them inside `malloc`; with jemalloc it takes 0.9 ms.
/// Resident memory per series under remote-write load is within 5% of glibc capped at two
/// arenas (docs/benchmarks.md; mimalloc held 65% more).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One jemalloc control call: reads the old value of type `T` when `read`, writes `new` when
/// given. `None` if jemalloc refused (unknown name, wrong type size, …).
#[allow(unsafe_code)]
fn mallctl<T: Copy + Default>(name: &CStr, read: bool, new: Option<T>) -> Option<T> {
    let mut old = T::default();
    let mut old_len = std::mem::size_of::<T>();
    let mut new_value = new.unwrap_or_default();
    let (oldp, oldlenp) = if read {
        ((&mut old as *mut T).cast(), &mut old_len as *mut usize)
    } else {
        (std::ptr::null_mut(), std::ptr::null_mut())
    };
    let (newp, newlen) = match new {
        Some(_) => ((&mut new_value as *mut T).cast(), std::mem::size_of::<T>()),
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: `name` is NUL-terminated; `oldp`/`newp` are null or point at a live `T` whose
    // size is passed alongside, which jemalloc checks against the control's own type and
    // refuses (EINVAL) when they differ, writing nothing.
    let status = unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr(), oldp, oldlenp, newp, newlen) };
    (status == 0).then_some(old)
}

/// Gives freed heap pages back to the kernel now (after compaction frees its working set)
/// instead of over jemalloc's decay time. False if jemalloc refused the request.
pub(crate) fn release_free_memory() -> bool {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: MALLCTL_ARENAS_ALL is 4096 in jemalloc.h.
    mallctl::<()>(c"arena.4096.purge", false, None).is_some()
}

/// Arenas kept for query evaluation (`argus_web::QueryMemory`). jemalloc gives each thread
/// one of its arenas; queries run on whichever blocking thread is free, so the memory one
/// query freed sat in another arena than the next query's, and each query took fresh pages
/// from the kernel while freed ones waited out their decay. Queries bound here reuse what
/// earlier queries freed, and ingest keeps its own arenas. One arena per four cores keeps
/// concurrent queries from queueing on one arena's locks.
///
/// Pages freed in these arenas are not returned over jemalloc's decay time, which returns
/// part of them within seconds, so that a query repeated a few seconds later (a dashboard's
/// refresh) faulted part of its working set in again. They are kept while queries come
/// and go, and given back when no query has run for [`KEEP_WHILE_IDLE`], or, under
/// steady load, when none is running once [`KEEP_AT_MOST`] has passed since the last time
/// (and at the purge after compaction, as everywhere). That is how long a large query's
/// pages can stay resident after it ends.
///
/// Each arena has a thread bound to it for the life of the process, which does that
/// bookkeeping; it is needed anyway, because jemalloc purges an arena as soon as the last
/// thread bound to it leaves, which a query thread does when its query ends.
pub(crate) struct QueryArenas {
    /// Each arena's index and its use.
    arenas: Vec<(u32, std::sync::Arc<ArenaUse>)>,
    next: AtomicUsize,
}

/// How long the query arenas keep freed pages after the last query ended.
pub(crate) const KEEP_WHILE_IDLE: Duration = Duration::from_secs(30);
/// The longest the query arenas go without returning freed pages while queries keep
/// coming (purged at the first moment none runs).
pub(crate) const KEEP_AT_MOST: Duration = Duration::from_secs(300);

impl QueryArenas {
    /// Creates the arenas; `None` if jemalloc refuses (queries then use the thread's arena).
    pub(crate) fn create() -> Option<Self> {
        Self::keeping(KEEP_WHILE_IDLE, KEEP_AT_MOST)
    }

    /// [`Self::create`] with the given keeping times.
    fn keeping(idle: Duration, at_most: Duration) -> Option<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut arenas = Vec::new();
        for _ in 0..cores.div_ceil(4) {
            let arena = mallctl::<u32>(c"arenas.create", true, None)?;
            keep_freed_extents(arena)?;
            let use_ = std::sync::Arc::new(ArenaUse::new(idle, at_most));
            keep_occupied(arena, use_.clone()).then_some(())?;
            arenas.push((arena, use_));
        }
        Some(Self {
            arenas,
            next: AtomicUsize::new(0),
        })
    }

    fn pick(&self) -> &(u32, std::sync::Arc<ArenaUse>) {
        &self.arenas[self.next.fetch_add(1, Ordering::Relaxed) % self.arenas.len()]
    }
}

/// When an arena's queries ran, for returning its freed pages.
struct ArenaUse {
    running: AtomicUsize,
    /// Whether a query ran since the last purge.
    used: std::sync::atomic::AtomicBool,
    /// Milliseconds since `since` when the last query left, and when the arena was last
    /// purged.
    left_ms: AtomicU64,
    purged_ms: AtomicU64,
    since: Instant,
    idle: Duration,
    at_most: Duration,
}

impl ArenaUse {
    fn new(idle: Duration, at_most: Duration) -> Self {
        Self {
            running: AtomicUsize::new(0),
            used: Default::default(),
            left_ms: AtomicU64::new(0),
            purged_ms: AtomicU64::new(0),
            since: Instant::now(),
            idle,
            at_most,
        }
    }

    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    fn enter(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
        self.used.store(true, Ordering::Release);
    }

    fn leave(&self) {
        self.left_ms.store(self.now_ms(), Ordering::Release);
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the arena's freed pages should go back now; if so, takes note of the purge.
    fn purge_due(&self) -> bool {
        if !self.used.load(Ordering::Acquire) || self.running.load(Ordering::Acquire) > 0 {
            return false;
        }
        let now = self.now_ms();
        let idle = now.saturating_sub(self.left_ms.load(Ordering::Acquire));
        let kept = now.saturating_sub(self.purged_ms.load(Ordering::Acquire));
        if idle < self.idle.as_millis() as u64 && kept < self.at_most.as_millis() as u64 {
            return false;
        }
        self.used.store(false, Ordering::Release);
        self.purged_ms.store(now, Ordering::Release);
        true
    }

    /// How often the keeper looks.
    fn check_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }
}

/// jemalloc returns a freed extent of 8 MiB or more (`oversize_threshold`, counted after
/// merging with free neighbours) to the kernel at once, and the rest over the decay time. A
/// query's large vectors, and the runs of slabs it frees together, are that size, so every
/// query faulted its working set in afresh; in the query arenas freed pages stay until
/// [`ArenaUse::purge_due`] says.
fn keep_freed_extents(arena: u32) -> Option<()> {
    mallctl(
        &arena_control(arena, "oversize_threshold"),
        false,
        Some(usize::MAX),
    )?;
    for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
        mallctl(&arena_control(arena, decay), false, Some(-1isize))?;
    }
    Some(())
}

/// The name of one arena's control, `arena.<i>.<name>`.
fn arena_control(arena: u32, name: &str) -> std::ffi::CString {
    std::ffi::CString::new(format!("arena.{arena}.{name}")).expect("control names hold no NUL")
}

/// Binds a thread to `arena` for the life of the process, which purges the arena when
/// `use_` says. False if that failed.
fn keep_occupied(arena: u32, use_: std::sync::Arc<ArenaUse>) -> bool {
    let (bound, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("query-arena-{arena}"))
        .stack_size(64 << 10)
        .spawn(move || {
            let ok = mallctl(c"thread.arena", false, Some(arena)).is_some();
            let _ = bound.send(ok);
            let purge = arena_control(arena, "purge");
            loop {
                std::thread::park_timeout(use_.check_every());
                if use_.purge_due() {
                    mallctl::<()>(&purge, false, None);
                }
            }
        });
    spawned.is_ok() && wait.recv().unwrap_or(false)
}

/// Puts the thread back on the arena it had before [`QueryArenas::enter`], and notes that
/// the query left.
struct Rebind(u32, std::sync::Arc<ArenaUse>);

impl Drop for Rebind {
    fn drop(&mut self) {
        let _ = mallctl(c"thread.arena", false, Some(self.0));
        self.1.leave();
    }
}

impl argus_web::QueryMemory for QueryArenas {
    fn enter(&self) -> Box<dyn std::any::Any> {
        let (arena, use_) = self.pick();
        match mallctl(c"thread.arena", true, Some(*arena)) {
            Some(previous) => {
                use_.enter();
                Box::new(Rebind(previous, use_.clone()))
            }
            None => Box::new(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_web::QueryMemory;

    /// The tests here read the process's resident size; they must not overlap.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn resident_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn thread_arena() -> u32 {
        mallctl(c"thread.arena", true, None::<u32>).expect("thread.arena reads")
    }

    /// With jemalloc's own return of freed pages turned off, the purge is what gives them
    /// back.
    #[test]
    fn purge_after_freeing_returns_memory() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        // This thread's arena keeps freed pages until purged (`dirty_decay_ms` = -1).
        let name = arena_control(thread_arena(), "dirty_decay_ms");
        assert!(mallctl(&name, false, Some(-1isize)).is_some(), "{name:?}");
        // Many mid-sized blocks (not one huge mapping, which jemalloc unmaps at once).
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 64 << 10]).collect();
        let held = resident_anon_kib();
        drop(blocks);
        assert!(release_free_memory());
        let after = resident_anon_kib();
        assert!(
            after + 128 * 1024 < held,
            "RssAnon {held} KiB before the purge, {after} KiB after"
        );
    }

    /// 68 MiB: 32 MiB in 4 KiB blocks, as a query's per-series state is many small blocks,
    /// and three 12 MiB vectors, as its lists over all selected series are.
    fn work() -> Vec<Vec<u8>> {
        let mut blocks: Vec<Vec<u8>> = (0..8192).map(|i| vec![i as u8; 4096]).collect();
        blocks.extend((0..3).map(|i| vec![i as u8; 12 << 20]));
        blocks
    }

    /// How much resident memory `work()` adds on a thread of its own arena after another such
    /// thread did and freed the same work, both inside `scope` (or not). Both threads stay
    /// alive throughout, as the blocking pool's threads do between queries.
    fn second_query_grows_kib(scope: Option<&QueryArenas>) -> u64 {
        let (first_done, wait_first) = std::sync::mpsc::channel::<()>();
        let (second_done, wait_second) = std::sync::mpsc::channel::<()>();
        let query = || {
            let fresh = mallctl::<u32>(c"arenas.create", true, None).expect("arena created");
            assert!(mallctl(c"thread.arena", false, Some(fresh)).is_some());
            let _bound = scope.map(|q| q.enter());
            let before = resident_anon_kib();
            let held = work();
            let grew = resident_anon_kib().saturating_sub(before);
            drop(held);
            grew
        };
        std::thread::scope(|s| {
            s.spawn(move || {
                query();
                first_done.send(()).expect("main waits");
                let _ = wait_second.recv();
            });
            wait_first.recv().expect("first query runs");
            let grew = s.spawn(query).join().expect("second query runs");
            second_done.send(()).expect("first thread waits");
            grew
        })
    }

    #[test]
    fn queries_reuse_what_earlier_queries_freed() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let arenas = QueryArenas::create().expect("jemalloc creates arenas");
        let own = second_query_grows_kib(None);
        let shared = second_query_grows_kib(Some(&arenas));
        assert!(own > 48 * 1024, "a thread's own arena grew only {own} KiB");
        assert!(
            shared < 16 * 1024,
            "the query arena grew {shared} KiB for work an earlier query freed"
        );
    }

    #[test]
    fn query_arenas_keep_freed_extents() {
        let arenas = QueryArenas::create().expect("jemalloc creates arenas");
        for (arena, _) in &arenas.arenas {
            let threshold = arena_control(*arena, "oversize_threshold");
            assert_eq!(mallctl::<usize>(&threshold, true, None), Some(usize::MAX));
            for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
                let decay = arena_control(*arena, decay);
                assert_eq!(mallctl::<isize>(&decay, true, None), Some(-1));
            }
        }
        // The process's own arenas keep jemalloc's default (8 MiB).
        let own = arena_control(thread_arena(), "oversize_threshold");
        assert_eq!(mallctl::<usize>(&own, true, None), Some(8 << 20));
    }

    /// Runs `work()` in a query arena of `arenas` and frees it; then how much of it stays
    /// resident right away, and how long until at least 48 of its 68 MiB have gone back
    /// (`None`: not within 10 s).
    fn kept_then_returned(arenas: QueryArenas) -> (u64, Option<Duration>) {
        std::thread::spawn(move || {
            let before = resident_anon_kib();
            let bound = arenas.enter();
            let held = work();
            drop(held);
            // Taken before the query leaves, so the wait is never shorter than the arena's.
            let left = Instant::now();
            drop(bound);
            let kept = resident_anon_kib().saturating_sub(before);
            while left.elapsed() < Duration::from_secs(10) {
                if resident_anon_kib() < before + 20 * 1024 {
                    return (kept, Some(left.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (kept, None)
        })
        .join()
        .expect("query thread runs")
    }

    /// What queries free stays for the next one, and goes back once no query has run for a
    /// while.
    #[test]
    fn idle_query_arenas_give_freed_pages_back() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let idle = Duration::from_millis(300);
        let arenas = QueryArenas::keeping(idle, Duration::from_secs(3600)).expect("arenas");
        let (kept, returned) = kept_then_returned(arenas);
        assert!(kept > 48 * 1024, "only {kept} KiB kept after the query");
        let returned = returned.expect("freed pages go back when idle");
        // The arena counts whole milliseconds.
        assert!(
            returned + Duration::from_millis(1) >= idle,
            "returned after {returned:?}"
        );
    }

    /// The longest keeping time returns freed pages although the idle time has not passed
    /// (as under steady load, at a moment no query runs).
    #[test]
    fn busy_query_arenas_give_freed_pages_back_in_time() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let arenas = QueryArenas::keeping(Duration::from_secs(3600), Duration::from_millis(300))
            .expect("arenas");
        let (kept, returned) = kept_then_returned(arenas);
        assert!(kept > 48 * 1024, "only {kept} KiB kept after the query");
        assert!(
            returned.is_some(),
            "freed pages stay although kept too long"
        );
    }

    /// A query running holds the purge off.
    #[test]
    fn no_purge_while_a_query_runs() {
        let use_ = ArenaUse::new(Duration::ZERO, Duration::ZERO);
        assert!(!use_.purge_due(), "nothing ran yet");
        use_.enter();
        assert!(!use_.purge_due());
        use_.leave();
        assert!(use_.purge_due());
        assert!(!use_.purge_due(), "purged already");
    }

    #[test]
    fn leaving_puts_the_thread_back_on_its_arena() {
        let arenas = QueryArenas::create().expect("jemalloc creates arenas");
        std::thread::spawn(move || {
            let own = thread_arena();
            let bound = arenas.enter();
            assert!(arenas.arenas.iter().any(|(a, _)| *a == thread_arena()));
            assert_ne!(thread_arena(), own);
            drop(bound);
            assert_eq!(thread_arena(), own);
        })
        .join()
        .expect("thread runs");
    }
}
