//! Gitea (and Forgejo, Codeberg): its REST API is all there is, pages of 50
//! through the same listing and single requests as GitHub's (see `rest.rs`).
//! What it costs per item beyond that: one request for an item's comments
//! (none when the listing counted none) and one for a PR's reviews.

use anyhow::Result;

use super::{Completion, Drain};
use crate::forge::github::Answer;
use crate::item::{Details, Item};

/// An item's comments and a PR's approvals, a request each.
pub(super) struct Discussion;

impl Completion for Discussion {
    fn needs(&self, item: &Item) -> bool {
        item.is_pr() || item.listed_comments != Some(0)
    }

    fn complete(&self, drain: &mut Drain<'_>, item: &mut Item) -> Result<bool> {
        let mut details = Details {
            comment_count: item.listed_comments.unwrap_or(0),
            comments: Vec::new(),
            approvals: None,
            linked_issues: None,
        };
        if item.listed_comments != Some(0) {
            let url = drain.forge.comments_url(item.number);
            let what = format!("read the comments of #{}", item.number);
            let Some(comments) =
                drain.ask_until_answered(&url, &what, |answer, body| match answer {
                    Answer::Ok => crate::forge::comments_from_gitea(body),
                    _ => Ok(Vec::new()),
                })?
            else {
                return Ok(false);
            };
            details.comment_count = details.comment_count.max(comments.len() as u64);
            details.comments = comments;
        }
        if item.is_pr() {
            let url = drain.forge.reviews_url(item.number);
            let what = format!("read the reviews of PR #{}", item.number);
            let Some(approvals) =
                drain.ask_until_answered(&url, &what, |answer, body| match answer {
                    Answer::Ok => crate::forge::approvals_from_gitea(body),
                    _ => Ok(0),
                })?
            else {
                return Ok(false);
            };
            details.approvals = Some(approvals);
        }
        item.details = Some(details);
        Ok(true)
    }
}
