//! The refresh: what changed on the forge since the high-water mark, through
//! the changed-since listing, page by page, the mark moving only with a
//! committed page. The first page is asked conditionally, so an unchanged
//! repository costs one request that the primary limit does not count.

use anyhow::{Result, bail};
use reqwest::Url;

use super::record::{Outcome, to_rate};
use super::rest::Listed;
use super::{Drain, End, Way};
use crate::forge::github::Answer;
use crate::report::count;
use crate::store::Writer;

impl Drain<'_> {
    /// Brings in what changed (everything, when `full`); `way` may make the
    /// changed items richer before they are recorded.
    pub(super) fn refresh(&mut self, way: &mut dyn Way, full: bool) -> Result<End> {
        let state = self.store.refresh_state(&self.repo)?;
        // The first page keeps one base (`since`) from refresh to refresh, so
        // that its ETag is known and an unchanged repository answers 304; the
        // base moves up to the mark once the changes since it fill a page.
        let kept = state
            .first_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| !full && self.forge.may_follow(u));
        let first = match kept {
            Some(url) => url,
            None => self
                .forge
                .updated_url(if full { None } else { state.mark.as_deref() }),
        };
        let mut etag = (state.first_url.as_deref() == Some(first.as_str()))
            .then(|| state.first_etag.clone())
            .flatten();
        let mut url = first.clone();
        let mut pages = 0;
        let mut changed = 0;
        // A listing newest first (Gitea) moves the mark only at its end: a
        // later page may hold older changes.
        let ascending = self.forge.kind().updates_ascending();
        let mut newest_seen: Option<String> = None;
        loop {
            if crate::signals::stop_requested() {
                return Ok(End::Interrupted);
            }
            if let Some(why) = self.given_up(" while refreshing") {
                return Ok(End::GaveUp(why));
            }
            let (fetched, mut items) = match self.list(&url, etag.as_deref())? {
                Listed::Stopped => return Ok(End::Interrupted),
                Listed::Again => continue,
                Listed::Page(fetched, items) => (*fetched, items),
            };
            if let Answer::Moved(_) = fetched.answer {
                bail!("unexpected answer while refreshing: {:?}", fetched.answer);
            }
            // REST tells what changed; the way of asking may bring more of
            // it (GraphQL: the discussion), before the page and the mark
            // commit.
            if !way.enrich(self, &mut items)? {
                return Ok(End::Interrupted);
            }
            let newest = items
                .iter()
                .map(|i| i.updated_at.as_str())
                .max()
                .map(str::to_owned);
            if let Some(newest) = &newest
                && newest_seen.as_ref().is_none_or(|seen| newest > seen)
            {
                newest_seen = Some(newest.clone());
            }
            let (repo, run, requests) = (self.repo.clone(), self.run, self.summary.requests);
            let is_first = url == first;
            // The mark moves with the last of the page's items committed.
            let mark = |w: &Writer<'_>| -> Result<()> {
                if let (Some(newest), true) = (&newest, ascending) {
                    w.advance_mark(newest)?;
                }
                if is_first && fetched.answer == Answer::Ok {
                    w.set_refresh_page(&repo, first.as_str(), fetched.etag.as_deref())?;
                }
                if let Some(rate) = fetched.rate {
                    w.set_rate(&repo, to_rate(rate))?;
                }
                w.count(run, requests, 0, 0, None)
            };
            let listed = items.len();
            let (items, later) = self.needing_completion(items);
            let complete_page = later.is_empty();
            let stored = self.record_items(&items, |w, _| match complete_page {
                true => mark(w),
                false => Ok(()),
            })?;
            let mut page_changed = stored.changed;
            if !later.is_empty() {
                for mut item in later {
                    if !self.complete(&mut item)? {
                        return Ok(End::Interrupted);
                    }
                    page_changed +=
                        u64::from(self.record(item.number, Outcome::found(&item), None)?);
                }
                self.store.write(mark)?;
            }
            changed += page_changed;
            pages += 1;
            self.succeeded()?;
            match fetched.next.filter(|next| self.forge.may_follow(next)) {
                Some(next) if fetched.answer == Answer::Ok && listed > 0 => {
                    url = next;
                    etag = None;
                }
                _ => break,
            }
        }
        let repo = self.repo.clone();
        let rebase = (pages > 1)
            .then(|| self.store.refresh_state(&repo))
            .transpose()?
            .map(|state| self.forge.updated_url(state.mark.as_deref()));
        self.store.write(|w| {
            if let (Some(newest), false) = (&newest_seen, ascending) {
                w.advance_mark(newest)?;
            }
            if let Some(base) = &rebase {
                w.set_refresh_page(&repo, base.as_str(), None)?;
            }
            w.finish_refresh(&repo, changed)
        })?;
        self.summary.refreshed = Some(changed);
        if changed > 0 {
            self.progress.log(&format!(
                "refresh: {} new or changed on the forge",
                count(changed, "item", "items")
            ));
        }
        Ok(End::Done)
    }
}
