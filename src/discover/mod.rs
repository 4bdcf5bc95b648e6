//! Discovery: walk the commits not scanned before and add the refs their
//! messages carry to the backlog. Needs no network, resolves nothing.

pub mod parser;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use gix::ObjectId;

use crate::store::{Mention, Recorded, Store};
use crate::target::Target;
use parser::{ForgeRef, Found, Pattern};

/// Tips kept from earlier runs besides HEAD. Old tips only matter after a
/// force-push or a branch switch; a few cover that without making every
/// walk paint many hidden histories.
const MAX_KEPT_TIPS: usize = 8;

#[derive(Debug, Default)]
pub struct Outcome {
    /// Commits walked this run.
    pub commits: u64,
    /// An earlier run's tips limited the walk.
    pub incremental: bool,
    /// The repository has no commits yet.
    pub unborn: bool,
    /// The history is cut off (shallow clone): only what is present was read.
    pub shallow: bool,
    pub recorded: Recorded,
}

pub fn discover(target: &Target, store: &mut Store) -> Result<Outcome> {
    let repo = &target.repo;
    let forge_name = target.forge.repo.to_string();
    let shallow = repo
        .is_shallow()
        .context("cannot tell whether the clone is shallow")?;
    let head = match repo.head_id() {
        Ok(id) => id.detach(),
        Err(_) if repo.head().is_ok_and(|head| head.is_unborn()) => {
            return Ok(Outcome {
                unborn: true,
                shallow,
                ..Outcome::default()
            });
        }
        Err(e) => return Err(e).context("cannot read HEAD"),
    };

    // Tips that were gc'd away (after a force-push) cannot hide anything; if
    // none is left the walk is simply a full one.
    let hidden: Vec<ObjectId> = store
        .scanned_tips(&forge_name)?
        .iter()
        .filter_map(|hex| ObjectId::from_hex(hex.as_bytes()).ok())
        .filter(|id| repo.has_object(id))
        .collect();
    let incremental = !hidden.is_empty();

    let mut mentions: HashMap<u32, Mention> = HashMap::new();
    let mut walked = Walked::default();
    if !hidden.contains(&head) {
        walked = walk(target, head, &hidden, &mut mentions)?;
    }

    // An old tip that the new history builds on is covered by HEAD; one that
    // was left behind (force-push, branch switch) still hides what was scanned.
    let mut tips = vec![head.to_string()];
    tips.extend(
        hidden
            .iter()
            .filter(|id| **id != head && !walked.reached_tips.contains(*id))
            .take(MAX_KEPT_TIPS)
            .map(ToString::to_string),
    );
    let recorded = store.record_discovery(&forge_name, mentions.into_values(), &tips)?;
    Ok(Outcome {
        commits: walked.commits,
        incremental,
        unborn: false,
        shallow,
        recorded,
    })
}

#[derive(Default)]
struct Walked {
    commits: u64,
    /// Hidden tips that are parents of walked commits, hence ancestors of HEAD.
    reached_tips: HashSet<ObjectId>,
}

/// Walks every commit reachable from `head` but not from `hidden`, keeping
/// for each ref the newest commit that mentions it.
fn walk(
    target: &Target,
    head: ObjectId,
    hidden: &[ObjectId],
    mentions: &mut HashMap<u32, Mention>,
) -> Result<Walked> {
    let repo = &target.repo;
    let forge = ForgeRef {
        host: &target.forge.host,
        owner: &target.forge.repo.owner,
        name: &target.forge.repo.name,
    };
    // `with_hidden`, not `with_boundary`: a boundary cuts off by commit time and
    // silently skips a merged topic branch whose commits are older than the old tip.
    let walk = repo
        .rev_walk([head])
        .with_hidden(hidden.iter().copied())
        .all()
        .context("cannot walk the history")?;
    let mut found: Vec<Found> = Vec::new();
    let mut walked = Walked::default();
    for info in walk {
        let info = info.context("cannot walk the history")?;
        walked.commits += 1;
        if !hidden.is_empty() {
            walked.reached_tips.extend(
                info.parent_ids
                    .iter()
                    .filter(|parent| hidden.contains(parent)),
            );
        }
        let commit = repo
            .find_commit(info.id)
            .with_context(|| format!("cannot read commit {}", info.id))?;
        found.clear();
        parser::refs_in_message(commit.message_raw_sloppy(), &forge, &mut found);
        if found.is_empty() {
            continue;
        }
        let time = commit
            .time()
            .with_context(|| format!("cannot read the time of commit {}", info.id))?
            .seconds;
        for f in &found {
            note(mentions, f.number, f.pattern, time, info.id);
        }
    }
    Ok(walked)
}

fn note(
    mentions: &mut HashMap<u32, Mention>,
    number: u32,
    pattern: Pattern,
    time: i64,
    commit: ObjectId,
) {
    match mentions.entry(number) {
        Entry::Vacant(slot) => {
            slot.insert(Mention {
                number,
                commit_time: time,
                commit: commit.to_string(),
                pattern: pattern.as_str(),
                as_pr: pattern.is_pr(),
            });
        }
        Entry::Occupied(mut slot) => {
            let m = slot.get_mut();
            m.as_pr |= pattern.is_pr();
            // Ties on time go to the larger id, so the outcome does not depend
            // on the walk's order.
            let commit = commit.to_string();
            if (time, commit.as_str()) > (m.commit_time, m.commit.as_str()) {
                m.commit_time = time;
                m.commit = commit;
                m.pattern = pattern.as_str();
            }
        }
    }
}
