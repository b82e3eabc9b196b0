//! Fair claiming: which queued runs a claim of `limit` takes.
//!
//! The queue is a set of *streams*, one per (app, end-user) (runs without an end-user are
//! one more stream of their app). Each pick goes to the org with the fewest runs running
//! (counting the picks of this claim), within it to the app with the fewest, and within
//! that to the stream with the fewest; ties go to the oldest queued run. (Orgs first, so
//! an org cannot widen its share by creating apps, nor an app by creating end-users.)
//! That is max-min fair sharing of the node's capacity: an app with a backlog of thousands and slots full gets the next free slot only when every
//! other app with queued work runs at least as many, so another app's new run starts at
//! the next free slot; apps with equal shares take turns. Running counts come from the
//! store, so the share is fair across nodes too.
//!
//! A claim reads one row per stream (`GROUP BY` on partial indexes of the queued and the
//! running runs), plans here how many runs each stream gives, then fetches those by index:
//! its cost grows with the number of streams, not with the queue's length. The claimed
//! runs start in the order of the plan's picks.

use std::collections::HashMap;

use crate::store::Millis;

/// Runs running now, per org and per app, whether or not they have queued work.
#[derive(Debug, Default)]
pub(super) struct Shares {
    pub by_org: HashMap<String, u64>,
    pub by_app: HashMap<String, u64>,
}

/// One (app, end-user) with queued runs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Stream {
    pub org_id: String,
    pub app_id: String,
    pub end_user: Option<String>,
    pub queued: u64,
    /// Its runs running now (on any node).
    pub running: u64,
    /// When its oldest queued run was created.
    pub oldest: Millis,
}

/// An app's streams and what it runs, as the plan goes.
struct App {
    org: usize,
    streams: Vec<Stream>,
    /// Runs given to each stream by this plan.
    given: Vec<u64>,
    running: u64,
    oldest: Millis,
}

impl App {
    /// The stream the app's next pick goes to: fewest running (plus given), then oldest.
    fn next_stream(&self) -> Option<usize> {
        (0..self.streams.len())
            .filter(|&i| self.given[i] < self.streams[i].queued)
            .min_by(|&i, &j| {
                let (a, b) = (&self.streams[i], &self.streams[j]);
                (a.running + self.given[i], a.oldest, &a.end_user).cmp(&(
                    b.running + self.given[j],
                    b.oldest,
                    &b.end_user,
                ))
            })
    }
}

/// What a claim takes.
#[derive(Debug)]
pub(super) struct Plan {
    /// How many runs each stream gives (streams giving none are left out).
    pub streams: Vec<(Stream, usize)>,
    /// The order of the picks, as indexes into `streams`: the order the runs start in.
    pub picks: Vec<usize>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.picks.is_empty()
    }
}

