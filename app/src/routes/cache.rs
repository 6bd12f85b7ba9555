//! The catalog cache: rendered catalog pages, shared by every visitor, for about a second.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a rendered catalog page is reused.
pub const CATALOG_TTL: Duration = Duration::from_secs(1);

/// Page number and search term.
type CacheKey = (u32, String);
/// A rendered page: when, in which generation, the HTML, and since when one request has been
/// re-rendering it.
struct CachedPage {
    at: std::time::Instant,
    generation: u64,
    html: std::sync::Arc<str>,
    refreshing_since: Option<std::time::Instant>,
}

/// Most pages kept (browse pages and search results together).
pub const MAX_PAGES: usize = 512;

/// The cache key of a search term: trimmed, lower case, inner whitespace collapsed, at most 100
/// characters (the database compares case-insensitively, so these find the same books).
pub fn search_key(term: &str) -> String {
    term.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .take(100)
        .collect()
}

/// How long one request may take to re-render an expired page before another may try.
const REFRESH_GRACE: Duration = Duration::from_secs(5);

/// What the cache says about a page.
pub enum Lookup {
    /// Serve this copy.
    Hit(std::sync::Arc<str>),
    /// Render the page (and `put` it); the caller is the only one doing so for an expired page.
    Render,
}

/// A short-lived cache of rendered catalog pages (the same for every visitor), so a busy
/// catalog costs neither a query nor a render per request. Book changes made on this
/// instance bump the generation and so invalidate it at once; other instances' changes
/// show within [`CATALOG_TTL`]. When a page expires, one request re-renders it while the
/// others keep getting the expired copy, so expiry never sends a burst of queries.
#[derive(Default)]
pub struct PageCache {
    generation: std::sync::atomic::AtomicU64,
    pages: std::sync::Mutex<HashMap<CacheKey, CachedPage>>,
}

impl PageCache {
    pub fn get(&self, key: &(u32, String)) -> Lookup {
        let generation = self.generation.load(Ordering::Relaxed);
        let Ok(mut pages) = self.pages.lock() else {
            return Lookup::Render;
        };
        let Some(page) = pages.get_mut(key).filter(|p| p.generation == generation) else {
            return Lookup::Render;
        };
        if page.at.elapsed() < CATALOG_TTL {
            return Lookup::Hit(page.html.clone());
        }
        match page.refreshing_since {
            Some(since) if since.elapsed() < REFRESH_GRACE => Lookup::Hit(page.html.clone()),
            _ => {
                page.refreshing_since = Some(std::time::Instant::now());
                Lookup::Render
            }
        }
    }

    /// Stores a rendered page. When full, expired pages go first, then the oldest search
    /// result: distinct searches replace each other but never flush the browse pages.
    pub fn put(&self, key: (u32, String), html: std::sync::Arc<str>, generation: u64) {
        let Ok(mut pages) = self.pages.lock() else {
            return;
        };
        if pages.len() >= MAX_PAGES && !pages.contains_key(&key) {
            let current = self.generation.load(Ordering::Relaxed);
            pages.retain(|_, p| p.generation == current && p.at.elapsed() < CATALOG_TTL * 30);
            while pages.len() >= MAX_PAGES {
                let searching = !key.1.is_empty();
                // The oldest search page (or, for a browse page, the oldest of any kind).
                let victim = pages
                    .iter()
                    .filter(|(k, _)| !searching || !k.1.is_empty())
                    .min_by_key(|(_, p)| p.at)
                    .map(|(k, _)| k.clone());
                match victim {
                    Some(k) => {
                        pages.remove(&k);
                    }
                    // Full of browse pages: a search result is simply not cached.
                    None => return,
                }
            }
        }
        let page = CachedPage {
            at: std::time::Instant::now(),
            generation,
            html,
            refreshing_since: None,
        };
        pages.insert(key, page);
    }

    /// The current generation (read before rendering, passed to [`PageCache::put`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Forgets every page (after a change to the books).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_page_is_rendered_by_one_request_while_others_get_the_old_copy() {
        let cache = PageCache::default();
        let key = (1, String::new());
        assert!(matches!(cache.get(&key), Lookup::Render));
        cache.put(key.clone(), "v1".into(), 0);
        assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v1"));
        std::thread::sleep(CATALOG_TTL + Duration::from_millis(50));
        // The first request after expiry renders; the rest are served the old copy meanwhile.
        assert!(matches!(cache.get(&key), Lookup::Render));
        for _ in 0..10 {
            assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v1"));
        }
        cache.put(key.clone(), "v2".into(), 0);
        assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v2"));
        // A local change invalidates at once: no old copy is served.
        cache.invalidate();
        assert!(matches!(cache.get(&key), Lookup::Render));
        assert!(matches!(cache.get(&key), Lookup::Render));
    }

    #[test]
    fn distinct_searches_never_flush_the_browse_pages() {
        let cache = PageCache::default();
        for page in 1..=10 {
            cache.put((page, String::new()), format!("page {page}").into(), 0);
        }
        for i in 0..5000 {
            cache.put((1, format!("search {i}")), "result".into(), 0);
        }
        // Membership, not freshness: on a busy machine the 5,000 puts can outlast CATALOG_TTL,
        // and an expired page is still kept (served while one request re-renders it).
        let pages = cache.pages.lock().unwrap();
        for page in 1..=10 {
            assert!(
                pages.contains_key(&(page, String::new())),
                "browse page {page} was flushed by searches"
            );
        }
        // The newest searches are kept, the oldest replaced; the cache stays bounded.
        assert!(pages.contains_key(&(1, "search 4999".into())));
        assert!(!pages.contains_key(&(1, "search 0".into())));
        assert!(pages.len() <= MAX_PAGES);
        drop(pages);
        assert_eq!(search_key("  Cien   AÑOS "), "cien años");
    }
}
