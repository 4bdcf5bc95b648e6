//! Discovery: walk the commits not scanned before and add the refs their
//! messages carry to the backlog. Needs no network, resolves nothing.

pub mod parser;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, Result};
use gix::ObjectId;

use crate::store::{Mention, Recorded, Store};
use crate::target::{Forge, Target};
use parser::{ForgeRef, Found};

/// Tips kept from earlier runs besides HEAD. Old tips only matter after a
/// force-push or a branch switch; a few cover that without making every
/// walk paint many hidden histories.
const MAX_KEPT_TIPS: usize = 8;

/// What one discovery walked and recorded, for its summary.
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
    /// What the backlog gained, split as the summary prints it.
    pub recorded: Recorded,
}

/// Walks the commits not reachable from the tips an earlier run scanned
/// (all of HEAD's history the first time) and records their refs and the
/// new tips in one transaction. Needs no network.
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
    let known_tips = store.scanned_tips(&forge_name)?;
    let hidden: Vec<ObjectId> = known_tips
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
    let unchanged = mentions.is_empty() && tips.iter().eq(known_tips.iter());
    let recorded = if unchanged {
        // Nothing to write: no transaction, no fsync, no WAL growth.
        Recorded::default()
    } else {
        // In key order, SQLite appends to its b-trees instead of splitting
        // pages all over them.
        let mut mentions: Vec<Mention> = mentions.into_values().collect();
        mentions.sort_unstable_by_key(|m| m.number);
        store.record_discovery(&forge_name, mentions, &tips)?
    };
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

/// Commits handed to a reader at a time: large enough that the queue's lock
/// is rare, small enough that all readers stay busy to the end. A walk that
/// ends within the first chunk (the usual incremental run) starts no thread.
const CHUNK: usize = 512;

/// Walks every commit reachable from `head` but not from `hidden`, keeping
/// for each ref the newest commit that mentions it.
///
/// Decompressing and reading the messages is most of the work, so on a long
/// walk this thread only walks the graph (from the commit-graph file when
/// there is one) and readers on the other cores read the commits.
fn walk(
    target: &Target,
    head: ObjectId,
    hidden: &[ObjectId],
    mentions: &mut HashMap<u32, Mention>,
) -> Result<Walked> {
    let repo = &target.repo;
    // `with_hidden`, not `with_boundary`: a boundary cuts off by commit time and
    // silently skips a merged topic branch whose commits are older than the old tip.
    let mut graph = repo
        .rev_walk([head])
        .with_hidden(hidden.iter().copied())
        .all()
        .context("cannot walk the history")?;
    let mut walked = Walked::default();
    let first = next_chunk(&mut graph, hidden, &mut walked)?;
    if first.len() < CHUNK {
        let mut reader = Reader::new(repo.clone(), &target.forge);
        reader.read(&first)?;
        merge(mentions, reader.mentions);
        return Ok(walked);
    }

    let readers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    let shared = repo.clone().into_sync();
    let (send, receive) = mpsc::sync_channel::<Vec<ObjectId>>(readers * 2);
    // The readers own the receiving end together: when the last of them has
    // gone (each failed), the channel closes and the walk's `send` returns
    // instead of waiting for room that never comes.
    let receive = Arc::new(Mutex::new(receive));
    // `Target` holds the (thread-bound) repository; readers need only the forge.
    let forge = &target.forge.clone();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                let repo = shared.to_thread_local();
                let receive = Arc::clone(&receive);
                scope.spawn(move || {
                    let mut reader = Reader::new(repo, forge);
                    loop {
                        // Its own statement: the queue's lock must be released
                        // before the chunk is read, or the readers take turns.
                        let next = receive.lock().expect("a reader panicked").recv();
                        let Ok(ids) = next else {
                            return Ok::<_, anyhow::Error>(reader.mentions);
                        };
                        reader.read(&ids)?;
                    }
                })
            })
            .collect();
        drop(receive);

        // The walk goes in and is dropped when it ends: its set of seen
        // commits must not outlive it while the findings are merged.
        let pumped = pump(graph, hidden, &mut walked, first, send);
        let mut first_error = pumped.err();
        for handle in handles {
            match handle.join().expect("a commit reader panicked") {
                Ok(found) => merge(mentions, found),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(walked),
        }
    })
}

