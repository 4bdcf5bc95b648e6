//! The decoders of the forges' answers on any bytes: an issue, a listing
//! page, a pull request, Gitea's comments and reviews, and a GraphQL batch.
//! No panic; what is accepted has a number in range, and a batch speaks only
//! of the numbers asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patina_forge::forge::graphql::{self, Node};
use patina_forge::forge::{
    Item, MAX_NUMBER, approvals_from_gitea, comments_from_gitea, merged_at_from_pull,
};

const ASKED: [u32; 4] = [1, 2, 3, 2_147_483_647];

fuzz_target!(|data: &[u8]| {
    let in_range = |i: &Item| i.number >= 1 && u64::from(i.number) <= MAX_NUMBER;
    if let Ok(item) = Item::from_github(data) {
        assert!(in_range(&item), "{item:?}");
    }
    if let Ok(items) = Item::list_from_github(data) {
        assert!(items.iter().all(in_range));
    }
    let _ = merged_at_from_pull(data);
    let _ = comments_from_gitea(data);
    let _ = approvals_from_gitea(data);
    if let Ok(batch) = graphql::decode(data, &ASKED, "o/n") {
        assert!(batch.results.iter().all(|(n, _)| ASKED.contains(n)));
        for (_, node) in &batch.results {
            if let Node::Found(item) = node {
                assert!(in_range(item), "{item:?}");
            }
        }
    }
});