/// The plan of a claim of `limit`. `shares` counts what runs in every stream, queued
/// work or not.
pub(super) fn plan(streams: Vec<Stream>, shares: &Shares, limit: usize) -> Plan {
    let mut apps: Vec<App> = Vec::new();
    let mut orgs: Vec<u64> = Vec::new();
    let mut org_index: HashMap<String, usize> = HashMap::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for stream in streams {
        let org = *org_index.entry(stream.org_id.clone()).or_insert_with(|| {
            orgs.push(shares.by_org.get(&stream.org_id).copied().unwrap_or(0));
            orgs.len() - 1
        });
        let at = *index.entry(stream.app_id.clone()).or_insert_with(|| {
            apps.push(App {
                org,
                streams: Vec::new(),
                given: Vec::new(),
                running: shares.by_app.get(&stream.app_id).copied().unwrap_or(0),
                oldest: stream.oldest,
            });
            apps.len() - 1
        });
        let app = &mut apps[at];
        app.oldest = app.oldest.min(stream.oldest);
        app.streams.push(stream);
        app.given.push(0);
    }
    let mut picked: Vec<(usize, usize)> = Vec::new();
    for _ in 0..limit {
        let share = |a: usize| (orgs[apps[a].org], apps[a].running, apps[a].oldest, a);
        let pick = (0..apps.len())
            .filter_map(|a| apps[a].next_stream().map(|s| (a, s)))
            .min_by_key(|&(a, _)| share(a));
        let Some((a, s)) = pick else { break };
        apps[a].given[s] += 1;
        apps[a].running += 1;
        orgs[apps[a].org] += 1;
        picked.push((a, s));
    }
    // The streams that give something, and where each (app, stream) landed among them.
    let mut flat: HashMap<(usize, usize), usize> = HashMap::new();
    let mut given = Vec::new();
    for (a, app) in apps.into_iter().enumerate() {
        for (s, (stream, n)) in app.streams.into_iter().zip(app.given).enumerate() {
            if n > 0 {
                flat.insert((a, s), given.len());
                given.push((stream, n as usize));
            }
        }
    }
    let picks = picked.iter().map(|at| flat[at]).collect();
    Plan {
        streams: given,
        picks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(app: &str, user: Option<&str>, queued: u64, running: u64, oldest: Millis) -> Stream {
        Stream {
            org_id: format!("org_of_{app}"),
            app_id: app.into(),
            end_user: user.map(Into::into),
            queued,
            running,
            oldest,
        }
    }

    fn counts(plan: Plan) -> Vec<(String, Option<String>, usize)> {
        plan.streams
            .into_iter()
            .map(|(s, n)| (s.app_id, s.end_user, n))
            .collect()
    }

    /// Each app in an org of its own, running `n`.
    fn running(apps: &[(&str, u64)]) -> Shares {
        Shares {
            by_org: apps
                .iter()
                .map(|(a, n)| (format!("org_of_{a}"), *n))
                .collect(),
            by_app: apps.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn an_org_gains_nothing_by_creating_apps() {
        // Org X spreads its backlog over three apps; org Y has one app. Y gets half.
        let mut streams: Vec<Stream> = ["x1", "x2", "x3"]
            .iter()
            .map(|app| Stream {
                org_id: "org_x".into(),
                ..stream(app, None, 100, 0, 1)
            })
            .collect();
        streams.push(Stream {
            org_id: "org_y".into(),
            ..stream("y", None, 100, 0, 2)
        });
        let plan = plan(streams, &Shares::default(), 6);
        let to_y: usize = plan
            .streams
            .iter()
            .filter(|(s, _)| s.org_id == "org_y")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(to_y, 3, "{plan:?}");
    }

    #[test]
    fn the_next_slot_goes_to_the_app_running_least() {
        // A's backlog fills the node's 4 slots; B queues one run: a claim of one takes B's.
        let streams = vec![
            stream("app_a", None, 5_000, 4, 1),
            stream("app_b", None, 1, 0, 50),
        ];
        let plan = counts(plan(streams, &running(&[("app_a", 4)]), 1));
        assert_eq!(plan, [("app_b".into(), None, 1)]);
    }

    #[test]
    fn equal_shares_take_turns_and_a_small_queue_leaves_the_rest_to_the_backlog() {
        let streams = vec![
            stream("app_a", None, 5_000, 0, 1),
            stream("app_b", None, 3, 0, 50),
        ];
        let none = Shares::default();
        // Picks alternate: A's oldest, B's, A's, B's (indexes into the plan's streams).
        assert_eq!(plan(streams.clone(), &none, 4).picks, [0, 1, 0, 1]);
        let plan4 = counts(plan(streams.clone(), &none, 4));
        assert_eq!(
            plan4,
            [("app_a".into(), None, 2), ("app_b".into(), None, 2)]
        );
        let plan10 = counts(plan(streams, &none, 10));
        assert_eq!(
            plan10,
            [("app_a".into(), None, 7), ("app_b".into(), None, 3)]
        );
    }

    #[test]
    fn end_users_share_their_app_and_apps_share_the_node() {
        let streams = vec![
            stream("app_a", Some("flood"), 100, 2, 1),
            stream("app_a", None, 2, 0, 3),
            stream("app_a", Some("quiet"), 1, 0, 5),
            stream("app_b", Some("x"), 1, 0, 2),
        ];
        // A runs 2 (flood's), B none: B's x first, then A's idle streams, then A's flood.
        let plan = counts(plan(streams, &running(&[("app_a", 2)]), 4));
        assert_eq!(
            plan,
            [
                ("app_a".into(), None, 2),
                ("app_a".into(), Some("quiet".into()), 1),
                ("app_b".into(), Some("x".into()), 1),
            ]
        );
        assert!(super::plan(Vec::new(), &Shares::default(), 5).is_empty());
        assert!(super::plan(Vec::new(), &Shares::default(), 5)
            .streams
            .is_empty());
        let one = vec![stream("app_a", None, 3, 0, 1)];
        assert!(super::plan(one, &Shares::default(), 0).is_empty());
    }
}