/// The next commits of the walk, at most [`CHUNK`]; fewer only at its end.
fn next_chunk(
    graph: &mut gix::revision::Walk<'_>,
    hidden: &[ObjectId],
    walked: &mut Walked,
) -> Result<Vec<ObjectId>> {
    let mut chunk = Vec::with_capacity(CHUNK);
    for info in graph.by_ref() {
        let info = info.context("cannot walk the history")?;
        walked.commits += 1;
        if !hidden.is_empty() {
            walked.reached_tips.extend(
                info.parent_ids
                    .iter()
                    .filter(|parent| hidden.contains(parent)),
            );
        }
        chunk.push(info.id);
        if chunk.len() == CHUNK {
            break;
        }
    }
    Ok(chunk)
}

/// Feeds the readers until the walk ends. Stops early, without an error of
/// its own, when the readers have gone (they failed and say why).
fn pump(
    mut graph: gix::revision::Walk<'_>,
    hidden: &[ObjectId],
    walked: &mut Walked,
    first: Vec<ObjectId>,
    send: mpsc::SyncSender<Vec<ObjectId>>,
) -> Result<()> {
    let mut chunk = first;
    while !chunk.is_empty() {
        if send.send(chunk).is_err() {
            return Ok(());
        }
        chunk = next_chunk(&mut graph, hidden, walked)?;
    }
    Ok(())
}

/// Reads commit messages and keeps what they mention.
struct Reader<'a> {
    repo: gix::Repository,
    forge: ForgeRef<'a>,
    mentions: HashMap<u32, Mention>,
    found: Vec<Found>,
}

impl<'a> Reader<'a> {
    fn new(mut repo: gix::Repository, forge: &'a Forge) -> Self {
        // Each commit is read once here; a cache would only copy it around.
        repo.object_cache_size(0);
        Self {
            repo,
            forge: ForgeRef {
                host: &forge.host,
                owner: &forge.repo.owner,
                name: &forge.repo.name,
            },
            mentions: HashMap::new(),
            found: Vec::new(),
        }
    }

    fn read(&mut self, ids: &[ObjectId]) -> Result<()> {
        for &id in ids {
            let commit = self.repo.find_commit(id).with_context(|| {
                format!("cannot read commit {id} (is the repository damaged? `git fsck` tells)")
            })?;
            self.found.clear();
            parser::refs_in_message(commit.message_raw_sloppy(), &self.forge, &mut self.found);
            if self.found.is_empty() {
                continue;
            }
            let time = commit
                .time()
                .with_context(|| format!("cannot read the time of commit {id}"))?
                .seconds;
            for f in &self.found {
                note(
                    &mut self.mentions,
                    Mention {
                        number: f.number,
                        commit_time: time,
                        commit: hex(&id),
                        pattern: f.pattern.as_str(),
                        as_pr: f.pattern.is_pr(),
                    },
                );
            }
        }
        Ok(())
    }
}

fn hex(id: &ObjectId) -> [u8; 40] {
    let mut buf = [0u8; 40];
    let _written = id.hex_to_buf(&mut buf);
    buf
}

/// Folds one reader's findings into the whole.
fn merge(into: &mut HashMap<u32, Mention>, from: HashMap<u32, Mention>) {
    for mention in from.into_values() {
        note(into, mention);
    }
}

/// Keeps the newest mention of a ref (ties go to the larger commit id), so the
/// outcome depends neither on the walk's order nor on which reader saw what.
fn note(mentions: &mut HashMap<u32, Mention>, mention: Mention) {
    match mentions.entry(mention.number) {
        Entry::Vacant(slot) => {
            slot.insert(mention);
        }
        Entry::Occupied(mut slot) => {
            let kept = slot.get_mut();
            let as_pr = kept.as_pr || mention.as_pr;
            if (mention.commit_time, mention.commit) > (kept.commit_time, kept.commit) {
                *kept = mention;
            }
            kept.as_pr = as_pr;
        }
    }
}
