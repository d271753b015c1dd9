//! Membership events (`Node::watch_members`): joins, promotions and removals in log order
//! on every core and replicant; best-effort liveness, leader and replicant events.

use crate::harness::*;
use mnema::{MemberEvent, MemberWatch, Node, ReplicantState};
use std::time::{Duration, Instant};

/// The events of `w` up to and including the first that `pred` accepts (20 s at most).
async fn until(w: &mut MemberWatch, what: &str, pred: impl Fn(&MemberEvent) -> bool) -> Vec<MemberEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.next()).await {
            Ok(Some(e)) => {
                let done = pred(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("{what}: the watch ended; saw {seen:?}"),
            Err(_) => panic!("{what}: not seen in 20 s; saw {seen:?}"),
        }
    }
}

/// Only the events that membership log entries make.
fn logged(events: Vec<MemberEvent>) -> Vec<MemberEvent> {
    events
        .into_iter()
        .filter(|e| {
            matches!(e, MemberEvent::Joined { .. } | MemberEvent::Promoted { .. } | MemberEvent::Removed { .. })
        })
        .collect()
}

fn is_named(e: &MemberEvent, want: &str) -> bool {
    match e {
        MemberEvent::Down { name } | MemberEvent::Up { name } => name == want,
        _ => false,
    }
}

async fn replicant_normal(r: &Node) {
    wait_until("replicant normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_and_a_leave_reach_every_core_and_replicant_in_log_order() {
    let c = Cluster::start(2).await;
    let r = c.replicant(4).await;
    replicant_normal(&r).await;
    let mut watches = vec![c.nodes[0].watch_members(), c.nodes[1].watch_members(), r.watch_members()];

    let n3 = Node::start(manual_config(c.dir.path(), c.base, 3), test_tables()).await.expect("start n3");
    let target = mnema::Peer::parse("t", &format!("{}:{}", name(1), c.base + 1), 0).expect("peer");
    n3.join(&target).await.expect("join");
    let n3_name = name(3);
    let mut joins = Vec::new();
    for w in &mut watches {
        let seen =
            until(w, "n3 promoted", |e| matches!(e, MemberEvent::Promoted { name, .. } if *name == n3_name)).await;
        joins.push(logged(seen));
    }
    assert!(
        matches!(&joins[0][..], [MemberEvent::Joined { name: a, voter: false, index: i }, MemberEvent::Promoted { name: b, index: j }]
            if *a == n3_name && *b == n3_name && i < j),
        "a learner joins, then is promoted: {:?}",
        joins[0]
    );
    assert!(joins.iter().all(|j| *j == joins[0]), "the same events at the same indexes everywhere: {joins:?}");

    // n3 leaves once it knows the membership it joined.
    wait_until("n3 knows it is a voter of 3", Duration::from_secs(20), || async {
        n3.members().is_ok_and(|(voters, _)| voters.len() == 3)
    })
    .await;
    let mut own = n3.watch_members();
    n3.leave(false).await.expect("leave");
    until(&mut own, "n3 tells it left", |e| matches!(e, MemberEvent::Left { name } if *name == n3_name)).await;
    let mut leaves = Vec::new();
    for w in &mut watches {
        let seen = until(w, "n3 removed", |e| matches!(e, MemberEvent::Removed { name, .. } if *name == n3_name)).await;
        leaves.push(logged(seen));
    }
    assert!(
        matches!(&leaves[0][..], [MemberEvent::Removed { name, index }] if *name == n3_name && *index > 0),
        "{:?}",
        leaves[0]
    );
    assert!(leaves.iter().all(|l| *l == leaves[0]), "{leaves:?}");
    n3.shutdown().await.expect("n3");
    r.shutdown().await.expect("replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_core_is_down_then_up_and_force_leave_removes_it_everywhere() {
    let mut c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    replicant_normal(&r).await;
    let f = c.follower();
    let gone = name(f as u16 + 1);
    let leader = c.leader();
    let mut on_leader = c.nodes[leader].watch_members();
    let mut on_replicant = r.watch_members();

    // Stopped: the leader cannot reach it.
    c.nodes.remove(f).shutdown().await.expect("stop the follower");
    until(&mut on_leader, "down", |e| matches!(e, MemberEvent::Down { name } if *name == gone)).await;
    // Back: it answers again.
    let back = Node::start(config(c.dir.path(), c.base, f as u16 + 1, 3), test_tables()).await.expect("restart");
    let seen = until(&mut on_leader, "up", |e| matches!(e, MemberEvent::Up { name } if *name == gone)).await;
    assert!(!seen.iter().any(|e| matches!(e, MemberEvent::Removed { .. })), "{seen:?}");

    // Stopped for good and force-left: removed, on the cores and on the replicant.
    back.shutdown().await.expect("stop again");
    let leader_node = c.nodes.iter().find(|n| n.is_leader()).expect("a leader");
    leader_node.remove_member(&gone, false).await.expect("force-leave");
    let on_l =
        until(&mut on_leader, "removed", |e| matches!(e, MemberEvent::Removed { name, .. } if *name == gone)).await;
    let on_r =
        until(&mut on_replicant, "removed", |e| matches!(e, MemberEvent::Removed { name, .. } if *name == gone)).await;
    assert_eq!(logged(on_l).last(), logged(on_r.clone()).last(), "the same entry on a core and a replicant");
    assert!(
        on_r.iter().all(|e| !is_named(e, &gone)),
        "a replicant does not probe the cores (liveness is a core's view): {on_r:?}"
    );
    r.shutdown().await.expect("replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_and_a_replicant_coming_and_going_are_told() {
    let mut c = Cluster::start(3).await;
    let mut watches: Vec<MemberWatch> = c.nodes.iter().map(|n| n.watch_members()).collect();
    let r = c.replicant(4).await;
    replicant_normal(&r).await;
    let upstream = r.replicant_status().and_then(|s| s.upstream).expect("an upstream core");
    let k = number_of(&upstream).expect("a core's name") as usize - 1;
    let rname = name(4);
    until(
        &mut watches[k],
        "replicant connected",
        |e| matches!(e, MemberEvent::ReplicantConnected { name } if *name == rname),
    )
    .await;
    r.shutdown().await.expect("replicant");
    until(
        &mut watches[k],
        "replicant disconnected",
        |e| matches!(e, MemberEvent::ReplicantDisconnected { name } if *name == rname),
    )
    .await;

    // The leader stops: the others learn of a new one.
    let old = c.leader();
    let old_name = name(old as u16 + 1);
    watches.remove(old);
    c.nodes.remove(old).shutdown().await.expect("stop the leader");
    for (w, n) in watches.iter_mut().zip(&c.nodes) {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(e) = w.next().await {
                if matches!(&e, MemberEvent::LeaderChanged { leader: Some(l) } if *l != old_name) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "{} told of no new leader in 20 s; it knows {:?}, metrics {:?}",
            n.name(),
            n.status().leader,
            c.nodes
                .iter()
                .map(|n| n.runtime().metrics().map(|m| (
                    n.name().to_string(),
                    m.current_leader,
                    m.state,
                    m.current_term,
                    m.vote,
                    m.last_log_index,
                    m.last_applied
                )))
                .collect::<Vec<_>>()
        );
    }
    c.shutdown().await;
}
