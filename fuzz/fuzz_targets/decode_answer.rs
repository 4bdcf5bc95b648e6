//! The decoders of GitHub's answers on any bytes: an issue, a listing page,
//! a pull request. No panic; what is accepted has a number in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patina_forge::forge::{Item, MAX_NUMBER, merged_at_from_pull};

fuzz_target!(|data: &[u8]| {
    let in_range = |i: &Item| i.number >= 1 && u64::from(i.number) <= MAX_NUMBER;
    if let Ok(item) = Item::from_github(data) {
        assert!(in_range(&item), "{item:?}");
    }
    if let Ok(items) = Item::list_from_github(data) {
        assert!(items.iter().all(in_range));
    }
    let _ = merged_at_from_pull(data);
});
